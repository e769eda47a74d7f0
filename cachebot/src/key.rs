//! Keys: what names a cached result, and what it depends on.
//!
//! An entry key is a strong hash (xxh3-128) of everything that determines
//! the result's bytes: the SQL text, every bind's type and bytes (length
//! prefixed, `NULL` distinct from empty), the Rust result type, the codec,
//! the schema fingerprint and the narrowing columns. Debug strings are never
//! used: they are neither canonical nor injective.
//!
//! Dependencies are generation keys: one global, one "all rows" key per
//! table (coarse invalidation), and per table either its "rows" key (the
//! whole table) or one key per pinned (table, column, value).

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use xxhash_rust::xxh3::xxh3_128;

use crate::backend::{Bind, CacheBackend};
use crate::extract::{Analysis, Atom, Pins, TableDeps, ValueRef};
use crate::scope::{Resolved, Scope};
use crate::store::Key;

/// Bumped when the layout of keys or entries changes, so old entries die.
const FORMAT_VERSION: u32 = 3;

/// Over this many value keys for one table, depend on the whole table.
pub(crate) const MAX_VALUE_KEYS_PER_TABLE: usize = 256;

/// What decides a read's keys besides the query and its binds.
#[derive(Clone, Copy, Default)]
pub(crate) struct Keying<'a> {
    /// The columns `keyed_on` narrowed the read to, as (table, column).
    pub(crate) narrowing: Option<&'a [(String, String)]>,
    /// The connection's scope: tables as it resolves them, and which
    /// columns compare by bytes. `None` (explain): names as written, the
    /// bind's type decides.
    pub(crate) scope: Option<&'a Scope>,
    /// Composite keys of the models registered on the cache.
    pub(crate) composites: Option<&'a Composites>,
    /// A table (as written) whose returned rows the read depends on
    /// instead of its rows key (see `read::returned`), and how its rows
    /// enter the result.
    pub(crate) returned: Option<(&'a str, &'a crate::extract::Entry)>,
    /// A table (as written) whose "cascaded" key the read does not depend
    /// on: reached only through the foreign key whose action writes it.
    pub(crate) uncascaded: Option<&'a str>,
}

/// Composite keys (`#[cachebot(key(a, b))]`) of the models registered on a
/// cache's builder, per table as written. Fixed when the cache is built, so
/// how a query is keyed never depends on what ran before it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Composites(HashMap<String, Vec<Vec<String>>>);

impl Composites {
    /// Add `table`'s composite keys (each a list of column names).
    pub(crate) fn add(&mut self, table: &str, keys: &[&[&str]]) {
        let known = self.0.entry(table.to_owned()).or_default();
        for key in keys {
            let key: Vec<String> = key.iter().map(|c| (*c).to_owned()).collect();
            if !known.contains(&key) {
                known.push(key);
            }
        }
        if known.is_empty() {
            self.0.remove(table);
        }
    }

    /// The composite keys registered for `table`.
    pub(crate) fn of(&self, table: &str) -> Option<&[Vec<String>]> {
        self.0.get(table).map(Vec::as_slice)
    }
}

/// One generation a cached result depends on, described for humans.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// Everything cached (bumped by `invalidate_all` and by writes the crate
    /// cannot attribute to a table).
    Global,
    /// Every query on the table (bumped by coarse invalidation).
    Table(String),
    /// Queries that depend on the table as a whole (bumped by every write to
    /// one of its rows).
    Rows(String),
    /// Queries that depend on rows whose `column` holds `value` (`None`:
    /// SQL `NULL`).
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The value's bind bytes, `None` for `NULL`.
        value: Option<Vec<u8>>,
    },
    /// Queries that depend on rows whose columns hold all these values (a
    /// composite key a model declared with `#[cachebot(key(..))]`).
    Composite {
        /// The table.
        table: String,
        /// (column, value) in the key's declared order.
        values: Vec<(String, Option<Vec<u8>>)>,
    },
    /// Queries that depend only on *which* rows hold `value` in `column`
    /// (rows entering or leaving it), not on their other columns: a query
    /// reading no column of the table but the pinned one (`COUNT(*) ..
    /// WHERE user_id = $1`).
    Member {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The value's bind bytes, `None` for `NULL`.
        value: Option<Vec<u8>>,
    },
    /// Like [`Member`](Self::Member), for a composite key.
    MemberComposite {
        /// The table.
        table: String,
        /// (column, value) in the key's declared order.
        values: Vec<(String, Option<Vec<u8>>)>,
    },
    /// Queries that depend on rows a foreign key's action writes in the
    /// table (`ON DELETE CASCADE` of a parent row, say).
    Cascaded(String),
    /// Queries that depend on the rows they returned (by primary key): bumped
    /// when rows of the table changed that the crate cannot name
    /// ([`Cache::invalidate_value`](crate::Cache::invalidate_value)).
    Returned(String),
    /// Queries that depend on rows being inserted into the table.
    Inserts(String),
    /// Queries that depend on some row's `column` changing (by an update).
    ColumnChanges {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
}

