//! Seeing every write a connection makes, including the ones that bypass
//! the crate.
//!
//! [`CacheInstrumentation`] is a Diesel [`Instrumentation`]: it receives
//! every statement a connection runs. Writes the crate did not make itself
//! (`diesel::update(..).execute`, `sql_query`, `batch_execute`) bump the
//! "all rows" generation of each table they write; a write it cannot
//! attribute to a table bumps the global generation. Inside a transaction
//! the bumps wait for the outermost COMMIT to finish ([`super::tx`]).
//! Correctness never depends on users remembering the write API; only
//! precision does.

use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};

use super::tx::{self, Control, Tracker};
use super::{Cascade, Invalidator};
use crate::backend::{BackendImpl, SqlDialect};
use crate::conn::DbConn;
use crate::error::Error;
use crate::extract::{batch_writes, WriteTargets};
use crate::key;
use crate::scope::{self, Scope, Tables};
use crate::stats::Counters;
use crate::store::Key;
use crate::util::memo::Memo;

/// The instrumentation the crate installs on a connection.
///
/// Install it with [`Cache::instrument`](crate::Cache::instrument); chain your own instrumentation
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
    core: Arc<Invalidator>,
    /// The SQL dialect of the connection's statements.
    dialect: SqlDialect,
    tracker: Tracker,
    /// Set by the crate's own write API just before it runs a write whose
    /// exact invalidation it computes itself; taken by the next statement
    /// that starts.
    own_write: bool,
    /// The statement started and not yet finished: its text (what its
    /// finish is analysed as, so that it is formatted once).
    in_flight: Option<InFlight>,
    /// Statements that started and never finished: their future was
    /// dropped (an async query cancelled) after they may have been sent.
    /// The server runs a connection's statements in order, so they are
    /// over once a later statement finishes; then they count as having
    /// succeeded (see `finish_orphans`).
    orphans: Vec<String>,
    next: Option<Box<dyn Instrumentation>>,
    /// What this connection's table names mean (see `scope`), once learned.
    scope: Option<Arc<Scope>>,
    /// The connection ran something that may change what its names mean
    /// (`SET`, DDL, ...): learn the scope again before trusting it.
    scope_stale: bool,
    /// Such a statement ran inside the open transaction: its end (or a
    /// rollback to a savepoint) may undo it.
    scope_changed_in_tx: bool,
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
    pub(crate) fn new(core: Arc<Invalidator>, dialect: SqlDialect) -> Self {
        CacheInstrumentation {
            dialect,
            core,
            tracker: Tracker::default(),
            own_write: false,
            in_flight: None,
            orphans: Vec::new(),
            next: None,
            scope: None,
            scope_stale: false,
            scope_changed_in_tx: false,
        }
    }

    /// The connection's scope, if learned and still trusted.
    fn current_scope(&self) -> Option<&Arc<Scope>> {
        self.scope
            .as_ref()
            .filter(|s| !self.scope_stale && !s.expired())
    }

    fn set_scope(&mut self, scope: Arc<Scope>) {
        self.scope = Some(scope);
        self.scope_stale = false;
    }

    /// Pass every event on to `next` as well (your logger, your metrics).
    pub fn chain(mut self, next: impl Instrumentation) -> Self {
        self.next = Some(Box::new(next));
        self
    }

    /// Whether a transaction is open on the connection, or may be: after a
    /// batch that failed, until the next statement that succeeds tells
    /// whether it left the connection idle or in an aborted transaction.
    pub fn in_transaction(&self) -> bool {
        self.tracker.in_transaction()
    }

    /// Whether this instrumentation invalidates for `core`'s cache.
    pub(crate) fn serves(&self, core: &Arc<Invalidator>) -> bool {
        Arc::ptr_eq(&self.core, core)
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

    /// A statement starts: the one before it, if it never finished, was
    /// orphaned.
    fn started(&mut self, sql: String) {
        self.orphan_in_flight();
        let own = std::mem::take(&mut self.own_write);
        let read = !own && is_plain_read(&sql);
        self.in_flight = Some(InFlight { sql, own, read });
    }

    /// The statement in flight never finished: unless a plain read, an
    /// orphan.
    fn orphan_in_flight(&mut self) {
        if let Some(f) = self.in_flight.take() {
            if !f.read {
                self.orphans.push(f.sql);
            }
        }
    }

    /// Orphaned statements are over (a later one finished, or the
    /// connection is closing): whatever they may have written is
    /// invalidated as if they had succeeded, widened to their tables (an
    /// orphaned write of the crate's own API never got to compute its
    /// exact keys).
    fn finish_orphans(&mut self) {
        for orphan in std::mem::take(&mut self.orphans) {
            tracing::debug!(sql = %orphan, "a statement's future was dropped before it finished; invalidating what it may have written");
            self.finished(&orphan, true, false);
        }
    }

    fn finished(&mut self, sql: &str, ok: bool, own: bool) {
        // Whatever else it is, a statement that may change what names mean
        // makes the scope untrusted until learned again (a failed one too:
        // part of a batch may have run).
        let changes_scope = !own && scope::may_change_scope(sql);
        if changes_scope {
            self.scope_stale = true;
            if scope::may_change_catalog(sql) {
                // New foreign keys, rules, views or partitions.
                self.core.forget_cascades();
            }
            if self.tracker.in_transaction() {
                self.scope_changed_in_tx = true;
            }
        }
        if own || is_plain_read(sql) {
            // The crate's own write hands its keys to `invalidate`; a read
            // writes nothing. Either succeeding tells a connection in doubt
            // after a failed batch that it is not in an aborted transaction.
            if ok {
                self.tracker.succeeded();
            }
            return;
        }
        // Every statement of a batch, in order: control statements change the
        // tracker's state as they go (writes before a BEGIN join its
        // transaction, a COMMIT inside the batch commits, ...).
        let statements = statements_of(sql, self.dialect);
        // Ending the transaction (or rolling back part of it) undoes a
        // `SET LOCAL`, and any `SET` or DDL it rolls back, made inside it.
        if self.scope_changed_in_tx && statements.iter().any(|st| st.control.is_some()) {
            self.scope_stale = true;
        }
        let steps: Vec<tx::Step> = statements
            .iter()
            .map(|st| self.step(st, changes_scope))
            .collect();
        let keys = self.tracker.batch(&steps, ok);
        if !self.tracker.in_transaction() {
            self.scope_changed_in_tx = false;
        }
        if keys.is_empty() {
            return;
        }
        if steps.iter().any(|s| matches!(s, tx::Step::Control(_))) {
            crate::hook!(CommitBeforeInvalidate);
        } else {
            tracing::debug!(
                sql,
                "write outside the crate's write API: widening to its tables"
            );
        }
        let _ = self.core.bump(&keys);
    }

    /// What one statement of a batch means to the tracker. `changed`: the
    /// batch may change what names mean (its writes widen to everything).
    fn step(&self, st: &Parsed, changed: bool) -> tx::Step {
        match &st.control {
            // Commits writes made who knows where: everything.
            Some(Control::CommitPrepared) => tx::Step::Write(vec![key::global_key()]),
            Some(Control::RollbackPrepared) => tx::Step::Write(Vec::new()),
            Some(ctl) => tx::Step::Control(ctl.clone()),
            None => tx::Step::Write(match &st.writes {
                WriteTargets::None => Vec::new(),
                WriteTargets::Tables(tables) => match self.resolve_written(tables, changed) {
                    // TRUNCATE ... CASCADE empties every referencing table,
                    // whatever its foreign key's action.
                    Some(tables) if st.truncate_cascade => self.core.table_keys_with_cascades(
                        &tables,
                        &[Cascade::Delete, Cascade::Update, Cascade::Truncate],
                    ),
                    Some(tables) => self
                        .core
                        .table_keys_with_cascades(&tables, &[Cascade::Delete, Cascade::Update]),
                    None => vec![key::global_key()],
                },
                WriteTargets::Unknown => vec![key::global_key()],
            }),
        }
    }
}

