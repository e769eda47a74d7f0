//! Reading through the cache: `query.cache(&cache).load(conn)`.
//!
//! One read is: render the query and collect its binds (memoised per query
//! type), compute the entry key and the generation keys it depends on, then
//! ask the store for the entry and all those generations in one round trip
//! (in process, where a lookup costs no round trip, the generations first:
//! the local tier of decoded rows usually serves, and the entry is not
//! copied out; a miss there keeps its rows decoded in the local tier
//! instead of encoding them). The entry is served only if every generation
//! it was stored with is still current. Otherwise the generations are read
//! (or created) *before* the database query and stored with the result: a
//! write that commits in between bumps one of them, so a result read
//! before that write is never served after it.

use std::any::{type_name, TypeId};
use std::sync::Arc;

use diesel::connection::{Connection, LoadConnection, TransactionManager};
use diesel::pg::Pg;
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::query_dsl::methods::LimitDsl;
use diesel::query_dsl::LoadQuery;
use diesel::result::Error as DieselError;
use diesel::{QueryResult, RunQueryDsl};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::CacheBackend;
use crate::cache::{render_error, Cache};
use crate::codec::Codec;
use crate::entry::{self, Reject};
use crate::extract::{Extracted, Uncacheable};
use crate::instrument::{count_no_scope, scope_of, trusted_scope};
use crate::key::{self, Dependency, EntryContext};
use crate::local::Local;
use crate::render::render;
use crate::scope::Scope;
use crate::stats::Counters;
use crate::store::{Fetched, Generation, Key};

/// Adds [`cache`](CacheDsl::cache) to every Diesel query.
///
/// ```no_run
/// use cachebot::prelude::*;
/// use diesel::prelude::*;
///
/// diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
///
/// # fn run(conn: &mut PgConnection) -> QueryResult<()> {
/// let cache = Cache::in_process();
/// let ids: Vec<i32> = photos::table
///     .select(photos::id)
///     .filter(photos::user_id.eq(7))
///     .filter(photos::status.eq(2))
///     .cache(&cache)
///     .load(conn)?;
/// # Ok(()) }
/// ```
pub trait CacheDsl: AsQuery + Sized {
    /// Read this query through `cache`. Invalidation may key on any column
    /// the query filters on by equality; see [`Cached::keyed_on`] to narrow.
    fn cache<C: Codec>(self, cache: &Cache<C>) -> Cached<'_, Self::Query, C> {
        Cached {
            query: self.as_query(),
            cache,
            narrowing: Ok(None),
        }
    }
}

impl<T: AsQuery> CacheDsl for T {}

/// A query that reads through a cache. Load it like a Diesel query.
#[must_use = "a cached query does nothing until it is loaded"]
pub struct Cached<'c, Q, C: Codec> {
    query: Q,
    cache: &'c Cache<C>,
    /// `Err` holds the rendering of something that is not a column list.
    narrowing: Result<Option<Vec<(String, String)>>, String>,
}

/// What [`Cached::explain`] tells about a query.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explain {
    /// The SQL text, as Diesel renders it.
    pub sql: String,
    /// Why the query is not cached, if it is not.
    pub uncacheable: Option<String>,
    /// The entry's key (for cacheable queries).
    pub entry: Option<Key>,
    /// What the entry depends on, sorted.
    pub dependencies: Vec<Dependency>,
    /// The generation keys a read fetches and an entry snapshots, as the
    /// store names them (with [`explain_on`](Cached::explain_on), scoped to
    /// the connection's database), sorted.
    pub generations: Vec<Key>,
}

