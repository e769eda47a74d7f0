//! Invalidate a [`cachebot`] cache from PostgreSQL's change stream: every
//! committed INSERT, UPDATE, DELETE and TRUNCATE, whoever made it (another
//! service, psql, a trigger, a rule, a function called from SELECT), becomes
//! the generation bumps the crate's own writes make.
//!
//! The follower holds a logical replication slot (`pgoutput`, binary values)
//! on a publication. Per committed transaction it decodes the row changes,
//! hands them to [`Cache::invalidate_changes`] (one store call), records the
//! commit time as the heartbeat, and only then confirms the transaction to
//! the slot: **at least once**. If the store or the follower fails, the slot
//! still holds the transaction and it is applied again (replayed bumps are
//! only extra misses). Every `bound / 2` it commits a logical message
//! (`pg_logical_emit_message`), so the heartbeat moves on an idle database.
//!
//! Run it in the application ([`Follower::spawn`]: a background thread with
//! its own tokio runtime) or as the `cachebot-follow` binary next to
//! memcached. One follower per slot: the server refuses a second one.
//!
//! ```no_run
//! use std::time::Duration;
//! use cachebot_follow::{Config, Follower};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = cachebot::Cache::in_process();
//! let config = Config::new("postgres://cachebot_follow@db/app", "cachebot", "cachebot")
//!     .bound(Duration::from_secs(5));
//! let follower = Follower::new(cache.clone(), config).spawn()?;
//! // ...
//! follower.stop();
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod pgoutput;
mod url;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cachebot::changes::{Change, Column, Image, TableName, Transaction, Value};
use cachebot::codec::{Bincode, Codec};
use cachebot::Cache;
use diesel::connection::InstrumentationEvent;
use diesel::{Connection, PgConnection, RunQueryDsl};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};

use pgoutput::{Decoded, Decoder, OldKind, Relation, RowChange, TupleValue};

