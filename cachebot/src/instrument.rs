//! Seeing every write a connection makes, including the ones that bypass
//! the crate.
//!
//! [`CacheInstrumentation`] is a Diesel [`Instrumentation`]: it receives
//! every statement a connection runs. Writes the crate did not make itself
//! (`diesel::update(..).execute`, `sql_query`, `batch_execute`) bump the
//! "all rows" generation of each table they write; a write it cannot
//! attribute to a table bumps the global generation. Inside a transaction
//! the bumps wait for the outermost COMMIT to finish ([`crate::tx`]).
//! Correctness never depends on users remembering the write API; only
//! precision does.

use std::sync::Arc;

use diesel::connection::{Connection, Instrumentation, InstrumentationEvent};

use crate::backend::CacheBackend;
use crate::cache::{Cache, Core};
use crate::codec::Codec;
use crate::extract::{write_targets, WriteTargets};
use crate::key;
use crate::store::Key;
use crate::tx::{self, Tracker};
use crate::write::Cascade;

/// The instrumentation the crate installs on a connection.
///
/// Install it with [`Cache::instrument`]; chain your own instrumentation
/// with [`CacheInstrumentation::chain`].
///
/// ```no_run
/// use cachebot::Cache;
/// use diesel::prelude::*;
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::in_process();
/// let mut conn = PgConnection::establish("postgres://localhost/app")?;
/// cache.instrument(&mut conn)?;
/// // Every write on `conn` now invalidates what it can change.
/// diesel::sql_query("UPDATE photos SET status = 3 WHERE id = 7").execute(&mut conn)?;
/// # Ok(()) }
/// ```
pub struct CacheInstrumentation {
    core: Arc<Core>,
    tracker: Tracker,
    /// Set by the crate's own write API just before it runs a write whose
    /// exact invalidation it computes itself.
    own_write: bool,
    next: Option<Box<dyn Instrumentation>>,
}

impl std::fmt::Debug for CacheInstrumentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInstrumentation")
            .field("tracker", &self.tracker)
            .field("chained", &self.next.is_some())
            .finish()
    }
}

impl CacheInstrumentation {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        CacheInstrumentation {
            core,
            tracker: Tracker::default(),
            own_write: false,
            next: None,
        }
    }

    /// Pass every event on to `next` as well (your logger, your metrics).
    pub fn chain(mut self, next: impl Instrumentation) -> Self {
        self.next = Some(Box::new(next));
        self
    }

    /// Whether a transaction is open on the connection.
    pub fn in_transaction(&self) -> bool {
        self.tracker.in_transaction()
    }

    /// The next write statement is the crate's own: do not widen it.
    pub(crate) fn expect_own_write(&mut self) {
        self.own_write = true;
    }

    /// Invalidate `keys` when the current transaction commits, or now.
    pub(crate) fn invalidate(&mut self, keys: Vec<Key>) {
        if let Some(keys) = self.defer(keys) {
            let _ = self.core.bump(&keys);
        }
    }

    /// `None` if deferred to the commit; the keys back if no transaction is open.
    fn defer(&mut self, keys: Vec<Key>) -> Option<Vec<Key>> {
        if self.tracker.in_transaction() {
            self.tracker.defer(keys);
            None
        } else {
            Some(keys)
        }
    }

    fn finished(&mut self, sql: &str, ok: bool) {
        if std::mem::take(&mut self.own_write) {
            return;
        }
        if let Some(ctl) = tx::control(sql) {
            let keys = self.tracker.apply(ctl, ok);
            if !keys.is_empty() {
                crate::hook!(CommitBeforeInvalidate);
                let _ = self.core.bump(&keys);
            }
            return;
        }
        if !ok || is_plain_read(sql) {
            return;
        }
        let keys = match targets_of(sql) {
            WriteTargets::None => return,
            WriteTargets::Tables(tables) => self
                .core
                .table_keys_with_cascades(&tables, &[Cascade::Delete, Cascade::Update]),
            WriteTargets::Unknown => vec![key::global_key()],
        };
        tracing::debug!(
            sql,
            "write outside the crate's write API: widening to its tables"
        );
        self.invalidate(keys);
    }
}

/// `write_targets`, memoised per SQL text: applications repeat the same
/// statements, and the analysis runs on a thread of its own.
fn targets_of(sql: &str) -> WriteTargets {
    static MEMO: std::sync::OnceLock<moka::sync::Cache<u128, WriteTargets>> =
        std::sync::OnceLock::new();
    let memo = MEMO.get_or_init(|| moka::sync::Cache::new(10_000));
    memo.get_with(xxhash_rust::xxh3::xxh3_128(sql.as_bytes()), || {
        write_targets(sql, <diesel::pg::Pg as CacheBackend>::dialect())
    })
}

