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
//! And, as the crate's own writes do (see [`crate::write`]), the finer
//! generations of what changed:
//!
//! - an INSERT or a DELETE: the membership key of each known keyable value
//!   and of each registered composite of its image; an INSERT also bumps
//!   the table's inserts key;
//! - an UPDATE with an old image: for each column whose value differs
//!   between the images (or is unknown on one side), its column key, keyable
//!   or not (a column of a type the cache never keys on still has one, known
//!   by its type OID), and for a keyable column the membership keys of its
//!   old and new value; for each registered composite with a changed column,
//!   the membership keys of its old and new combination. The stream does not
//!   say which columns form the primary key, so an UPDATE is always one
//!   row's change (a changed key column is a changed column).
//!
//! Where an image does not say what a row held, the change **widens** to the
//! table's "all" key, never narrows: an UPDATE without an old image (the
//! default replica identity sends none while the key is unchanged), an old
//! image holding only the key columns (`REPLICA IDENTITY DEFAULT` or
//! `USING INDEX`), a value the stream did not send (an unchanged TOASTed
//! value whose old value is not known either). `REPLICA IDENTITY FULL` gives
//! exact old images, and with them precise invalidation. A keyable column
//! whose old or new value is unknown widens the same way (its membership
//! cannot be told); an UPDATE without an old image bumps no finer key: the
//! table's "all" key already stands for all of them.

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
    /// Membership and column keys.
    changes: BTreeSet<Key>,
    /// Some image was not fully known (or there were too many values).
    widen: bool,
    /// A row of it changed (as opposed to: only truncated).
    rows: bool,
    /// A row was inserted into it.
    inserted: bool,
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
        match change {
            Change::Insert { new, .. } => {
                entry.inserted = true;
                member_keys(&qualified, &declared, new, entry);
            }
            Change::Delete { old, .. } => member_keys(&qualified, &declared, old, entry),
            Change::Update {
                old: Some(old),
                new,
                ..
            } => update_keys(&qualified, &declared, old, new, entry),
            // Without an old image the table's "all" key stands for the rest.
            Change::Update { old: None, .. } | Change::Truncate { .. } => {}
        }
    }
    let mut out: BTreeSet<Key> = BTreeSet::new();
    for (table, mut keys) in tables {
        if keys.values.len() > MAX_VALUE_KEYS_PER_TABLE
            || keys.changes.len() > MAX_VALUE_KEYS_PER_TABLE
        {
            keys.values.clear();
            keys.changes.clear();
            keys.widen = true;
        }
        out.extend(keys.values);
        out.extend(keys.changes);
        if keys.rows {
            out.insert(key::rows_key(&table));
        }
        if keys.inserted {
            out.insert(key::inserts_key(&table));
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

/// An inserted or deleted row entered or left every value and composite
/// its image holds: their membership keys. (Unknown values widen through
/// [`image_keys`].)
fn member_keys(table: &str, declared: &[&[String]], img: &Image, out: &mut TableKeys) {
    for column in &img.columns {
        if column.keyable() {
            if let Some(value) = known(&column.value) {
                out.changes
                    .insert(key::member_key(table, &column.name, value));
            }
        }
    }
    for cols in declared {
        if let Some(values) = combination(cols, |c| img.get(c).map(|c| &c.value)) {
            out.changes
                .insert(key::member_composite_key(table, &values));
        }
    }
}

/// What an update with a full old image changed: for every column whose
/// value differs (or is not known on one side), its column key and, for a
/// keyable one, the membership keys of its old and new value; for every
/// composite with a changed column, the membership keys of its old and new
/// combination. An unknown new value is the old one (an unchanged TOASTed
/// value), as for the value keys. A keyable column whose membership cannot
/// be told (a value unknown on one side) widens to the table.
///
/// The stream does not say which columns are the primary key: an UPDATE is
/// one row's change, and a changed key column is a changed column.
fn update_keys(table: &str, declared: &[&[String]], old: &Image, new: &Image, out: &mut TableKeys) {
    for (i, column) in new.columns.iter().enumerate() {
        let before = at(old, i, &column.name).map(|c| &c.value);
        let after = after_update(&column.value, before);
        column_change(table, column, before, Some(after), out);
    }
    for (i, column) in old.columns.iter().enumerate() {
        if at(new, i, &column.name).is_none() {
            column_change(table, column, Some(&column.value), None, out);
        }
    }
    let before = |name: &str| old.get(name).map(|c| &c.value);
    let after = |name: &str| new.get(name).map(|c| after_update(&c.value, before(name)));
    for cols in declared {
        if !cols.iter().any(|c| value_changed(before(c), after(c))) {
            continue;
        }
        for values in [combination(cols, before), combination(cols, after)] {
            match values {
                Some(values) => {
                    out.changes
                        .insert(key::member_composite_key(table, &values));
                }
                None => out.widen = true,
            }
        }
    }
}

/// The column `name` of `img`, looked for at position `i` first (the
/// stream sends both images of an update in the table's column order: no
/// quadratic search).
fn at<'i>(img: &'i Image, i: usize, name: &str) -> Option<&'i Column> {
    match img.columns.get(i) {
        Some(c) if c.name == name => Some(c),
        _ => img.get(name),
    }
}

