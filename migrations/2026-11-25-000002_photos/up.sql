-- Users and their photos: the schema of the README examples and the benchmarks.
CREATE TABLE users (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT
);

CREATE TABLE photos (
    id SERIAL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status INTEGER NOT NULL,
    title TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL DEFAULT 0,
    deleted_at TIMESTAMPTZ NULL
);

CREATE INDEX photos_user_id_idx ON photos (user_id);
CREATE INDEX photos_status_idx ON photos (status);