impl CacheInstrumentation {
    /// The qualified names of tables a statement wrote, as this connection
    /// resolves them; `None` (widen to everything) when the scope is not
    /// known, not trusted, or does not know a name. `changed`: the
    /// statement itself may have changed the resolution (a batch with a
    /// `SET search_path`).
    fn resolve_written(&self, written: &[String], changed: bool) -> Option<Vec<String>> {
        if changed {
            return None;
        }
        let scope = self.current_scope()?;
        let mut out = Vec::with_capacity(written.len());
        for w in written {
            out.extend(scope.qualified(w)?);
        }
        Some(out)
    }
}

/// Why a read cannot use the cache on this connection.
pub(crate) enum NoScope {
    /// Another instrumentation replaced the crate's.
    Foreign,
    /// No instrumentation, and a transaction is open: installing it now
    /// would not know the transaction (its bumps would not wait for COMMIT).
    BareInTransaction,
    /// The connection reaches another database than the cache's.
    OtherDatabase,
    /// The catalog could not be read.
    Catalog,
}

impl NoScope {
    /// What an API that must refuse (instrument, the write API) reports.
    pub(crate) fn into_error(self) -> Error {
        match self {
            NoScope::Foreign => Error::NotInstrumented,
            NoScope::BareInTransaction => Error::NotInstrumentedInTransaction,
            NoScope::OtherDatabase => Error::OtherDatabase,
            NoScope::Catalog => Error::Database(diesel::result::Error::QueryBuilderError(
                self.reason().into(),
            )),
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
        match self {
            NoScope::Foreign => "the connection does not carry the crate's instrumentation",
            NoScope::BareInTransaction => {
                "cachebot: a write inside a transaction needs the connection instrumented \
                 (Cache::instrument) so that invalidation waits for COMMIT"
            }
            NoScope::OtherDatabase => "the connection reaches another database than the cache's",
            NoScope::Catalog => "the connection's catalog could not be read",
        }
    }
}

/// The scope of `conn` (what its table names mean), learning it when it is
/// not known or not trusted, or when it does not know one of `tables`
/// (names as the SQL analysis writes them). A connection that carries no
/// instrumentation at all gets the crate's (so that its writes invalidate
/// too); one that carries another's cannot be used: counted and traced once.
pub(crate) async fn scope_of<Conn, T>(
    core: &Arc<Invalidator>,
    conn: &mut Conn,
    tables: &[T],
) -> Result<Arc<Scope>, NoScope>
where
    Conn: DbConn,
    T: AsRef<str>,
{
    if installed(conn).is_none() {
        if !is_bare(conn) {
            if core.first_uninstrumented() {
                tracing::warn!(
                    "a cached read on a connection whose instrumentation is not cachebot's: \
                     reading the database (chain yours with CacheInstrumentation::chain)"
                );
            }
            return Err(NoScope::Foreign);
        }
        if in_transaction(conn) {
            return Err(NoScope::BareInTransaction);
        }
        if core.learn_cascades(conn).await.is_err() {
            return Err(NoScope::Catalog);
        }
        conn.set_instrumentation(CacheInstrumentation::new(
            core.clone(),
            <Conn::Backend as BackendImpl>::dialect(),
        ));
    }
    let installed_scope = installed(conn).and_then(|i| i.scope.clone());
    let known = installed(conn)
        .and_then(|i| i.current_scope().cloned())
        .filter(|s| tables.iter().all(|t| s.resolve(t.as_ref()).is_some()));
    let scope = match known {
        // Adopted when it was learned: only the database to compare.
        Some(s) if core.is_ours(&s) => return Ok(s),
        Some(s) => s,
        None => {
            // The qualified names asked for before, and this read's.
            let mut qualified: Vec<String> =
                installed_scope.map(|s| s.asked.clone()).unwrap_or_default();
            for t in tables.iter().map(AsRef::as_ref) {
                if t.contains('.') && !qualified.iter().any(|q| q == t) {
                    qualified.push(t.to_owned());
                }
            }
            if core.learn_cascades(conn).await.is_err() {
                return Err(NoScope::Catalog);
            }
            let catalog = match conn.catalog(&qualified).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the catalog; reading the database");
                    return Err(NoScope::Catalog);
                }
            };
            let scope = Arc::new(Scope::new(
                &catalog,
                qualified,
                <Conn::Backend as BackendImpl>::is_keyable,
            ));
            if let Some(i) = installed(conn) {
                i.set_scope(scope.clone());
            }
            scope
        }
    };
    if !core.adopt(&scope) {
        return Err(NoScope::OtherDatabase);
    }
    Ok(scope)
}