impl Dependency {
    /// The generation key of this dependency.
    pub fn key(&self) -> Key {
        match self {
            Dependency::Global => global_key(),
            Dependency::Table(t) => table_key(t),
            Dependency::Rows(t) => rows_key(t),
            Dependency::Value {
                table,
                column,
                value,
            } => value_key(table, column, value.as_deref()),
            Dependency::Composite { table, values } => {
                let parts: Vec<(&str, Option<&[u8]>)> = values
                    .iter()
                    .map(|(c, v)| (c.as_str(), v.as_deref()))
                    .collect();
                composite_key(table, &parts)
            }
            Dependency::Member {
                table,
                column,
                value,
            } => member_key(table, column, value.as_deref()),
            Dependency::MemberComposite { table, values } => {
                let parts: Vec<(&str, Option<&[u8]>)> = values
                    .iter()
                    .map(|(c, v)| (c.as_str(), v.as_deref()))
                    .collect();
                member_composite_key(table, &parts)
            }
            Dependency::Inserts(t) => inserts_key(t),
            Dependency::Returned(t) => unnamed_key(t),
            Dependency::Cascaded(t) => cascaded_key(t),
            Dependency::ColumnChanges { table, column } => column_key(table, column),
        }
    }
}

/// The bytes a key hashes, gathered in a reused per-thread buffer, then
/// hashed in one call: xxh3's one-shot path is several times cheaper than
/// feeding a streaming state field by field, and every read computes a few
/// keys.
struct KeyBytes<'b>(&'b mut Vec<u8>);

/// Buffers that grew past this (huge `IN` lists) are not kept.
const KEEP_CAPACITY: usize = 64 * 1024;

impl KeyBytes<'_> {
    /// Gather with `fill`, return the hash.
    fn hash(fill: impl FnOnce(&mut KeyBytes<'_>)) -> u128 {
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(Vec::with_capacity(512));
        }
        let run = |buffer: &mut Vec<u8>| {
            buffer.clear();
            fill(&mut KeyBytes(buffer));
            let hash = xxh3_128(buffer);
            if buffer.capacity() > KEEP_CAPACITY {
                *buffer = Vec::with_capacity(512);
            }
            hash
        };
        // The buffer is never borrowed twice (no key is built while building
        // another), but a fresh one costs only an allocation if it were.
        BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => run(&mut buffer),
            Err(_) => run(&mut Vec::new()),
        })
    }

    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// A length-prefixed field: no two sequences of fields share an encoding.
    fn field(&mut self, bytes: &[u8]) {
        self.push(&(bytes.len() as u64).to_le_bytes());
        self.push(bytes);
    }

    /// Binds: their count, then each one's type and bytes.
    fn binds(&mut self, binds: &[Bind]) {
        self.push(&(binds.len() as u64).to_le_bytes());
        for b in binds {
            self.push(&b.type_id.to_le_bytes());
            self.opt_field(b.bytes.as_deref());
        }
    }

    /// `keyed_on` columns, if any, as (table, column) pairs.
    fn narrowing(&mut self, narrowing: Option<&[(String, String)]>) {
        match narrowing {
            None => self.push(&[0]),
            Some(cols) => {
                self.push(&[1]);
                self.push(&(cols.len() as u64).to_le_bytes());
                for (t, c) in cols {
                    self.field(t.as_bytes());
                    self.field(c.as_bytes());
                }
            }
        }
    }

    /// A `TypeId`, as its `Hash` writes it (it exposes nothing else).
    fn type_id(&mut self, id: TypeId) {
        struct Into<'a, 'b>(&'a mut KeyBytes<'b>);
        impl Hasher for Into<'_, '_> {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.push(bytes);
            }
        }
        id.hash(&mut Into(self));
    }

    /// A field that may be absent (SQL `NULL`), distinct from empty.
    fn opt_field(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.push(&[0]),
            Some(b) => {
                self.push(&[1]);
                self.field(b);
            }
        }
    }
}

