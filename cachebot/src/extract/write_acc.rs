//! What a statement writes, as it is accumulated by the walks (the AST walk and the fallback
//! scan both add to one).

use std::collections::BTreeSet;

use sqlparser::ast::ObjectName;

use super::{table_name, WriteTargets};

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
    pub(super) tables: BTreeSet<String>,
    /// Something writes tables we cannot name.
    pub(super) unknown: bool,
    /// A `TRUNCATE ... CASCADE` empties the tables referencing `tables` too.
    pub(super) truncate_cascade: bool,
}

impl WriteAcc {
    pub(super) fn table(&mut self, name: &ObjectName) {
        self.tables.insert(table_name(name));
    }

    pub(super) fn merge(&mut self, other: WriteTargets) {
        match other {
            WriteTargets::None => {}
            WriteTargets::Tables(tables) => self.tables.extend(tables),
            WriteTargets::Unknown => self.unknown = true,
        }
    }

    /// The final answer.
    pub(super) fn finish(self) -> WriteTargets {
        if self.unknown {
            WriteTargets::Unknown
        } else if self.tables.is_empty() {
            WriteTargets::None
        } else {
            WriteTargets::Tables(self.tables.into_iter().collect())
        }
    }
}

/// Whether a called function (name parts joined by `.`) is a known writer.
pub(super) fn is_writer_function(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_lowercase();
    WRITER_FUNCTIONS.contains(&last.as_str())
}