/// The connection's scope if it is learned, trusted and of this cache's
/// database: what a read whose plan is remembered needs (its tables were
/// resolved in this very scope when the plan was made).
pub(crate) fn trusted_scope<Conn: DbConn>(
    core: &Invalidator,
    conn: &mut Conn,
) -> Option<Arc<Scope>> {
    installed(conn)
        .and_then(|i| i.current_scope().cloned())
        .filter(|s| core.is_ours(s))
}

/// Whether the connection carries no instrumentation at all (Diesel's
/// no-op).
fn is_bare<Conn: DbConn>(conn: &mut Conn) -> bool {
    use diesel::connection::DynInstrumentation;
    let none = DynInstrumentation::none();
    let noop: &dyn Instrumentation = &*none;
    let noop = noop.as_any().type_id();
    let current: &dyn Instrumentation = conn.instrumentation();
    current.as_any().type_id() == noop
}

/// Count a read that could not use the cache on its connection.
/// (The caller counts the bypass.)
pub(crate) fn count_no_scope(core: &Invalidator, why: &NoScope) {
    Counters::bump(&core.counters().uninstrumented);
    tracing::trace!(reason = why.reason(), "cache bypass");
}

/// One statement of a batch, analysed.
#[derive(Clone, Debug)]
struct Parsed {
    control: Option<Control>,
    writes: WriteTargets,
    truncate_cascade: bool,
}

