//! `#[derive(CacheBot)]` for the [`cachebot`](https://docs.rs/cachebot) crate: cached gets and
//! invalidating writes for a Diesel model.
//!
//! Use it through `cachebot` (`cachebot::CacheBot`); the generated code
//! names `::cachebot` and `::diesel`, so both must be dependencies of the
//! crate deriving. The model must also derive (or implement) Diesel's
//! `Queryable` and `Selectable`, and `Clone`, `serde::Serialize` and
//! `serde::Deserialize` (cached rows are stored encoded); `save` needs
//! `AsChangeset`.
//!
//! ```
//! use cachebot::prelude::*; // brings the `CachedModel` methods into scope
//! use diesel::prelude::*;
//!
//! diesel::table! {
//!     photos (id) { id -> Int4, user_id -> Int4, status -> Int4, title -> Text }
//! }
//!
//! #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
//!          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
//! #[diesel(table_name = photos)]
//! #[cachebot(key(user_id, status))]
//! struct Photo {
//!     id: i32,
//!     user_id: i32,
//!     status: i32,
//!     title: String,
//! }
//!
//! fn reads(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
//!     let one: Option<Photo> = Photo::get(cache, conn, 7)?;
//!     let many: Vec<Photo> = Photo::get_many(cache, conn, &[7, 8])?;
//!     // The declared key: its columns (declared order), then the values.
//!     let drafts: Vec<Photo> =
//!         Photo::get_by(cache, conn, (photos::user_id, photos::status), (3, 1))?;
//!     if let Some(mut photo) = one {
//!         photo.title = "sunset".into();
//!         photo.save(cache, conn)?;
//!         photo.delete(cache, conn)?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Attributes
//!
//! Diesel's own attributes are read as far as the cache needs them:
//! `#[diesel(table_name = ..)]`, `primary_key(..)`, `belongs_to(..)` on the
//! struct; `column_name = ..`, and `embed`, `select_expression`,
//! `serialize_as`, `deserialize_as` (a field that is not a plain column) on
//! fields. Any other Diesel key is left to Diesel. The derive's own, on the
//! struct, are checked strictly (an unknown key is an error listing the
//! valid ones):
//!
//! ```text
//! #[cachebot(cache_get = false)]      // primary-key gets bypass the cache
//! #[cachebot(key(field, field, ..))]  // a composite key (repeatable)
//! ```
//!
//! # What it generates
//!
//! Everything inside `const _: () = { .. };` (no name is added to the
//! module):
//!
//! - `impl cachebot::CacheModel`: which generations a change to a row
//!   bumps;
//! - `impl cachebot::CachedModel`: the primary key's type and the queries
//!   by primary key. The trait provides the methods: `get`, `get_many`,
//!   `get_by`, `insert`, `save`, `delete`. They are trait methods, so a
//!   method of the model's own with the same name wins, and they need the
//!   trait in scope (`use cachebot::prelude::*;` or
//!   `use cachebot::CachedModel;`);
//! - `impl cachebot::DeclaredKey<Model>` for each `key(..)`: on the column's
//!   type for a one-column key, on the tuple of the columns' types
//!   otherwise. `get_by` takes it, so the key's columns and its values'
//!   types are checked at compile time.
//!
//! A declared key is read with `get_by(cache, conn, (table::a, table::b),
//! (a, b))`: the key's columns (not the fields, when a field is renamed by
//! `column_name`), then their values.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod attr;
mod check;
mod ctxt;
mod expand;
mod model;
mod parse;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derive `cachebot::CacheModel`, `cachebot::CachedModel` and one
/// `cachebot::DeclaredKey` per declared key for a Diesel model. See the
/// crate documentation.
#[proc_macro_derive(CacheBot, attributes(cachebot, diesel))]
pub fn derive_cache_bot(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    model::Model::from_input(&input)
        .map(|model| expand::expand(&model))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