/// The prefix of the heartbeat messages the follower commits.
pub const HEARTBEAT_PREFIX: &str = "cachebot.heartbeat";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The follower's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The SQL connection (cache binding, slot, heartbeats) failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// The SQL connection could not be opened.
    #[error("connecting to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    /// The replication connection failed.
    #[error("replication: {0}")]
    Replication(#[from] pgwire_replication::PgWireError),
    /// The stream held a message the decoder does not understand.
    #[error(transparent)]
    Decode(#[from] pgoutput::DecodeError),
    /// The cache refused (not bound to a database, store down).
    #[error("cache: {0}")]
    Cache(#[from] cachebot::Error),
    /// The replication slot does not exist (and creating it was not asked for).
    #[error("replication slot {0:?} does not exist (create it, or set create_slot)")]
    NoSlot(String),
    /// The stream ended.
    #[error("the replication stream ended")]
    Ended,
    /// The follower thread could not start.
    #[error("starting the follower thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// What the follower connects to and how it runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// `postgres://user:password@host:port/database`: a role with the
    /// `REPLICATION` attribute, on the database whose tables are cached.
    pub database_url: String,
    /// The logical replication slot (`pgoutput`).
    pub slot: String,
    /// The publication holding the cached tables.
    pub publication: String,
    /// The staleness bound readers are configured with: the follower makes
    /// the database commit a heartbeat every `bound / 2`.
    pub bound: Duration,
    /// Create the slot when it does not exist (and invalidate everything
    /// once, since whatever was committed before it is not in it).
    pub create_slot: bool,
    /// How soon a confirmation reaches the server (what a crash replays).
    pub status_interval: Duration,
    /// `application_name` of both connections.
    pub application_name: String,
}

impl Config {
    /// A configuration with a 5 s bound, not creating the slot.
    pub fn new(
        database_url: impl Into<String>,
        slot: impl Into<String>,
        publication: impl Into<String>,
    ) -> Config {
        Config {
            database_url: database_url.into(),
            slot: slot.into(),
            publication: publication.into(),
            bound: Duration::from_secs(5),
            create_slot: false,
            status_interval: Duration::from_millis(100),
            application_name: "cachebot-follow".to_owned(),
        }
    }

    /// The staleness bound (heartbeats every half of it).
    pub fn bound(mut self, bound: Duration) -> Config {
        self.bound = bound;
        self
    }

    /// Create the slot if it is missing.
    pub fn create_slot(mut self, create: bool) -> Config {
        self.create_slot = create;
        self
    }

    fn check(&self) -> Result<(), Error> {
        if self.bound < Duration::from_millis(100) {
            return Err(Error::Config(format!(
                "bound must be at least 100 ms, got {:?}",
                self.bound
            )));
        }
        if self.slot.is_empty() || self.publication.is_empty() {
            return Err(Error::Config("slot and publication must be named".into()));
        }
        url::parse(&self.database_url).map_err(Error::Config)?;
        Ok(())
    }
}

/// What the follower has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Transactions applied (bumped and heartbeat recorded), replays included.
    pub applied: u64,
    /// The end LSN of the last applied transaction (or idle position
    /// confirmed), as PostgreSQL writes LSNs (`0/16B3748`), as a number.
    pub confirmed_lsn: u64,
    /// Commit time of the last applied transaction.
    pub last_commit: Option<SystemTime>,
    /// From its commit to its bumps delivered, for the last applied
    /// transaction (clocks of the database server and this host).
    pub last_lag: Option<Duration>,
    /// Sessions (connections) started.
    pub sessions: u64,
    /// The last error that ended a session or delayed a transaction.
    pub last_error: Option<String>,
}

/// A change-stream follower for one cache.
#[derive(Debug)]
pub struct Follower<C: Codec = Bincode> {
    cache: Cache<C>,
    config: Config,
}

/// A running follower (see [`Follower::spawn`]).
#[derive(Debug)]
pub struct FollowerHandle {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    thread: Option<JoinHandle<()>>,
}

impl FollowerHandle {
    /// What it has done so far.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stop and wait for the thread (within about 200 ms plus a store call).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FollowerHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

impl<C: Codec + Send + Sync + 'static> Follower<C> {
    /// A follower applying the stream to `cache`.
    pub fn new(cache: Cache<C>, config: Config) -> Follower<C> {
        Follower { cache, config }
    }

    /// Run on a background thread (its own current-thread tokio runtime)
    /// until [`FollowerHandle::stop`]: reconnects with backoff after every
    /// failure, resuming from the slot.
    pub fn spawn(self) -> Result<FollowerHandle, Error> {
        self.config.check()?;
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Status::default()));
        let (s, st) = (stop.clone(), status.clone());
        let thread = std::thread::Builder::new()
            .name("cachebot-follow".into())
            .spawn(move || self.run(&s, &st))?;
        Ok(FollowerHandle {
            stop,
            status,
            thread: Some(thread),
        })
    }

    /// Run on this thread until `stop` is set (what the binary does).
    pub fn run(self, stop: &AtomicBool, status: &Mutex<Status>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                set(status, |s| {
                    s.last_error = Some(format!("tokio runtime: {e}"))
                });
                return;
            }
        };
        let mut state = State {
            global_pending: false,
        };
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::SeqCst) {
            set(status, |s| s.sessions += 1);
            let started = Instant::now();
            let result = runtime.block_on(self.session(stop, status, &mut state));
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cachebot-follow: session ended; reconnecting");
                    set(status, |s| s.last_error = Some(e.to_string()));
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(100);
            }
            sleep_unless(stop, backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection: until stopped (`Ok`) or a failure (`Err`).
    async fn session(
        &self,
        stop: &AtomicBool,
        status: &Mutex<Status>,
        state: &mut State,
    ) -> Result<(), Error> {
        let cfg = &self.config;
        let mut sql = self.sql_connection()?;
        let exists = slot_exists(&mut sql, &cfg.slot)?;
        if !exists {
            if !cfg.create_slot {
                return Err(Error::NoSlot(cfg.slot.clone()));
            }
            diesel::sql_query(
                "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
            )
            .bind::<diesel::sql_types::Text, _>(&cfg.slot)
            .execute(&mut sql)?;
            tracing::info!(slot = %cfg.slot, "cachebot-follow: created the slot; invalidating everything once");
            state.global_pending = true;
        }
        if state.global_pending {
            // What was committed before the slot existed is not in it.
            self.cache.invalidate_all()?;
            state.global_pending = false;
        }

        let parts = url::parse(&cfg.database_url).map_err(Error::Config)?;
        let rcfg = ReplicationConfig::new(
            parts.host,
            parts.user,
            parts.password,
            parts.database,
            cfg.slot.clone(),
            cfg.publication.as_str(),
        )
        .with_port(parts.port)
        .with_binary(true)
        .with_status_interval(cfg.status_interval)
        .with_wakeup_interval((cfg.bound / 2).min(Duration::from_secs(10)))
        .with_application_name(cfg.application_name.clone());
        let mut client = ReplicationClient::connect(rcfg).await?;
        client.wait_started().await?;
        tracing::info!(slot = %cfg.slot, publication = %cfg.publication, "cachebot-follow: streaming");

        let mut decoder = Decoder::default();
        let mut open: Option<Vec<Change>> = None;
        let beat_every = cfg.bound / 2;
        let mut next_beat = Instant::now();
        let mut next_learn = Instant::now() + Duration::from_secs(30);
        loop {
            if stop.load(Ordering::SeqCst) {
                let _ = client.shutdown().await;
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_beat {
                diesel::sql_query(
                    "SELECT pg_catalog.pg_logical_emit_message(true, 'cachebot.heartbeat', '')::text",
                )
                .execute(&mut sql)?;
                next_beat = now + beat_every;
            }
            if now >= next_learn {
                // Partitions, inheritance and rules change with DDL.
                self.bind(&mut sql)?;
                next_learn = now + Duration::from_secs(30);
            }
            let wait = next_beat
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            let event = match tokio::time::timeout(wait, client.recv()).await {
                Err(_) => continue,
                Ok(event) => event?,
            };
            let Some(event) = event else {
                return Err(Error::Ended);
            };
            match event {
                ReplicationEvent::Begin { .. } => open = Some(Vec::new()),
                ReplicationEvent::XLogData { data, .. } => match decoder.decode(&data)? {
                    Decoded::Change(change) => {
                        let changes = open.get_or_insert_with(Vec::new);
                        convert(&decoder, change, changes)?;
                    }
                    Decoded::Relation(_) | Decoded::Ignored => {}
                },
                ReplicationEvent::Message { .. } => {}
                ReplicationEvent::Commit {
                    end_lsn,
                    commit_time_micros,
                    ..
                } => {
                    let commit_time = pg_time(commit_time_micros);
                    let tx = Transaction {
                        changes: open.take().unwrap_or_default(),
                        commit_time,
                    };
                    tracing::debug!(end_lsn = %end_lsn, changes = tx.changes.len(), "cachebot-follow: commit");
                    self.apply(&tx, stop, status).await?;
                    client.update_applied_lsn(end_lsn);
                    let lag = commit_time.and_then(|t| SystemTime::now().duration_since(t).ok());
                    set(status, |s| {
                        s.applied += 1;
                        s.confirmed_lsn = end_lsn.0;
                        s.last_commit = commit_time;
                        s.last_lag = lag;
                    });
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    // Between transactions, everything below the sender's
                    // position was delivered or had no published change:
                    // confirm it, or the slot pins WAL of unpublished tables.
                    if open.is_none() && wal_end.0 > 0 {
                        client.update_applied_lsn(wal_end);
                        set(status, |s| s.confirmed_lsn = s.confirmed_lsn.max(wal_end.0));
                    }
                }
                ReplicationEvent::StoppedAt { .. } => return Err(Error::Ended),
            }
        }
    }

    /// Bump a transaction's keys; retry (not confirming it) until the store
    /// takes them or the follower is stopped.
    async fn apply(
        &self,
        tx: &Transaction,
        stop: &AtomicBool,
        status: &Mutex<Status>,
    ) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.cache.invalidate_changes(tx) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "cachebot-follow: the store did not take a transaction's bumps; retrying");
                    set(status, |s| s.last_error = Some(e.to_string()));
                    if stop.load(Ordering::SeqCst) {
                        return Err(e.into());
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The SQL connection: binds the cache to the database and learns its
    /// cascades, then runs without the cache's instrumentation (its
    /// heartbeats must not count as writes).
    fn sql_connection(&self) -> Result<PgConnection, Error> {
        let mut sql = PgConnection::establish(&self.config.database_url)?;
        self.bind(&mut sql)?;
        Ok(sql)
    }

    fn bind(&self, sql: &mut PgConnection) -> Result<(), Error> {
        self.cache.instrument(sql)?;
        sql.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        Ok(())
    }
}

/// The follower's memory across sessions.
struct State {
    /// A slot was created: bump the global key before confirming anything.
    global_pending: bool,
}

fn slot_exists(sql: &mut PgConnection, slot: &str) -> Result<bool, Error> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let found: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1) AS found",
    )
    .bind::<diesel::sql_types::Text, _>(slot)
    .get_result(sql)?;
    Ok(found.found)
}

