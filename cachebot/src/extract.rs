//! SQL text to dependencies: which tables (and which rows of them) a query reads, and which
//! tables a statement writes.
//!
//! # Why parse the SQL text
//!
//! Diesel's typed AST cannot be walked from outside the crate: the operator nodes (`Eq`, `And`,
//! `Grouped`, ...) live in private modules and `WhereClause`/`Bound` have private fields. What
//! *is* public is the backend's own rendering (`QueryFragment::to_sql`), and Diesel's output is
//! very regular: quoted identifiers, `$n` placeholders, every predicate parenthesised, `= ANY($n)`
//! for `eq_any`. So we parse that text with `sqlparser` and recover tables, joins and the
//! AND/OR/NOT structure of WHERE and ON. The result is a *template*: it names bind indices, not
//! values; the caller pairs it with the bind bytes of each execution.
//!
//! # The widening rules
//!
//! Over-invalidation is a cost, under-invalidation is a bug. Every rule below only ever widens:
//!
//! - For each table, the pins are a set of equality conjunctions (`col = $n`, `col = ANY($n)`,
//!   `col IN ($a, $b)`, `col IS NULL`) such that every row (old or new image) able to change the
//!   result matches one of them. Anything we cannot prove (ranges, `!=`, `LIKE`, `NOT`,
//!   functions, sub-selects, literals...) pins nothing; under AND that is harmless (the sibling
//!   still pins), under OR it makes the table [`Pins::Whole`].
//! - `A.x = B.y` in a relation's own WHERE/ON conjuncts carries a pinned value from one side to
//!   the other; a LEFT JOIN's ON only ever narrows its nullable side, and `IS NULL` on a
//!   null-extended relation (the anti-join pattern) pins nothing.
//! - Tables seen only in sub-selects, derived tables, CTEs, or queries using joins we do not
//!   model (RIGHT/FULL/CROSS/NATURAL/USING/LATERAL) are whole-table dependencies.
//! - A function whose result can change without a write makes the query uncacheable; only a
//!   small allow-list of deterministic functions and aggregates is accepted.
//! - Unparseable SQL falls back to a token scan that lists every plausible table name (all whole).
//!
//! [`write_targets`] answers the converse question for the write path's instrumentation: which
//! tables a statement (or `batch_execute` batch) may modify, or `Unknown` when it cannot tell.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::Statement;
use sqlparser::dialect::{Dialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

use crate::backend::SqlDialect;

mod collect;
mod names;
mod pins;
mod scan;
mod shape;
mod write_acc;
mod writes;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_diesel;

/// Cap on the number of conjunctions kept per table while combining AND (cross product); over
/// it keep the narrower side.
pub(crate) const MAX_CONJUNCTIONS: usize = 64;

/// Over this many operator tokens the SQL is not handed to the parser at all: a left-deep chain
/// of binary operators (`a AND b AND c ...`) parses without hitting sqlparser's recursion limit
/// but the resulting tree is as deep as the chain, and merely dropping it recurses once per level
/// (about 40 000 levels overflow a 2 MiB thread). Such text takes the conservative fallback.
const MAX_OPERATOR_TOKENS: usize = 2_000;

/// Over this many relations in one FROM clause, every table of the query is whole (keeps the
/// join-tree recursion shallow; no real query comes near it).
const MAX_RELATIONS: usize = 64;

/// Over this many candidate tables, the fallback scan gives up ([`Uncacheable::NoTable`]).
const MAX_FALLBACK_TABLES: usize = 64;

/// The outcome of [`analyze`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Extracted {
    /// The query can be cached with these dependencies.
    Cacheable(Analysis),
    /// The query must not be cached.
    Uncacheable(Uncacheable),
}

/// Why a query must not be cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Uncacheable {
    /// No table could be found (e.g. `SELECT 1`).
    NoTable,
    /// Calls a function whose result can change without a write (now(), random(), nextval,
    /// CURRENT_TIMESTAMP, any function not on the known-deterministic allow-list). Holds the
    /// function name as written, lowercased.
    Volatile(String),
    /// Not a read-only SELECT (writes, writable CTEs, FOR UPDATE/SHARE locking clauses, multiple
    /// statements, DDL...).
    NotARead,
}

/// The dependency template of a cacheable query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Analysis {
    /// Every table the statement reads (once each, sorted by name), with what it depends on.
    pub(crate) tables: Vec<TableDeps>,
    /// false when the SQL could not be parsed and the tables were found by the conservative
    /// fallback scan (all Whole).
    pub(crate) parsed: bool,
    /// Columns read and how rows enter the result, where the statement is simple enough to
    /// tell (see `shape`).
    pub(crate) shape: Shape,
}

