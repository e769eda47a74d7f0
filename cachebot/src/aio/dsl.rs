//! Loading a cached query on a diesel-async connection:
//! `query.cache(&cache).load(&mut conn).await`.
//!
//! The same read as the blocking API's (`read::plan`, `Reader::read_through`),
//! run with the connection's catalog reads and the store's I/O awaited.
//!
//! Why a type of its own: diesel-async's `RunQueryDsl` is implemented for
//! every type, so a trait method named `load` would be ambiguous wherever it
//! is imported (in every diesel-async module). [`CachedAsync`]'s loading
//! methods are inherent, and inherent methods win.

use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::query_dsl::methods::LimitDsl;
use diesel::result::Error as DieselError;
use diesel::QueryResult;
use diesel_async::methods::LoadQuery;
use diesel_async::AsyncConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::CacheBackend;
use crate::cache::Cache;
use crate::codec::Codec;
use crate::conn::Async;
use crate::dsl::Cached;
use crate::read::io::{Blocking, Waiting};
use crate::read::Explain;

/// Adds [`cache`](CacheDsl::cache) to every Diesel query, for diesel-async
/// connections. In [`aio::prelude`](crate::aio::prelude), which replaces
/// the blocking prelude in async code.
///
/// ```no_run
/// use cachebot::aio::prelude::*;
/// use diesel::{ExpressionMethods, QueryDsl, QueryResult};
/// use diesel_async::{AsyncPgConnection, RunQueryDsl};
///
/// diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }
///
/// # async fn run(cache: &Cache, conn: &mut AsyncPgConnection) -> QueryResult<()> {
/// let ids: Vec<i32> = photos::table
///     .select(photos::id)
///     .filter(photos::user_id.eq(7))
///     .cache(cache)
///     .load(conn)
///     .await?;
/// // diesel-async's own `load`, uncached, in the same scope:
/// let all: Vec<i32> = photos::table.select(photos::id).load(conn).await?;
/// # Ok(()) }
/// ```
pub trait CacheDsl: AsQuery + Sized {
    /// Read this query through `cache`. Invalidation may key on any column
    /// the query filters on by equality; see [`CachedAsync::keyed_on`] to
    /// narrow.
    fn cache<C: Codec>(self, cache: &Cache<C>) -> CachedAsync<'_, Self::Query, C> {
        CachedAsync(crate::CacheDsl::cache(self, cache))
    }
}

impl<T: AsQuery> CacheDsl for T {}

/// A query that reads through a cache on a diesel-async connection. Load it
/// like a diesel-async query: `load`, `get_results`, `get_result`, `first`,
/// awaited.
#[must_use = "a cached query does nothing until it is loaded"]
#[derive(Debug)]
pub struct CachedAsync<'c, Q, C: Codec>(Cached<'c, Q, C>);

impl<'c, Q, C: Codec> CachedAsync<'c, Q, C> {
    /// Narrow invalidation to these columns; see [`Cached::keyed_on`].
    pub fn keyed_on<K: QueryFragment<diesel::pg::Pg>>(self, columns: K) -> Self {
        CachedAsync(self.0.keyed_on(columns))
    }

    /// What the cache would do with this query for results of type `U`;
    /// see [`Cached::explain`].
    pub fn explain<DB, U>(&self) -> QueryResult<Explain>
    where
        DB: CacheBackend,
        Q: QueryFragment<DB> + QueryId,
        U: 'static,
    {
        self.0.explain::<DB, U>()
    }

    /// What the cache does with this query for results of type `U` on
    /// `conn`; see [`Cached::explain_on`].
    pub async fn explain_on<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Explain>
    where
        Conn: AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        self.0.explain_on_db::<_, U>(&mut Async(conn)).await
    }

    /// Load every row, from the cache when it holds a current entry.
    pub async fn load<'a, Conn, U>(self, conn: &'a mut Conn) -> QueryResult<Vec<U>>
    where
        'c: 'a,
        Conn: AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: LoadQuery<'a, Conn, U> + QueryFragment<Conn::Backend> + QueryId + Send + 'a,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let cached = self.0;
        let plan = {
            let mut db = Async(&mut *conn);
            cached.plan_on::<Async<'_, Conn>, U>(&mut db).await?
        };
        let cache = cached.cache();
        let reader = &cache.reader;
        let query = cached.into_query();
        let load = crate::read::Once::new(move || diesel_async::RunQueryDsl::load(query, conn));
        match reader.async_store() {
            Some(remote) => {
                let io = Waiting(remote);
                reader.read_through(&io, &cache.codec, plan, load).await
            }
            None => {
                let io = Blocking(reader.store.as_ref());
                reader.read_through(&io, &cache.codec, plan, load).await
            }
        }
    }

    /// Same as [`load`](Self::load).
    pub async fn get_results<'a, Conn, U>(self, conn: &'a mut Conn) -> QueryResult<Vec<U>>
    where
        'c: 'a,
        Conn: AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: LoadQuery<'a, Conn, U> + QueryFragment<Conn::Backend> + QueryId + Send + 'a,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.load(conn).await
    }

    /// The first row, or `Err(NotFound)`; "not found" is cached too.
    pub async fn get_result<'a, Conn, U>(self, conn: &'a mut Conn) -> QueryResult<U>
    where
        'c: 'a,
        Conn: AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: LoadQuery<'a, Conn, U> + QueryFragment<Conn::Backend> + QueryId + Send + 'a,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        first_row(self.load(conn).await)
    }

    /// The query with `LIMIT 1`, then [`get_result`](Self::get_result).
    pub async fn first<'a, Conn, U>(self, conn: &'a mut Conn) -> QueryResult<U>
    where
        'c: 'a,
        Conn: AsyncConnection + 'static,
        Conn::Backend: CacheBackend,
        Q: LimitDsl,
        Q::Output: LoadQuery<'a, Conn, U> + QueryFragment<Conn::Backend> + QueryId + Send + 'a,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let limited = CachedAsync(self.0.map_query(|q| q.limit(1)));
        first_row(limited.load(conn).await)
    }
}

fn first_row<U>(rows: QueryResult<Vec<U>>) -> QueryResult<U> {
    rows?.into_iter().next().ok_or(DieselError::NotFound)
}
