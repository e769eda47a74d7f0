-- One column per bind type the cache keys on (or refuses to key on: ratio is a float).
CREATE TABLE kinds (
    id SERIAL PRIMARY KEY,
    small SMALLINT,
    big BIGINT,
    flag BOOLEAN,
    label TEXT,
    code VARCHAR(32),
    blob BYTEA,
    day DATE,
    at TIMESTAMP,
    at_tz TIMESTAMPTZ,
    ratio DOUBLE PRECISION,
    maybe TEXT NULL
);