enum Plan {
    Bypass(&'static str),
    Cache { entry: Key, generations: Vec<Key> },
}

impl<'c, Q, C: Codec> Cached<'c, Q, C> {
    /// Narrow invalidation to these columns (one column or a tuple), like
    /// django-cachebot's `.cache('user')`: equality filters on other
    /// columns are ignored for keying. Narrowing never drops a dependency:
    /// a table none of whose named columns is pinned by the query depends
    /// on all of its rows.
    ///
    /// ```no_run
    /// # use cachebot::prelude::*;
    /// # use diesel::prelude::*;
    /// # diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
    /// # fn run(conn: &mut PgConnection, cache: &Cache) -> QueryResult<()> {
    /// // Invalidated by writes to user 7's photos only, not by every photo with status 2.
    /// let ids: Vec<i32> = photos::table
    ///     .select(photos::id)
    ///     .filter(photos::user_id.eq(7).and(photos::status.eq(2)))
    ///     .cache(cache)
    ///     .keyed_on(photos::user_id)
    ///     .load(conn)?;
    /// # Ok(()) }
    /// ```
    pub fn keyed_on<K: QueryFragment<Pg>>(mut self, columns: K) -> Self {
        self.narrowing = match Pg::render(&columns) {
            Ok(sql) => crate::extract::column_list(&sql).map(Some).ok_or(sql),
            Err(e) => Err(e.to_string()),
        };
        self
    }

    /// What the cache would do with this query for results of type `U`:
    /// the SQL, whether it is cached, its key and its dependencies.
    ///
    /// ```
    /// use cachebot::prelude::*;
    /// use cachebot::Dependency;
    /// use diesel::prelude::*;
    /// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
    ///
    /// let cache = Cache::in_process();
    /// let q = photos::table.select(photos::id).filter(photos::user_id.eq(7));
    /// let explain = q.cache(&cache).explain::<diesel::pg::Pg, i32>().unwrap();
    /// assert!(explain.uncacheable.is_none());
    /// assert!(explain.dependencies.contains(&Dependency::Value {
    ///     table: "photos".into(),
    ///     column: "user_id".into(),
    ///     value: Some(7i32.to_be_bytes().to_vec()),
    /// }));
    /// ```
    pub fn explain<DB, U>(&self) -> QueryResult<Explain>
    where
        DB: CacheBackend,
        Q: QueryFragment<DB> + QueryId,
        U: 'static,
    {
        let rendered = render::<DB, Q>(&self.query)?;
        let sql = rendered.template.sql.clone();
        let narrowing = self.narrowing()?;
        let analysis = match &rendered.template.extracted {
            Extracted::Uncacheable(why) => {
                return Ok(Explain {
                    sql,
                    uncacheable: Some(uncacheable_reason(why).into()),
                    entry: None,
                    dependencies: Vec::new(),
                    generations: Vec::new(),
                })
            }
            Extracted::Cacheable(a) => a,
        };
        let dependencies = key::dependencies::<DB>(analysis, &rendered.binds, narrowing, None);
        let generations = key::dependency_keys::<DB>(analysis, &rendered.binds, narrowing, None);
        let never = analysis
            .tables
            .iter()
            .any(|t| self.cache.core.never_caches(&t.table, &t.table));
        let entry = key::entry_key(
            &self.entry_context(type_name::<U>(), narrowing),
            rendered.template.sql_hash,
            &rendered.binds,
            &generations,
        );
        Ok(Explain {
            sql,
            uncacheable: never.then(|| "reads a table on the never-cache list".into()),
            entry: (!never).then_some(entry),
            dependencies,
            generations,
        })
    }

    fn narrowing(&self) -> QueryResult<Option<&[(String, String)]>> {
        match &self.narrowing {
            Ok(n) => Ok(n.as_deref()),
            Err(sql) => Err(render_error(&format!(
                "keyed_on expects columns, got: {sql}"
            ))),
        }
    }

