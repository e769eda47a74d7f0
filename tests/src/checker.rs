//! The stale-read checkers' method (`tests/tests/checker.rs`,
//! `tests/tests/async_checker.rs`): a shared write clock in the database
//! tells which reads can be judged.
//!
//! Every writer, in any process, ticks `checker_clock.started` before a
//! write and `completed` after it returned. A reader reads the clock, makes
//! its cached read and the uncached twin, and reads the clock again. If no
//! write started after the first reading, or was still in flight then
//! (`after.started == before.completed`), the database did not change
//! during the read: the cached result must equal the uncached one. Reads
//! that overlap a write are allowed the state from just before it, so they
//! are counted but not judged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{QueryableByName, RunQueryDsl};

/// Creates the clock (in the connection's schema).
pub const CLOCK_DDL: &str = "CREATE TABLE checker_clock (started BIGINT NOT NULL, \
     completed BIGINT NOT NULL); INSERT INTO checker_clock VALUES (0, 0);";

const CLOCK_SQL: &str = "SELECT started, completed FROM checker_clock";

/// One reading of the write clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, QueryableByName)]
pub struct Clock {
    /// Writes started, in every process.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub started: i64,
    /// Writes returned, in every process.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub completed: i64,
}

impl Clock {
    /// Whether no write was in flight at any moment between `before` and
    /// `after` (two readings around a read): the read can be judged.
    pub fn quiet(before: Clock, after: Clock) -> bool {
        after.started == before.completed
    }
}

/// Which side of a write a tick marks.
#[derive(Clone, Copy, Debug)]
pub enum Tick {
    /// Before the write is sent.
    Started,
    /// After the write returned.
    Completed,
}

impl Tick {
    fn sql(self) -> &'static str {
        match self {
            Tick::Started => "UPDATE checker_clock SET started = started + 1",
            Tick::Completed => "UPDATE checker_clock SET completed = completed + 1",
        }
    }
}

/// Read the clock (on a connection of the checker's own, uninstrumented).
pub fn clock(conn: &mut PgConnection) -> Clock {
    diesel::sql_query(CLOCK_SQL).get_result(conn).unwrap()
}

/// Tick the clock (on a connection of the checker's own, uninstrumented).
pub fn tick(conn: &mut PgConnection, tick: Tick) {
    conn.batch_execute(tick.sql()).unwrap();
}

/// [`clock`] on a diesel-async connection.
pub async fn clock_async(conn: &mut diesel_async::AsyncPgConnection) -> Clock {
    diesel_async::RunQueryDsl::get_result(diesel::sql_query(CLOCK_SQL), conn)
        .await
        .unwrap()
}

/// [`tick`] on a diesel-async connection.
pub async fn tick_async(conn: &mut diesel_async::AsyncPgConnection, tick: Tick) {
    diesel_async::SimpleAsyncConnection::batch_execute(conn, tick.sql())
        .await
        .unwrap();
}

/// The tallies and verdicts of one checker process.
#[derive(Default)]
pub struct Judge {
    reads: AtomicU64,
    checked: AtomicU64,
    writes: AtomicU64,
    stale: AtomicU64,
    log: Mutex<VecDeque<String>>,
    failures: Mutex<Vec<String>>,
}

/// What a [`Judge`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Cached reads made.
    pub reads: u64,
    /// Of those, judged (no write in flight).
    pub checked: u64,
    /// Writes made (and logged).
    pub writes: u64,
    /// Judged reads whose cached result differed from the database's.
    pub stale: u64,
}

impl Judge {
    /// Record a write of this process (the last 40 are shown with a failure).
    pub fn wrote(&self, what: impl std::fmt::Display) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut log = self.log.lock().unwrap();
        log.push_back(format!("{:?} {what}", Instant::now()));
        if log.len() > 40 {
            log.pop_front();
        }
    }

    /// Judge one cached read: `cached` and `truth` (its uncached twin) as
    /// comparable text, between the clock readings `before` and `after`.
    /// Returns whether it was judged.
    pub fn judge(
        &self,
        before: Clock,
        after: Clock,
        query: &str,
        cached: &str,
        truth: &str,
    ) -> bool {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if !Clock::quiet(before, after) {
            return false; // a write was in flight: the old state is allowed
        }
        self.checked.fetch_add(1, Ordering::Relaxed);
        if cached != truth {
            self.stale.fetch_add(1, Ordering::Relaxed);
            let log: Vec<String> = self.log.lock().unwrap().iter().cloned().collect();
            self.failures.lock().unwrap().push(format!(
                "STALE {query}\n  cached: {cached}\n  truth:  {truth}\n  clock: {before:?} .. \
                 {after:?}\n  recent writes of this process:\n    {}",
                log.join("\n    ")
            ));
        }
        true
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            reads: self.reads.load(Ordering::Relaxed),
            checked: self.checked.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }

    /// Every stale read, described.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}