fn generation_hash(tag: u8, parts: &[&[u8]], value: Option<Option<&[u8]>>) -> Key {
    Key::generation(KeyBytes::hash(|h| {
        h.push(&FORMAT_VERSION.to_le_bytes());
        h.push(&[b'g', tag]);
        for p in parts {
            h.field(p);
        }
        if let Some(v) = value {
            h.opt_field(v);
        }
    }))
}

/// The global generation every cached result depends on.
pub(crate) fn global_key() -> Key {
    static GLOBAL: std::sync::OnceLock<Key> = std::sync::OnceLock::new();
    *GLOBAL.get_or_init(|| generation_hash(b'*', &[], None))
}

/// The table's "all" generation: bumped to invalidate every query on it.
pub(crate) fn table_key(table: &str) -> Key {
    generation_hash(b't', &[table.as_bytes()], None)
}

/// The table's "cascaded" generation: bumped when a foreign key's action
/// (`ON DELETE CASCADE`, `SET NULL`, ...) writes rows of it that no
/// statement named. Every read of the table depends on it, except one that
/// reaches the table only through that very key (see `read::returned`).
pub(crate) fn cascaded_key(table: &str) -> Key {
    generation_hash(b'k', &[table.as_bytes()], None)
}

/// The generation of a table's rows changing in ways the crate cannot
/// name row by row ([`Cache::invalidate_value`](crate::Cache::invalidate_value)):
/// the reads that depend on the rows they returned depend on it.
pub(crate) fn unnamed_key(table: &str) -> Key {
    generation_hash(b'u', &[table.as_bytes()], None)
}

/// The table's "rows" generation: bumped by every row write.
pub(crate) fn rows_key(table: &str) -> Key {
    generation_hash(b'r', &[table.as_bytes()], None)
}

/// The generation of rows whose `column` holds `value`.
pub(crate) fn value_key(table: &str, column: &str, value: Option<&[u8]>) -> Key {
    generation_hash(b'v', &[table.as_bytes(), column.as_bytes()], Some(value))
}

/// The *membership* generation of rows whose `column` holds `value`:
/// bumped only when a row enters or leaves that set (an insert, a delete,
/// an update changing `column` from or to `value`), not when a member
/// row's other columns change. [`value_key`] is bumped for both.
pub(crate) fn member_key(table: &str, column: &str, value: Option<&[u8]>) -> Key {
    generation_hash(b'm', &[table.as_bytes(), column.as_bytes()], Some(value))
}

/// The generation of inserts into the table: bumped by every row inserted.
pub(crate) fn inserts_key(table: &str) -> Key {
    generation_hash(b'i', &[table.as_bytes()], None)
}

/// The generation of changes to one column of the table: bumped by every
/// update that changes `column`'s value in some row (inserts and deletes
/// bump [`inserts_key`] and the rows' own keys instead).
pub(crate) fn column_key(table: &str, column: &str) -> Key {
    generation_hash(b'c', &[table.as_bytes(), column.as_bytes()], None)
}

/// The generation of rows whose columns hold all these values (a declared
/// composite key), columns in declaration order.
pub(crate) fn composite_key(table: &str, values: &[(&str, Option<&[u8]>)]) -> Key {
    composite_hash(b"gc", table, values)
}

/// The membership generation of a composite key's rows (see
/// [`member_key`]): bumped when a row enters or leaves the combination.
pub(crate) fn member_composite_key(table: &str, values: &[(&str, Option<&[u8]>)]) -> Key {
    composite_hash(b"gn", table, values)
}

fn composite_hash(tag: &[u8; 2], table: &str, values: &[(&str, Option<&[u8]>)]) -> Key {
    Key::generation(KeyBytes::hash(|h| {
        h.push(&FORMAT_VERSION.to_le_bytes());
        h.push(tag);
        h.field(table.as_bytes());
        h.push(&(values.len() as u64).to_le_bytes());
        for (col, v) in values {
            h.field(col.as_bytes());
            h.opt_field(*v);
        }
    }))
}