    fn entry_context<'a>(
        &'a self,
        result_type: &'static str,
        narrowing: Option<&'a [(String, String)]>,
    ) -> EntryContext<'a> {
        EntryContext {
            fingerprint: &self.cache.core.fingerprint,
            codec: C::NAME,
            result_type,
            narrowing,
        }
    }

    /// The keys of a read on `conn`: its tables resolved as the connection
    /// resolves them, every key scoped to the connection's database.
    fn plan<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Plan>
    where
        Conn: LoadConnection<Backend = Pg>,
        Q: QueryFragment<Pg> + QueryId,
        U: 'static,
    {
        if !self.cache.is_enabled() {
            return Ok(Plan::Bypass("caching is disabled"));
        }
        let narrowing = self.narrowing()?;
        // A query Diesel cannot render fails the same way when it runs: let
        // the database path report it.
        let Ok(rendered) = render::<Pg, Q>(&self.query) else {
            return Ok(Plan::Bypass("the query could not be rendered"));
        };
        let analysis = match &rendered.template.extracted {
            Extracted::Cacheable(a) => a,
            Extracted::Uncacheable(why) => return Ok(Plan::Bypass(uncacheable_reason(why))),
        };
        let core = &self.cache.core;
        let plans = &core.plans;
        let remembered = |scope: &Scope| {
            key::plan_key(
                TypeId::of::<U>(),
                TypeId::of::<Pg>(),
                rendered.template.sql_hash,
                &rendered.binds,
                narrowing,
                crate::model::registrations(),
                scope.id,
            )
        };
        // A plan remembered for this scope was checked when it was made.
        if let Some(scope) = trusted_scope(core, conn) {
            if let Some((entry, generations)) = plans.get(&remembered(&scope)) {
                return Ok(Plan::Cache { entry, generations });
            }
        }
        let scope = match scope_of(core, conn, &analysis.tables) {
            Ok(scope) => scope,
            Err(why) => {
                count_no_scope(core, &why);
                return Ok(Plan::Bypass(why.reason()));
            }
        };
        for t in &analysis.tables {
            let Some(resolved) = scope.resolve(&t.table) else {
                return Ok(Plan::Bypass("reads a table the catalog does not know"));
            };
            if resolved.temporary {
                return Ok(Plan::Bypass("reads a temporary table"));
            }
            if core.never_caches(&t.table, &resolved.name) {
                return Ok(Plan::Bypass("reads a table on the never-cache list"));
            }
        }
        let remembered = remembered(&scope);
        if let Some((entry, generations)) = plans.get(&remembered) {
            return Ok(Plan::Cache { entry, generations });
        }
        let (entry, generations) = self.keys::<U>(analysis, &rendered, narrowing, &scope);
        plans.insert(&remembered, entry, &generations);
        Ok(Plan::Cache { entry, generations })
    }

    /// The entry key and the generation keys of a read resolved in `scope`,
    /// scoped to its database.
    fn keys<U: 'static>(
        &self,
        analysis: &crate::extract::Analysis,
        rendered: &crate::render::Rendered,
        narrowing: Option<&[(String, String)]>,
        scope: &Scope,
    ) -> (Key, Vec<Key>) {
        let in_database = |k: Key| crate::scope::in_database(scope.database, k);
        let mut generations =
            key::dependency_keys::<Pg>(analysis, &rendered.binds, narrowing, Some(scope));
        for g in &mut generations {
            *g = in_database(*g);
        }
        generations.sort_unstable();
        let entry = in_database(key::entry_key(
            &self.entry_context(type_name::<U>(), narrowing),
            rendered.template.sql_hash,
            &rendered.binds,
            &generations,
        ));
        (entry, generations)
    }

    /// What the cache does with this query for results of type `U` on
    /// `conn`: like [`explain`](Self::explain), with the tables named as the
    /// connection resolves them (schema and search path), only the columns
    /// whose values compare by bytes keyed by value (a `CHAR(n)` column or
    /// one with a nondeterministic collation depends on its whole table),
    /// and the entry key a read on this connection uses.
    ///
    /// ```no_run
    /// use cachebot::prelude::*;
    /// use cachebot::Dependency;
    /// use diesel::prelude::*;
    /// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
    ///
    /// # fn run(conn: &mut PgConnection) -> QueryResult<()> {
    /// let cache = Cache::in_process();
    /// let q = photos::table.select(photos::id).filter(photos::user_id.eq(7));
    /// let explain = q.cache(&cache).explain_on::<_, i32>(conn)?;
    /// // With `search_path = public`:
    /// assert!(explain.dependencies.contains(&Dependency::Rows("public.photos".into())) ||
    ///         explain.dependencies.iter().any(|d| matches!(d, Dependency::Value { .. })));
    /// # Ok(()) }
    /// ```
    pub fn explain_on<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Explain>
    where
        Conn: LoadConnection<Backend = Pg>,
        Q: QueryFragment<Pg> + QueryId,
        U: 'static,
    {
        let mut explain = self.explain::<Pg, U>()?;
        let rendered = render::<Pg, Q>(&self.query)?;
        let Extracted::Cacheable(analysis) = &rendered.template.extracted else {
            return Ok(explain);
        };
        let core = &self.cache.core;
        let scope = match scope_of(core, conn, &analysis.tables) {
            Ok(scope) => scope,
            Err(why) => {
                explain.uncacheable = Some(why.reason().into());
                explain.entry = None;
                return Ok(explain);
            }
        };
        let narrowing = self.narrowing()?;
        explain.dependencies =
            key::dependencies::<Pg>(analysis, &rendered.binds, narrowing, Some(&scope));
        let (entry, generations) = self.keys::<U>(analysis, &rendered, narrowing, &scope);
        explain.generations = generations;
        explain.entry = explain.entry.map(|_| entry);
        for t in &analysis.tables {
            match scope.resolve(&t.table) {
                None => {
                    explain.uncacheable = Some("reads a table the catalog does not know".into())
                }
                Some(r) if r.temporary => {
                    explain.uncacheable = Some("reads a temporary table".into())
                }
                Some(r) if core.never_caches(&t.table, &r.name) => {
                    explain.uncacheable = Some("reads a table on the never-cache list".into())
                }
                Some(_) => {}
            }
        }
        if explain.uncacheable.is_some() {
            explain.entry = None;
        }
        Ok(explain)
    }
}