/// The statements of a batch, analysed, memoised per SQL text: applications
/// repeat the same statements, and the analysis runs on a thread of its own.
fn statements_of(sql: &str, dialect: SqlDialect) -> Arc<[Parsed]> {
    static MEMO: std::sync::OnceLock<Memo<Arc<[Parsed]>>> = std::sync::OnceLock::new();
    let memo = MEMO.get_or_init(|| Memo::new(10_000));
    let key = xxhash_rust::xxh3::xxh3_128(sql.as_bytes()) ^ u128::from(dialect as u8);
    memo.get_or_insert_with(key, || {
        batch_writes(sql, dialect)
            .into_iter()
            .map(|st| Parsed {
                control: tx::control(&st.text),
                writes: st.writes,
                truncate_cascade: st.truncate_cascade,
            })
            .collect()
    })
}

/// A fast path for the statements that are obviously reads, so that every
/// SELECT does not pay for a parse. Anything else is parsed: several
/// statements, `SELECT ... INTO` (creates and fills a table), and SELECTs
/// that may call a built-in writing function (`lo_unlink`, `dblink_exec`).
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
    read && !head.trim_end().trim_end_matches(';').contains(';') && !mentions_a_write(head)
}

/// Whether the text holds `into`, `lo_`, `lowrite` or `dblink` in any case
/// (one pass, no allocation; a false positive only costs a parse).
fn mentions_a_write(sql: &str) -> bool {
    let b = sql.as_bytes();
    let at = |i: usize, word: &[u8]| {
        b.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    (0..b.len()).any(|i| match b[i] | 0x20 {
        b'i' => at(i, b"into"),
        b'l' => at(i, b"lo_") || at(i, b"lowrite"),
        b'd' => at(i, b"dblink"),
        _ => false,
    })
}

/// The SQL text of a statement as Diesel shows it to instrumentation: a
/// query built with Diesel (`sql_query` included) is shown as its SQL then
/// ` -- binds: [...]`; `batch_execute` shows its text as it is, and that
/// text may itself hold ` -- binds: ` (`SELECT 1 -- binds: x\n; UPDATE ...`).
/// The suffix is dropped only where dropping it changes nothing: it starts
/// in code (not inside a string, quoted name or comment) and runs to the end
/// on one line, so it is a comment either way. Otherwise the whole text is
/// analysed, where comments are comments.
fn statement_text(shown: &str) -> &str {
    match shown.rfind(" -- binds: ") {
        Some(at) if !shown[at..].contains(['\n', '\r']) && ends_in_code(&shown[..at]) => {
            &shown[..at]
        }
        _ => shown,
    }
}

/// Whether `sql` ends outside any string, quoted identifier, dollar-quoted
/// string and block comment (a line comment running to the end counts as
/// code: the text after it on the same line is comment either way).
fn ends_in_code(sql: &str) -> bool {
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    // The index after the closing `quote`, doubled quotes (and with
    // `backslash`, backslashes) escaping; None if unterminated.
    let close = |mut i: usize, quote: u8, backslash: bool| -> Option<usize> {
        while i < b.len() {
            if backslash && b[i] == b'\\' {
                i += 2;
            } else if b[i] == quote {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            } else {
                i += 1;
            }
        }
        None
    };
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        let found = match b[i] {
            b'\'' => {
                let escapes = i > 0 && b[i - 1] | 0x20 == b'e' && (i < 2 || !ident(b[i - 2]));
                close(i + 1, b'\'', escapes)
            }
            b'"' => close(i + 1, b'"', false),
            b'-' if next == Some(b'-') => match b[i..].iter().position(|&c| c == b'\n') {
                Some(k) => Some(i + k + 1),
                None => return true,
            },
            b'/' if next == Some(b'*') => {
                // Block comments nest.
                let mut depth = 0usize;
                let mut j = i;
                loop {
                    if j + 1 >= b.len() {
                        break None;
                    }
                    if b[j] == b'/' && b[j + 1] == b'*' {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b[j + 1] == b'/' {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break Some(j);
                        }
                    } else {
                        j += 1;
                    }
                }
            }
            b'$' if i == 0 || !ident(b[i - 1]) => {
                // $tag$ ... $tag$ (not $1, a parameter).
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
                    .map(|k| i + 1 + k);
                match tag_end {
                    Some(e) if b[e] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        let tag = &b[i..=e];
                        b[e + 1..]
                            .windows(tag.len())
                            .position(|w| w == tag)
                            .map(|k| e + 1 + k + tag.len())
                    }
                    _ => Some(i + 1),
                }
            }
            _ => Some(i + 1),
        };
        match found {
            Some(j) => i = j,
            None => return false,
        }
    }
    true
}