/// A column's value after an update: its own, or the old one when the new
/// image does not know it (an unchanged TOASTed value) and the old does.
fn after_update<'v>(own: &'v Value, before: Option<&'v Value>) -> &'v Value {
    match (own, before) {
        (Value::Unknown, Some(old)) if *old != Value::Unknown => old,
        _ => own,
    }
}

/// The keys of one column of an update, from its value `before` and
/// `after` (`None`: the image does not hold the column).
fn column_change(
    table: &str,
    column: &Column,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut TableKeys,
) {
    if !value_changed(before, after) {
        return;
    }
    out.changes.insert(key::column_key(table, &column.name));
    if !column.keyable() {
        return;
    }
    for v in [before, after] {
        match v.and_then(known) {
            Some(value) => {
                out.changes
                    .insert(key::member_key(table, &column.name, value));
            }
            None => out.widen = true,
        }
    }
}

/// Whether a column's value differs between two images: an unknown or
/// missing value on either side counts as changed.
fn value_changed(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if *a != Value::Unknown && *b != Value::Unknown => a != b,
        _ => true,
    }
}

/// A known value as key bytes (`Some(None)`: `NULL`).
fn known(value: &Value) -> Option<Option<&[u8]>> {
    match value {
        Value::Null => Some(None),
        Value::Bytes(b) => Some(Some(b)),
        Value::Unknown => None,
    }
}

/// A composite's (column, value) pairs, as its keys take them.
type Combination<'c, 'v> = Vec<(&'c str, Option<&'v [u8]>)>;