/// Loading a [`Cached`] query: the same calls as Diesel's `RunQueryDsl`
/// (`load`, `get_result`, `get_results`, `first`), with the same turbofish
/// (`.load::<Photo>(conn)`). In the prelude.
pub trait CachedRunQueryDsl<Conn: Connection>: Sized {
    /// Load every row, from the cache when it holds a current entry.
    fn load<'query, U>(self, conn: &mut Conn) -> QueryResult<Vec<U>>
    where
        Self: CachedLoad<'query, Conn, U>,
    {
        CachedLoad::cached_load(self, conn)
    }

    /// Same as [`load`](Self::load).
    fn get_results<'query, U>(self, conn: &mut Conn) -> QueryResult<Vec<U>>
    where
        Self: CachedLoad<'query, Conn, U>,
    {
        CachedLoad::cached_load(self, conn)
    }

    /// The first row, or `Err(NotFound)`; "not found" is cached too.
    fn get_result<'query, U>(self, conn: &mut Conn) -> QueryResult<U>
    where
        Self: CachedLoad<'query, Conn, U>,
    {
        CachedLoad::cached_load(self, conn)?
            .into_iter()
            .next()
            .ok_or(DieselError::NotFound)
    }

    /// The query with `LIMIT 1`, then [`get_result`](Self::get_result).
    fn first<'query, U>(self, conn: &mut Conn) -> QueryResult<U>
    where
        Self: CachedFirst<'query, Conn, U>,
    {
        CachedFirst::cached_first(self, conn)
    }
}

impl<Q, C: Codec, Conn: Connection> CachedRunQueryDsl<Conn> for Cached<'_, Q, C> {}

