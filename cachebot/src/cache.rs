//! The cache handle, its settings, and explicit invalidation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::expression::{AsExpression, TypedExpressionType};
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::SqlType;
use diesel::{Column, QueryResult};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{BackendImpl, CacheBackend, SqlDialect};
use crate::codec::{Bincode, Codec};
use crate::error::{ConfigError, Error, UsageError};
use crate::invalidate::instrument::{self, CacheInstrumentation};
use crate::invalidate::Invalidator;
use crate::read::behind::WriteBehind;
use crate::read::entry::Seal;
use crate::read::{ReadSettings, Reader};
use crate::stats::{Counters, Stats};
use crate::store::{InProcessStore, Store};
use diesel::connection::LoadConnection;

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
    pub(crate) reader: Arc<Reader>,
    pub(crate) codec: Arc<C>,
}

impl<C: Codec> Clone for Cache<C> {
    fn clone(&self) -> Self {
        Cache {
            reader: self.reader.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<C: Codec> std::fmt::Debug for Cache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.reader.store.name())
            .field("codec", &C::NAME)
            .field("ttl", &self.reader.ttl)
            .field("enabled", &self.reader.is_enabled())
            .finish_non_exhaustive()
    }
}

impl Cache<Bincode> {
    /// A cache on the in-process store with default settings.
    pub fn in_process() -> Cache {
        let store: Arc<dyn Store> = Arc::new(InProcessStore::new());
        Cache::assemble(
            store.clone(),
            Invalidator::new(store, Arc::default()),
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
            #[cfg(feature = "async")]
            remote: None,
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
    composites: crate::key::Composites,
    models: crate::read::returned::Models,
    /// A `composite_key` call `build` refuses.
    bad_composite: Option<String>,
    staleness_bound: Option<Duration>,
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
            composites: crate::key::Composites::default(),
            models: crate::read::returned::Models::default(),
            bad_composite: None,
            staleness_bound: None,
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
    /// The store's non-blocking side, if it has one (feature `async`).
    #[cfg(feature = "async")]
    remote: Option<Arc<dyn crate::store::AsyncStore>>,
    codec: C,
    settings: Settings,
}

impl<C: Codec> std::fmt::Debug for CacheBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("store", &self.store.as_ref().map(|s| s.name()))
            .field("codec", &C::NAME)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<C: Codec> CacheBuilder<C> {
    /// The store entries and generations live in (default: a fresh
    /// [`InProcessStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        #[cfg(feature = "async")]
        {
            self.remote = crate::store::async_side(&store);
        }
        self.store = Some(Box::new(store));
        self
    }

    /// The codec results are stored with (default: [`Bincode`]).
    pub fn codec<C2: Codec>(self, codec: C2) -> CacheBuilder<C2> {
        CacheBuilder {
            store: self.store,
            #[cfg(feature = "async")]
            remote: self.remote,
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

    /// Register a model's composite keys (`#[cachebot(key(a, b))]`): a
    /// cached query that pins every column of one to a single value then
    /// depends on that combination alone (a write to another user's photos
    /// with the same status does not invalidate it). Without the
    /// registration such a query keys on one of the columns: correct, but
    /// wider. Registering changes nothing else; models without composite
    /// keys need no registration.
    ///
    /// ```
    /// use cachebot::prelude::*;
    /// # use diesel::prelude::*;
    /// # diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
    /// # #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
    /// #          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
    /// # #[diesel(table_name = photos)]
    /// #[cachebot(key(user_id, status))]
    /// # struct Photo { id: i32, user_id: i32, status: i32 }
    /// let cache = Cache::builder().model::<Photo>().build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn model<M: crate::CacheModel>(mut self) -> Self {
        self.settings
            .composites
            .add(M::table_name(), M::composite_keys());
        self.settings.models.add::<M>();
        self
    }

    /// Register a composite key by names: what [`model`](Self::model)
    /// registers for a model with `#[cachebot(key(..))]`, for code that has
    /// no model type at hand (the `cachebot-follow` binary's `--composite`).
    /// A cached query on `table` that pins every one of `columns` to a
    /// single value then depends on that combination alone, and a cache
    /// applying changes ([`Cache::invalidate_changes`]) bumps that
    /// combination's key for every changed row. Readers and the follower
    /// that keeps them fresh must register the same composites: a follower
    /// without a reader's composite never bumps the key that reader's
    /// queries depend on.
    ///
    /// `table` is the table as the reader's queries write it (Diesel's
    /// `table!` name, `photos`; `schema.photos` for a table declared with a
    /// schema). For applying changes either form is accepted: the stream's
    /// table matches both its bare and its schema-qualified name. An empty
    /// table name, an empty column list or an empty column name is refused
    /// by [`build`](Self::build).
    ///
    /// ```
    /// let cache = cachebot::Cache::builder()
    ///     .composite_key("photos", &["user_id", "status"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = cache;
    /// assert!(cachebot::Cache::builder().composite_key("photos", &[]).build().is_err());
    /// ```
    pub fn composite_key(mut self, table: &str, columns: &[&str]) -> Self {
        if !table.is_empty() && !columns.is_empty() && columns.iter().all(|c| !c.is_empty()) {
            self.settings.composites.add(table, &[columns]);
        } else {
            self.settings.bad_composite = Some(format!("{table:?}: {columns:?}"));
        }
        self
    }

    /// Serve cached entries only while a change-stream follower
    /// (`cachebot-follow`, see the README) has applied every transaction
    /// committed more than `bound` ago: writes that bypass this process
    /// (other services, psql, triggers) are then stale for at most `bound`,
    /// even when the follower is down or lagging. While its heartbeat in
    /// the store is older than `bound` (or missing), reads go to the
    /// database, counted in [`Stats::behind_follower`]. Checking costs no
    /// round trip while the heartbeat is recent. Default: no bound (writes
    /// outside the crate are seen when the follower applies them, or at the
    /// TTL without one).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache = cachebot::Cache::builder()
    ///     .staleness_bound(Duration::from_secs(2))
    ///     .build()
    ///     .unwrap();
    /// # let _ = cache;
    /// ```
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.settings.staleness_bound = Some(bound);
        self
    }

    /// Check the settings and build the cache.
    pub fn build(self) -> Result<Cache<C>, Error> {
        let s = &self.settings;
        if s.ttl.is_zero() || s.ttl > MAX_TTL {
            return Err(Error::from(ConfigError::new(
                "ttl",
                format!("must be between 1 s and 30 days, got {:?}", s.ttl),
            )));
        }
        if let Some(bad) = &s.bad_composite {
            return Err(Error::from(ConfigError::new(
                "composite_key",
                format!(
                    "needs a table name and at least one column, none of them empty; got {bad}"
                ),
            )));
        }
        if s.staleness_bound.is_some_and(|b| b.is_zero()) {
            return Err(Error::from(ConfigError::new(
                "staleness_bound",
                "must be more than zero (a follower's heartbeat is never that fresh)",
            )));
        }
        if let Some(t) = s.never_cache.iter().find(|t| t.is_empty()) {
            return Err(Error::from(ConfigError::new(
                "never_cache",
                format!("holds an empty table name: {t:?}"),
            )));
        }
        if let Some(secret) = &s.secret {
            if secret.0.len() < Seal::MIN_SECRET {
                return Err(Error::from(ConfigError::new(
                    "secret",
                    format!(
                        "must be at least {} bytes (32 random bytes recommended), got {}",
                        Seal::MIN_SECRET,
                        secret.0.len()
                    ),
                )));
            }
        }
        let store = self
            .store
            .unwrap_or_else(|| Box::new(InProcessStore::new()));
        let store: Arc<dyn Store> = Arc::from(store);
        let counters = Arc::new(Counters::default());
        let write_behind = if self.settings.write_behind.unwrap_or(!store.is_in_process()) {
            let w = WriteBehind::start(store.clone(), counters.clone()).map_err(|e| {
                ConfigError::new("write_behind", "cannot start the write-behind thread")
                    .with_source(e)
            })?;
            Some(w)
        } else {
            None
        };
        let invalidator = Invalidator::new(store.clone(), counters);
        #[cfg(feature = "async")]
        let invalidator = invalidator.with_remote(self.remote);
        Ok(Cache::assemble(
            store,
            invalidator,
            write_behind,
            self.codec,
            self.settings,
        ))
    }
}

impl<C: Codec> Cache<C> {
    fn assemble(
        store: Arc<dyn Store>,
        invalidator: Invalidator,
        write_behind: Option<WriteBehind>,
        codec: C,
        s: Settings,
    ) -> Cache<C> {
        let invalidator = Arc::new(invalidator);
        let settings = ReadSettings {
            ttl: s.ttl,
            fingerprint: s.fingerprint,
            never_cache: s.never_cache,
            enabled: s.enabled,
            cache_gets: s.cache_gets,
            local_bytes: s.local_bytes,
            secret: s.secret.map(|secret| secret.0),
            composites: s.composites,
            models: s.models,
            staleness_bound: s.staleness_bound,
        };
        Cache {
            reader: Arc::new(Reader::new(invalidator, store, write_behind, settings)),
            codec: Arc::new(codec),
        }
    }