/// Everything that identifies one cached result besides the query.
pub(crate) struct EntryContext<'a> {
    pub fingerprint: &'a str,
    pub codec: &'static str,
    pub result_type: &'static str,
    pub narrowing: Option<&'a [(String, String)]>,
    /// The table whose returned rows the entry depends on, if any.
    pub returned: Option<&'a str>,
}

/// `generations` are the entry's dependency keys: a query whose dependency
/// set changes (a composite key registered meanwhile, another process's
/// registry) gets another entry instead of missing on every read.
pub(crate) fn entry_key(
    ctx: &EntryContext<'_>,
    sql_hash: u128,
    binds: &[Bind],
    generations: &[Key],
) -> Key {
    Key::entry(KeyBytes::hash(|h| {
        h.push(&FORMAT_VERSION.to_le_bytes());
        h.push(b"e");
        h.field(ctx.fingerprint.as_bytes());
        h.field(ctx.codec.as_bytes());
        h.field(ctx.result_type.as_bytes());
        h.narrowing(ctx.narrowing);
        match ctx.returned {
            None => h.push(&[0]),
            Some(t) => {
                h.push(&[1]);
                h.field(t.as_bytes());
            }
        }
        h.push(&sql_hash.to_le_bytes());
        h.binds(binds);
        h.push(&(generations.len() as u64).to_le_bytes());
        for g in generations {
            h.push(&g.hash().to_le_bytes());
        }
    }))
}

/// What a read's keys are computed from, as one hash (see `plans`): the
/// result type and the backend (by `TypeId`: the memo never leaves the
/// process), the query text, the binds, the narrowing and the
/// composite-key registry's version.
pub(crate) fn plan_key(
    result_type: TypeId,
    backend: TypeId,
    sql_hash: u128,
    binds: &[Bind],
    narrowing: Option<&[(String, String)]>,
    scope: u128,
) -> Key {
    Key::entry(KeyBytes::hash(|h| {
        h.push(&FORMAT_VERSION.to_le_bytes());
        h.push(b"p");
        h.push(&scope.to_le_bytes());
        h.type_id(result_type);
        h.type_id(backend);
        h.push(&sql_hash.to_le_bytes());
        h.binds(binds);
        h.narrowing(narrowing);
    }))
}

