//! The invalidation layer: everything a write needs, shared by the cache
//! handle, the crate's write API and connection instrumentation.
//!
//! A write becomes generation bumps here and nowhere else: [`Invalidator`]
//! scopes keys to the cache's database, sends them to the store, keeps the
//! ones the store did not take for background delivery ([`deliver`]),
//! closes a write's tables over foreign-key cascades, partitions and rules
//! ([`cascade`]), and knows how connections resolved table names (what an
//! explicit invalidation by name reaches). Connection instrumentation
//! ([`instrument`]) sees every statement a connection runs and holds back
//! bumps of an open transaction until it commits ([`tx`]).
//!
//! The read path depends on this layer (scopes, pending bumps); this layer
//! depends on nothing of the read path.

pub(crate) mod cascade;
pub(crate) mod changes;
pub(crate) mod deliver;
pub(crate) mod heartbeat;
pub(crate) mod instrument;
pub(crate) mod tx;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::conn::DbConn;
use crate::error::Error;
use crate::key;
use crate::scope::{self, Scope, Tables};
use crate::stats::Counters;
use crate::store::{Key, Store};

pub(crate) use cascade::Cascade;

/// Bumps generations for one cache: scoped, counted, traced, delivered.
pub(crate) struct Invalidator {
    store: Arc<dyn Store>,
    counters: Arc<Counters>,
    /// Foreign keys, rules, views, partitions (see `cascade`).
    cascades: cascade::Learned,
    /// Bumps the store did not take (down, timed out), delivered by a
    /// background thread with backoff and carried along by later bumps; a
    /// read that depends on one of them bypasses the cache until it is
    /// delivered, so an entry stored before the write can never be served
    /// after it (see `deliver`).
    pub(super) undelivered: deliver::Undelivered,
    /// The database this cache caches (see `scope`), learned from the first
    /// connection: every key in the store is scoped to it.
    pub(super) database: OnceLock<u128>,
    /// Unqualified table name -> the schema-qualified tables connections
    /// resolved it to: what an explicit invalidation by name reaches.
    names: RwLock<HashMap<String, HashSet<String>>>,
    /// A read on a connection without the crate's instrumentation was
    /// traced (once per cache).
    warned_uninstrumented: AtomicBool,
    /// The store's non-blocking side, for async reads and writes (feature
    /// `async`; remote stores only).
    #[cfg(feature = "async")]
    remote: Option<Arc<dyn crate::store::AsyncStore>>,
}

