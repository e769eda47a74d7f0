//! Support for the code `#[derive(CacheBot)]` generates.
//!
//! **Not a public API.** Everything here is `#[doc(hidden)]` and exists only
//! for the derive's output (reachable as `cachebot::model::__private`); it
//! may change in any release without notice. Write models by hand against
//! [`CacheModel`](super::CacheModel) and [`RowKeys`] instead.
//!
//! The helpers encode a row's column values through the same bind collector
//! the read side uses, so that a column value and the same value in a
//! `WHERE` clause always produce the same key.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{OnceLock, RwLock};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::QueryResult;

use crate::backend::BackendImpl;
use crate::key;

pub use super::RowKeys;
pub use crate::store::Key;

/// At most this many entries in each memo below. Their keys are column and
/// model types of the program, so a real program stays far below it; the
/// cap only keeps a caller with unbounded inputs from growing them forever.
/// A full memo is cleared and refilled (recomputing is cheap and exact).
const MEMO_CAP: usize = 4096;

/// A small memo, bounded by [`MEMO_CAP`] (cleared when full). A poisoned
/// lock turns into "not memoised".
struct Memo<K, V>(OnceLock<RwLock<HashMap<K, V>>>);

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    const fn new() -> Self {
        Memo(OnceLock::new())
    }

    fn map(&self) -> &RwLock<HashMap<K, V>> {
        self.0.get_or_init(Default::default)
    }

    fn get(&self, key: &K) -> Option<V> {
        self.map().read().ok().and_then(|m| m.get(key).cloned())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut m) = self.map().write() {
            if m.len() >= MEMO_CAP {
                m.clear();
            }
            m.insert(key, value);
        }
    }
}

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
    let binds = Pg::collect_binds(&OneBind::<ST, V>(value, PhantomData)).map_err(|_| NotKeyable)?;
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
    static NAMES: Memo<TypeId, (String, String)> = Memo::new();
    let id = TypeId::of::<Col>();
    if let Some(n) = NAMES.get(&id) {
        return Some(n);
    }
    let sql = Pg::render(column).ok()?;
    let mut list = crate::extract::column_list(&sql)?;
    let one = (list.len() == 1).then(|| list.remove(0))?;
    NAMES.put(id, one.clone());
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
/// widens to everything. On the write path the value is also recorded,
/// keyable or not (see [`RowKeys`]'s images). Returns the keyable value's
/// bytes, for composites.
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
        if let Some(images) = &mut out.images {
            images.unnamed();
        }
        return None;
    };
    let bind = Pg::collect_binds(&OneBind::<ST, V>(value, PhantomData))
        .ok()
        .and_then(|binds| binds.into_iter().next());
    let (bytes, keyable) = match bind {
        Some(b) => (Some(b.bytes), Pg::is_keyable(b.type_id)),
        None => (None, false),
    };
    let keyed = bytes.as_ref().filter(|_| keyable);
    if let Some(b) = keyed {
        out.per_table(&table, |t| key::value_key(t, &col, b.as_deref()));
    }
    match &mut out.images {
        Some(images) => {
            let keyed = keyed.cloned();
            images.value(&table, col, bytes, keyable);
            keyed
        }
        None => bytes.filter(|_| keyable),
    }
}

/// Push a composite key from already-encoded parts (`None` if any part
/// could not be keyed: then the single-column keys stand alone).
pub fn push_composite(
    out: &mut RowKeys<'_>,
    table: &str,
    parts: &[(&str, Option<Option<Vec<u8>>>)],
) {
    let keyed = parts.iter().all(|(_, v)| v.is_some());
    if let Some(images) = &mut out.images {
        images.composite(table, parts.iter().map(|(c, _)| *c), keyed);
    }
    let mut values = Vec::with_capacity(parts.len());
    for (col, v) in parts {
        match v {
            Some(v) => values.push((*col, v.as_deref())),
            None => return,
        }
    }
    out.per_table(table, |t| key::composite_key(t, &values));
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
    type CoverKey = (TypeId, Vec<Option<(String, String)>>);
    static COVERS: Memo<CoverKey, bool> = Memo::new();
    let id = (TypeId::of::<All>(), own.to_vec());
    let covers = match COVERS.get(&id) {
        Some(c) => c,
        None => {
            let c = covers_all(all_columns, own);
            COVERS.put(id, c);
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

/// Whether `own` names every column `all_columns` renders.
fn covers_all<All>(all_columns: &All, own: &[Option<(String, String)>]) -> bool
where
    All: QueryFragment<Pg>,
{
    let all = Pg::render(all_columns)
        .ok()
        .and_then(|sql| crate::extract::column_list(&sql));
    let covers = match all {
        Some(all) => all
            .iter()
            .all(|col| own.iter().any(|o| o.as_ref() == Some(col))),
        None => false,
    };
    if !covers {
        tracing::info!(
            table = own.iter().flatten().next().map(|(t, _)| t.as_str()),
            "a model does not hold every column of its table: its writes \
             invalidate every cached query on the table"
        );
    }
    covers
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memos_are_bounded() {
        static M: Memo<usize, usize> = Memo::new();
        for i in 0..MEMO_CAP * 3 {
            M.put(i, i);
            assert!(M.map().read().map(|m| m.len()).unwrap_or(0) <= MEMO_CAP);
        }
        assert_eq!(M.get(&(MEMO_CAP * 3 - 1)), Some(MEMO_CAP * 3 - 1));
    }
}