/// A fast path for the statements that are obviously reads, so that every
/// SELECT does not pay for a parse. Anything else is parsed.
fn is_plain_read(sql: &str) -> bool {
    let head = sql.trim_start();
    let word: String = head
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let read = word.eq_ignore_ascii_case("select")
        || word.eq_ignore_ascii_case("show")
        || word.eq_ignore_ascii_case("set")
        || word.eq_ignore_ascii_case("values");
    // A second statement could be anything.
    read && !head.trim_end().trim_end_matches(';').contains(';')
}

/// The SQL text of a statement as Diesel shows it to instrumentation: the
/// query, then ` -- binds: [...]` for queries with binds.
fn statement_text(shown: &str) -> &str {
    match shown.rfind(" -- binds: ") {
        Some(at) => &shown[..at],
        None => shown,
    }
}

impl Instrumentation for CacheInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { query, error, .. } = &event {
            let shown = query.to_string();
            self.finished(statement_text(&shown), error.is_none());
        }
        if let Some(next) = self.next.as_mut() {
            next.on_connection_event(event);
        }
    }
}

/// The crate's instrumentation on `conn`, if installed.
pub(crate) fn installed<Conn: Connection>(conn: &mut Conn) -> Option<&mut CacheInstrumentation> {
    conn.instrumentation()
        .downcast_mut::<CacheInstrumentation>()
}

impl<C: Codec> Cache<C> {
    /// A fresh instrumentation for one connection; see [`Cache::instrument`].
    pub fn instrumentation(&self) -> CacheInstrumentation {
        CacheInstrumentation::new(self.core.clone())
    }

    /// Install the crate's instrumentation on `conn` (replacing any other;
    /// chain yours with [`CacheInstrumentation::chain`] and
    /// `conn.set_instrumentation`), and learn the database's foreign keys so
    /// that cascading deletes and updates invalidate the child tables.
    pub fn instrument(&self, conn: &mut diesel::PgConnection) -> diesel::QueryResult<()> {
        self.core.learn_cascades(conn)?;
        conn.set_instrumentation(self.instrumentation());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_skip_the_parser() {
        assert!(is_plain_read("SELECT 1"));
        assert!(is_plain_read(
            "  select \"a\".\"b\" FROM \"a\" WHERE x = 1;"
        ));
        assert!(!is_plain_read("SELECT 1; DELETE FROM a"));
        assert!(!is_plain_read(
            "WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d"
        ));
        assert!(!is_plain_read("UPDATE a SET x = 1"));
    }

    #[test]
    fn statement_text_drops_the_binds() {
        assert_eq!(
            statement_text("UPDATE \"a\" SET \"x\" = $1 -- binds: [1]"),
            "UPDATE \"a\" SET \"x\" = $1"
        );
        assert_eq!(statement_text("COMMIT"), "COMMIT");
    }
}

/// Instruments every connection an r2d2 pool hands out (feature `r2d2`).
///
/// ```no_run
/// # #[cfg(feature = "r2d2")] {
/// use diesel::r2d2::{ConnectionManager, Pool};
/// use diesel::PgConnection;
/// let cache = cachebot::Cache::in_process();
/// let pool = Pool::builder()
///     .connection_customizer(Box::new(cache.pool_customizer()))
///     .build(ConnectionManager::<PgConnection>::new("postgres://localhost/app"))
///     .unwrap();
/// # }
/// ```
#[cfg(feature = "r2d2")]
#[derive(Clone)]
pub struct PoolCustomizer {
    core: Arc<Core>,
}

#[cfg(feature = "r2d2")]
impl std::fmt::Debug for PoolCustomizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCustomizer")
    }
}

#[cfg(feature = "r2d2")]
impl diesel::r2d2::CustomizeConnection<diesel::PgConnection, diesel::r2d2::Error>
    for PoolCustomizer
{
    fn on_acquire(&self, conn: &mut diesel::PgConnection) -> Result<(), diesel::r2d2::Error> {
        self.core
            .learn_cascades(conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.set_instrumentation(CacheInstrumentation::new(self.core.clone()));
        Ok(())
    }
}

#[cfg(feature = "r2d2")]
impl<C: Codec> Cache<C> {
    /// An r2d2 connection customizer that instruments every pooled
    /// connection (feature `r2d2`).
    pub fn pool_customizer(&self) -> PoolCustomizer {
        PoolCustomizer {
            core: self.core.clone(),
        }
    }
}