/// One dependency, borrowing what it can from the analysis and the binds.
enum DepRef<'a> {
    Global,
    Table(&'a str),
    Rows(&'a str),
    Value {
        table: &'a str,
        column: &'a str,
        value: Option<Cow<'a, [u8]>>,
    },
    Composite {
        table: &'a str,
        values: Vec<(&'a str, Option<Cow<'a, [u8]>>)>,
        member: bool,
    },
    /// A value's membership key (see [`Dependency::Member`]).
    Member {
        table: &'a str,
        column: &'a str,
        value: Option<Cow<'a, [u8]>>,
    },
    Inserts(&'a str),
    Returned(&'a str),
    Cascaded(&'a str),
    ColumnChanges {
        table: &'a str,
        column: &'a str,
    },
}

impl DepRef<'_> {
    fn key(&self) -> Key {
        match self {
            DepRef::Global => global_key(),
            DepRef::Table(t) => table_key(t),
            DepRef::Rows(t) => rows_key(t),
            DepRef::Value {
                table,
                column,
                value,
            } => value_key(table, column, value.as_deref()),
            DepRef::Composite {
                table,
                values,
                member,
            } => {
                let parts: Vec<(&str, Option<&[u8]>)> =
                    values.iter().map(|(c, v)| (*c, v.as_deref())).collect();
                if *member {
                    member_composite_key(table, &parts)
                } else {
                    composite_key(table, &parts)
                }
            }
            DepRef::Member {
                table,
                column,
                value,
            } => member_key(table, column, value.as_deref()),
            DepRef::Inserts(t) => inserts_key(t),
            DepRef::Returned(t) => unnamed_key(t),
            DepRef::Cascaded(t) => cascaded_key(t),
            DepRef::ColumnChanges { table, column } => column_key(table, column),
        }
    }

    fn to_owned(&self) -> Dependency {
        match self {
            DepRef::Global => Dependency::Global,
            DepRef::Table(t) => Dependency::Table((*t).to_owned()),
            DepRef::Rows(t) => Dependency::Rows((*t).to_owned()),
            DepRef::Value {
                table,
                column,
                value,
            } => Dependency::Value {
                table: (*table).to_owned(),
                column: (*column).to_owned(),
                value: value.as_ref().map(|v| v.to_vec()),
            },
            DepRef::Composite {
                table,
                values,
                member,
            } => {
                let table = (*table).to_owned();
                let values = values
                    .iter()
                    .map(|(c, v)| ((*c).to_owned(), v.as_ref().map(|v| v.to_vec())))
                    .collect();
                if *member {
                    Dependency::MemberComposite { table, values }
                } else {
                    Dependency::Composite { table, values }
                }
            }
            DepRef::Member {
                table,
                column,
                value,
            } => Dependency::Member {
                table: (*table).to_owned(),
                column: (*column).to_owned(),
                value: value.as_ref().map(|v| v.to_vec()),
            },
            DepRef::Inserts(t) => Dependency::Inserts((*t).to_owned()),
            DepRef::Returned(t) => Dependency::Returned((*t).to_owned()),
            DepRef::Cascaded(t) => Dependency::Cascaded((*t).to_owned()),
            DepRef::ColumnChanges { table, column } => Dependency::ColumnChanges {
                table: (*table).to_owned(),
                column: (*column).to_owned(),
            },
        }
    }
}

/// Where dependencies go as they are found: kept as [`DepRef`]s for
/// display, or hashed to keys at once on the hot path.
trait Sink<'a> {
    fn push(&mut self, dep: DepRef<'a>);
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
}

impl<'a, T: From<DepRef<'a>>> Sink<'a> for Vec<T> {
    fn push(&mut self, dep: DepRef<'a>) {
        Vec::push(self, T::from(dep));
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

impl From<DepRef<'_>> for Key {
    fn from(dep: DepRef<'_>) -> Key {
        dep.key()
    }
}

/// The dependencies of an analysed query with these binds, sorted and
/// deduplicated, for display ([`crate::Explain`]).
pub(crate) fn dependencies<DB: CacheBackend>(
    analysis: &Analysis,
    binds: &[Bind],
    keying: Keying<'_>,
) -> Vec<Dependency> {
    let mut refs: Vec<DepRef<'_>> = Vec::new();
    dependency_refs::<DB>(analysis, binds, keying, &mut refs);
    let mut deps: Vec<Dependency> = refs.iter().map(DepRef::to_owned).collect();
    deps.sort();
    deps.dedup();
    deps
}

/// The generation keys of an analysed query with these binds, sorted and
/// deduplicated: what a read fetches and an entry snapshots. The hot path:
/// hashes names in place, copies no string, allocates only the result
/// (and array elements, for `= ANY` filters).
pub(crate) fn dependency_keys<DB: CacheBackend>(
    analysis: &Analysis,
    binds: &[Bind],
    keying: Keying<'_>,
) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::with_capacity(1 + 2 * analysis.tables.len());
    dependency_refs::<DB>(analysis, binds, keying, &mut keys);
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Narrowing keeps, for each table, only the (table, column) pairs listed;
/// a table none of whose columns is listed depends on its rows as a whole
/// (narrowing never drops a dependency).
///
/// With a connection's `scope`, tables are named as the connection resolves
/// them and a column is keyed only if the catalog says its values compare
/// by bytes; a table the scope does not know depends on everything. Without
/// one (`explain`), names are as written and the bind's type decides.
fn dependency_refs<'a, DB: CacheBackend>(
    analysis: &'a Analysis,
    binds: &'a [Bind],
    keying: Keying<'a>,
    out: &mut impl Sink<'a>,
) {
    out.push(DepRef::Global);
    for t in &analysis.tables {
        let resolved = match keying.scope.map(|s| s.resolve(&t.table)) {
            None => None,
            Some(Some(r)) => Some(&**r),
            // Plans never get here: a read naming a table its connection
            // cannot resolve is not cached.
            Some(None) => None,
        };
        let name = resolved.map_or(t.table.as_str(), |r| r.name.as_str());
        out.push(DepRef::Table(name));
        if keying.uncascaded != Some(t.table.as_str()) {
            out.push(DepRef::Cascaded(name));
        }
        if !table_values::<DB>(t, name, resolved, binds, keying, &analysis.shape.reads, out) {
            match keying.returned {
                Some((table, entry)) if table == t.table => {
                    // The returned rows are the rest of the dependency (and
                    // rows changed that no write named).
                    out.push(DepRef::Returned(name));
                    if let crate::extract::Entry::Alone { columns } = entry {
                        out.push(DepRef::Inserts(name));
                        for column in columns {
                            out.push(DepRef::ColumnChanges {
                                table: name,
                                column,
                            });
                        }
                    }
                }
                _ => out.push(DepRef::Rows(name)),
            }
        }
    }
}

/// Push the value keys for one table; `false` (and nothing pushed) for the
/// whole table.
fn table_values<'a, DB: CacheBackend>(
    t: &'a TableDeps,
    name: &'a str,
    resolved: Option<&Resolved>,
    binds: &'a [Bind],
    keying: Keying<'a>,
    reads: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    out: &mut impl Sink<'a>,
) -> bool {
    let narrowing = keying.narrowing;
    let Pins::AnyOf(conjunctions) = &t.pins else {
        return false;
    };
    let allowed = |atom: &Atom| {
        resolved.is_none_or(|r| r.keyable(&atom.column))
            && match narrowing {
                None => true,
                Some(cols) => cols
                    .iter()
                    .any(|(tb, c)| *tb == t.table && *c == atom.column),
            }
    };
    let composites = keying.composites.and_then(|c| c.of(&t.table));
    // The columns the query reads of this table, when known: a key whose
    // columns cover them all needs only its rows' membership.
    let reads = reads.get(&t.table);
    let covers =
        |cols: &[&str]| reads.is_some_and(|r| r.iter().all(|c| cols.contains(&c.as_str())));
    let start = out.len();
    for conj in conjunctions {
        let usable = || {
            conj.atoms
                .iter()
                .filter(|a| allowed(a))
                .filter_map(|a| atom_values::<DB>(a, binds).map(|vals| (a, vals)))
        };
        // A declared composite whose every column is pinned to one value is
        // the most precise key available.
        let composite = composites.and_then(|composites| {
            let usable: Vec<_> = usable().collect();
            composites.iter().find_map(|cols| {
                cols.iter()
                    .map(|col| {
                        usable
                            .iter()
                            .filter(|(a, _)| a.column == *col)
                            .find_map(|(a, vals)| Some((a.column.as_str(), vals.single()?)))
                    })
                    .collect::<Option<Vec<_>>>()
            })
        });
        if let Some(values) = composite {
            let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
            let member = covers(&cols);
            out.push(DepRef::Composite {
                table: name,
                values,
                member,
            });
            continue;
        }
        // Any one atom of a conjunction is a valid (wider) dependency: every
        // row able to change the result matches all of them. Key on the one
        // with the fewest values; among equals prefer identifiers (`id`,
        // `user_id`), usually far more selective than flags and statuses.
        let Some((atom, vals)) = usable()
            .min_by_key(|(a, vals)| (vals.len(), !(a.column == "id" || a.column.ends_with("_id"))))
        else {
            out.truncate(start);
            return false;
        };
        let member = covers(&[atom.column.as_str()]);
        let value = |value| {
            if member {
                DepRef::Member {
                    table: name,
                    column: &atom.column,
                    value,
                }
            } else {
                DepRef::Value {
                    table: name,
                    column: &atom.column,
                    value,
                }
            }
        };
        match vals {
            Values::One(v) => out.push(value(v.map(Cow::Borrowed))),
            Values::Many(vs) => {
                for v in vs {
                    out.push(value(Some(Cow::Owned(v))));
                }
            }
        }
        if out.len() - start > MAX_VALUE_KEYS_PER_TABLE {
            out.truncate(start);
            return false;
        }
    }
    true
}

/// The values an atom pins (`None`: SQL `NULL`).
enum Values<'a> {
    /// `col = $n` or `col IS NULL`: borrowed from the binds.
    One(Option<&'a [u8]>),
    /// `col = ANY($n)`: the array's non-`NULL` elements, decoded.
    Many(Vec<Vec<u8>>),
}

impl<'a> Values<'a> {
    fn len(&self) -> usize {
        match self {
            Values::One(_) => 1,
            Values::Many(v) => v.len(),
        }
    }

    /// The value, when exactly one.
    fn single(&self) -> Option<Option<Cow<'a, [u8]>>> {
        match self {
            Values::One(v) => Some(v.map(Cow::Borrowed)),
            Values::Many(v) => match v.as_slice() {
                [one] => Some(Some(Cow::Owned(one.clone()))),
                _ => None,
            },
        }
    }
}