/// A row change as the cache takes it: every column named, the stream's
/// binary values as bytes, what it did not send as unknown.
fn convert(decoder: &Decoder, change: RowChange, out: &mut Vec<Change>) -> Result<(), Error> {
    let relation = |oid: u32| {
        decoder.relation(oid).ok_or_else(|| {
            pgoutput::DecodeError(format!(
                "a change of relation {oid} before its Relation message"
            ))
        })
    };
    let table = |r: &Relation| TableName::new(r.schema.clone(), r.name.clone());
    match change {
        RowChange::Insert { rel, new } => {
            let r = relation(rel)?;
            out.push(Change::Insert {
                table: table(r),
                new: image(r, new, false),
            });
        }
        RowChange::Update { rel, old, new } => {
            let r = relation(rel)?;
            out.push(Change::Update {
                table: table(r),
                old: old.map(|(kind, values)| image(r, values, kind == OldKind::Key)),
                new: image(r, new, false),
            });
        }
        RowChange::Delete {
            rel,
            old: (kind, values),
        } => {
            let r = relation(rel)?;
            out.push(Change::Delete {
                table: table(r),
                old: image(r, values, kind == OldKind::Key),
            });
        }
        RowChange::Truncate { rels } => {
            for rel in rels {
                let r = relation(rel)?;
                out.push(Change::Truncate { table: table(r) });
            }
        }
    }
    Ok(())
}