/// The loading machinery behind [`CachedRunQueryDsl`]: implemented for
/// every [`Cached`] query Diesel could load as `U` on `Conn`.
pub trait CachedLoad<'query, Conn, U> {
    #[doc(hidden)]
    fn cached_load(self, conn: &mut Conn) -> QueryResult<Vec<U>>;
}

impl<'query, Q, C, Conn, U> CachedLoad<'query, Conn, U> for Cached<'_, Q, C>
where
    C: Codec,
    Conn: LoadConnection<Backend = Pg>,
    Q: RunQueryDsl<Conn> + LoadQuery<'query, Conn, U> + QueryFragment<Pg> + QueryId,
    U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn cached_load(self, conn: &mut Conn) -> QueryResult<Vec<U>> {
        let plan = if in_transaction(conn) {
            Plan::Bypass("inside a transaction")
        } else {
            self.plan::<Conn, U>(conn)?
        };
        let query = self.query;
        self.cache.read_through(plan, || query.load(conn))
    }
}

/// `first` for [`Cached`] queries whose query takes a `LIMIT`.
pub trait CachedFirst<'query, Conn, U> {
    #[doc(hidden)]
    fn cached_first(self, conn: &mut Conn) -> QueryResult<U>;
}

impl<'c, 'query, Q, C, Conn, U> CachedFirst<'query, Conn, U> for Cached<'c, Q, C>
where
    C: Codec,
    Conn: Connection,
    Q: LimitDsl,
    Cached<'c, Q::Output, C>: CachedLoad<'query, Conn, U>,
{
    fn cached_first(self, conn: &mut Conn) -> QueryResult<U> {
        Cached {
            query: self.query.limit(1),
            cache: self.cache,
            narrowing: self.narrowing,
        }
        .cached_load(conn)?
        .into_iter()
        .next()
        .ok_or(DieselError::NotFound)
    }
}

fn uncacheable_reason(why: &Uncacheable) -> &'static str {
    match why {
        Uncacheable::NoTable => "the query reads no table",
        Uncacheable::Volatile(_) => "the query calls a volatile function",
        Uncacheable::NotARead => "the statement is not a plain read",
    }
}

/// Reads inside a transaction bypass the cache: the transaction's snapshot
/// may predate the generations, and its uncommitted rows must never be
/// stored. A connection whose transaction state is broken bypasses too, and
/// so does one whose instrumentation saw a transaction open that Diesel's
/// transaction manager did not (a raw `BEGIN` through `batch_execute`).
pub(crate) fn in_transaction<Conn: Connection>(conn: &mut Conn) -> bool {
    let status = Conn::TransactionManager::transaction_manager_status_mut(conn);
    !matches!(status.transaction_depth(), Ok(None))
        || crate::instrument::installed(conn).is_some_and(|i| i.in_transaction())
}