/// The values an atom pins, or `None` when it cannot be keyed (the type does
/// not compare by bytes, a `NULL` bind, an undecodable array).
fn atom_values<'a, DB: CacheBackend>(atom: &Atom, binds: &'a [Bind]) -> Option<Values<'a>> {
    match atom.value {
        ValueRef::Null => Some(Values::One(None)),
        ValueRef::Bind(i) => {
            let b = binds.get(i).filter(|b| DB::is_keyable(b.type_id))?;
            Some(Values::One(Some(b.bytes.as_deref()?)))
        }
        ValueRef::AnyOf(i) => {
            let elems = DB::array_elements(binds.get(i)?)?;
            if elems.iter().any(|e| !DB::is_keyable(e.type_id)) {
                return None;
            }
            // NULL elements never compare equal: they pin no row.
            Some(Values::Many(
                elems.into_iter().filter_map(|e| e.bytes).collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Conjunction;
    use diesel::pg::Pg;

    fn int(v: i32) -> Bind {
        Bind {
            type_id: 23,
            bytes: Some(v.to_be_bytes().to_vec()),
        }
    }

    #[test]
    fn plan_keys_differ_in_everything_that_decides_a_read_s_keys() {
        let cols = vec![("photos".to_owned(), "user_id".to_owned())];
        let other = vec![("photos".to_owned(), "status".to_owned())];
        let t = TypeId::of::<i32>;
        let pg = TypeId::of::<Pg>();
        let base = || plan_key(t(), pg, 1, &[int(7)], None, 0);
        assert_eq!(base(), base());
        let variants = [
            plan_key(TypeId::of::<i64>(), pg, 1, &[int(7)], None, 0),
            plan_key(t(), TypeId::of::<()>(), 1, &[int(7)], None, 0),
            plan_key(t(), pg, 2, &[int(7)], None, 0),
            plan_key(t(), pg, 1, &[int(8)], None, 0),
            plan_key(t(), pg, 1, &[int(7), int(7)], None, 0),
            plan_key(
                t(),
                pg,
                1,
                &[Bind {
                    type_id: 23,
                    bytes: None,
                }],
                None,
                0,
            ),
            plan_key(t(), pg, 1, &[int(7)], Some(&cols), 0),
            plan_key(t(), pg, 1, &[int(7)], Some(&other), 0),
            plan_key(t(), pg, 1, &[int(7)], None, 1),
        ];
        let mut all: Vec<Key> = variants.to_vec();
        all.push(base());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), variants.len() + 1, "{variants:?}");
    }

    fn atom(column: &str, value: ValueRef) -> Atom {
        Atom {
            column: column.into(),
            value,
        }
    }

    fn analysis(pins: Pins) -> Analysis {
        Analysis {
            tables: vec![TableDeps {
                table: "photos".into(),
                pins,
            }],
            parsed: true,
            shape: Default::default(),
        }
    }

    fn value(column: &str, v: i32) -> Dependency {
        Dependency::Value {
            table: "photos".into(),
            column: column.into(),
            value: Some(v.to_be_bytes().to_vec()),
        }
    }

    #[test]
    fn distinct_binds_give_distinct_entry_keys() {
        let ctx = EntryContext {
            fingerprint: "",
            codec: "c",
            result_type: "T",
            narrowing: None,
            returned: None,
        };
        let text = |s: &str| Bind {
            type_id: 25,
            bytes: Some(s.as_bytes().to_vec()),
        };
        let k = |b: &[Bind]| entry_key(&ctx, 1, b, &[]);
        assert_ne!(k(&[text("a"), text("b")]), k(&[text("a, b")]));
        assert_ne!(k(&[text("ab"), text("")]), k(&[text("a"), text("b")]));
        assert_ne!(
            k(&[Bind {
                type_id: 16,
                bytes: Some(vec![1])
            }]),
            k(&[int(1)])
        );
        assert_ne!(
            k(&[Bind {
                type_id: 25,
                bytes: None
            }]),
            k(&[text("")])
        );
        assert_eq!(k(&[int(1)]), k(&[int(1)]));
    }

    #[test]
    fn key_bytes_hash_what_was_pushed_and_start_empty() {
        for n in [0usize, 3, 256, 100_000] {
            let part = vec![7u8; n];
            assert_eq!(KeyBytes::hash(|h| h.push(&part)), xxh3_128(&part), "{n}");
        }
    }

    #[test]
    fn keys_on_the_narrowest_atom() {
        let a = analysis(Pins::AnyOf(vec![Conjunction {
            atoms: vec![
                atom("status", ValueRef::AnyOf(0)),
                atom("user_id", ValueRef::Bind(1)),
            ],
        }]));
        let arr = Bind {
            type_id: 1007,
            bytes: Some(array(&[1, 2])),
        };
        let deps = dependencies::<Pg>(&a, &[arr, int(7)], Keying::default());
        assert!(deps.contains(&value("user_id", 7)), "{deps:?}");
        assert!(!deps.iter().any(|d| matches!(d, Dependency::Rows(_))));
        assert!(
            deps.contains(&Dependency::Global)
                && deps.contains(&Dependency::Table("photos".into()))
        );
    }

    #[test]
    fn narrowing_to_an_absent_column_widens_to_the_table() {
        let a = analysis(Pins::AnyOf(vec![Conjunction {
            atoms: vec![atom("user_id", ValueRef::Bind(0))],
        }]));
        let cols = [("photos".to_string(), "status".to_string())];
        let deps = dependencies::<Pg>(
            &a,
            &[int(7)],
            Keying {
                narrowing: Some(&cols),
                ..Keying::default()
            },
        );
        assert!(
            deps.contains(&Dependency::Rows("photos".into())),
            "{deps:?}"
        );
        let cols = [("photos".to_string(), "user_id".to_string())];
        let deps = dependencies::<Pg>(
            &a,
            &[int(7)],
            Keying {
                narrowing: Some(&cols),
                ..Keying::default()
            },
        );
        assert!(deps.contains(&value("user_id", 7)), "{deps:?}");
    }

    #[test]
    fn unkeyable_values_widen_to_the_table() {
        let a = analysis(Pins::AnyOf(vec![Conjunction {
            atoms: vec![atom("score", ValueRef::Bind(0))],
        }]));
        let float = Bind {
            type_id: 701,
            bytes: Some(1.5f64.to_be_bytes().to_vec()),
        };
        assert!(dependencies::<Pg>(&a, &[float], Keying::default())
            .contains(&Dependency::Rows("photos".into())));
        let null = Bind {
            type_id: 23,
            bytes: None,
        };
        assert!(dependencies::<Pg>(&a, &[null], Keying::default())
            .contains(&Dependency::Rows("photos".into())));
        // A bind index the SQL names but the query did not collect.
        assert!(dependencies::<Pg>(&a, &[], Keying::default())
            .contains(&Dependency::Rows("photos".into())));
    }

    #[test]
    fn too_many_values_widen_to_the_table() {
        let a = analysis(Pins::AnyOf(vec![Conjunction {
            atoms: vec![atom("id", ValueRef::AnyOf(0))],
        }]));
        let many: Vec<i32> = (0..=MAX_VALUE_KEYS_PER_TABLE as i32).collect();
        let arr = Bind {
            type_id: 1007,
            bytes: Some(array(&many)),
        };
        assert!(dependencies::<Pg>(&a, &[arr], Keying::default())
            .contains(&Dependency::Rows("photos".into())));
    }

    #[test]
    fn is_null_pins_the_null_value() {
        let a = analysis(Pins::AnyOf(vec![Conjunction {
            atoms: vec![atom("deleted_at", ValueRef::Null)],
        }]));
        let deps = dependencies::<Pg>(&a, &[], Keying::default());
        let null = Dependency::Value {
            table: "photos".into(),
            column: "deleted_at".into(),
            value: None,
        };
        assert!(deps.contains(&null), "{deps:?}");
        assert_ne!(null.key(), value_key("photos", "deleted_at", Some(b"")));
    }

    fn array(vals: &[i32]) -> Vec<u8> {
        let mut b = Vec::new();
        for x in [1i32, 0, 23, vals.len() as i32, 1] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        for v in vals {
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }
}