    /// Wait until every entry queued for write-behind has been written
    /// (nothing to wait for without write-behind).
    pub fn flush_write_behind(&self) {
        if let Some(w) = &self.reader.write_behind {
            w.flush();
        }
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> Stats {
        self.reader.counters().snapshot()
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
        self.reader.invalidator.pending()
    }

    /// The store behind this cache.
    pub fn store(&self) -> &dyn Store {
        &*self.reader.store
    }

    /// Switch caching on or off at run time. While off, every read goes to
    /// the database (counted as a bypass) and nothing is stored;
    /// invalidations are still sent, so switching back on serves nothing
    /// stale.
    pub fn set_enabled(&self, enabled: bool) {
        self.reader.set_enabled(enabled);
    }

    /// Whether the derive's primary-key gets read through the cache.
    pub fn caches_gets(&self) -> bool {
        self.reader.cache_gets
    }

    /// Whether caching is on.
    pub fn is_enabled(&self) -> bool {
        self.reader.is_enabled()
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
        self.reader.invalidator.bump(&[crate::key::global_key()])
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
        self.reader.invalidator.invalidate_table(table)
    }

    /// Invalidate the cached queries that a change to a row whose `column`
    /// holds `value` may affect: those keyed on that value (its rows'
    /// content and membership), and those that depend on the column's table
    /// as a whole or on the rows they returned. Signal both the old and the
    /// new value of a changed row.
    ///
    /// ```no_run
    /// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
    /// # fn run(conn: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument(conn)?;
    /// cache.invalidate_value(photos::user_id, 7)?;
    /// // The value (content and membership), the table's rows, and what
    /// // reads depending on their returned rows watch.
    /// assert_eq!(cache.stats().invalidations, 4);
    /// # Ok(()) }
    /// ```
    pub fn invalidate_value<Col, V>(&self, column: Col, value: V) -> Result<(), Error>
    where
        Col: Column + QueryFragment<Pg>,
        Col::SqlType: SqlType + TypedExpressionType,
        V: AsExpression<Col::SqlType>,
        V::Expression: QueryFragment<Pg>,
    {
        let (table, column, value) = column_value(&column, value)?;
        self.reader
            .invalidator
            .invalidate_value(&table, &column, value.as_deref())
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
        let inv = &self.reader.invalidator;
        inv.bump(&inv.object_keys(row))
    }

    /// A fresh instrumentation for one PostgreSQL connection; see
    /// [`Cache::instrument`].
    pub fn instrumentation(&self) -> CacheInstrumentation {
        CacheInstrumentation::new(self.reader.invalidator.clone(), SqlDialect::PostgreSql)
    }

    /// Install the crate's instrumentation on `conn`, and learn what the
    /// cache needs to know about it: the database it reaches (a cache
    /// serves one database), what its table names resolve to under its
    /// `search_path`, which columns compare by bytes, and the foreign keys
    /// whose cascades write child tables.
    ///
    /// It replaces the connection's instrumentation, chained with Diesel's
    /// default one (`diesel::connection::set_default_instrumentation`); to
    /// keep another of yours, install
    /// `cache.instrumentation().chain(yours)` with `conn.set_instrumentation`
    /// instead. A later `set_instrumentation` that drops the crate's makes
    /// cached reads on the connection go to the database (counted in
    /// [`Stats::uninstrumented`]) and the crate's writes fail with
    /// [`Error::NotInstrumented`].
    ///
    /// A connection that carries no instrumentation at all is instrumented
    /// by its first cached read.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel::Connection;
    /// let cache = cachebot::Cache::in_process();
    /// let mut conn = diesel::PgConnection::establish("postgres://localhost/app")?;
    /// cache.instrument(&mut conn)?; // Error::OtherDatabase if the cache serves another
    /// # Ok(()) }
    /// ```
    pub fn instrument<Conn>(&self, conn: &mut Conn) -> Result<(), Error>
    where
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
    {
        crate::util::ready::run_ready(instrument::install(&self.reader.invalidator, conn))
    }

    /// An r2d2 connection customizer that instruments every pooled
    /// connection (feature `r2d2`).
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
    pub fn pool_customizer(&self) -> crate::PoolCustomizer {
        instrument::PoolCustomizer::new(self.reader.invalidator.clone())
    }

    /// Load one small query per id (typically `table.find(id)`) with ONE
    /// store round trip for all of them, and ONE database query for the ids
    /// the cache does not hold. What `#[derive(CacheBot)]`'s `get_many`
    /// uses; each id's entry is the same as the one its single get reads.
    ///
    /// Returns the rows of the ids found, in the order of `ids`.
    ///
    /// ```no_run
    /// # use cachebot::prelude::*;
    /// # use diesel::prelude::*;
    /// # diesel::table! { photos (id) { id -> Int4, status -> Int4 } }
    /// # fn run(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
    /// let rows: Vec<(i32, i32)> = cache.get_many(
    ///     conn,
    ///     &[1, 2, 3],
    ///     |id: &i32| photos::table.find(*id),
    ///     |conn: &mut PgConnection, missing: &[i32]| {
    ///         photos::table.filter(photos::id.eq_any(missing.to_vec())).load(conn)
    ///     },
    ///     |row: &(i32, i32)| row.0,
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn get_many<Conn, M, Id, Q, F, L, I>(
        &self,
        conn: &mut Conn,
        ids: &[Id],
        find: F,
        load_missing: L,
        id_of: I,
    ) -> QueryResult<Vec<M>>
    where
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
        M: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Id: PartialEq + Clone,
        F: Fn(&Id) -> Q,
        Q: QueryFragment<Conn::Backend> + QueryId,
        L: FnOnce(&mut Conn, &[Id]) -> QueryResult<Vec<M>>,
        I: Fn(&M) -> Id,
    {
        use crate::read::batch::Lookup;
        use crate::util::ready::run_ready;
        let reader = &self.reader;
        let io = crate::read::io::Blocking(reader.store.as_ref());
        let batch = run_ready(reader.many_plan::<C, Conn, M, Id, Q, F>(conn, ids, &find))?;
        match run_ready(reader.many_lookup::<C, M, Id, _>(&io, &self.codec, batch, ids)) {
            Lookup::Found(rows) => Ok(rows),
            Lookup::Load { missing, pending } => {
                let loaded = load_missing(conn, &missing)?;
                Ok(run_ready(reader.many_fill(
                    &io,
                    &self.codec,
                    ids,
                    pending,
                    loaded,
                    id_of,
                )))
            }
        }
    }

    /// [`instrument`](Self::instrument) for a diesel-async connection
    /// (feature `async`): learn what its names mean and install the crate's
    /// instrumentation, chained with Diesel's default instrumentation.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_async::{AsyncConnection, AsyncPgConnection};
    /// let cache = cachebot::Cache::in_process();
    /// let mut conn = AsyncPgConnection::establish("postgres://localhost/app").await?;
    /// cache.instrument_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "async")]
    pub async fn instrument_async<Conn>(&self, conn: &mut Conn) -> Result<(), Error>
    where
        Conn: diesel_async::AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
    {
        let mut db = crate::conn::Async(conn);
        instrument::install(&self.reader.invalidator, &mut db).await
    }

    /// A deadpool `post_create` hook that instruments every connection a
    /// diesel-async deadpool pool creates (feature `deadpool`).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
    /// use diesel_async::AsyncPgConnection;
    ///
    /// let cache = cachebot::Cache::in_process();
    /// let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new("postgres://localhost/app");
    /// let pool = Pool::builder(manager)
    ///     .post_create(cache.deadpool_hook())
    ///     .build()?;
    /// # let _ = pool; Ok(()) }
    /// ```
    #[cfg(feature = "deadpool")]
    pub fn deadpool_hook<Conn>(&self) -> diesel_async::pooled_connection::deadpool::Hook<Conn>
    where
        Conn: diesel_async::pooled_connection::PoolableConnection + 'static,
        Conn::Backend: CacheBackend,
        for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, diesel::sql_types::Integer>>:
            diesel_async::methods::LoadQuery<'a, Conn, i32>,
        diesel::query_builder::SqlQuery: QueryFragment<Conn::Backend>,
    {
        crate::aio::deadpool_hook(self.reader.invalidator.clone())
    }

    /// A bb8 connection customizer that instruments every connection a
    /// diesel-async bb8 pool creates (feature `bb8`); see
    /// [`Bb8Customizer`](crate::aio::Bb8Customizer).
    #[cfg(feature = "bb8")]
    pub fn bb8_customizer(&self) -> crate::aio::Bb8Customizer {
        crate::aio::Bb8Customizer::new(self.reader.invalidator.clone())
    }

    /// Apply one committed transaction from the database's change stream:
    /// bump every generation its row changes affect (old and new images,
    /// widened to the table where an image is missing or partial; see
    /// [`changes`](crate::changes)) in ONE store call, then, if it carries a
    /// commit time, record it as the change stream's heartbeat. What a
    /// change-stream follower (`cachebot-follow`) calls per transaction;
    /// only after it returns `Ok` may the follower confirm the transaction
    /// to the database.
    ///
    /// Fails with [`Error::NoDatabase`] before the cache was bound to a
    /// database (instrument a connection first), and with the store's error
    /// when the store did not take the bumps or the heartbeat (the bumps are
    /// then also kept for background delivery, as for any write).
    ///
    /// ```no_run
    /// use cachebot::changes::{Change, Column, Image, TableName, Transaction, Value};
    /// # fn run(conn: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument(conn)?;
    /// let id = Column::new("id", Value::Bytes(7i32.to_be_bytes().to_vec())).with_type(23);
    /// cache.invalidate_changes(&Transaction {
    ///     changes: vec![Change::Insert {
    ///         table: TableName::new("public", "photos"),
    ///         new: Image::new(vec![id]),
    ///     }],
    ///     commit_time: Some(std::time::SystemTime::now()),
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn invalidate_changes(&self, tx: &crate::changes::Transaction) -> Result<(), Error> {
        crate::invalidate::changes::apply(&self.reader, tx)
    }
}

/// The (table, column) a single Diesel column renders to.
fn single_column<Col: QueryFragment<Pg>>(column: &Col) -> Result<(String, String), Error> {
    let sql = Pg::render(column)?;
    match crate::extract::column_list(&sql).as_deref() {
        Some([one]) => Ok(one.clone()),
        _ => Err(UsageError::NotAColumn {
            call: "invalidate_value",
            got: sql,
        }
        .into()),
    }
}

/// The (table, column) of `column` and the bind bytes of `value` (`None`
/// for NULL): what [`Cache::invalidate_value`] signals.
#[allow(clippy::type_complexity)]
fn column_value<Col, V>(column: &Col, value: V) -> Result<(String, String, Option<Vec<u8>>), Error>
where
    Col: Column + QueryFragment<Pg>,
    Col::SqlType: SqlType + TypedExpressionType,
    V: AsExpression<Col::SqlType>,
    V::Expression: QueryFragment<Pg>,
{
    let (table, column) = single_column(column)?;
    let binds = Pg::collect_binds(&value.as_expression())?;
    let [value] = binds.as_slice() else {
        return Err(UsageError::NotOneValue(binds.len()).into());
    };
    Ok((table, column, value.bytes.clone()))
}

/// Explicit invalidation from async code (feature `async`): the same keys
/// and errors as the blocking calls, bumped through the store's
/// non-blocking side (a remote store's network I/O is awaited, not blocked
/// on).
#[cfg(feature = "async")]
impl<C: Codec> Cache<C> {
    /// [`invalidate_all`](Self::invalidate_all), awaited.
    ///
    /// ```no_run
    /// # async fn run(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), cachebot::Error> {
    /// let cache = cachebot::Cache::in_process();
    /// cache.instrument_async(conn).await?;
    /// cache.invalidate_all_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_all_async(&self) -> Result<(), Error> {
        let inv = &self.reader.invalidator;
        inv.bump_async(&[crate::key::global_key()]).await
    }