/// What a query depends on in one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableDeps {
    /// Normalised table name: quoted identifiers as written, unquoted ones lowercased; a
    /// schema written out is kept as `schema.table`.
    pub(crate) table: String,
    /// Which rows of the table can change the result.
    pub(crate) pins: Pins,
}

impl AsRef<str> for TableDeps {
    fn as_ref(&self) -> &str {
        &self.table
    }
}

/// Which rows of a table can change a query's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pins {
    /// Any row of the table can change the result.
    Whole,
    /// Every row (old or new image) that can change the result matches at least one of these
    /// conjunctions. Never empty.
    AnyOf(Vec<Conjunction>),
}

/// A conjunction of column equalities that a row must satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conjunction {
    /// All of these hold for the row. Never empty. Sorted by (column, value) and deduplicated.
    pub(crate) atoms: Vec<Atom>,
}

/// One pinned column: the row's `column` equals `value`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Atom {
    /// Column name (normalised like table names), a column of TableDeps::table.
    pub(crate) column: String,
    /// The value the column holds, as a reference into the query's binds.
    pub(crate) value: ValueRef,
}

/// A value a pinned column is compared with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ValueRef {
    /// `col = $n`: the 0-based bind index n-1.
    Bind(usize),
    /// `col = ANY($n)`: the column equals one element of the array bind (0-based index n-1).
    AnyOf(usize),
    /// `col IS NULL`.
    Null,
}

/// Which tables a statement writes, as found by [`write_targets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WriteTargets {
    /// The statement writes nothing (SELECT without writable CTE, SET, SHOW, BEGIN, COMMIT,
    /// ROLLBACK, SAVEPOINT, RELEASE, EXPLAIN without ANALYZE...).
    None,
    /// It writes these tables (normalised names, sorted, deduplicated): INSERT, UPDATE, DELETE,
    /// TRUNCATE (all listed tables), MERGE, COPY ... FROM, writable CTEs, DROP/ALTER TABLE of a
    /// table, and every statement of a multi-statement batch.
    Tables(Vec<String>),
    /// It may write but the tables cannot be told (parse failure of something that is not
    /// clearly a read, CALL, DO, function-only statements the parser can't attribute, other
    /// DDL): the caller invalidates everything.
    Unknown,
}

/// Analyse a SELECT: the tables it reads and, per table, the rows that can change its result.
///
/// `sql` is one statement as rendered by Diesel (any SQL is accepted), in the backend's
/// `dialect`. Never panics, whatever the input.
pub(crate) fn analyze(sql: &str, dialect: SqlDialect) -> Extracted {
    let dialect = parser_dialect(dialect);
    // A parse failure that cannot run to completion (the thread could not
    // start, or the analysis panicked) is never cached.
    on_big_stack(|| analyze_here(sql, dialect))
        .unwrap_or(Extracted::Uncacheable(Uncacheable::NotARead))
}

/// sqlparser's dialect for a backend's.
fn parser_dialect(dialect: SqlDialect) -> &'static (dyn Dialect + Sync) {
    match dialect {
        SqlDialect::PostgreSql => &PostgreSqlDialect {},
    }
}

/// Stack for parsing: sqlparser recurses (and drops its AST recursively) far
/// deeper than a default thread's stack allows on hostile input.
const PARSE_STACK: usize = 64 << 20;

/// Run `f` on a scoped thread with [`PARSE_STACK`] of stack. `None` if the
/// thread cannot start or `f` panics. Callers memoise per SQL text, so the
/// spawn is paid once per distinct statement.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cachebot-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, f)
            .ok()?
            .join()
            .ok()
    })
}

fn analyze_here(sql: &str, dialect: &(dyn Dialect + Sync)) -> Extracted {
    if scan::too_complex(sql) {
        return scan::fallback_analyze(sql);
    }
    let statements = match Parser::parse_sql(dialect, sql) {
        Ok(statements) => statements,
        Err(_) => return scan::fallback_analyze(sql),
    };
    match statements.as_slice() {
        [] => Extracted::Uncacheable(Uncacheable::NoTable),
        [Statement::Query(query)] => pins::analyze_query(query),
        _ => Extracted::Uncacheable(Uncacheable::NotARead),
    }
}

/// Which tables a statement (or a `;`-separated batch, as sent by `batch_execute`) writes.
///
/// Only the tests and the fuzz target ask this of one text; the write path asks [`batch_writes`].
///
/// A SELECT that calls a user-defined function which writes is *not* detected (only a short list
/// of known writing built-ins is): such writes must go through the crate's write API or an
/// explicit invalidation. Never panics.
#[cfg(any(test, fuzzing))]
pub(crate) fn write_targets(sql: &str, dialect: SqlDialect) -> WriteTargets {
    let dialect = parser_dialect(dialect);
    on_big_stack(|| writes::write_targets(sql, dialect)).unwrap_or(WriteTargets::Unknown)
}

