//! Which tables a statement or batch writes.

use std::collections::BTreeSet;

use sqlparser::ast::{
    CascadeOption, CopySource, FromTable, ObjectName, ObjectType, Query, Statement, TableFactor,
    TableObject,
};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;

use super::collect::Collector;
use super::{scan, table_name, StatementWrites, WriteTargets};

/// Built-in functions that modify data when merely selected (`SELECT lo_unlink(...)`).
///
/// Deliberately short: a SELECT calling any other function is taken as writing nothing, since
/// treating every non-allow-listed function (`nextval`, `now`, `pg_sleep`, ...) as a possible
/// writer would flush the whole cache on routine reads. User-defined functions that write are
/// not detected here; their writes must go through the crate's write API or an explicit
/// invalidation.
const WRITER_FUNCTIONS: &[&str] = &[
    "lo_import",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lo_create",
    "lo_creat",
    "lowrite",
    "lo_truncate",
    "lo_truncate64",
    "dblink",
    "dblink_exec",
];

/// Accumulated write targets.
#[derive(Debug, Default)]
pub(super) struct WriteAcc {
    /// Tables written.
    pub tables: BTreeSet<String>,
    /// Something writes tables we cannot name.
    pub unknown: bool,
    /// A `TRUNCATE ... CASCADE` empties the tables referencing `tables` too.
    pub truncate_cascade: bool,
}

impl WriteAcc {
    fn table(&mut self, name: &ObjectName) {
        self.tables.insert(table_name(name));
    }

    fn merge(&mut self, other: WriteTargets) {
        match other {
            WriteTargets::None => {}
            WriteTargets::Tables(tables) => self.tables.extend(tables),
            WriteTargets::Unknown => self.unknown = true,
        }
    }

    /// The final answer.
    pub fn finish(self) -> WriteTargets {
        if self.unknown {
            WriteTargets::Unknown
        } else if self.tables.is_empty() {
            WriteTargets::None
        } else {
            WriteTargets::Tables(self.tables.into_iter().collect())
        }
    }
}

pub(super) fn write_targets(sql: &str, dialect: &dyn Dialect) -> WriteTargets {
    let mut acc = WriteAcc::default();
    if parse_into(sql, dialect, &mut acc) {
        return acc.finish();
    }
    // One bad (or huge) statement should not blind us to the others: one by one.
    for piece in scan::split_statements(sql) {
        if !parse_into(piece, dialect, &mut acc) {
            acc.merge(scan::fallback_writes(piece));
        }
    }
    acc.finish()
}

/// The statements of a batch, in order, each with what it writes.
pub(super) fn batch_writes(sql: &str, dialect: &dyn Dialect) -> Vec<StatementWrites> {
    scan::split_statements(sql)
        .into_iter()
        .map(|piece| {
            let mut acc = WriteAcc::default();
            if !parse_into(piece, dialect, &mut acc) {
                acc.merge(scan::fallback_writes(piece));
            }
            StatementWrites {
                text: piece.to_owned(),
                truncate_cascade: acc.truncate_cascade,
                writes: acc.finish(),
            }
        })
        .collect()
}

/// Parse `sql` (unless too complex) and add what its statements write; false if not parsed
/// (then `acc` is untouched).
fn parse_into(sql: &str, dialect: &dyn Dialect, acc: &mut WriteAcc) -> bool {
    if scan::too_complex(sql) {
        return false;
    }
    match Parser::parse_sql(dialect, sql) {
        Ok(statements) => {
            for statement in &statements {
                statement_into(statement, acc);
            }
            true
        }
        Err(_) => false,
    }
}

/// Whether a called function (name parts joined by `.`) is a known writer.
pub(super) fn is_writer_function(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_lowercase();
    WRITER_FUNCTIONS.contains(&last.as_str())
}

/// The writes of a query: writable CTEs, data-modifying bodies, SELECT INTO, known writing
/// functions.
fn query_into(query: &Query, acc: &mut WriteAcc) {
    let mut cx = Collector::default();
    cx.query(query);
    acc.tables.extend(cx.writes.tables);
    acc.unknown |= cx.writes.unknown;
    if cx.functions.iter().any(|f| is_writer_function(f)) {
        acc.unknown = true;
    }
}

