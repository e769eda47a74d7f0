//! The cache handle, its settings, and explicit invalidation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use diesel::expression::{AsExpression, TypedExpressionType};
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::SqlType;
use diesel::Column;

use crate::backend::CacheBackend;
use crate::codec::{Bincode, Codec};
use crate::error::{ConfigError, Error};
use crate::key;
use crate::scope::{Scope, Tables};
use crate::stats::{Counters, Stats};
use crate::store::{InProcessStore, Key, Store};
use crate::write::Cascade;

/// Entries live at most this long unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// The default bound of the local tier of decoded results, in encoded bytes.
pub const DEFAULT_LOCAL_BYTES: u64 = 32 << 20;

/// The longest TTL accepted (memcached treats relative TTLs above 30 days
/// as timestamps; the crate keeps every store to the same bound).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A handle on one cache: a store, a codec, settings and statistics.
///
/// Cheap to clone (clones share everything) and safe to share between
/// threads. Reads go through [`CacheDsl::cache`](crate::CacheDsl::cache).
///
/// ```
/// use cachebot::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::builder().ttl(Duration::from_secs(60)).build().unwrap();
/// assert_eq!(cache.stats().hits, 0);
/// ```
pub struct Cache<C: Codec = Bincode> {
    pub(crate) core: Arc<Core>,
    pub(crate) codec: Arc<C>,
}

impl<C: Codec> Clone for Cache<C> {
    fn clone(&self) -> Self {
        Cache {
            core: self.core.clone(),
            codec: self.codec.clone(),
        }
    }
}

/// Everything but the codec: what connection instrumentation shares.
pub(crate) struct Core {
    pub store: Arc<dyn Store>,
    pub ttl: Duration,
    pub fingerprint: String,
    pub never_cache: HashSet<String>,
    pub enabled: AtomicBool,
    pub cache_gets: bool,
    pub counters: Arc<Counters>,
    /// Set when entries are written in the background.
    pub write_behind: Option<crate::behind::WriteBehind>,
    /// Decoded results of this process (see `local`).
    pub local: Option<crate::local::Local>,
    /// The keys of recent reads, per query and binds (see `plans`).
    pub plans: crate::plans::Plans,
    /// Parent table -> child tables whose foreign keys cascade (delete or
    /// update with CASCADE, SET NULL or SET DEFAULT): a write to the parent
    /// may change rows of the children that no statement names.
    pub cascades: RwLock<Cascades>,
    /// When the cascades were learned: learned again after a minute, or
    /// at once after a connection ran DDL (`None`).
    pub cascades_learned: Mutex<Option<std::time::Instant>>,
    /// Bumps the store did not take (down, timed out), delivered by a
    /// background thread with backoff and carried along by later bumps; a
    /// read that depends on one of them bypasses the cache until it is
    /// delivered, so an entry stored before the write can never be served
    /// after it (see `deliver`).
    pub undelivered: crate::deliver::Undelivered,
    /// The database this cache caches (see `scope`), learned from the first
    /// connection: every key in the store is scoped to it.
    pub database: OnceLock<u128>,
    /// Unqualified table name -> the schema-qualified tables connections
    /// resolved it to: what an explicit invalidation by name reaches.
    pub names: RwLock<HashMap<String, HashSet<String>>>,
    /// A read on a connection without the crate's instrumentation was
    /// traced (once per cache).
    pub warned_uninstrumented: AtomicBool,
    /// The entries' MAC key, when the cache has a secret.
    pub seal: Option<crate::entry::Seal>,
}

impl Cache<Bincode> {
    /// A cache on the in-process store with default settings.
    pub fn in_process() -> Cache {
        Cache::assemble(
            Arc::new(InProcessStore::new()),
            Arc::default(),
            None,
            Bincode,
            Settings::default(),
        )
    }

