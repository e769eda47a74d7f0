//! Row changes committed by any writer, as the database's change stream
//! reports them (PostgreSQL logical replication, `pgoutput`), turned into
//! the generation bumps the crate's own writes make.
//!
//! A change-stream follower (the `cachebot-follow` crate) decodes one
//! committed transaction into [`Change`]s and hands them to
//! [`Cache::invalidate_changes`](crate::Cache::invalidate_changes), which
//! bumps every key of the transaction in one store call:
//!
//! - each known column value of the old and the new image: its value key
//!   (the very key a read filtering on that value by equality depends on:
//!   the stream's binary values are the bytes Diesel binds);
//! - each composite key registered on the cache whose columns are all known;
//! - the table's "rows" key (reads with no usable equality);
//! - the "all" keys of tables related by inheritance and partitioning, and
//!   the global key for tables with rules (as for the crate's own writes);
//! - for a truncated table, its "all" key.
//!
//! Where an image does not say what a row held, the change **widens** to the
//! table's "all" key, never narrows: an UPDATE without an old image (the
//! default replica identity sends none while the key is unchanged), an old
//! image holding only the key columns (`REPLICA IDENTITY DEFAULT` or
//! `USING INDEX`), a value the stream did not send (an unchanged TOASTed
//! value whose old value is not known either). `REPLICA IDENTITY FULL` gives
//! exact old images, and with them precise invalidation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::backend::BackendImpl;
use crate::key::{self, Composites};
use crate::scope;
use crate::store::Key;

use super::{heartbeat, Cascade, Invalidator};
use crate::error::Error;
use crate::read::Reader;

/// Over this many value and composite keys for one table in one
/// transaction, the transaction bumps the table's "all" key instead (one key
/// rather than a bulk load's millions).
pub const MAX_VALUE_KEYS_PER_TABLE: usize = 1024;

/// PostgreSQL's first OID for objects that are not built in
/// (`FirstNormalObjectId`): types below it are the server's own.
const FIRST_USER_OID: u32 = 16384;

/// A table, by schema and name, as the database names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// The schema (`public`).
    pub schema: String,
    /// The table's name within it.
    pub name: String,
}

impl TableName {
    /// `schema.name`.
    ///
    /// ```
    /// let t = cachebot::changes::TableName::new("public", "photos");
    /// assert_eq!(t.name, "photos");
    /// ```
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> TableName {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// One column's value in a row image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// The value in PostgreSQL's binary format (the type's send function):
    /// the bytes Diesel binds for the same value.
    Bytes(Vec<u8>),
    /// The change does not say what the column held: not part of a
    /// key-only old image, an unchanged TOASTed value the stream did not
    /// send, or a value in a format other than binary. The change widens to
    /// the table unless the column's type is one the cache never keys on.
    Unknown,
}

/// One column of a row image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The column's type OID as the stream reports it (a domain's own OID),
    /// or 0 when not known. Built-in types whose values the cache never keys
    /// on (floats, `numeric`, `char(n)`, arrays, ...) get no value key, and
    /// an unknown value of such a column does not widen.
    pub type_oid: u32,
    /// What the column held.
    pub value: Value,
}

impl Column {
    /// A column of unknown type (always treated as keyable).
    ///
    /// ```
    /// use cachebot::changes::{Column, Value};
    /// let c = Column::new("id", Value::Bytes(7i32.to_be_bytes().to_vec()));
    /// assert_eq!(c.type_oid, 0);
    /// ```
    pub fn new(name: impl Into<String>, value: Value) -> Column {
        Column {
            name: name.into(),
            type_oid: 0,
            value,
        }
    }

    /// The same column with its type OID.
    pub fn with_type(mut self, type_oid: u32) -> Column {
        self.type_oid = type_oid;
        self
    }

    /// Whether reads may be keyed on this column's values: every type but
    /// the built-in ones the cache never keys on.
    fn keyable(&self) -> bool {
        self.type_oid == 0
            || self.type_oid >= FIRST_USER_OID
            || diesel::pg::Pg::is_keyable(self.type_oid)
    }
}

/// A row as a change saw it: **every** column of the table, with
/// [`Value::Unknown`] for the columns whose value the change does not carry.
/// A column left out gets no value key at all (readers keyed on it would
/// not see the change): list them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// The columns, in any order.
    pub columns: Vec<Column>,
}

