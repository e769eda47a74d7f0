//! What `#[derive(CacheBot)]` generates code against.
//!
//! A [`CacheModel`] knows, for one row, which generations a change to it
//! must bump: one per keyable column value, one per declared composite key,
//! and the table's "rows" generation. The values are encoded through the
//! very bind collector the read side uses, so a column value and the same
//! value in a `WHERE` clause always produce the same key.

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::QueryResult;

use crate::backend::BackendImpl;
use crate::key;
use crate::scope::Tables;
use crate::store::Key;

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
    fn row_keys(&self, out: &mut RowKeys<'_>);

    /// The primary key's encoded value: how old and new images of one row
    /// are matched.
    fn identity(&self) -> Vec<u8>;

    /// Declared composite keys, as column names.
    fn composite_keys() -> &'static [&'static [&'static str]] {
        &[]
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

    pub(crate) fn into_keys(self) -> Vec<Key> {
        self.keys
    }

    /// Push `key(t)` for each table `written` resolves to, or the global key.
    fn per_table(&mut self, written: &str, key: impl Fn(&str) -> Key) {
        match self.tables.qualified(written) {
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

/// Composite keys declared by models, per table. The read side keys a
/// conjunction on a composite when it pins every column of one; without
/// the registration it keys on one column, which is correct but wider.
type Registry = RwLock<HashMap<String, Arc<[Vec<String>]>>>;
static COMPOSITES: OnceLock<Registry> = OnceLock::new();

/// Register `M`'s composite keys (`#[cachebot(key(..))]`) with the read
/// side, so that any cached query pinning every column of one keys on it,
/// precisely. The derive's `get_by_*` methods register on first use; call
/// this at start-up to have the same precision from the first query.
///
/// ```no_run
/// # fn run<Photo: cachebot::CacheModel>() {
/// cachebot::model::register::<Photo>();
/// # }
/// ```
pub fn register<M: CacheModel>() {
    register_composites::<M>();
}

pub(crate) fn register_composites<M: CacheModel>() {
    let keys = M::composite_keys();
    if keys.is_empty() {
        return;
    }
    let reg = COMPOSITES.get_or_init(Default::default);
    if reg
        .read()
        .map(|m| m.contains_key(M::table_name()))
        .unwrap_or(true)
    {
        return;
    }
    if let Ok(mut m) = reg.write() {
        REGISTRATIONS.fetch_add(1, Ordering::Release);
        m.insert(
            M::table_name().to_owned(),
            keys.iter()
                .map(|k| k.iter().map(|c| (*c).to_owned()).collect())
                .collect(),
        );
    }
}

/// How many times the composite-key registry changed: what reads keyed
/// before a change must not be reused after it (see `plans`).
static REGISTRATIONS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn registrations() -> u64 {
    REGISTRATIONS.load(Ordering::Acquire)
}

/// The composite keys registered for `table` (cheap: shared, and nothing at
/// all to look up while no model registered any).
pub(crate) fn composites_of(table: &str) -> Option<Arc<[Vec<String>]>> {
    COMPOSITES
        .get()
        .and_then(|r| r.read().ok().and_then(|m| m.get(table).cloned()))
}

/// Support for the derive's generated code. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use super::RowKeys;
    pub use crate::store::Key;

    /// One bind, collected like any query's binds.
    struct OneBind<'a, ST, V: ?Sized>(&'a V, PhantomData<ST>);

    impl<ST, V> QueryFragment<Pg> for OneBind<'_, ST, V>
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + ?Sized,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_bind_param::<ST, V>(self.0)
        }
    }

    /// A value whose type does not compare by bytes, or that did not encode.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NotKeyable;

    /// The encoded value: `Ok(Some(bytes))`, `Ok(None)` for NULL; `Err` if
    /// the type is not keyable or does not encode.
    pub fn encode<ST, V>(value: &V) -> Result<Option<Vec<u8>>, NotKeyable>
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + ?Sized,
    {
        let binds =
            Pg::collect_binds(&OneBind::<ST, V>(value, PhantomData)).map_err(|_| NotKeyable)?;
        match binds.into_iter().next() {
            Some(b) if Pg::is_keyable(b.type_id) => Ok(b.bytes),
            _ => Err(NotKeyable),
        }
    }

    /// (table, column) of a Diesel column, memoised per column type.
    pub fn column_name<Col>(column: &Col) -> Option<(String, String)>
    where
        Col: QueryFragment<Pg> + 'static,
    {
        static NAMES: OnceLock<RwLock<HashMap<TypeId, (String, String)>>> = OnceLock::new();
        let names = NAMES.get_or_init(Default::default);
        let id = TypeId::of::<Col>();
        if let Some(n) = names.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Some(n);
        }
        let sql = Pg::render(column).ok()?;
        let mut list = crate::extract::column_list(&sql)?;
        let one = (list.len() == 1).then(|| list.remove(0))?;
        if let Ok(mut m) = names.write() {
            m.insert(id, one.clone());
        }
        Some(one)
    }

    /// The table name of a model, from one of its columns.
    pub fn table_name_of<Col>(column: &Col) -> String
    where
        Col: QueryFragment<Pg> + 'static,
    {
        column_name(column).map(|(t, _)| t).unwrap_or_default()
    }

    /// Push the key of `column = value`. A value that cannot be keyed needs
    /// no key of its own (readers filtering on it depend on the whole
    /// table, covered by the rows key); a column whose name cannot be read
    /// widens to everything.
    pub fn push_value<Col, ST, V>(
        out: &mut RowKeys<'_>,
        column: &Col,
        value: &V,
    ) -> Option<Option<Vec<u8>>>
    where
        Col: QueryFragment<Pg> + 'static,
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + ?Sized,
    {
        let Some((table, col)) = column_name(column) else {
            out.keys.push(key::global_key());
            return None;
        };
        let bytes = encode::<ST, V>(value).ok()?;
        out.per_table(&table, |t| key::value_key(t, &col, bytes.as_deref()));
        Some(bytes)
    }

    /// Push a composite key from already-encoded parts (`None` if any part
    /// could not be keyed: then the single-column keys stand alone).
    pub fn push_composite(
        out: &mut RowKeys<'_>,
        table: &str,
        parts: &[(&str, Option<Option<Vec<u8>>>)],
    ) {
        let mut values = Vec::with_capacity(parts.len());
        for (col, v) in parts {
            match v {
                Some(v) => values.push((*col, v.as_deref())),
                None => return,
            }
        }
        out.per_table(table, |t| key::composite_key(t, &values));
    }

    /// Count reads that skip the cache by design (a model's gets switched off).
    pub fn count_bypass<C: crate::codec::Codec>(cache: &crate::Cache<C>, reads: u64) {
        crate::stats::Counters::add(&cache.reader.counters().bypasses, reads);
    }

    /// Register the model's composite keys for the read side (idempotent).
    pub fn register<M: CacheModel>() {
        super::register_composites::<M>();
    }

    /// A model that does not hold every column of its table cannot report
    /// the old and new values of the others: its writes then invalidate the
    /// whole table. `own` are the model's columns as [`column_name`] reads them.
    pub fn push_unless_covering<All>(
        out: &mut RowKeys<'_>,
        all_columns: &All,
        own: &[Option<(String, String)>],
    ) where
        All: QueryFragment<Pg> + 'static,
    {
        // Memoised per table AND per column list: two models of one table
        // (a full one and a partial one) must never share the answer.
        type Memo = RwLock<HashMap<(TypeId, Vec<Option<(String, String)>>), bool>>;
        static COVERS: OnceLock<Memo> = OnceLock::new();
        let memo = COVERS.get_or_init(Default::default);
        let id = (TypeId::of::<All>(), own.to_vec());
        let covers = match memo.read().ok().and_then(|m| m.get(&id).copied()) {
            Some(c) => c,
            None => {
                let all = Pg::render(all_columns)
                    .ok()
                    .and_then(|sql| crate::extract::column_list(&sql));
                let c = match all {
                    Some(all) => all
                        .iter()
                        .all(|col| own.iter().any(|o| o.as_ref() == Some(col))),
                    None => false,
                };
                if !c {
                    tracing::info!(
                        table = own.iter().flatten().next().map(|(t, _)| t.as_str()),
                        "a model does not hold every column of its table: its writes \
                         invalidate every cached query on the table"
                    );
                }
                if let Ok(mut m) = memo.write() {
                    m.insert(id, c);
                }
                c
            }
        };
        if !covers {
            match own.iter().flatten().next() {
                Some((table, _)) => out.per_table(table, key::table_key),
                None => out.keys.push(key::global_key()),
            }
        }
    }

    /// Push the table's rows key.
    pub fn push_rows(out: &mut RowKeys<'_>, table: &str) {
        out.per_table(table, key::rows_key);
    }

    /// Length-prefixed concatenation, for identities of composite keys.
    pub fn identity(parts: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                None => out.push(0),
                Some(b) => {
                    out.push(1);
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
        out
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
                let out = keys.into_keys();
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
            out.into_keys(),
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