/// A statement that started and has not finished.
#[derive(Debug)]
struct InFlight {
    sql: String,
    /// The crate's own write (its exact keys are computed by the caller).
    own: bool,
    /// A plain read: nothing to invalidate if it never finishes.
    read: bool,
}

/// The text of a statement as the instrumentation shows it, without the
/// binds Diesel appends (see [`statement_text`]).
fn shown_statement(query: &dyn diesel::connection::DebugQuery) -> String {
    let mut shown = query.to_string();
    let len = statement_text(&shown).len();
    shown.truncate(len);
    shown
}

impl Drop for CacheInstrumentation {
    /// The connection is closing (or its instrumentation replaced): a
    /// statement still in flight, or orphaned, may have committed.
    fn drop(&mut self) {
        self.orphan_in_flight();
        self.finish_orphans();
    }
}

impl Instrumentation for CacheInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match &event {
            InstrumentationEvent::StartQuery { query, .. } => {
                self.started(shown_statement(*query));
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                self.finish_orphans();
                // The text its start showed, formatted once. Statements
                // pipelined through `&AsyncPgConnection` may finish while a
                // later one has started: that later one is then analysed
                // here, early, and again at its own finish (more
                // invalidation, never less).
                let (sql, own) = match self.in_flight.take() {
                    Some(f) => (f.sql, f.own),
                    None => (shown_statement(*query), false),
                };
                self.finished(&sql, error.is_none(), own);
            }
            _ => {}
        }
        if let Some(next) = self.next.as_mut() {
            next.on_connection_event(event);
        }
    }
}

/// The crate's instrumentation on `conn`, if installed.
pub(crate) fn installed<Conn: DbConn>(conn: &mut Conn) -> Option<&mut CacheInstrumentation> {
    conn.instrumentation()
        .downcast_mut::<CacheInstrumentation>()
}