impl Invalidator {
    pub(crate) fn new(store: Arc<dyn Store>, counters: Arc<Counters>) -> Invalidator {
        Invalidator {
            #[cfg(feature = "async")]
            remote: None,
            undelivered: deliver::Undelivered::new(store.clone(), counters.clone()),
            store,
            counters,
            cascades: cascade::Learned::default(),
            database: OnceLock::new(),
            names: RwLock::new(HashMap::new()),
            warned_uninstrumented: AtomicBool::new(false),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Give the invalidator the store's non-blocking side (feature `async`).
    #[cfg(feature = "async")]
    pub(crate) fn with_remote(mut self, remote: Option<Arc<dyn crate::store::AsyncStore>>) -> Self {
        self.remote = remote;
        self
    }

    /// The store's non-blocking side, if it has one (feature `async`).
    #[cfg(feature = "async")]
    pub(crate) fn remote(&self) -> Option<&dyn crate::store::AsyncStore> {
        self.remote.as_deref()
    }

    /// The database this cache is bound to, once a connection was seen.
    pub(crate) fn database(&self) -> Option<u128> {
        self.database.get().copied()
    }

    /// Whether `scope` belongs to this cache's database.
    pub(crate) fn is_ours(&self, scope: &Scope) -> bool {
        self.database.get() == Some(&scope.database)
    }

    /// Bind this cache to the scope's database (the first one it sees) and
    /// remember how the scope resolves names. `false` when the scope belongs
    /// to another database than the cache's: such a connection bypasses.
    pub(crate) fn adopt(&self, scope: &Scope) -> bool {
        if *self.database.get_or_init(|| scope.database) != scope.database {
            return false;
        }
        let fresh = self.names.read().is_ok_and(|names| {
            scope
                .names()
                .all(|(w, q)| names.get(w).is_some_and(|all| all.contains(q)))
        });
        if !fresh {
            if let Ok(mut names) = self.names.write() {
                for (written, qualified) in scope.names() {
                    names
                        .entry(written.to_owned())
                        .or_default()
                        .insert(qualified.to_owned());
                }
            }
        }
        true
    }

    /// `true` the first time it is asked: trace a foreign instrumentation once.
    pub(crate) fn first_uninstrumented(&self) -> bool {
        !self.warned_uninstrumented.swap(true, Ordering::Relaxed)
    }

    /// A connection ran DDL: learn the cascades again before the next read.
    pub(crate) fn forget_cascades(&self) {
        self.cascades.forget();
    }

    /// Learn the cascades, unless learned recently.
    pub(crate) async fn learn_cascades<Conn: DbConn>(
        &self,
        conn: &mut Conn,
    ) -> diesel::QueryResult<()> {
        self.cascades.learn(conn).await
    }

    /// The "all" keys of `tables` and of every table cascades of `kinds`
    /// reach from them (see [`cascade::Learned::table_keys`]).
    pub(crate) fn table_keys_with_cascades(
        &self,
        tables: &[String],
        kinds: &[Cascade],
    ) -> Vec<Key> {
        self.cascades.table_keys(tables, kinds)
    }

    /// See [`cascade::Learned::only_writer`].
    pub(crate) fn only_writer(
        &self,
        child: &str,
        child_column: &str,
        parent: &str,
        parent_column: &str,
    ) -> bool {
        self.cascades
            .only_writer(child, child_column, parent, parent_column)
    }

    /// The version of the cascade graph (read plans depend on it).
    pub(crate) fn cascades_version(&self) -> u64 {
        self.cascades.version()
    }

    /// See [`cascade::Learned::enforces`].
    pub(crate) fn enforces(
        &self,
        child: &str,
        child_column: &str,
        parent: &str,
        parent_column: &str,
    ) -> bool {
        self.cascades
            .enforces(child, child_column, parent, parent_column)
    }

    /// Tables reached by cascades from `table`, not including it.
    pub(crate) fn cascade_children(&self, table: &str, kind: Cascade) -> Vec<Key> {
        self.cascades.children(table, kind)
    }

    /// Table names as this cache's connections resolved them.
    pub(crate) fn known(&self) -> Known<'_> {
        Known(self)
    }

    /// Bump generations; counted, traced, and reported. Keys the store does
    /// not take are kept and delivered later (see `deliver`); keys kept from
    /// earlier failures ride along.
    pub(crate) fn bump(&self, keys: &[Key]) -> Result<(), Error> {
        let job = self.bump_job(keys)?;
        let result = blocking_on_runtime(self.store.is_in_process(), || self.store.bump(&job.all));
        self.bumped(job, result)
    }

    /// [`bump`](Self::bump) through the store's non-blocking side, when it
    /// has one (feature `async`). Cancellation-safe: dropped before the
    /// store answered (the caller's future cancelled after its write ran),
    /// the keys go to background delivery, as when the store fails.
    #[cfg(feature = "async")]
    pub(crate) async fn bump_async(&self, keys: &[Key]) -> Result<(), Error> {
        let Some(remote) = self.remote() else {
            return self.bump(keys);
        };
        let job = self.bump_job(keys)?;
        let unfinished = Unfinished {
            invalidator: self,
            keys: &job.keys,
            database: job.database,
            armed: true,
        };
        let result = remote.bump(&job.all).await;
        unfinished.disarm();
        self.bumped(job, result)
    }

    /// The keys of a bump, scoped to the database, with the undelivered
    /// ones riding along.
    fn bump_job(&self, keys: &[Key]) -> Result<BumpJob, Error> {
        let Some(database) = self.database() else {
            return Err(Error::NoDatabase);
        };
        let keys: Vec<Key> = keys
            .iter()
            .map(|k| scope::in_database(database, *k))
            .collect();
        let carried = self.undelivered.batch();
        let all = match &carried {
            None => keys.clone(),
            Some(batch) => {
                let mut all: Vec<Key> = keys.clone();
                all.extend_from_slice(batch.keys());
                all.sort();
                all.dedup();
                all
            }
        };
        Ok(BumpJob {
            database,
            keys,
            carried,
            all,
        })
    }

    /// Count, trace and (on failure) keep for delivery what the store said
    /// to a bump.
    fn bumped(
        &self,
        job: BumpJob,
        result: Result<(), crate::error::StoreError>,
    ) -> Result<(), Error> {
        let c = &self.counters;
        match result {
            Ok(()) => {
                Counters::add(&c.invalidations, job.keys.len() as u64);
                if let Some(batch) = &job.carried {
                    self.undelivered.delivered(batch);
                }
                Ok(())
            }
            Err(e) => {
                Counters::add(&c.invalidation_errors, job.keys.len() as u64);
                tracing::warn!(store = self.store.name(), error = %crate::error::Chain(&e), "invalidation failed; kept for delivery");
                self.undelivered.add(
                    &job.keys,
                    scope::in_database(job.database, key::global_key()),
                );
                Err(e.into())
            }
        }
    }

    /// Invalidate every cached query that reads `table` (bare: in every
    /// schema connections resolved it to; unknown: everything).
    pub(crate) fn invalidate_table(&self, table: &str) -> Result<(), Error> {
        self.bump(&self.table_keys(table)?)
    }

    /// The keys [`invalidate_table`](Self::invalidate_table) bumps.
    pub(crate) fn table_keys(&self, table: &str) -> Result<Vec<Key>, Error> {
        if table.is_empty() {
            return Err(Error::NoTable(String::new()));
        }
        Ok(match self.known().qualified(table) {
            Some(names) => names.iter().map(|t| key::table_key(t)).collect(),
            None => vec![key::global_key()],
        })
    }

    /// Invalidate what a row whose `column` of `table` holds `value` (bind
    /// bytes; `None` is NULL) may affect.
    pub(crate) fn invalidate_value(
        &self,
        table: &str,
        column: &str,
        value: Option<&[u8]>,
    ) -> Result<(), Error> {
        self.bump(&self.value_keys(table, column, value))
    }

    /// The keys [`invalidate_value`](Self::invalidate_value) bumps.
    pub(crate) fn value_keys(&self, table: &str, column: &str, value: Option<&[u8]>) -> Vec<Key> {
        match self.known().qualified(table) {
            Some(names) => names
                .iter()
                .flat_map(|t| {
                    [
                        key::value_key(t, column, value),
                        key::member_key(t, column, value),
                        key::rows_key(t),
                        key::unnamed_key(t),
                    ]
                })
                .collect(),
            None => vec![key::global_key()],
        }
    }

    /// The keys a change to `row` bumps, its tables named as this cache's
    /// connections resolved them (what `Cache::invalidate_object` bumps):
    /// its content keys and, as nothing says how it changed, the finer keys
    /// of any change (it may have been inserted or deleted, any column may
    /// have changed: see `write::change_keys`).
    pub(crate) fn object_keys<M: crate::CacheModel>(&self, row: &M) -> Vec<Key> {
        crate::write::change_keys::any_change_keys(&self.known(), row)
    }

    /// Whether any of `keys` waits for an undelivered bump of this process.
    /// One atomic load while nothing is pending; never retries delivery.
    #[inline]
    pub(crate) fn depends_on_undelivered(&self, keys: &[Key]) -> bool {
        self.undelivered.blocks(keys)
    }

    /// How many bumps wait for delivery.
    pub(crate) fn pending(&self) -> usize {
        self.undelivered.len()
    }
}

/// Table names as this cache's connections resolved them: what explicit
/// invalidations by name (and by a row, without a connection) reach.
pub(crate) struct Known<'a>(&'a Invalidator);