impl<C: Codec> Cache<C> {
    fn read_through<U, F>(&self, plan: Plan, load: F) -> QueryResult<Vec<U>>
    where
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> QueryResult<Vec<U>>,
    {
        let inner = &*self.core;
        let c = &inner.counters;
        let (entry_key, gen_keys) = match plan {
            Plan::Cache { entry, generations } => (entry, generations),
            Plan::Bypass(why) => {
                Counters::bump(&c.bypasses);
                tracing::trace!(reason = why, "cache bypass");
                return load();
            }
        };
        if inner.depends_on_undelivered(&gen_keys) {
            Counters::bump(&c.fallbacks);
            tracing::debug!("depends on an undelivered invalidation; reading the database");
            return load();
        }
        let store = inner.store.as_ref();
        // In process, a lookup costs no round trip: read the generations
        // alone, and copy the entry out only if the local tier can't serve.
        let local_first = inner.local.as_ref().filter(|_| store.is_in_process());
        let fetched = if let Some(local) = local_first {
            match self.serve_local::<U>(local, entry_key, &gen_keys) {
                Ok(rows) => {
                    Counters::bump(&c.hits);
                    return Ok(rows);
                }
                // The generations just read, and the entry alone.
                Err(Some(generations)) => store
                    .fetch_many(std::slice::from_ref(&entry_key), &[])
                    .map(|mut many| Fetched {
                        entry: many.entries.pop().flatten(),
                        generations,
                    }),
                Err(None) => store.fetch(entry_key, &gen_keys),
            }
        } else {
            store.fetch(entry_key, &gen_keys)
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                Counters::bump(&c.fallbacks);
                tracing::warn!(store = store.name(), error = %e, "cache read failed; reading the database");
                return load();
            }
        };
        let current: Option<Vec<Generation>> = fetched.generations.iter().copied().collect();
        if let Some(current) = &current {
            let bytes = fetched.entry.as_deref();
            let try_local = local_first.is_none();
            if let Some(rows) = self.serve::<U>(entry_key, bytes, current, try_local) {
                Counters::bump(&c.hits);
                return Ok(rows);
            }
        }
        Counters::bump(&c.misses);
        // The snapshot must be taken before the database is read.
        let snapshot = match current {
            Some(gens) => gens,
            None => match self.complete_generations(&gen_keys, &fetched.generations) {
                Ok(gens) => gens,
                Err(e) => {
                    Counters::bump(&c.fallbacks);
                    tracing::warn!(store = store.name(), error = %e, "could not read generations; not caching");
                    return load();
                }
            },
        };
        crate::hook!(ReadSnapshotTaken);
        let rows = load()?;
        crate::hook!(ReadBeforeStore);
        self.put(entry_key, snapshot, &rows);
        Ok(rows)
    }

    /// The rows the local tier holds for `key`, if they are current: the
    /// generations are read from the (in-process) store, nothing else.
    /// Otherwise the generations read, for the caller to check the entry
    /// against (`None` if the store failed: the caller's fetch reports it).
    fn serve_local<U: Clone + 'static>(
        &self,
        local: &Local,
        key: Key,
        gen_keys: &[Key],
    ) -> Result<Vec<U>, Option<Vec<Option<Generation>>>> {
        let Ok(fetched) = self.core.store.fetch_many(&[], gen_keys) else {
            return Err(None);
        };
        local
            .get::<U>(&key, fetched.generations.iter().copied())
            .ok_or(Some(fetched.generations))
    }

    /// The rows of a hit, if the entry is current under `current`: from the
    /// local tier when this process holds them decoded (unless the caller
    /// just looked), else decoded from the entry's bytes (and then kept
    /// locally). Corrupt or undecodable entries are counted and are misses.
    fn serve<U>(
        &self,
        key: Key,
        bytes: Option<&[u8]>,
        current: &[Generation],
        try_local: bool,
    ) -> Option<Vec<U>>
    where
        U: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let inner = &*self.core;
        if try_local {
            if let Some(rows) = inner
                .local
                .as_ref()
                .and_then(|l| l.get::<U>(&key, current.iter().copied().map(Some)))
            {
                return Some(rows);
            }
        }
        let c = &inner.counters;
        match entry::open(bytes?, current, entry::Verify::new(inner.seal, key)) {
            Ok(payload) => match self.codec.decode::<Vec<U>>(payload) {
                Ok(rows) => {
                    if let Some(local) = &inner.local {
                        local.insert(key, current, rows.clone(), payload.len());
                    }
                    Some(rows)
                }
                Err(e) => {
                    Counters::bump(&c.decode_errors);
                    tracing::warn!(error = %e, "cached entry does not decode; treating as a miss");
                    None
                }
            },
            Err(Reject::Corrupt) => {
                Counters::bump(&c.decode_errors);
                tracing::warn!("cached entry is corrupt; treating as a miss");
                None
            }
            Err(Reject::Forged) => {
                Counters::bump(&c.forged);
                tracing::warn!("cached entry fails its MAC (forged, or written without the secret); treating as a miss");
                None
            }
            Err(Reject::Stale) => None,
        }
    }

    /// Fill the generations `fetch` did not find, creating the missing ones.
    fn complete_generations(
        &self,
        keys: &[Key],
        found: &[Option<Generation>],
    ) -> Result<Vec<Generation>, crate::error::StoreError> {
        let missing: Vec<Key> = keys
            .iter()
            .zip(found)
            .filter(|(_, g)| g.is_none())
            .map(|(k, _)| *k)
            .collect();
        let mut created = self.core.store.ensure_generations(&missing)?.into_iter();
        found
            .iter()
            .map(|g| match g {
                Some(g) => Ok(*g),
                None => created.next().ok_or_else(|| {
                    crate::error::StoreError::new(
                        self.core.store.name(),
                        crate::error::StoreErrorKind::Protocol,
                        "fewer generations returned than requested",
                    )
                }),
            })
            .collect()
    }

    fn put<U>(&self, key: Key, snapshot: Vec<Generation>, rows: &[U])
    where
        U: Serialize + Clone + Send + Sync + 'static,
    {
        let inner = &*self.core;
        // In process, the rows are kept decoded, once: encoding them would
        // cost more than the copy (and the first hit would decode them
        // again). They go to the local tier, weighed by an estimate of
        // their size in memory; only rows too large for it are encoded
        // into the store.
        if inner.store.is_in_process() && inner.write_behind.is_none() {
            if let Some(local) = &inner.local {
                let weight = crate::weigh::weigh(rows);
                if weight <= inner.store.max_value_size()
                    && local.insert(key, &snapshot, rows.to_vec(), weight)
                {
                    Counters::bump(&inner.counters.stores);
                    return;
                }
            }
        }
        // Elsewhere the local tier admits results on their first hit
        // (`serve`), not here: a result read once is not worth a clone and
        // an insert, and the local tier stays for the hot ones.
        if let Some(behind) = &inner.write_behind {
            // A copy of the rows goes to the thread, which encodes them:
            // the encode is most of a miss's own work.
            let codec = Arc::clone(&self.codec);
            let rows = rows.to_vec();
            let protect = entry::Protect::new(inner.seal, key, inner.ttl);
            let encode = Box::new(move || {
                entry::encode_with(&snapshot, protect, |out| codec.encode_into(&rows, out))
            });
            if !behind.put(key, inner.ttl, encode) {
                tracing::debug!("write-behind queue full; entry not stored");
            }
            return;
        }
        let protect = entry::Protect::new(inner.seal, key, inner.ttl);
        let encoded =
            entry::encode_with(&snapshot, protect, |out| self.codec.encode_into(rows, out));
        crate::behind::store_entry(
            inner.store.as_ref(),
            &inner.counters,
            key,
            inner.ttl,
            encoded,
        );
    }
}

