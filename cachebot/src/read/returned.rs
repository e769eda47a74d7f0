//! Results that depend on the rows they returned.
//!
//! A table no equality pins depends, by default, on every write to it. For two shapes of query
//! that is far wider than needed (see `extract::shape`): which rows of the table are in the
//! result changes only by an insert or a change to a filtered or ordered column (a single-table
//! query), or only through the other side of an inner join a foreign key guarantees (rows
//! reached through a join table). What is left is the rows returned themselves: the result
//! depends on each returned row's primary-key value key, which every write to that row bumps.
//!
//! Those keys are known only after the query ran, but their generations must be read *before*
//! it (a write committed between the two would otherwise be missed). So each plan remembers
//! the keys its last result returned (a hint, in this process): a read fetches their
//! generations with the entry's, and the table's rows key, in the same round trip. A miss whose
//! rows are all in the hint is stored with those generations; one that returned a row outside
//! it (the query's first read in this process, or rows that joined the result) is stored
//! depending on the rows key instead (every write to the table; counted in
//! `Stats::returned_widened`), and the hint learns the rows, so the fill after the next write is
//! exact again. A hit whose entry lists other keys than the hint (filled by another process)
//! fetches their generations in a second round trip and learns them.
//!
//! Only results of a model registered with [`CacheBuilder::model`](crate::CacheBuilder::model)
//! whose select list is exactly the model's columns qualify: the crate can then read each
//! row's primary key from the decoded rows.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::key;
use crate::model::CacheModel;
use crate::scope;
use crate::store::{Key, KeyKind};

/// Over this many returned rows, a result depends on its table's rows key instead.
pub(crate) const MAX_RETURNED: usize = key::MAX_VALUE_KEYS_PER_TABLE;

/// A row's primary-key values as bind bytes (`None` for `NULL`), in key order.
type KeyValues = Vec<Option<Vec<u8>>>;

/// What the read path knows of one registered model.
#[derive(Debug)]
pub(crate) struct ModelRows {
    /// (table, column) of each field, in select order.
    pub(crate) columns: Vec<(String, String)>,
    /// The primary key's columns, in key order.
    pub(crate) primary_key: Vec<String>,
    /// A row's primary-key values (`None` when one cannot be keyed).
    values: fn(&dyn Any) -> Option<KeyValues>,
}

fn values_of<M: CacheModel>(row: &dyn Any) -> Option<KeyValues> {
    row.downcast_ref::<M>()?.primary_key_values()
}

/// The models registered on a cache's builder, by type.
#[derive(Clone, Debug, Default)]
pub(crate) struct Models(HashMap<TypeId, Arc<ModelRows>>);

impl Models {
    /// Register `M`, if its fields are plain columns and its key is known.
    pub(crate) fn add<M: CacheModel>(&mut self) {
        let columns: Option<Vec<(String, String)>> = M::columns().into_iter().collect();
        let Some(columns) = columns.filter(|c| !c.is_empty()) else {
            return;
        };
        let primary_key: Option<Vec<String>> = M::primary_key_fields()
            .iter()
            .map(|&i| columns.get(i).map(|(_, c)| c.clone()))
            .collect();
        let Some(primary_key) = primary_key.filter(|k| !k.is_empty()) else {
            return;
        };
        self.0.insert(
            TypeId::of::<M>(),
            Arc::new(ModelRows {
                columns,
                primary_key,
                values: values_of::<M>,
            }),
        );
    }

    /// The registered model whose type is `id`.
    pub(crate) fn of(&self, id: TypeId) -> Option<&Arc<ModelRows>> {
        self.0.get(&id)
    }
}

/// A plan's dependency on the rows its result returns.
#[derive(Debug)]
pub(crate) struct Returned {
    /// The table as the connection resolves it (key names).
    table: String,
    /// The database the keys are scoped to.
    database: u128,
    model: Arc<ModelRows>,
    /// The keys the last result returned, as far as this process knows.
    hint: Mutex<Arc<[Key]>>,
}

impl Returned {
    pub(crate) fn new(table: String, database: u128, model: Arc<ModelRows>) -> Returned {
        Returned {
            table,
            database,
            model,
            hint: Mutex::new(Arc::from(Vec::new())),
        }
    }

    /// The table's rows key: what a result depends on when its rows'
    /// keys cannot all be used.
    pub(crate) fn rows_key(&self) -> Key {
        scope::in_database(self.database, key::rows_key(&self.table))
    }

    /// The keys the last result returned.
    pub(crate) fn hint(&self) -> Arc<[Key]> {
        self.hint
            .lock()
            .map(|h| Arc::clone(&h))
            .unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    /// Remember `keys` as what the plan's result returns.
    pub(crate) fn learn(&self, keys: &[Key]) {
        if let Ok(mut hint) = self.hint.lock() {
            if **hint != *keys {
                *hint = Arc::from(keys);
            }
        }
    }

    /// The keys `rows` depend on, sorted: each row's primary-key value key,
    /// or the table's rows key when there are too many rows or a row's key
    /// cannot be read.
    pub(crate) fn keys_of<U: 'static>(&self, rows: &[U]) -> Vec<Key> {
        let in_database = |k: Key| scope::in_database(self.database, k);
        let whole = || vec![self.rows_key()];
        if rows.len() > MAX_RETURNED {
            return whole();
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(values) = (self.model.values)(row as &dyn Any) else {
                return whole();
            };
            let key = match (self.model.primary_key.as_slice(), values.as_slice()) {
                ([column], [value]) => key::value_key(&self.table, column, value.as_deref()),
                (columns, values) if columns.len() == values.len() => {
                    let parts: Vec<(&str, Option<&[u8]>)> = columns
                        .iter()
                        .zip(values)
                        .map(|(c, v)| (c.as_str(), v.as_deref()))
                        .collect();
                    key::composite_key(&self.table, &parts)
                }
                _ => return whole(),
            };
            keys.push(in_database(key));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// The bytes an entry's payload starts with when its result depends on
/// returned rows: their count (u32) and each key's hash (u128), little
/// endian. Read back by [`split_keys`].
pub(crate) fn write_keys(keys: &[Key], out: &mut Vec<u8>) {
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for k in keys {
        out.extend_from_slice(&k.hash().to_le_bytes());
    }
}

/// The returned-row keys at the start of `payload`, and the rest; `None`
/// for bytes that do not hold a bounded, well-formed list.
pub(crate) fn split_keys(payload: &[u8]) -> Option<(Vec<Key>, &[u8])> {
    let (count, rest) = payload.split_first_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    // Never more than MAX_RETURNED keys, or the single rows key.
    if count > MAX_RETURNED {
        return None;
    }
    let (list, rest) = rest.split_at_checked(count * 16)?;
    let keys = list
        .chunks_exact(16)
        .map(|c| {
            let mut h = [0u8; 16];
            h.copy_from_slice(c);
            Key::new(KeyKind::Generation, u128::from_le_bytes(h))
        })
        .collect();
    Some((keys, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        let keys: Vec<Key> = (0..3u128)
            .map(|i| Key::new(KeyKind::Generation, i * 7))
            .collect();
        let mut out = Vec::new();
        write_keys(&keys, &mut out);
        out.extend_from_slice(b"payload");
        let (back, rest) = split_keys(&out).expect("well formed");
        assert_eq!(back, keys);
        assert_eq!(rest, b"payload");
        assert!(split_keys(&[1, 2]).is_none());
        assert!(split_keys(&u32::MAX.to_le_bytes()).is_none());
        let mut short = Vec::new();
        write_keys(&keys, &mut short);
        short.truncate(20);
        assert!(split_keys(&short).is_none());
    }
}
