DROP TABLE IF EXISTS no_cache_models;
DROP TABLE IF EXISTS generic_models;
DROP TABLE IF EXISTS many_models_third_models;
DROP TABLE IF EXISTS many_models_first_models;
DROP TABLE IF EXISTS many_models;
DROP TABLE IF EXISTS third_models;
DROP TABLE IF EXISTS second_models;
DROP TABLE IF EXISTS first_models;
