//! Which tables a statement or batch writes.

use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;

use super::collect::statement_into;
use super::write_acc::WriteAcc;
use super::{scan, StatementWrites};

/// What a statement (or batch, as one) writes.
#[cfg(any(test, fuzzing))]
pub(super) fn write_targets(sql: &str, dialect: &dyn Dialect) -> super::WriteTargets {
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