/// Reads inside a transaction bypass the cache: the transaction's snapshot
/// may predate the generations, and its uncommitted rows must never be
/// stored. A connection whose transaction state is broken bypasses too, and
/// so does one whose instrumentation saw a transaction open that Diesel's
/// transaction manager did not (a raw `BEGIN` through `batch_execute`).
pub(crate) fn in_transaction<Conn: DbConn>(conn: &mut Conn) -> bool {
    conn.diesel_in_transaction() || installed(conn).is_some_and(|i| i.in_transaction())
}

/// Learn the cascades and the connection's scope, and install the crate's
/// instrumentation, chained with Diesel's default instrumentation (the one
/// `diesel::connection::set_default_instrumentation` sets, if any).
pub(crate) async fn install<Conn: DbConn>(
    core: &Arc<Invalidator>,
    conn: &mut Conn,
) -> Result<(), Error> {
    core.learn_cascades(conn).await?;
    let dialect = <Conn::Backend as BackendImpl>::dialect();
    let mut instrumentation = CacheInstrumentation::new(core.clone(), dialect);
    if let Some(default) = diesel::connection::get_default_instrumentation() {
        instrumentation = instrumentation.chain(default);
    }
    conn.set_instrumentation(instrumentation);
    // The database and the names, now: writes may come before any read.
    match scope_of::<_, &str>(core, conn, &[]).await {
        Ok(_) => Ok(()),
        Err(why) => Err(why.into_error()),
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
        assert!(!is_plain_read("SELECT * INTO b FROM a"));
        assert!(!is_plain_read("SELECT LO_UNLINK(3)"));
        assert!(!is_plain_read("select dblink_exec('x')"));
    }

    #[test]
    fn statement_text_drops_the_binds() {
        assert_eq!(
            statement_text("UPDATE \"a\" SET \"x\" = $1 -- binds: [1]"),
            "UPDATE \"a\" SET \"x\" = $1"
        );
        assert_eq!(statement_text("COMMIT"), "COMMIT");
        assert_eq!(statement_text("SELECT 1 -- binds: []"), "SELECT 1");
        // A bind holding the marker: the last one is Diesel's (and what it
        // cuts is a comment either way).
        assert_eq!(
            statement_text("UPDATE a SET t = $1 -- binds: [\"x -- binds: y\"]"),
            "UPDATE a SET t = $1 -- binds: [\"x"
        );
    }

    #[test]
    fn statement_text_keeps_a_batch_whole() {
        for batch in [
            // The marker in a comment, more statements on the next line.
            "SELECT 1 -- binds: x\n; UPDATE b SET x = 1",
            "SELECT 1 -- binds: [1]\n; UPDATE b SET x = ARRAY[1]",
            // The marker inside a string, a dollar quote, a quoted name, a comment.
            "SELECT ' -- binds: '; UPDATE b SET x = ARRAY[1]",
            "SELECT $q$ -- binds: $q$; UPDATE b SET x = ARRAY[1]",
            "SELECT E'\\' -- binds: '; UPDATE b SET x = ARRAY[1]",
            "SELECT 1 AS \" -- binds: \"; UPDATE b SET x = ARRAY[1]",
            "SELECT /* -- binds: */ 1; UPDATE b SET x = ARRAY[1]",
        ] {
            assert_eq!(statement_text(batch), batch);
        }
        // Parameters and identifiers with `$` are not dollar quotes.
        assert_eq!(
            statement_text("UPDATE a$b SET x = $1 -- binds: [1]"),
            "UPDATE a$b SET x = $1"
        );
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
    core: Arc<Invalidator>,
}

#[cfg(feature = "r2d2")]
impl std::fmt::Debug for PoolCustomizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCustomizer")
    }
}

#[cfg(feature = "r2d2")]
impl<Conn> diesel::r2d2::CustomizeConnection<Conn, diesel::r2d2::Error> for PoolCustomizer
where
    Conn: diesel::connection::LoadConnection + 'static,
    Conn::Backend: crate::CacheBackend,
{
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        crate::util::ready::run_ready(install(&self.core, conn))
            .map_err(|e| diesel::r2d2::Error::QueryError(e.into_diesel()))
    }
}

#[cfg(feature = "r2d2")]
impl PoolCustomizer {
    pub(crate) fn new(core: Arc<Invalidator>) -> PoolCustomizer {
        PoolCustomizer { core }
    }
}