    /// Start configuring a cache. Defaults: in-process store, bincode, a TTL
    /// of [`DEFAULT_TTL`], no schema fingerprint, nothing on the never-cache
    /// list, caching enabled.
    pub fn builder() -> CacheBuilder<Bincode> {
        CacheBuilder {
            store: None,
            codec: Bincode,
            settings: Settings::default(),
        }
    }
}

#[derive(Clone, Debug)]
struct Settings {
    ttl: Duration,
    fingerprint: String,
    never_cache: HashSet<String>,
    enabled: bool,
    cache_gets: bool,
    /// `None`: on for remote stores, off in process.
    write_behind: Option<bool>,
    local_bytes: u64,
    secret: Option<Secret>,
}

/// The secret given to [`CacheBuilder::secret`]; its `Debug` shows only
/// its length.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: DEFAULT_TTL,
            fingerprint: String::new(),
            never_cache: HashSet::new(),
            enabled: true,
            cache_gets: true,
            write_behind: None,
            local_bytes: DEFAULT_LOCAL_BYTES,
            secret: None,
        }
    }
}

/// Settings for a [`Cache`], checked by [`build`](CacheBuilder::build).
///
/// ```
/// use cachebot::{Cache, store::InProcessStore};
/// let cache = Cache::builder()
///     .store(InProcessStore::new())
///     .schema_version("2026-11-25")
///     .never_cache(["sessions"])
///     .build()
///     .unwrap();
/// # let _ = cache;
/// ```
pub struct CacheBuilder<C: Codec> {
    store: Option<Box<dyn Store>>,
    codec: C,
    settings: Settings,
}

impl<C: Codec> CacheBuilder<C> {
    /// The store entries and generations live in (default: a fresh
    /// [`InProcessStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The codec results are stored with (default: [`Bincode`]).
    pub fn codec<C2: Codec>(self, codec: C2) -> CacheBuilder<C2> {
        CacheBuilder {
            store: self.store,
            codec,
            settings: self.settings,
        }
    }

    /// How long an entry may live at most (default [`DEFAULT_TTL`]). The TTL
    /// is a safety net; freshness comes from generations.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// A string that changes whenever the shape of cached results changes
    /// (a deploy that changes a model's fields). It is part of every entry
    /// key, so processes of different versions never read each other's
    /// entries. Sharing a store between builds with different models needs
    /// it; within one build the Rust type name already separates results.
    pub fn schema_version(mut self, version: impl Into<String>) -> Self {
        self.settings.fingerprint = version.into();
        self
    }