/// A composite's values, when every one is known.
fn combination<'v, 'c>(
    cols: &'c [String],
    value_of: impl Fn(&str) -> Option<&'v Value>,
) -> Option<Combination<'c, 'v>> {
    cols.iter()
        .map(|c| Some((c.as_str(), known(value_of(c)?)?)))
        .collect()
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

    fn m(col: &str, x: i32) -> Key {
        key::member_key(T, col, Some(&x.to_be_bytes()))
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
            sorted(vec![
                v("id", 1),
                v("user_id", 7),
                key::rows_key(T),
                m("id", 1),
                m("user_id", 7),
                key::inserts_key(T),
            ])
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
        assert_eq!(got, sorted(vec![v("id", 1), key::rows_key(T), m("id", 1)]));
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
                key::rows_key(T),
                m("user_id", 7),
                m("user_id", 8),
                key::column_key(T, "user_id"),
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
        assert_eq!(got, sorted(vec![v("id", 1), key::rows_key(T), m("id", 1)]));
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
            sorted(vec![
                key::table_key(T),
                key::rows_key(T),
                key::inserts_key(T)
            ])
        );
    }

    #[test]
    fn names_are_qualified_like_the_scope() {
        let got = run(&[Change::Truncate {
            table: TableName::new("we.ird", "t"),
        }]);
        assert_eq!(got, vec![key::table_key(&scope::qualify("we.ird", "t"))]);
    }

    fn float(name: &str, x: f64) -> Column {
        Column::new(name, Value::Bytes(x.to_be_bytes().to_vec())).with_type(701)
    }

    fn update(old: Vec<Column>, new: Vec<Column>) -> Change {
        Change::Update {
            table: photos(),
            old: Some(Image::new(old)),
            new: Image::new(new),
        }
    }

    /// The keys an update bumps besides the value and rows keys.
    fn finer(changes: &[Change], composites: &Composites) -> Vec<Key> {
        keys(&invalidator(), composites, changes)
            .into_iter()
            .filter(|k| {
                *k != key::rows_key(T)
                    && !changes.iter().any(|c| match c {
                        Change::Update { old, new, .. } => [old.as_ref(), Some(new)]
                            .into_iter()
                            .flatten()
                            .flat_map(|i| &i.columns)
                            .any(|col| match &col.value {
                                Value::Bytes(b) => *k == key::value_key(T, &col.name, Some(b)),
                                Value::Null => *k == key::value_key(T, &col.name, None),
                                Value::Unknown => false,
                            }),
                        _ => false,
                    })
            })
            .collect()
    }

    #[test]
    fn update_bumps_changed_columns_only() {
        let none = Composites::default();
        // No-op: no membership or column key.
        let same = vec![int("id", 1), int("user_id", 7), float("score", 0.5)];
        assert_eq!(finer(&[update(same.clone(), same)], &none), vec![]);
        // A float changed: its column key, no membership.
        let got = finer(
            &[update(
                vec![int("id", 1), int("user_id", 7), float("score", 0.5)],
                vec![int("id", 1), int("user_id", 7), float("score", 0.75)],
            )],
            &none,
        );
        assert_eq!(got, vec![key::column_key(T, "score")]);
        // NULL to a value: both memberships and the column.
        let got = finer(
            &[update(
                vec![
                    int("id", 1),
                    Column::new("album", Value::Null).with_type(23),
                ],
                vec![int("id", 1), int("album", 4)],
            )],
            &none,
        );
        assert_eq!(
            got,
            sorted(vec![
                key::member_key(T, "album", None),
                m("album", 4),
                key::column_key(T, "album"),
            ])
        );
        // An unknown float (not sent, not known before): its column may
        // have changed; nothing widens.
        let got = keys(
            &invalidator(),
            &none,
            &[update(
                vec![
                    int("id", 1),
                    Column::new("score", Value::Unknown).with_type(701),
                ],
                vec![
                    int("id", 1),
                    Column::new("score", Value::Unknown).with_type(701),
                ],
            )],
        );
        assert!(got.contains(&key::column_key(T, "score")));
        assert!(!got.contains(&key::table_key(T)));
    }

    #[test]
    fn composites_bump_their_old_and_new_combinations() {
        let mut composites = Composites::default();
        composites.add("photos", &[&["user_id", "status"]]);
        let parts = |u: i32, s: i32| {
            [
                ("user_id", Some(u.to_be_bytes().to_vec())),
                ("status", Some(s.to_be_bytes().to_vec())),
            ]
        };
        let combo = |u: i32, s: i32| {
            let p = parts(u, s);
            key::member_composite_key(T, &p.each_ref().map(|(c, v)| (*c, v.as_deref())))
        };
        let content = |u: i32, s: i32| {
            let p = parts(u, s);
            key::composite_key(T, &p.each_ref().map(|(c, v)| (*c, v.as_deref())))
        };
        let got = finer(
            &[update(
                vec![int("id", 1), int("user_id", 7), int("status", 2)],
                vec![int("id", 1), int("user_id", 7), int("status", 3)],
            )],
            &composites,
        );
        assert_eq!(
            got,
            sorted(vec![
                m("status", 2),
                m("status", 3),
                key::column_key(T, "status"),
                combo(7, 2),
                combo(7, 3),
                // The combinations' content keys, as before.
                content(7, 2),
                content(7, 3),
            ])
        );
        // Inserts and deletes: the combination's membership.
        for change in [
            Change::Insert {
                table: photos(),
                new: Image::new(vec![int("user_id", 7), int("status", 2)]),
            },
            Change::Delete {
                table: photos(),
                old: Image::new(vec![int("user_id", 7), int("status", 2)]),
            },
        ] {
            assert!(keys(&invalidator(), &composites, &[change]).contains(&combo(7, 2)));
        }
        // A title edit leaves the combination alone.
        let got = finer(
            &[update(
                vec![
                    int("id", 1),
                    int("user_id", 7),
                    int("status", 2),
                    int("title", 1),
                ],
                vec![
                    int("id", 1),
                    int("user_id", 7),
                    int("status", 2),
                    int("title", 2),
                ],
            )],
            &composites,
        );
        assert!(!got.contains(&combo(7, 2)) && !got.contains(&m("user_id", 7)));
    }

    #[test]
    fn deletes_bump_no_inserts_key_and_no_column_keys() {
        let got = run(&[Change::Delete {
            table: photos(),
            old: Image::new(vec![int("id", 1), float("score", 0.5)]),
        }]);
        assert!(!got.contains(&key::inserts_key(T)));
        assert!(!got.contains(&key::column_key(T, "score")));
    }
}
