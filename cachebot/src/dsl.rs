//! The Diesel-facing read API: `query.cache(&cache).load(conn)`.
//!
//! [`CacheDsl`] adds `.cache(..)` to every query; [`Cached`] carries the
//! query, the cache and the narrowing, and loads like a Diesel query
//! through [`CachedRunQueryDsl`]. The work happens in the read path
//! (`read`).

use diesel::connection::{Connection, LoadConnection};

use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AsQuery, Query as DieselQuery, QueryFragment, QueryId};
use diesel::query_dsl::methods::LimitDsl;
use diesel::query_dsl::CompatibleType;
use diesel::query_dsl::LoadQuery;
use diesel::result::Error as DieselError;
use diesel::{QueryResult, RunQueryDsl};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::CacheBackend;
use crate::cache::Cache;
use crate::codec::Codec;
use crate::conn::DbConn;
use crate::invalidate::instrument::in_transaction;
use crate::read::io::Blocking;
use crate::read::plan::{bad_narrowing, narrowing_of, Query};
use crate::read::{Explain, Loader, Once, Plan};
use crate::util::ready::run_ready;

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

impl<Q, C: Codec> std::fmt::Debug for Cached<'_, Q, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("query", &std::any::type_name::<Q>())
            .field("cache", self.cache)
            .field("narrowing", &self.narrowing)
            .finish()
    }
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
    pub fn keyed_on<K: QueryFragment<diesel::pg::Pg>>(mut self, columns: K) -> Self {
        self.narrowing = narrowing_of(&columns);
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
        self.query()?.explain::<DB, U>()
    }

    /// The read path's view of this query.
    fn query(&self) -> QueryResult<Query<'_, Q>> {
        let narrowing = match &self.narrowing {
            Ok(n) => n.as_deref(),
            Err(sql) => return Err(bad_narrowing(sql)),
        };
        Ok(Query {
            reader: &self.cache.reader,
            codec: C::NAME,
            query: &self.query,
            narrowing,
        })
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
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        run_ready(self.explain_on_db::<Conn, U>(conn))
    }

    /// [`explain_on`](Self::explain_on) on any connection the cache reads.
    pub(crate) async fn explain_on_db<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Explain>
    where
        Conn: DbConn,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        self.query()?.explain_on::<Conn, U>(conn).await
    }

    /// What a read of this query on `conn` does: bypass inside a
    /// transaction, otherwise the plan (see `read::plan`).
    pub(crate) async fn plan_on<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Plan>
    where
        Conn: DbConn,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        if in_transaction(conn) {
            return Ok(Plan::Bypass("inside a transaction"));
        }
        self.query()?.plan::<Conn, U>(conn).await
    }

    /// The cache this query reads through.
    #[cfg(feature = "async")]
    pub(crate) fn cache(&self) -> &'c Cache<C> {
        self.cache
    }

    /// The query, for the database read.
    #[cfg(feature = "async")]
    pub(crate) fn into_query(self) -> Q {
        self.query
    }

    /// The same read of another query (`first`'s `LIMIT 1`).
    #[cfg(feature = "async")]
    pub(crate) fn map_query<Q2>(self, f: impl FnOnce(Q) -> Q2) -> Cached<'c, Q2, C> {
        Cached {
            query: f(self.query),
            cache: self.cache,
            narrowing: self.narrowing,
        }
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
    Conn: LoadConnection + 'static,
    Conn::Backend: CacheBackend,
    Q: RunQueryDsl<Conn> + LoadQuery<'query, Conn, U> + QueryFragment<Conn::Backend> + QueryId,
    U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    Q: DieselQuery,
    Q::SqlType: CompatibleType<U, Conn::Backend>,
    Conn::Backend: QueryMetadata<Q::SqlType>,
    U: FromSqlRow<<Q::SqlType as CompatibleType<U, Conn::Backend>>::SqlType, Conn::Backend>,
    <Q::SqlType as CompatibleType<U, Conn::Backend>>::SqlType: 'static,
{
    fn cached_load(self, conn: &mut Conn) -> QueryResult<Vec<U>> {
        let plan = run_ready(self.plan_on::<Conn, U>(conn))?;
        let cache = self.cache;
        let reader = &cache.reader;
        let io = Blocking(reader.store.as_ref());
        let loader = Rerun {
            conn,
            query: self.query,
        };
        run_ready(reader.read_through(&io, &cache.codec, plan, loader))
    }
}

impl<Q, C: Codec> Cached<'_, Q, C> {
    /// [`CachedLoad::cached_load`] with Diesel's own `load`, run once, for
    /// the crate's generic callers (the model's gets, whose queries are
    /// pinned by key: they never need a second load).
    pub(crate) fn load_once<'query, Conn, U>(self, conn: &mut Conn) -> QueryResult<Vec<U>>
    where
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: RunQueryDsl<Conn> + LoadQuery<'query, Conn, U> + QueryFragment<Conn::Backend> + QueryId,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let plan = run_ready(self.plan_on::<Conn, U>(conn))?;
        let cache = self.cache;
        let reader = &cache.reader;
        let io = Blocking(reader.store.as_ref());
        let query = self.query;
        let loader = Once::new(|| std::future::ready(query.load(conn)));
        run_ready(reader.read_through(&io, &cache.codec, plan, loader))
    }
}

/// Loads a query as many times as the read path asks: what Diesel's
/// `load` does (the rows of `conn.load(query)`, each built as `U`), on a
/// borrowed query.
struct Rerun<'a, Conn, Q> {
    conn: &'a mut Conn,
    query: Q,
}

impl<Conn, Q, U> Loader<U> for Rerun<'_, Conn, Q>
where
    Conn: LoadConnection,
    Q: DieselQuery + QueryFragment<Conn::Backend> + QueryId,
    Q::SqlType: CompatibleType<U, Conn::Backend>,
    Conn::Backend: QueryMetadata<Q::SqlType> + 'static,
    U: FromSqlRow<<Q::SqlType as CompatibleType<U, Conn::Backend>>::SqlType, Conn::Backend>
        + 'static,
    <Q::SqlType as CompatibleType<U, Conn::Backend>>::SqlType: 'static,
{
    type Fut = std::future::Ready<QueryResult<Vec<U>>>;

    fn start(&mut self) -> Option<Self::Fut> {
        let rows = self.conn.load(&self.query).and_then(|cursor| {
            cursor
                .map(|row| U::build_from_row(&row?).map_err(DieselError::DeserializationError))
                .collect()
        });
        Some(std::future::ready(rows))
    }

    fn again(&self) -> bool {
        true
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
