-- Schema of the parity scenarios (shared/acceptance/cachebot-parity.md).
-- Unqualified names: the test harness applies this inside a per-test schema.
CREATE TABLE first_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL
);

CREATE TABLE second_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL,
    first_model_id INTEGER NOT NULL REFERENCES first_models (id) ON DELETE CASCADE
);

CREATE TABLE third_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL,
    second_model_id INTEGER NOT NULL REFERENCES second_models (id) ON DELETE CASCADE
);

CREATE TABLE many_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL
);

CREATE TABLE many_models_first_models (
    id SERIAL PRIMARY KEY,
    many_model_id INTEGER NOT NULL REFERENCES many_models (id) ON DELETE CASCADE,
    first_model_id INTEGER NOT NULL REFERENCES first_models (id) ON DELETE CASCADE
);

CREATE TABLE many_models_third_models (
    id SERIAL PRIMARY KEY,
    many_model_id INTEGER NOT NULL REFERENCES many_models (id) ON DELETE CASCADE,
    third_model_id INTEGER NOT NULL REFERENCES third_models (id) ON DELETE CASCADE
);

-- A polymorphic pointer: (content_type = table name, object_id = that table's id).
CREATE TABLE generic_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL,
    content_type VARCHAR NOT NULL,
    object_id INTEGER NOT NULL
);

-- A model whose primary-key gets are not cached by default.
CREATE TABLE no_cache_models (
    id SERIAL PRIMARY KEY,
    text VARCHAR NOT NULL
);