impl Tables for Known<'_> {
    fn qualified(&self, written: &str) -> Option<Vec<String>> {
        let names = self.0.names.read().ok()?;
        match names.get(written) {
            Some(all) => Some(all.iter().cloned().collect()),
            // A qualified name stands for itself (the analysis writes
            // `schema.table`, the scope names it the same way).
            None => {
                let (schema, table) = written.split_once('.')?;
                Some(vec![scope::qualify(schema, table)])
            }
        }
    }
}

/// A bump in flight on the store's non-blocking side: dropped armed (its
/// future was cancelled), its keys are kept for background delivery.
#[cfg(feature = "async")]
struct Unfinished<'a> {
    invalidator: &'a Invalidator,
    keys: &'a [Key],
    database: u128,
    armed: bool,
}

#[cfg(feature = "async")]
impl Unfinished<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

#[cfg(feature = "async")]
impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!("a bump was cancelled before the store answered; kept for delivery");
            self.invalidator.undelivered.add(
                self.keys,
                scope::in_database(self.database, key::global_key()),
            );
        }
    }
}

/// One bump: its keys (scoped), the undelivered batch riding along, and
/// everything sent.
struct BumpJob {
    database: u128,
    keys: Vec<Key>,
    carried: Option<deliver::Batch>,
    all: Vec<Key>,
}

/// Run a blocking store call. On a worker of tokio's multi-threaded
/// runtime (feature `async`: an instrumented async connection's writes
/// bump from inside the runtime, where nothing may await), the worker's
/// other tasks move to other threads first (`block_in_place`); an
/// in-process store never waits, and elsewhere the call just runs.
fn blocking_on_runtime<T>(in_process: bool, call: impl FnOnce() -> T) -> T {
    #[cfg(feature = "async")]
    if !in_process {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                return tokio::task::block_in_place(call);
            }
        }
    }
    let _ = in_process;
    call()
}