/// Every column of `r`; in a key-only tuple, the other columns are unknown
/// (their `n` is a placeholder, not NULL). A tuple shorter than the
/// relation leaves the rest unknown.
fn image(r: &Relation, values: Vec<TupleValue>, key_only: bool) -> Image {
    let mut values = values.into_iter();
    Image::new(
        r.columns
            .iter()
            .map(|c| {
                let value = match values.next() {
                    Some(_) if key_only && !c.key => Value::Unknown,
                    Some(TupleValue::Null) => Value::Null,
                    Some(TupleValue::Binary(b)) => Value::Bytes(b),
                    // Text values are not Diesel's bind bytes; `u` was not sent.
                    Some(TupleValue::Text(_) | TupleValue::Unchanged) | None => Value::Unknown,
                };
                Column::new(c.name.clone(), value).with_type(c.type_oid)
            })
            .collect(),
    )
}

/// A pgoutput timestamp (µs since 2000-01-01) as a `SystemTime`.
fn pg_time(micros: i64) -> Option<SystemTime> {
    let unix = micros.checked_add(PG_EPOCH_MICROS)?;
    let magnitude = Duration::from_micros(unix.unsigned_abs());
    if unix >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

fn set(status: &Mutex<Status>, f: impl FnOnce(&mut Status)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// LSN as PostgreSQL prints it (`0/16B3748`).
pub fn format_lsn(lsn: u64) -> String {
    Lsn(lsn).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgoutput::RelColumn;

    fn rel() -> Relation {
        Relation {
            schema: "public".into(),
            name: "photos".into(),
            replica_identity: b'd',
            columns: vec![
                RelColumn {
                    name: "id".into(),
                    type_oid: 23,
                    key: true,
                },
                RelColumn {
                    name: "user_id".into(),
                    type_oid: 23,
                    key: false,
                },
            ],
        }
    }

    #[test]
    fn key_only_tuples_leave_the_rest_unknown() {
        let img = image(
            &rel(),
            vec![TupleValue::Binary(vec![0, 0, 0, 1]), TupleValue::Null],
            true,
        );
        assert_eq!(img.columns[0].value, Value::Bytes(vec![0, 0, 0, 1]));
        assert_eq!(img.columns[1].value, Value::Unknown);
        let img = image(&rel(), vec![TupleValue::Null], false);
        assert_eq!(img.columns[0].value, Value::Null);
        assert_eq!(img.columns[1].value, Value::Unknown, "short tuple");
        let img = image(
            &rel(),
            vec![TupleValue::Text(b"1".to_vec()), TupleValue::Unchanged],
            false,
        );
        assert!(img.columns.iter().all(|c| c.value == Value::Unknown));
    }

    #[test]
    fn times_convert() {
        assert_eq!(
            pg_time(0),
            UNIX_EPOCH.checked_add(Duration::from_secs(946_684_800))
        );
        assert_eq!(pg_time(i64::MAX), None);
        let _ = pg_time(i64::MIN);
        assert_eq!(format_lsn(0x1_0000_0010), "1/10");
    }

    #[test]
    fn configs_are_checked() {
        let ok = Config::new("postgres://u@h/d", "s", "p");
        assert!(ok.check().is_ok());
        assert!(ok.clone().bound(Duration::from_millis(1)).check().is_err());
        assert!(Config::new("http://x", "s", "p").check().is_err());
        assert!(Config::new("postgres://h/d", "", "p").check().is_err());
    }
}
