//! Rust models for every table in [`crate::schema`]: a queryable struct per table and a
//! `New*` insertable struct per table (owned fields, `id` left to the database).
//!
//! The queryable structs derive [`CacheBot`]: cached `get`/`get_many` by primary key and
//! invalidating `insert`/`save`/`delete` (`save` through their `AsChangeset`).

use cachebot::CacheBot;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::{
    first_models, generic_models, kinds, many_models, many_models_first_models,
    many_models_third_models, no_cache_models, photos, second_models, third_models, users,
};

/// A row of `first_models` (F).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = first_models, check_for_backend(diesel::pg::Pg))]
pub struct FirstModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
}

/// A new `first_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = first_models)]
pub struct NewFirstModel {
    /// Payload.
    pub text: String,
}

/// A row of `second_models` (S), child of F.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = second_models, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(FirstModel))]
pub struct SecondModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
    /// Parent F.
    pub first_model_id: i32,
}

/// A new `second_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = second_models)]
pub struct NewSecondModel {
    /// Payload.
    pub text: String,
    /// Parent F.
    pub first_model_id: i32,
}

/// A row of `third_models` (T), child of S.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = third_models, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(SecondModel))]
pub struct ThirdModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
    /// Parent S.
    pub second_model_id: i32,
}

/// A new `third_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = third_models)]
pub struct NewThirdModel {
    /// Payload.
    pub text: String,
    /// Parent S.
    pub second_model_id: i32,
}

/// A row of `many_models` (M).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = many_models, check_for_backend(diesel::pg::Pg))]
pub struct ManyModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
}

/// A new `many_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = many_models)]
pub struct NewManyModel {
    /// Payload.
    pub text: String,
}

/// A row of the join table `many_models_first_models` (M <-> F).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = many_models_first_models, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(ManyModel))]
#[diesel(belongs_to(FirstModel))]
pub struct ManyModelFirstModel {
    /// Primary key.
    pub id: i32,
    /// The M side.
    pub many_model_id: i32,
    /// The F side.
    pub first_model_id: i32,
}

/// A new `many_models_first_models` row (an "add" to the relation).
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = many_models_first_models)]
pub struct NewManyModelFirstModel {
    /// The M side.
    pub many_model_id: i32,
    /// The F side.
    pub first_model_id: i32,
}

/// A row of the join table `many_models_third_models` (M <-> T).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = many_models_third_models, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(ManyModel))]
#[diesel(belongs_to(ThirdModel))]
pub struct ManyModelThirdModel {
    /// Primary key.
    pub id: i32,
    /// The M side.
    pub many_model_id: i32,
    /// The T side.
    pub third_model_id: i32,
}

/// A new `many_models_third_models` row (an "add" to the relation).
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = many_models_third_models)]
pub struct NewManyModelThirdModel {
    /// The M side.
    pub many_model_id: i32,
    /// The T side.
    pub third_model_id: i32,
}

/// A row of `generic_models` (G): points at any row through `(content_type, object_id)`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = generic_models, check_for_backend(diesel::pg::Pg))]
pub struct GenericModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
    /// Name of the table pointed at (e.g. `"second_models"`).
    pub content_type: String,
    /// Primary key of the row pointed at.
    pub object_id: i32,
}

/// A new `generic_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = generic_models)]
pub struct NewGenericModel {
    /// Payload.
    pub text: String,
    /// Name of the table pointed at.
    pub content_type: String,
    /// Primary key of the row pointed at.
    pub object_id: i32,
}

/// A row of `no_cache_models`: primary-key gets are not cached by default.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = no_cache_models, check_for_backend(diesel::pg::Pg))]
#[cachebot(cache_get = false)]
pub struct NoCacheModel {
    /// Primary key.
    pub id: i32,
    /// Payload.
    pub text: String,
}

/// A new `no_cache_models` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = no_cache_models)]
pub struct NewNoCacheModel {
    /// Payload.
    pub text: String,
}

/// A row of `users`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
#[diesel(treat_none_as_null = true)]
pub struct User {
    /// Primary key.
    pub id: i32,
    /// Display name.
    pub name: String,
    /// Optional e-mail address.
    pub email: Option<String>,
}

/// A new `users` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = users)]
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Optional e-mail address.
    pub email: Option<String>,
}

/// A row of `photos`, child of `users`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = photos, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(User), treat_none_as_null = true)]
#[cachebot(key(user_id, status))]
pub struct Photo {
    /// Primary key.
    pub id: i32,
    /// Owner.
    pub user_id: i32,
    /// Application-defined status code.
    pub status: i32,
    /// Title.
    pub title: String,
    /// A float column (never keyed by value).
    pub score: f64,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A new `photos` row.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = photos)]
pub struct NewPhoto {
    /// Owner.
    pub user_id: i32,
    /// Application-defined status code.
    pub status: i32,
    /// Title.
    pub title: String,
    /// A float column.
    pub score: f64,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A row of `kinds`: one nullable column per bind type.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = kinds, check_for_backend(diesel::pg::Pg))]
#[diesel(treat_none_as_null = true)]
pub struct Kind {
    /// Primary key.
    pub id: i32,
    /// `smallint`.
    pub small: Option<i16>,
    /// `bigint`.
    pub big: Option<i64>,
    /// `boolean`.
    pub flag: Option<bool>,
    /// `text`.
    pub label: Option<String>,
    /// `varchar(32)`.
    pub code: Option<String>,
    /// `bytea`.
    pub blob: Option<Vec<u8>>,
    /// `date`.
    pub day: Option<NaiveDate>,
    /// `timestamp` (without time zone).
    pub at: Option<NaiveDateTime>,
    /// `timestamptz`.
    pub at_tz: Option<DateTime<Utc>>,
    /// `double precision` (never keyed by value).
    pub ratio: Option<f64>,
    /// Another nullable `text`, usually left NULL.
    pub maybe: Option<String>,
}

/// A new `kinds` row; `Default` is all NULL.
#[derive(Debug, Clone, Default, PartialEq, Insertable, Serialize, Deserialize)]
#[diesel(table_name = kinds)]
pub struct NewKind {
    /// `smallint`.
    pub small: Option<i16>,
    /// `bigint`.
    pub big: Option<i64>,
    /// `boolean`.
    pub flag: Option<bool>,
    /// `text`.
    pub label: Option<String>,
    /// `varchar(32)`.
    pub code: Option<String>,
    /// `bytea`.
    pub blob: Option<Vec<u8>>,
    /// `date`.
    pub day: Option<NaiveDate>,
    /// `timestamp` (without time zone).
    pub at: Option<NaiveDateTime>,
    /// `timestamptz`.
    pub at_tz: Option<DateTime<Utc>>,
    /// `double precision`.
    pub ratio: Option<f64>,
    /// Another nullable `text`.
    pub maybe: Option<String>,
}