/// The target of an UPDATE/MERGE/DELETE: a plain table, else unknown.
fn factor_into(factor: &TableFactor, acc: &mut WriteAcc) {
    match factor {
        TableFactor::Table {
            name, args: None, ..
        } => acc.table(name),
        _ => acc.unknown = true,
    }
}

/// Add what one statement writes.
pub(super) fn statement_into(statement: &Statement, acc: &mut WriteAcc) {
    match statement {
        Statement::Query(query) => query_into(query, acc),
        Statement::Insert(insert) => {
            match &insert.table {
                TableObject::TableName(name) => acc.table(name),
                TableObject::TableFunction(_) | TableObject::TableQuery(_) => acc.unknown = true,
            }
            if let Some(source) = &insert.source {
                query_into(source, acc);
            }
        }
        // With FROM, only the updated table is written.
        Statement::Update(update) => factor_into(&update.table.relation, acc),
        Statement::Delete(delete) => {
            if !delete.tables.is_empty() {
                // MySQL multi-table DELETE t1, t2 FROM ...
                for name in &delete.tables {
                    acc.table(name);
                }
            } else {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                    &delete.from;
                if from.is_empty() {
                    acc.unknown = true;
                }
                for table in from {
                    factor_into(&table.relation, acc);
                }
            }
        }
        Statement::Truncate(truncate) => {
            if truncate.table_names.is_empty() {
                acc.unknown = true;
            }
            for target in &truncate.table_names {
                acc.table(&target.name);
            }
            if truncate.cascade == Some(CascadeOption::Cascade) {
                acc.truncate_cascade = true;
            }
        }
        Statement::Merge(merge) => factor_into(&merge.table, acc),
        Statement::Copy { source, to, .. } => match source {
            CopySource::Table { table_name, .. } => {
                if !*to {
                    acc.table(table_name);
                }
            }
            // COPY (query) TO: the query may be a data-modifying one.
            CopySource::Query(query) => query_into(query, acc),
        },
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => {
            if names.is_empty() {
                acc.unknown = true;
            }
            for name in names {
                acc.table(name);
            }
        }
        Statement::AlterTable(alter) => acc.table(&alter.name),
        Statement::CreateIndex(index) => acc.table(&index.table_name),
        Statement::RefreshMaterializedView(refresh) => acc.table(&refresh.name),
        Statement::Explain {
            analyze,
            statement,
            options,
            ..
        } => {
            // Only EXPLAIN ANALYZE runs the statement: `EXPLAIN ANALYZE [VERBOSE] ...` or an
            // ANALYZE in the option list (`EXPLAIN (ANALYZE, BUFFERS) ...`; even
            // `(ANALYZE false)` counts: over-invalidating is a cost, missing a write a bug).
            let in_options = options
                .iter()
                .flatten()
                .any(|o| o.name.value.eq_ignore_ascii_case("analyze"));
            if *analyze || in_options {
                statement_into(statement, acc);
            }
        }
        // Harmless over-approximation: the write happens at EXECUTE (which is Unknown).
        Statement::Prepare { statement, .. } => statement_into(statement, acc),
        Statement::Declare { stmts, .. } => {
            for declare in stmts {
                if let Some(query) = &declare.for_query {
                    query_into(query, acc);
                }
            }
        }
        Statement::StartTransaction { statements, .. } => {
            for statement in statements {
                statement_into(statement, acc);
            }
        }
        // Session, transaction, cursor and notification statements, and maintenance that keeps
        // every row's content (ANALYZE, VACUUM, LOCK): no data changes.
        Statement::Set(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowProcessList { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::ExplainTable { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Deallocate { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Reset(_)
        | Statement::Analyze(_)
        | Statement::Vacuum(_)
        | Statement::Lock(_) => {}
        // CALL, EXECUTE, other DDL, GRANT, COMMENT, anything new: cannot tell.
        _ => acc.unknown = true,
    }
}