    /// [`invalidate_table`](Self::invalidate_table), awaited.
    ///
    /// ```no_run
    /// # async fn run(cache: &cachebot::Cache) -> Result<(), cachebot::Error> {
    /// cache.invalidate_table_async("photos").await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_table_async(&self, table: &str) -> Result<(), Error> {
        let inv = &self.reader.invalidator;
        let keys = inv.table_keys(table)?;
        inv.bump_async(&keys).await
    }

    /// [`invalidate_value`](Self::invalidate_value), awaited.
    ///
    /// ```no_run
    /// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
    /// # async fn run(cache: &cachebot::Cache) -> Result<(), cachebot::Error> {
    /// cache.invalidate_value_async(photos::user_id, 7).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_value_async<Col, V>(&self, column: Col, value: V) -> Result<(), Error>
    where
        Col: Column + QueryFragment<Pg>,
        Col::SqlType: SqlType + TypedExpressionType,
        V: AsExpression<Col::SqlType>,
        V::Expression: QueryFragment<Pg>,
    {
        let (table, column, value) = column_value(&column, value)?;
        let inv = &self.reader.invalidator;
        let keys = inv.value_keys(&table, &column, value.as_deref());
        inv.bump_async(&keys).await
    }

    /// [`invalidate_object`](Self::invalidate_object), awaited.
    ///
    /// ```no_run
    /// # async fn run<M: cachebot::CacheModel>(cache: &cachebot::Cache, row: &M) {
    /// cache.invalidate_object_async(row).await.unwrap();
    /// # }
    /// ```
    pub async fn invalidate_object_async<M: crate::CacheModel>(
        &self,
        row: &M,
    ) -> Result<(), Error> {
        let inv = &self.reader.invalidator;
        let keys = inv.object_keys(row);
        inv.bump_async(&keys).await
    }
}