/// One statement of a batch and what it writes; see [`batch_writes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatementWrites {
    /// The statement's text, without its `;`.
    pub(crate) text: String,
    /// The tables it writes.
    pub(crate) writes: WriteTargets,
    /// A `TRUNCATE ... CASCADE`: it also empties every table whose foreign keys reference one
    /// of `writes`, transitively, whatever the keys' `ON DELETE` action.
    pub(crate) truncate_cascade: bool,
}

/// The statements of a batch (as sent by `batch_execute`), in order, each with what it writes.
///
/// Statements are split at `;` outside strings, quoted identifiers, comments, parentheses and
/// `BEGIN ATOMIC` bodies; blank and comment-only ones are dropped. Never panics; if the analysis
/// cannot run, one statement that writes [`WriteTargets::Unknown`].
pub(crate) fn batch_writes(sql: &str, dialect: SqlDialect) -> Vec<StatementWrites> {
    let dialect = parser_dialect(dialect);
    on_big_stack(|| writes::batch_writes(sql, dialect)).unwrap_or_else(|| {
        vec![StatementWrites {
            text: sql.to_owned(),
            writes: WriteTargets::Unknown,
            truncate_cascade: true,
        }]
    })
}

/// The first `n` tokens of a statement, comments skipped (for transaction control).
pub(crate) fn leading_tokens(sql: &str, n: usize) -> Vec<Lead> {
    scan::leading_tokens(sql, n)
}

pub(crate) use names::column_list;
use names::{join_name, name_parts, norm_ident, table_name};
pub(crate) use scan::Lead;
pub(crate) use shape::{Entry, Shape};

/// Functions (and function-like constructs sqlparser renders as calls) whose result depends
/// only on their arguments and the rows read: aggregates, string/number helpers, window ranking
/// functions, and the `ARRAY(...)`/`ROW(...)` constructors. Compared against the unqualified
/// (or `pg_catalog.`-qualified) name, exactly as normalised (so `"LOWER"` is not `lower`).
const DETERMINISTIC_FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    // strings
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "concat",
    "concat_ws",
    "substring",
    "substr",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "position",
    "strpos",
    "left",
    "right",
    "lpad",
    "rpad",
    "md5",
    "initcap",
    "reverse",
    "repeat",
    "split_part",
    // numbers
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "mod",
    "power",
    "sqrt",
    "sign",
    // conditionals
    "coalesce",
    "nullif",
    "greatest",
    "least",
    // arrays and rows
    "array",
    "row",
    "unnest",
    "array_length",
    "cardinality",
    "generate_series",
    // window ranking
    "row_number",
    "rank",
    "dense_rank",
];

/// Whether a called function (normalised name parts) is on the deterministic allow-list.
fn is_deterministic(parts: &[String]) -> bool {
    let name = match parts {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return false,
    };
    DETERMINISTIC_FUNCTIONS.contains(&name.as_str())
}

/// Words PostgreSQL evaluates without parentheses to a value that changes without any write
/// (sqlparser gives some of them as functions, some as bare identifiers).
const PARENLESS_VOLATILE: &[&str] = &[
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "system_user",
    "user",
    "current_schema",
    "current_catalog",
];

/// String literals that date/time input turns into the current time (`'now'::timestamp`).
fn is_time_special(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "now" | "today" | "tomorrow" | "yesterday"
    )
}

/// Deps of one table while analysing: `None` = whole table, else a non-empty set of
/// conjunctions (each a sorted, deduplicated, non-empty atom list).
type Dnf = BTreeSet<Vec<Atom>>;

/// Assemble the final answer from what the walk found.
fn finish(
    pinned: BTreeMap<String, Option<Dnf>>,
    whole: BTreeSet<String>,
    all_whole: bool,
    parsed: bool,
    shape: Shape,
) -> Extracted {
    let mut tables: BTreeMap<String, Option<Dnf>> = pinned;
    for table in whole {
        tables.insert(table, None);
    }
    if tables.is_empty() {
        return Extracted::Uncacheable(Uncacheable::NoTable);
    }
    let tables = tables
        .into_iter()
        .map(|(table, deps)| {
            let pins = match deps {
                Some(dnf) if !all_whole && !dnf.is_empty() => {
                    Pins::AnyOf(dnf.into_iter().map(|atoms| Conjunction { atoms }).collect())
                }
                _ => Pins::Whole,
            };
            TableDeps { table, pins }
        })
        .collect();
    Extracted::Cacheable(Analysis {
        tables,
        parsed,
        shape,
    })
}
