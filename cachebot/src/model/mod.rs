//! Models: what `#[derive(CacheBot)]` implements.
//!
//! - [`CacheModel`] knows, for one row, which generations a change to it
//!   must bump: one per keyable column value, one per declared composite
//!   key, and the table's "rows" generation. The values are encoded through
//!   the very bind collector the read side uses, so a column value and the
//!   same value in a `WHERE` clause always produce the same key. On the
//!   write path the same pass records each column's value (module `images`),
//!   for the finer generations that depend on what changed.
//! - [`CachedModel`] provides the cached gets (`get`, `get_many`, `get_by`
//!   with a [`DeclaredKey`]) and the invalidating writes (`insert`, `save`,
//!   `delete`) on top of a few items the derive implements.
//!
//! The derive's generated code also calls a few hidden helpers
//! (`model::__private`); they are not a public API.
#![warn(missing_docs, unreachable_pub)]

use crate::key;
use crate::scope::Tables;
use crate::store::Key;
use images::Images;

pub(crate) mod cached;
pub(crate) mod images;

pub use cached::{CachedModel, DeclaredKey};

#[doc(hidden)]
#[path = "derive_support.rs"]
pub mod __private;

/// A Diesel model whose rows the cache can invalidate precisely.
/// Implemented by `#[derive(CacheBot)]`; implement it by hand only for
/// models the derive cannot read.
pub trait CacheModel: Sized + 'static {
    /// The model's Diesel table.
    type Table: diesel::Table + Default;

    /// Whether the primary-key get reads through the cache
    /// (`#[cachebot(cache_get = false)]` turns it off).
    const CACHE_GET: bool = true;

    /// The table's SQL name, as the cache names tables.
    fn table_name() -> &'static str;

    /// Append the generation keys a change to this row (its old or its new
    /// image) must bump.
    ///
    /// The derive's implementation also records, on the write path, each
    /// column's value, so that a write can compare a row's old and new
    /// images and bump the membership and column generations of what
    /// changed (see [`crate::write`]). A hand-written implementation records
    /// nothing: its rows' writes then also bump their table's "all"
    /// generation.
    fn row_keys(&self, out: &mut RowKeys<'_>);

    /// The primary key's encoded value: how old and new images of one row
    /// are matched.
    fn identity(&self) -> Vec<u8>;

    /// Declared composite keys, as column names.
    fn composite_keys() -> &'static [&'static [&'static str]] {
        &[]
    }

    /// The (table, column) each field is loaded from, in field order (the
    /// order Diesel selects them in); `None` for a field that is not one
    /// plain column. A query whose select list is exactly these columns
    /// returns rows of the table, and may depend on those rows by primary
    /// key (see [`CacheBuilder::model`](crate::CacheBuilder::model)). The
    /// default (empty) never lets it.
    fn columns() -> Vec<Option<(String, String)>> {
        Vec::new()
    }

    /// The positions in [`columns`](Self::columns) of the primary key's
    /// fields, in key order.
    fn primary_key_fields() -> &'static [usize] {
        &[]
    }

    /// The primary key's values as the database's bind bytes (`None` for
    /// SQL `NULL`), in key order; `None` when a part cannot be keyed by
    /// value (a float, say). The default (`None`) never keys on it.
    fn primary_key_values(&self) -> Option<Vec<Option<Vec<u8>>>> {
        None
    }
}

/// The generation keys a write must bump, gathered from a model's rows.
///
/// Tables are named as the connection that writes resolves them (schema and
/// search path): a table the resolver does not know widens the write to
/// everything.
pub struct RowKeys<'a> {
    keys: Vec<Key>,
    tables: &'a dyn Tables,
    /// What each row's image held, when the caller compares images (a
    /// write: see [`images`]); `None` otherwise (nothing recorded).
    images: Option<Images>,
    /// The table last resolved: (as written, as `tables` resolved it).
    resolved: Option<(String, Option<Vec<String>>)>,
}

impl std::fmt::Debug for RowKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowKeys").field("keys", &self.keys).finish()
    }
}

