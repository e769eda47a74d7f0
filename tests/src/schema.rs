//! Diesel table definitions matching `migrations/` exactly (as `diesel print-schema` would
//! write them, without a schema prefix: the harness sets `search_path` per test).

diesel::table! {
    /// F in the parity scenarios.
    first_models (id) {
        id -> Int4,
        text -> Varchar,
    }
}

diesel::table! {
    /// S in the parity scenarios: child of `first_models`.
    second_models (id) {
        id -> Int4,
        text -> Varchar,
        first_model_id -> Int4,
    }
}

diesel::table! {
    /// T in the parity scenarios: child of `second_models`.
    third_models (id) {
        id -> Int4,
        text -> Varchar,
        second_model_id -> Int4,
    }
}

diesel::table! {
    /// M in the parity scenarios.
    many_models (id) {
        id -> Int4,
        text -> Varchar,
    }
}

diesel::table! {
    /// Join table M <-> F.
    many_models_first_models (id) {
        id -> Int4,
        many_model_id -> Int4,
        first_model_id -> Int4,
    }
}

diesel::table! {
    /// Join table M <-> T.
    many_models_third_models (id) {
        id -> Int4,
        many_model_id -> Int4,
        third_model_id -> Int4,
    }
}

diesel::table! {
    /// G in the parity scenarios: a polymorphic pointer `(content_type, object_id)`.
    generic_models (id) {
        id -> Int4,
        text -> Varchar,
        content_type -> Varchar,
        object_id -> Int4,
    }
}

diesel::table! {
    /// A model whose primary-key gets are not cached by default.
    no_cache_models (id) {
        id -> Int4,
        text -> Varchar,
    }
}

diesel::table! {
    /// Users (README examples, benchmarks).
    users (id) {
        id -> Int4,
        name -> Text,
        email -> Nullable<Text>,
    }
}

diesel::table! {
    /// Photos of users (README examples, benchmarks).
    photos (id) {
        id -> Int4,
        user_id -> Int4,
        status -> Int4,
        title -> Text,
        score -> Float8,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// One nullable column per bind type.
    kinds (id) {
        id -> Int4,
        small -> Nullable<Int2>,
        big -> Nullable<Int8>,
        flag -> Nullable<Bool>,
        label -> Nullable<Text>,
        #[max_length = 32]
        code -> Nullable<Varchar>,
        blob -> Nullable<Bytea>,
        day -> Nullable<Date>,
        at -> Nullable<Timestamp>,
        at_tz -> Nullable<Timestamptz>,
        ratio -> Nullable<Float8>,
        maybe -> Nullable<Text>,
    }
}

diesel::joinable!(second_models -> first_models (first_model_id));
diesel::joinable!(third_models -> second_models (second_model_id));
diesel::joinable!(many_models_first_models -> many_models (many_model_id));
diesel::joinable!(many_models_first_models -> first_models (first_model_id));
diesel::joinable!(many_models_third_models -> many_models (many_model_id));
diesel::joinable!(many_models_third_models -> third_models (third_model_id));
diesel::joinable!(photos -> users (user_id));

diesel::table! {
    /// Tags of photos: not created by the migrations; `tests/precision.rs` creates it with
    /// the foreign keys each case needs.
    photo_tags (photo_id, tag_id) {
        /// The photo.
        photo_id -> Int4,
        /// The tag.
        tag_id -> Int4,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    photo_tags,
    first_models,
    second_models,
    third_models,
    many_models,
    many_models_first_models,
    many_models_third_models,
    generic_models,
    no_cache_models,
    users,
    photos,
    kinds,
);