impl Image {
    /// An image of these columns.
    pub fn new(columns: Vec<Column>) -> Image {
        Image { columns }
    }

    fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One committed row change (or a truncated table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A row was inserted.
    Insert {
        /// The table.
        table: TableName,
        /// The new row.
        new: Image,
    },
    /// A row was updated.
    Update {
        /// The table.
        table: TableName,
        /// The old row, when the replica identity gives it (`None`: not
        /// sent, which widens to the table).
        old: Option<Image>,
        /// The new row. An unknown value (an unchanged TOASTed value) is
        /// taken from the old image when that one knows it.
        new: Image,
    },
    /// A row was deleted.
    Delete {
        /// The table.
        table: TableName,
        /// The old row (key columns only under the default replica
        /// identity: the others are [`Value::Unknown`]).
        old: Image,
    },
    /// The table was truncated (one change per table the statement
    /// emptied, `CASCADE` included).
    Truncate {
        /// The table.
        table: TableName,
    },
}

impl Change {
    /// The table this change is about.
    pub fn table(&self) -> &TableName {
        match self {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. }
            | Change::Truncate { table } => table,
        }
    }
}

/// One committed transaction's changes, delivered together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The changes, in commit order (the order does not matter).
    pub changes: Vec<Change>,
    /// When the transaction committed (the server's clock). When set, it is
    /// published as the change stream's heartbeat after the bumps were
    /// delivered: every transaction committed before it has been applied.
    pub commit_time: Option<SystemTime>,
}

/// Bump a transaction's keys in one call, then record its commit time as
/// the heartbeat (see [`Cache::invalidate_changes`](crate::Cache::invalidate_changes)).
pub(crate) fn apply(reader: &Reader, tx: &Transaction) -> Result<(), Error> {
    let invalidator = &reader.invalidator;
    let Some(database) = invalidator.database() else {
        return Err(Error::NoDatabase);
    };
    let keys = keys(invalidator, &reader.composites, &tx.changes);
    if !keys.is_empty() {
        invalidator.bump(&keys)?;
    }
    if let Some(at) = tx.commit_time {
        heartbeat::record(&*reader.store, database, at)?;
    }
    Ok(())
}

/// The keys of one table's changes in a transaction.
#[derive(Default)]
struct TableKeys {
    values: BTreeSet<Key>,
    /// Some image was not fully known (or there were too many values).
    widen: bool,
    /// A row of it changed (as opposed to: only truncated).
    rows: bool,
    truncated: bool,
}

/// Every key a transaction's changes bump, scoped by the caller. Sorted,
/// without duplicates.
pub(crate) fn keys(
    invalidator: &Invalidator,
    composites: &Composites,
    changes: &[Change],
) -> Vec<Key> {
    let mut tables: BTreeMap<String, TableKeys> = BTreeMap::new();
    for change in changes {
        let t = change.table();
        let qualified = scope::qualify(&t.schema, &t.name);
        // Composites are registered under the model's table name as written.
        let declared: Vec<&[String]> = [t.name.clone(), format!("{}.{}", t.schema, t.name)]
            .iter()
            .filter_map(|w| composites.of(w))
            .flatten()
            .map(Vec::as_slice)
            .collect();
        let entry = tables.entry(qualified.clone()).or_default();
        let images: [Option<(&Image, Option<&Image>)>; 2] = match change {
            Change::Insert { new, .. } => [Some((new, None)), None],
            Change::Update { old, new, .. } => {
                if old.is_none() {
                    entry.widen = true;
                }
                [Some((new, old.as_ref())), old.as_ref().map(|o| (o, None))]
            }
            Change::Delete { old, .. } => [Some((old, None)), None],
            Change::Truncate { .. } => {
                entry.truncated = true;
                [None, None]
            }
        };
        for (img, fallback) in images.into_iter().flatten() {
            entry.rows = true;
            image_keys(&qualified, &declared, img, fallback, entry);
        }
    }
    let mut out: BTreeSet<Key> = BTreeSet::new();
    for (table, mut keys) in tables {
        if keys.values.len() > MAX_VALUE_KEYS_PER_TABLE {
            keys.values.clear();
            keys.widen = true;
        }
        out.extend(keys.values);
        if keys.rows {
            out.insert(key::rows_key(&table));
        }
        if keys.widen || keys.truncated {
            out.insert(key::table_key(&table));
        }
        // Parents and children (partitions, inheritance) and rules: what the
        // crate's own writes reach from a table.
        out.extend(invalidator.cascade_children(&table, Cascade::Insert));
    }
    out.into_iter().collect()
}