    /// Tables whose queries are never cached (django-cachebot's
    /// `CACHEBOT_TABLE_BLACKLIST`): a query that reads any of them goes to
    /// the database.
    pub fn never_cache<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings
            .never_cache
            .extend(tables.into_iter().map(Into::into));
        self
    }

    /// Start with caching switched on or off (default on); see
    /// [`Cache::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.settings.enabled = enabled;
        self
    }

    /// Whether the derive's primary-key gets read through the cache (default
    /// on; django-cachebot's `CACHEBOT_CACHE_GET`). A model opts out alone
    /// with `#[cachebot(cache_get = false)]`.
    pub fn cache_gets(mut self, on: bool) -> Self {
        self.settings.cache_gets = on;
        self
    }

    /// Store a miss's result from a background thread, so the read does not
    /// wait for the store's answer. Default: on for remote stores (it takes
    /// one round trip off every miss), off for the in-process store (where
    /// handing the entry to a thread costs more than storing it).
    /// Correctness does not depend on it (entries carry the generations read
    /// before the query); an immediate re-read may miss, and
    /// [`Cache::flush_write_behind`] waits for the queue. The thread runs at
    /// a lower priority (Linux), so that it does not preempt the read that
    /// queued the entry, and while misses keep coming it polls the queue
    /// every 250 us rather than being woken by each (it sleeps until woken
    /// after 50 ms without one); a full queue (4096 entries) drops entries,
    /// which later misses store again.
    ///
    /// ```
    /// use cachebot::Cache;
    ///
    /// // Every miss waits for its entry to be stored: reads that follow at
    /// // once find it (tests counting hits and misses want this).
    /// let cache = Cache::builder().write_behind(false).build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn write_behind(mut self, on: bool) -> Self {
        self.settings.write_behind = Some(on);
        self
    }

    /// Keep up to `max_bytes` (encoded size) of decoded results in this
    /// process (default [`DEFAULT_LOCAL_BYTES`]; 0 turns it off). A hit whose
    /// result is held here still checks every generation with the store,
    /// but neither transfers nor decodes the entry. The bytes are split in
    /// up to 64 shards of at least 256 KiB; a result larger than its shard
    /// (512 KiB at the default) is decoded from the store on every hit.
    ///
    /// ```
    /// use cachebot::Cache;
    ///
    /// let cache = Cache::builder().local_tier(128 << 20).build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn local_tier(mut self, max_bytes: u64) -> Self {
        self.settings.local_bytes = max_bytes;
        self
    }

    /// Authenticate entries with this secret (at least 16 bytes; 32 random
    /// bytes recommended), shared by every process that uses the store.
    ///
    /// Without a secret, whoever can write to the store (memcached has no
    /// access control) chooses the rows a cached read returns: the cache
    /// network must then be trusted like the database. With one, every
    /// entry carries a MAC (BLAKE3, keyed with a key derived from the
    /// secret) over its key, its generations, an expiry and its rows, and
    /// is checked before anything is decoded: an entry someone forged,
    /// wrote for another query or another result type, or replayed past its
    /// TTL is a miss, counted in [`Stats::forged`] (or as stale, when
    /// expired) and traced, never served. What it does not prevent: within
    /// an entry's TTL, someone who recorded an old entry and the old values
    /// of its generations can write both back and have the old rows served
    /// until the next write or the TTL (generations are not authenticated,
    /// see the README), and deleting or overwriting keys (more misses).
    /// Entries written with another secret, or none, are misses: change the
    /// secret like a schema version. The secret is not kept, only the key
    /// derived from it; clocks of processes sharing a store should agree
    /// to well within the TTL.
    ///
    /// ```
    /// use cachebot::Cache;
    ///
    /// let secret = b"32 random bytes from your secrets";
    /// let cache = Cache::builder().secret(secret).build().unwrap();
    /// # let _ = cache;
    /// // Too short to be a key: refused when the cache is built.
    /// assert!(Cache::builder().secret(b"hunter2").build().is_err());
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.settings.secret = Some(Secret(secret.as_ref().to_vec()));
        self
    }

    /// Check the settings and build the cache.
    pub fn build(self) -> Result<Cache<C>, ConfigError> {
        let s = &self.settings;
        if s.ttl.is_zero() || s.ttl > MAX_TTL {
            return Err(ConfigError(format!(
                "ttl must be between 1 s and 30 days, got {:?}",
                s.ttl
            )));
        }
        if let Some(t) = s.never_cache.iter().find(|t| t.is_empty()) {
            return Err(ConfigError(format!(
                "never_cache holds an empty table name: {t:?}"
            )));
        }
        if let Some(secret) = &s.secret {
            if secret.0.len() < crate::entry::Seal::MIN_SECRET {
                return Err(ConfigError(format!(
                    "the secret must be at least {} bytes (32 random bytes recommended), got {}",
                    crate::entry::Seal::MIN_SECRET,
                    secret.0.len()
                )));
            }
        }
        let store = self
            .store
            .unwrap_or_else(|| Box::new(InProcessStore::new()));
        let store: Arc<dyn Store> = Arc::from(store);
        let counters = Arc::new(Counters::default());
        let write_behind = if self.settings.write_behind.unwrap_or(!store.is_in_process()) {
            let w = crate::behind::WriteBehind::start(store.clone(), counters.clone())
                .map_err(|e| ConfigError(format!("cannot start the write-behind thread: {e}")))?;
            Some(w)
        } else {
            None
        };
        Ok(Cache::assemble(
            store,
            counters,
            write_behind,
            self.codec,
            self.settings,
        ))
    }
}