impl<C: Codec> Cache<C> {
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
    pub fn get_many<M, Id, Q, F, L, I>(
        &self,
        conn: &mut diesel::PgConnection,
        ids: &[Id],
        find: F,
        load_missing: L,
        id_of: I,
    ) -> QueryResult<Vec<M>>
    where
        M: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Id: PartialEq + Clone,
        F: Fn(&Id) -> Q,
        Q: QueryFragment<Pg> + QueryId,
        L: FnOnce(&mut diesel::PgConnection, &[Id]) -> QueryResult<Vec<M>>,
        I: Fn(&M) -> Id,
    {
        let c = &self.core.counters;
        let in_order = |rows: Vec<M>| -> Vec<M> {
            let mut rows: Vec<Option<M>> = rows.into_iter().map(Some).collect();
            ids.iter()
                .filter_map(|id| {
                    rows.iter_mut()
                        .find(|r| r.as_ref().is_some_and(|r| id_of(r) == *id))?
                        .take()
                })
                .collect()
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Plan every id; any that cannot be cached sends the batch to the database.
        let mut plans = Vec::with_capacity(ids.len());
        if !in_transaction(conn) {
            for id in ids {
                let cached = Cached {
                    query: find(id),
                    cache: self,
                    narrowing: Ok(None),
                };
                match cached.plan::<_, M>(conn)? {
                    Plan::Cache { entry, generations } => plans.push((entry, generations)),
                    Plan::Bypass(_) => break,
                }
            }
        }
        if plans.len() != ids.len() {
            Counters::add(&c.bypasses, ids.len() as u64);
            return load_missing(conn, ids).map(in_order);
        }
        if plans
            .iter()
            .any(|(_, gens)| self.core.depends_on_undelivered(gens))
        {
            Counters::add(&c.fallbacks, ids.len() as u64);
            return load_missing(conn, ids).map(in_order);
        }
        // One round trip: every entry and the union of their generations.
        let mut union: Vec<Key> = plans.iter().flat_map(|(_, g)| g.iter().copied()).collect();
        union.sort();
        union.dedup();
        let entries: Vec<Key> = plans.iter().map(|(e, _)| *e).collect();
        let store = self.core.store.as_ref();
        let fetched = match store.fetch_many(&entries, &union) {
            Ok(f) => f,
            Err(e) => {
                Counters::add(&c.fallbacks, ids.len() as u64);
                tracing::warn!(store = store.name(), error = %e, "cache read failed; reading the database");
                return load_missing(conn, ids).map(in_order);
            }
        };
        let position = |k: &Key| union.binary_search(k).ok();
        let current_of = |gens: &[Key], values: &[Option<Generation>]| -> Option<Vec<Generation>> {
            gens.iter()
                .map(|k| position(k).and_then(|i| values.get(i).copied().flatten()))
                .collect()
        };
        let mut found: Vec<Option<Vec<M>>> = Vec::with_capacity(ids.len());
        for ((entry_key, gens), bytes) in plans.iter().zip(&fetched.entries) {
            let hit = current_of(gens, &fetched.generations)
                .and_then(|current| self.serve::<M>(*entry_key, bytes.as_deref(), &current, true));
            Counters::bump(if hit.is_some() { &c.hits } else { &c.misses });
            found.push(hit);
        }
        let missing: Vec<Id> = ids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().flatten().collect());
        }
        // Snapshot the generations of the misses before the database read.
        let absent: Vec<Key> = union
            .iter()
            .zip(&fetched.generations)
            .filter(|(_, g)| g.is_none())
            .map(|(k, _)| *k)
            .collect();
        let mut values = fetched.generations.clone();
        match store.ensure_generations(&absent) {
            Ok(created) if created.len() == absent.len() => {
                for (k, g) in absent.iter().zip(created) {
                    if let Some(i) = position(k) {
                        values[i] = Some(g);
                    }
                }
            }
            Ok(_) | Err(_) => {
                Counters::add(&c.fallbacks, missing.len() as u64);
                tracing::warn!(
                    store = store.name(),
                    "could not read generations; not caching"
                );
                values.clear();
            }
        }
        let mut loaded: Vec<Option<M>> = load_missing(conn, &missing)?
            .into_iter()
            .map(Some)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for ((id, (entry_key, gens)), hit) in ids.iter().zip(&plans).zip(found) {
            let rows = match hit {
                Some(rows) => rows,
                None => {
                    let rows: Vec<M> = loaded
                        .iter_mut()
                        .filter(|r| r.as_ref().is_some_and(|r| id_of(r) == *id))
                        .filter_map(Option::take)
                        .collect();
                    if let Some(snapshot) = current_of(gens, &values) {
                        self.put(*entry_key, snapshot, &rows);
                    }
                    rows
                }
            };
            out.extend(rows);
        }
        Ok(out)
    }
}