/// The value and composite keys of one image; `widen` where it is not known.
/// `fallback` supplies values `img` leaves unknown (the old image of an
/// update, for unchanged TOASTed values).
fn image_keys(
    table: &str,
    declared: &[&[String]],
    img: &Image,
    fallback: Option<&Image>,
    out: &mut TableKeys,
) {
    let value_of = |name: &str| -> Option<&Value> {
        let own = img.get(name).map(|c| &c.value);
        match own {
            Some(Value::Unknown) | None => match fallback.and_then(|f| f.get(name)) {
                Some(c) if c.value != Value::Unknown => Some(&c.value),
                _ => own,
            },
            known => known,
        }
    };
    for column in &img.columns {
        if !column.keyable() {
            continue;
        }
        match value_of(&column.name) {
            Some(Value::Null) => {
                out.values.insert(key::value_key(table, &column.name, None));
            }
            Some(Value::Bytes(b)) => {
                out.values
                    .insert(key::value_key(table, &column.name, Some(b)));
            }
            Some(Value::Unknown) | None => out.widen = true,
        }
    }
    for cols in declared {
        let mut values: Vec<(&str, Option<&[u8]>)> = Vec::with_capacity(cols.len());
        for col in cols.iter() {
            match value_of(col) {
                Some(Value::Null) => values.push((col, None)),
                Some(Value::Bytes(b)) => values.push((col, Some(b))),
                // Readers of the composite also depend on the table's "all"
                // key, bumped by the widening of the unknown column itself;
                // a column the image does not hold at all widens here.
                Some(Value::Unknown) | None => {
                    out.widen = true;
                    values.clear();
                    break;
                }
            }
        }
        if !values.is_empty() {
            out.values.insert(key::composite_key(table, &values));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stats::Counters;
    use crate::store::InProcessStore;

    fn invalidator() -> Invalidator {
        Invalidator::new(
            Arc::new(InProcessStore::new()),
            Arc::new(Counters::default()),
        )
    }

    fn int(name: &str, v: i32) -> Column {
        Column::new(name, Value::Bytes(v.to_be_bytes().to_vec())).with_type(23)
    }

    fn unknown(name: &str) -> Column {
        Column::new(name, Value::Unknown).with_type(23)
    }

    fn photos() -> TableName {
        TableName::new("public", "photos")
    }

    const T: &str = "public.photos";

    fn v(col: &str, x: i32) -> Key {
        key::value_key(T, col, Some(&x.to_be_bytes()))
    }

    fn run(changes: &[Change]) -> Vec<Key> {
        keys(&invalidator(), &Composites::default(), changes)
    }

    fn sorted(mut k: Vec<Key>) -> Vec<Key> {
        k.sort();
        k.dedup();
        k
    }

    #[test]
    fn insert_bumps_values_and_rows_not_the_table() {
        let got = run(&[Change::Insert {
            table: photos(),
            new: Image::new(vec![int("id", 1), int("user_id", 7)]),
        }]);
        assert_eq!(
            got,
            sorted(vec![v("id", 1), v("user_id", 7), key::rows_key(T)])
        );
        assert!(!got.contains(&key::table_key(T)));
    }

    #[test]
    fn update_without_old_image_widens() {
        let got = run(&[Change::Update {
            table: photos(),
            old: None,
            new: Image::new(vec![int("id", 1), int("user_id", 8)]),
        }]);
        assert!(
            got.contains(&key::table_key(T)),
            "must widen: old user_id unknown"
        );
        assert!(got.contains(&v("user_id", 8)) && got.contains(&key::rows_key(T)));
    }

    #[test]
    fn key_only_old_image_widens() {
        for change in [
            Change::Delete {
                table: photos(),
                old: Image::new(vec![int("id", 1), unknown("user_id")]),
            },
            Change::Update {
                table: photos(),
                old: Some(Image::new(vec![int("id", 1), unknown("user_id")])),
                new: Image::new(vec![int("id", 2), int("user_id", 7)]),
            },
        ] {
            let got = run(&[change]);
            assert!(got.contains(&key::table_key(T)));
            assert!(got.contains(&v("id", 1)));
        }
        // A table of key columns only: the key-only image is the whole row.
        let got = run(&[Change::Delete {
            table: photos(),
            old: Image::new(vec![int("id", 1)]),
        }]);
        assert_eq!(got, sorted(vec![v("id", 1), key::rows_key(T)]));
    }

    #[test]
    fn full_old_image_is_exact() {
        let got = run(&[Change::Update {
            table: photos(),
            old: Some(Image::new(vec![int("id", 1), int("user_id", 7)])),
            new: Image::new(vec![int("id", 1), int("user_id", 8)]),
        }]);
        assert_eq!(
            got,
            sorted(vec![
                v("id", 1),
                v("user_id", 7),
                v("user_id", 8),
                key::rows_key(T)
            ])
        );
    }

    #[test]
    fn unchanged_toast_takes_the_old_value_or_widens() {
        let toasted = |old: Column| Change::Update {
            table: photos(),
            old: Some(Image::new(vec![int("id", 1), old])),
            new: Image::new(vec![int("id", 1), unknown("body")]),
        };
        let got = run(&[toasted(int("body", 5))]);
        assert_eq!(
            got,
            sorted(vec![v("id", 1), v("body", 5), key::rows_key(T)])
        );
        let got = run(&[toasted(unknown("body"))]);
        assert!(got.contains(&key::table_key(T)));
    }

    #[test]
    fn unkeyable_types_need_no_value() {
        let float = Column::new("score", Value::Unknown).with_type(701);
        let got = run(&[Change::Delete {
            table: photos(),
            old: Image::new(vec![int("id", 1), float]),
        }]);
        assert_eq!(got, sorted(vec![v("id", 1), key::rows_key(T)]));
        // A domain or enum (a user OID) may be keyed: bumped.
        let got = run(&[Change::Insert {
            table: photos(),
            new: Image::new(vec![
                Column::new("mood", Value::Bytes(b"ok".to_vec())).with_type(16500)
            ]),
        }]);
        assert!(got.contains(&key::value_key(T, "mood", Some(b"ok"))));
    }

    #[test]
    fn nulls_truncates_and_composites() {
        let got = run(&[
            Change::Insert {
                table: photos(),
                new: Image::new(vec![Column::new("user_id", Value::Null)]),
            },
            Change::Truncate {
                table: TableName::new("s", "other"),
            },
        ]);
        assert!(got.contains(&key::value_key(T, "user_id", None)));
        assert!(got.contains(&key::table_key("s.other")));
        assert!(!got.contains(&key::rows_key("s.other")));

        let mut composites = Composites::default();
        composites.add("photos", &[&["user_id", "status"]]);
        let got = keys(
            &invalidator(),
            &composites,
            &[Change::Insert {
                table: photos(),
                new: Image::new(vec![int("user_id", 7), int("status", 2)]),
            }],
        );
        let both = [
            ("user_id", Some(&7i32.to_be_bytes()[..])),
            ("status", Some(&2i32.to_be_bytes()[..])),
        ];
        assert!(got.contains(&key::composite_key(T, &both)));
        let got = keys(
            &invalidator(),
            &composites,
            &[Change::Delete {
                table: photos(),
                old: Image::new(vec![int("user_id", 7), unknown("status")]),
            }],
        );
        assert!(got.contains(&key::table_key(T)));
    }

    #[test]
    fn many_values_widen_to_the_table() {
        let changes: Vec<Change> = (0..MAX_VALUE_KEYS_PER_TABLE as i32 + 1)
            .map(|i| Change::Insert {
                table: photos(),
                new: Image::new(vec![int("id", i)]),
            })
            .collect();
        assert_eq!(
            run(&changes),
            sorted(vec![key::table_key(T), key::rows_key(T)])
        );
    }

    #[test]
    fn names_are_qualified_like_the_scope() {
        let got = run(&[Change::Truncate {
            table: TableName::new("we.ird", "t"),
        }]);
        assert_eq!(got, vec![key::table_key(&scope::qualify("we.ird", "t"))]);
    }
}