impl<C: Codec> Cache<C> {
    fn assemble(
        store: Arc<dyn Store>,
        counters: Arc<Counters>,
        write_behind: Option<crate::behind::WriteBehind>,
        codec: C,
        s: Settings,
    ) -> Cache<C> {
        Cache {
            core: Arc::new(Core {
                undelivered: crate::deliver::Undelivered::new(store.clone(), counters.clone()),
                store,
                ttl: s.ttl,
                fingerprint: s.fingerprint,
                never_cache: s.never_cache,
                enabled: AtomicBool::new(s.enabled),
                cache_gets: s.cache_gets,
                counters,
                write_behind,
                local: (s.local_bytes > 0).then(|| crate::local::Local::new(s.local_bytes, s.ttl)),
                plans: crate::plans::Plans::new(crate::plans::DEFAULT_BYTES),
                cascades: RwLock::new(Cascades::default()),
                cascades_learned: Mutex::new(None),
                database: OnceLock::new(),
                names: RwLock::new(HashMap::new()),
                warned_uninstrumented: AtomicBool::new(false),
                seal: s.secret.map(|secret| crate::entry::Seal::new(&secret.0)),
            }),
            codec: Arc::new(codec),
        }
    }

    /// Wait until every entry queued for write-behind has been written
    /// (nothing to wait for without write-behind).
    pub fn flush_write_behind(&self) {
        if let Some(w) = &self.core.write_behind {
            w.flush();
        }
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> Stats {
        self.core.counters.snapshot()
    }

    /// How many generation bumps of this process wait for delivery: the
    /// store did not take them (down, partitioned, timed out). A background
    /// thread retries them with backoff until the store takes them; until
    /// then, reads of this process that depend on them bypass the cache.
    /// 0 in normal operation.
    ///
    /// ```
    /// let cache = cachebot::Cache::in_process();
    /// assert_eq!(cache.pending_invalidations(), 0);
    /// ```
    pub fn pending_invalidations(&self) -> usize {
        self.core.undelivered.len()
    }

    /// The store behind this cache.
    pub fn store(&self) -> &dyn Store {
        &*self.core.store
    }

    /// Switch caching on or off at run time. While off, every read goes to
    /// the database (counted as a bypass) and nothing is stored;
    /// invalidations are still sent, so switching back on serves nothing
    /// stale.
    pub fn set_enabled(&self, enabled: bool) {
        self.core.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Whether the derive's primary-key gets read through the cache.
    pub fn caches_gets(&self) -> bool {
        self.core.cache_gets
    }

    /// Whether caching is on.
    pub fn is_enabled(&self) -> bool {
        self.core.enabled.load(Ordering::SeqCst)
    }

    /// Invalidate everything this cache has stored, in every process that
    /// shares the store. One generation bump: nothing is flushed.
    ///
    /// Keys are scoped to the cache's database, which the cache learns from
    /// its first connection: before any connection was instrumented or read
    /// through, explicit invalidations fail with [`Error::NoDatabase`].
    ///
    /// ```no_run
    /// # fn run(conn: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument(conn)?;
    /// cache.invalidate_all()?;
    /// assert_eq!(cache.stats().invalidations, 1);
    /// # Ok(()) }
    /// ```
    pub fn invalidate_all(&self) -> Result<(), Error> {
        self.bump(&[key::global_key()])
    }

    /// Invalidate every cached query that reads `table`: `schema.table`, or
    /// a bare name, which reaches the table of that name in every schema
    /// this cache's connections resolved it to (a name no connection has
    /// resolved invalidates everything).
    ///
    /// ```no_run
    /// # fn run(conn: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument(conn)?;
    /// cache.invalidate_table("photos")?;        // as the connections resolve it
    /// cache.invalidate_table("tenant_7.photos")?; // one schema's table
    /// # Ok(()) }
    /// ```
    pub fn invalidate_table(&self, table: &str) -> Result<(), Error> {
        if table.is_empty() {
            return Err(Error::NoTable(String::new()));
        }
        let keys = match Known(&self.core).qualified(table) {
            Some(names) => names.iter().map(|t| key::table_key(t)).collect(),
            None => vec![key::global_key()],
        };
        self.bump(&keys)
    }

    /// Invalidate the cached queries that a change to a row whose `column`
    /// holds `value` may affect: those keyed on that value, and those that
    /// depend on the column's table as a whole. Signal both the old and the
    /// new value of a changed row.
    ///
    /// ```no_run
    /// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
    /// # fn run(conn: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument(conn)?;
    /// cache.invalidate_value(photos::user_id, 7)?;
    /// assert_eq!(cache.stats().invalidations, 2); // the value and the table's rows
    /// # Ok(()) }
    /// ```
    pub fn invalidate_value<Col, V>(&self, column: Col, value: V) -> Result<(), Error>
    where
        Col: Column + QueryFragment<Pg>,
        Col::SqlType: SqlType + TypedExpressionType,
        V: AsExpression<Col::SqlType>,
        V::Expression: QueryFragment<Pg>,
    {
        let (table, column) = single_column(&column)?;
        let binds = Pg::collect_binds(&value.as_expression())?;
        let value = match binds.as_slice() {
            [b] => b.bytes.clone(),
            _ => {
                return Err(Error::Render(render_error(
                    "the value must be a single bind",
                )))
            }
        };
        let keys = match Known(&self.core).qualified(&table) {
            Some(names) => names
                .iter()
                .flat_map(|t| {
                    [
                        key::value_key(t, &column, value.as_deref()),
                        key::rows_key(t),
                    ]
                })
                .collect(),
            None => vec![key::global_key()],
        };
        self.bump(&keys)
    }

    /// Invalidate what a change to this row can affect: every cached query
    /// keyed on one of its values, and those that depend on its table as a
    /// whole (django-cachebot's `invalidate_object`). Call it with the old
    /// and the new image when a row changed behind the crate's back.
    ///
    /// ```no_run
    /// # fn run<M: cachebot::CacheModel>(cache: &cachebot::Cache, row: &M) {
    /// cache.invalidate_object(row).unwrap();
    /// # }
    /// ```
    pub fn invalidate_object<M: crate::CacheModel>(&self, row: &M) -> Result<(), Error> {
        let known = Known(&self.core);
        let mut keys = crate::model::RowKeys::new(&known);
        row.row_keys(&mut keys);
        self.bump(&keys.into_keys())
    }

    /// Bump generations; counted, traced, and reported.
    pub(crate) fn bump(&self, keys: &[Key]) -> Result<(), Error> {
        self.core.bump(keys)
    }
}

/// Parent table -> child tables, per foreign-key action that writes the child.
#[derive(Debug, Default)]
pub(crate) struct Cascades {
    on_delete: HashMap<String, Vec<String>>,
    on_update: HashMap<String, Vec<String>>,
    /// Every foreign key, whatever its actions (`TRUNCATE ... CASCADE`).
    on_truncate: HashMap<String, Vec<String>>,
    /// Inheritance and partitioning, both ways (parent -> children, child ->
    /// parents): a write to a parent changes its children's rows, and a
    /// write to a child changes what a query of the parent returns.
    inheritance: HashMap<String, Vec<String>>,
    /// Tables with a rule that is not a view's SELECT (`ON UPDATE ... DO ALSO
    /// INSERT INTO audit ...`), and views (an update through one writes the
    /// tables under it): a write to one of them may write tables no
    /// statement names, so it invalidates everything.
    ruled: HashSet<String>,
}

#[derive(diesel::QueryableByName)]
struct Inherits {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
}

#[derive(diesel::QueryableByName)]
struct Ruled {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_delete: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_update: bool,
}

impl Core {
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

    /// A connection ran DDL: learn the cascades again before the next read.
    pub(crate) fn forget_cascades(&self) {
        if let Ok(mut at) = self.cascades_learned.lock() {
            *at = None;
        }
    }

    /// Whether a table (as written, and as resolved) is on the never-cache
    /// list, named either way or by its bare name.
    pub(crate) fn never_caches(&self, written: &str, qualified: &str) -> bool {
        if self.never_cache.is_empty() {
            return false;
        }
        let bare = written.rsplit('.').next().unwrap_or(written);
        [written, qualified, bare]
            .iter()
            .any(|n| self.never_cache.contains(*n))
    }

    /// Read the foreign keys, rules, views and partitions, when not learned
    /// within the last minute or when a connection ran DDL since.
    pub(crate) fn learn_cascades<Conn>(&self, conn: &mut Conn) -> diesel::QueryResult<()>
    where
        Conn: diesel::connection::LoadConnection<Backend = Pg>,
    {
        use diesel::RunQueryDsl;
        let fresh = self
            .cascades_learned
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < crate::scope::MAX_AGE);
        if fresh {
            return Ok(());
        }
        let fks: Vec<ForeignKey> = diesel::sql_query(
            "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
             pn.nspname::text AS parent_schema, p.relname::text AS parent, \
             confdeltype IN ('c', 'n', 'd') AS on_delete, \
             confupdtype IN ('c', 'n', 'd') AS on_update \
             FROM pg_catalog.pg_constraint k \
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_catalog.pg_class p ON p.oid = k.confrelid \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE contype = 'f'",
        )
        .load(conn)?;
        // Rules other than a view's `_RETURN`, and views themselves.
        let ruled: Vec<Ruled> = diesel::sql_query(
            "SELECT DISTINCT n.nspname::text AS schema, c.relname::text AS name \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.ev_type <> '1' \
             WHERE c.relkind = 'v' OR r.oid IS NOT NULL",
        )
        .load(conn)?;
        let inherits: Vec<Inherits> = diesel::sql_query(
            "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
             pn.nspname::text AS parent_schema, p.relname::text AS parent \
             FROM pg_catalog.pg_inherits i \
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace",
        )
        .load(conn)?;
        let mut cascades = Cascades {
            ruled: ruled
                .iter()
                .map(|r| crate::scope::qualify(&r.schema, &r.name))
                .collect(),
            ..Cascades::default()
        };
        for i in inherits {
            let child = crate::scope::qualify(&i.child_schema, &i.child);
            let parent = crate::scope::qualify(&i.parent_schema, &i.parent);
            let edges = &mut cascades.inheritance;
            edges.entry(parent.clone()).or_default().push(child.clone());
            edges.entry(child).or_default().push(parent);
        }
        for fk in fks {
            let child = crate::scope::qualify(&fk.child_schema, &fk.child);
            let parent = crate::scope::qualify(&fk.parent_schema, &fk.parent);
            cascades
                .on_truncate
                .entry(parent.clone())
                .or_default()
                .push(child.clone());
            if fk.on_delete {
                cascades
                    .on_delete
                    .entry(parent.clone())
                    .or_default()
                    .push(child.clone());
            }
            if fk.on_update {
                cascades.on_update.entry(parent).or_default().push(child);
            }
        }
        if let Ok(mut m) = self.cascades.write() {
            *m = cascades;
        }
        if let Ok(mut at) = self.cascades_learned.lock() {
            *at = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// The "all" keys of `tables` and of every table a cascade of the given
    /// kinds, or inheritance (partitions), can reach from them; the global
    /// key alone if any of them has rules (or is a view).
    pub(crate) fn table_keys_with_cascades(
        &self,
        tables: &[String],
        kinds: &[Cascade],
    ) -> Vec<Key> {
        let mut seen: HashSet<String> = tables.iter().cloned().collect();
        let mut queue: Vec<String> = tables.to_vec();
        if let Ok(c) = self.cascades.read() {
            while let Some(t) = queue.pop() {
                // Rules fire on the statements cascades run, too.
                if c.ruled.contains(&t) {
                    return vec![key::global_key()];
                }
                let children = kinds
                    .iter()
                    .map(|k| match k {
                        Cascade::Delete => c.on_delete.get(&t),
                        Cascade::Update => c.on_update.get(&t),
                        Cascade::Truncate => c.on_truncate.get(&t),
                        Cascade::Insert => None,
                    })
                    .chain([c.inheritance.get(&t)]);
                for child in children.flatten().flatten() {
                    if seen.insert(child.clone()) {
                        queue.push(child.clone());
                    }
                }
            }
        }
        let mut keys: Vec<Key> = seen.iter().map(|t| key::table_key(t)).collect();
        keys.sort();
        keys
    }

    /// Tables reached by cascades from `table`, not including it.
    pub(crate) fn cascade_children(&self, table: &str, kind: Cascade) -> Vec<Key> {
        let mut keys = self.table_keys_with_cascades(&[table.to_owned()], &[kind]);
        let own = key::table_key(table);
        keys.retain(|k| *k != own);
        keys
    }

    /// Bump generations; counted, traced, and reported. Keys the store does
    /// not take are kept and delivered later (see `deliver`); keys kept from
    /// earlier failures ride along.
    pub(crate) fn bump(&self, keys: &[Key]) -> Result<(), Error> {
        let c = &self.counters;
        let Some(&database) = self.database.get() else {
            return Err(Error::NoDatabase);
        };
        let keys: Vec<Key> = keys
            .iter()
            .map(|k| crate::scope::in_database(database, *k))
            .collect();
        let keys = keys.as_slice();
        let carried = self.undelivered.batch();
        let result = match &carried {
            None => self.store.bump(keys),
            Some(batch) => {
                let mut all: Vec<Key> = keys.to_vec();
                all.extend_from_slice(batch.keys());
                all.sort();
                all.dedup();
                self.store.bump(&all)
            }
        };
        match result {
            Ok(()) => {
                Counters::add(&c.invalidations, keys.len() as u64);
                if let Some(batch) = &carried {
                    self.undelivered.delivered(batch);
                }
                Ok(())
            }
            Err(e) => {
                Counters::add(&c.invalidation_errors, keys.len() as u64);
                tracing::warn!(store = self.store.name(), error = %e, "invalidation failed; kept for delivery");
                self.undelivered
                    .add(keys, crate::scope::in_database(database, key::global_key()));
                Err(e.into())
            }
        }
    }

    /// Whether any of `keys` waits for an undelivered bump of this process.
    /// One atomic load while nothing is pending; never retries delivery.
    #[inline]
    pub(crate) fn depends_on_undelivered(&self, keys: &[Key]) -> bool {
        self.undelivered.blocks(keys)
    }
}

/// Table names as this cache's connections resolved them: what explicit
/// invalidations by name (and by a row, without a connection) reach.
pub(crate) struct Known<'a>(pub(crate) &'a Core);

impl Tables for Known<'_> {
    fn qualified(&self, written: &str) -> Option<Vec<String>> {
        let names = self.0.names.read().ok()?;
        match names.get(written) {
            Some(all) => Some(all.iter().cloned().collect()),
            // A qualified name stands for itself (the analysis writes
            // `schema.table`, the scope names it the same way).
            None => {
                let (schema, table) = written.split_once('.')?;
                Some(vec![crate::scope::qualify(schema, table)])
            }
        }
    }
}

pub(crate) fn render_error(msg: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(msg.into())
}

/// The (table, column) a single Diesel column renders to.
fn single_column<Col: QueryFragment<Pg>>(column: &Col) -> Result<(String, String), Error> {
    let sql = Pg::render(column)?;
    match crate::extract::column_list(&sql).as_deref() {
        Some([one]) => Ok(one.clone()),
        _ => Err(Error::Render(render_error(&format!("not a column: {sql}")))),
    }
}