impl<'a> RowKeys<'a> {
    pub(crate) fn new(tables: &'a dyn Tables) -> RowKeys<'a> {
        RowKeys {
            keys: Vec::new(),
            tables,
            images: None,
            resolved: None,
        }
    }

    /// Keys that also record each row's image (about `rows` of them), for
    /// [`record_row`](Self::record_row).
    pub(crate) fn recording(tables: &'a dyn Tables, rows: usize) -> RowKeys<'a> {
        RowKeys {
            images: Some(Images::with_rows(rows)),
            ..RowKeys::new(tables)
        }
    }

    /// Gather `row`'s keys, recording its image as the next row.
    pub(crate) fn record_row<M: CacheModel>(&mut self, row: &M) {
        if let Some(images) = &mut self.images {
            images.begin_row();
        }
        row.row_keys(self);
        if let Some(images) = &mut self.images {
            images.end_row();
        }
    }

    /// Keys with every table named as written in the model (no schema
    /// resolution): for inspecting what a model's rows invalidate. The
    /// cache itself resolves names on the writing connection.
    ///
    /// ```
    /// use cachebot::model::RowKeys;
    /// let keys = RowKeys::as_written();
    /// assert!(keys.keys().is_empty());
    /// ```
    pub fn as_written() -> RowKeys<'static> {
        RowKeys::new(&AsWritten)
    }

    /// The keys gathered so far.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The keys, and the images when recording.
    pub(crate) fn into_parts(self) -> (Vec<Key>, Option<Images>) {
        (self.keys, self.images)
    }

    /// Push `key(t)` for each table `written` resolves to, or the global key.
    fn per_table(&mut self, written: &str, key: impl Fn(&str) -> Key) {
        // Every key of a row names the same table: resolve it once.
        let known = matches!(&self.resolved, Some((w, _)) if w == written);
        if !known {
            self.resolved = Some((written.to_owned(), self.tables.qualified(written)));
        }
        match self.resolved.as_ref().and_then(|(_, r)| r.as_ref()) {
            Some(tables) => self.keys.extend(tables.iter().map(|t| key(t))),
            None => self.keys.push(key::global_key()),
        }
    }
}

/// Every name stands for itself.
struct AsWritten;

impl Tables for AsWritten {
    fn qualified(&self, written: &str) -> Option<Vec<String>> {
        Some(vec![written.to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::__private::*;
    use crate::key;
    use crate::scope::Tables;

    /// Resolves `things` into the schema `s`, and nothing else.
    struct InS;
    impl Tables for InS {
        fn qualified(&self, written: &str) -> Option<Vec<String>> {
            (written == "things").then(|| vec!["s.things".to_owned()])
        }
    }

    diesel::table! {
        things (id) {
            id -> Int4,
            label -> Nullable<Text>,
            score -> Float8,
        }
    }

    #[test]
    fn coverage_is_decided_per_column_list_not_per_table() {
        use diesel::Table;
        let full = [
            column_name(&things::id),
            column_name(&things::label),
            column_name(&things::score),
        ];
        let partial = [column_name(&things::id), column_name(&things::label)];
        let table_key = key::table_key("s.things");
        for order in [[&full[..], &partial[..]], [&partial[..], &full[..]]] {
            for own in order {
                let mut keys = RowKeys::new(&InS);
                push_unless_covering(&mut keys, &things::table::all_columns(), own);
                let out = keys.into_parts().0;
                // A partial model cannot report the other columns' values: it
                // must widen to the table; a full one must not.
                assert_eq!(out.contains(&table_key), own.len() < 3, "{own:?}");
            }
        }
    }

    #[test]
    fn values_encode_like_binds() {
        assert_eq!(
            encode::<diesel::sql_types::Int4, i32>(&7),
            Ok(Some(7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(
            encode::<diesel::sql_types::Nullable<diesel::sql_types::Text>, Option<String>>(&None),
            Ok(None)
        );
        assert_eq!(
            encode::<diesel::sql_types::Float8, f64>(&1.5),
            Err(NotKeyable)
        );
    }

    #[test]
    fn keys_match_the_read_side() {
        let mut out = RowKeys::new(&InS);
        push_value::<_, diesel::sql_types::Int4, i32>(&mut out, &things::id, &7);
        push_value::<_, diesel::sql_types::Nullable<diesel::sql_types::Text>, Option<String>>(
            &mut out,
            &things::label,
            &None,
        );
        push_value::<_, diesel::sql_types::Float8, f64>(&mut out, &things::score, &1.5);
        push_rows(&mut out, "elsewhere");
        assert_eq!(
            out.into_parts().0,
            vec![
                key::value_key("s.things", "id", Some(&7i32.to_be_bytes())),
                key::value_key("s.things", "label", None),
                // A table the connection cannot resolve widens to everything.
                key::global_key(),
            ]
        );
        assert_eq!(table_name_of(&things::score), "things");
    }
}
