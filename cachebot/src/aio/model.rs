//! The cached gets and invalidating writes of a model on a diesel-async
//! connection: [`CachedModelAsync`].

use std::future::Future;

use diesel::result::Error as DieselError;
use diesel::QueryResult;
use diesel_async::methods::LoadQuery;
use diesel_async::AsyncPgConnection;

use super::write::{CanDelete, CanUpdate, InsertValues};
use crate::cache::Cache;
use crate::codec::Codec;
use crate::conn::Async;
use crate::model::cached::{caches_gets, count_bypass, in_order};
use crate::model::{CachedModel, DeclaredKey};
use crate::read::batch::Lookup;
use crate::read::io::{Blocking, StoreIo, Waiting};

/// [`CachedModel`]'s gets and writes on an
/// [`AsyncPgConnection`], awaited: implemented for every model deriving
/// `CacheBot`. In [`aio::prelude`](crate::aio::prelude) (which does not
/// bring the blocking [`CachedModel`] into scope, so the names are not
/// ambiguous).
///
/// The same guarantees as the blocking methods: `get` and `get_by` read
/// through the cache, `get_many` makes one store round trip for all ids
/// and one database query for the ids the cache does not hold, and
/// `insert`, `save` and `delete` invalidate exactly what they change (see
/// [`aio::write`](crate::aio::write)).
///
/// ```no_run
/// use cachebot::aio::prelude::*;
/// use diesel::{ExpressionMethods, QueryResult};
/// use diesel_async::AsyncPgConnection;
///
/// diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
///
/// #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
///          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// #[diesel(table_name = photos)]
/// #[cachebot(key(user_id, status))]
/// struct Photo { id: i32, user_id: i32, status: i32 }
///
/// # async fn run(cache: &Cache, conn: &mut AsyncPgConnection) -> QueryResult<()> {
/// let one: Option<Photo> = Photo::get(cache, conn, 7).await?;
/// let some: Vec<Photo> = Photo::get_many(cache, conn, &[7, 8, 9]).await?;
/// let drafts: Vec<Photo> =
///     Photo::get_by(cache, conn, (photos::user_id, photos::status), (3, 1)).await?;
/// let new: Vec<Photo> =
///     Photo::insert(cache, conn, (photos::user_id.eq(3), photos::status.eq(1))).await?;
/// let saved: Photo = new[0].save(cache, conn).await?;
/// let deleted: usize = saved.delete(cache, conn).await?;
/// # Ok(()) }
/// ```
pub trait CachedModelAsync: CachedModel {
    /// [`CachedModel::get`], awaited: the row whose primary key is `id`,
    /// or `None` (read through `cache` unless the model's or the cache's
    /// cached gets are off).
    fn get<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        id: Self::Id,
    ) -> impl Future<Output = QueryResult<Option<Self>>> + Send
    where
        Self::Find: Send + Sync + for<'q> LoadQuery<'q, AsyncPgConnection, Self>,
    {
        let query = Self::find(id);
        async move {
            let rows: Vec<Self> = if caches_gets::<Self, C>(cache) {
                super::CacheDsl::cache(query, cache).load(conn).await?
            } else {
                count_bypass(cache, 1);
                diesel_async::RunQueryDsl::load(query, conn).await?
            };
            Ok(rows.into_iter().next())
        }
    }

    /// [`CachedModel::get_many`], awaited: the rows whose primary keys are
    /// `ids`, in the order of `ids`, with one store round trip and one
    /// database query for the ids the cache does not hold (one per id for
    /// a composite primary key).
    fn get_many<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        ids: &[Self::Id],
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send
    where
        Self::Id: Send + Sync,
        Self::Find: Send + Sync,
        Self::ByPrimaryKeys: Send + for<'q> LoadQuery<'q, AsyncPgConnection, Self>,
    {
        async move {
            if !caches_gets::<Self, C>(cache) {
                count_bypass(cache, ids.len() as u64);
                let rows = load_by_primary_keys::<Self>(conn, ids).await?;
                return Ok(in_order(ids, rows));
            }
            let reader = &cache.reader;
            match reader.async_store() {
                Some(remote) => get_many_with(cache, &Waiting(remote), conn, ids).await,
                None => get_many_with(cache, &Blocking(reader.store.as_ref()), conn, ids).await,
            }
        }
    }

    /// [`CachedModel::get_by`], awaited: the rows whose declared key `key`
    /// has the values `values`, through `cache`.
    fn get_by<K, C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        key: K,
        values: K::Values,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send
    where
        K: DeclaredKey<Self>,
        K::Query: Send + Sync + for<'q> LoadQuery<'q, AsyncPgConnection, Self>,
    {
        let query = key.query(values);
        async move { super::CacheDsl::cache(query, cache).load(conn).await }
    }

    /// [`CachedModel::insert`], awaited: insert `values` into the model's
    /// table and return the inserted rows, invalidating what their values
    /// can change.
    fn insert<V, C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        values: V,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send
    where
        V: InsertValues<Self>,
    {
        values.insert(cache, conn)
    }

    /// [`CachedModel::save`], awaited: write this row's fields to its row
    /// (by primary key) and return the row as stored; `Err(NotFound)` if
    /// the row is gone. The changeset is a clone of the row (an owned
    /// statement, as diesel-async's transactions need).
    fn save<C: Codec>(
        &self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
    ) -> impl Future<Output = QueryResult<Self>> + Send
    where
        Self: CanUpdate<Self::Target, Self>,
    {
        let target = Self::target(self.primary_key());
        let update =
            <Self as CanUpdate<Self::Target, Self>>::update_rows(cache, conn, target, self.clone());
        async move {
            let rows = update.await?;
            rows.into_iter().next().ok_or(DieselError::NotFound)
        }
    }

    /// [`CachedModel::delete`], awaited: delete this row (by primary key)
    /// and return how many rows were deleted (0 or 1).
    fn delete<C: Codec>(
        &self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
    ) -> impl Future<Output = QueryResult<usize>> + Send
    where
        Self: CanDelete<Self::Target>,
    {
        let target = Self::target(self.primary_key());
        let delete = <Self as CanDelete<Self::Target>>::delete_rows(cache, conn, target);
        async move { Ok(delete.await?.len()) }
    }
}

impl<M: CachedModel> CachedModelAsync for M {}

/// The rows of `ids`, from the database: the queries of
/// [`CachedModel::by_primary_keys`].
async fn load_by_primary_keys<M>(conn: &mut AsyncPgConnection, ids: &[M::Id]) -> QueryResult<Vec<M>>
where
    M: CachedModel,
    M::ByPrimaryKeys: Send + for<'q> LoadQuery<'q, AsyncPgConnection, M>,
{
    let mut rows = Vec::with_capacity(ids.len());
    for query in M::by_primary_keys(ids) {
        rows.extend(diesel_async::RunQueryDsl::load::<M>(query, &mut *conn).await?);
    }
    Ok(rows)
}

/// The batch phases of `get_many` (as `Cache::get_many` runs them), with
/// the store's I/O through `io`.
async fn get_many_with<M, C, Io>(
    cache: &Cache<C>,
    io: &Io,
    conn: &mut AsyncPgConnection,
    ids: &[M::Id],
) -> QueryResult<Vec<M>>
where
    M: CachedModel,
    M::Id: Send + Sync,
    M::Find: Send + Sync,
    M::ByPrimaryKeys: Send + for<'q> LoadQuery<'q, AsyncPgConnection, M>,
    C: Codec,
    Io: StoreIo,
{
    let reader = &cache.reader;
    let find = |id: &M::Id| M::find(id.clone());
    let batch = {
        let mut db = Async(&mut *conn);
        reader
            .many_plan::<C, _, M, M::Id, M::Find, _>(&mut db, ids, &find)
            .await?
    };
    match reader
        .many_lookup::<C, M, M::Id, Io>(io, &cache.codec, batch, ids)
        .await
    {
        Lookup::Found(rows) => Ok(rows),
        Lookup::Load { missing, pending } => {
            let loaded = load_by_primary_keys::<M>(conn, &missing).await?;
            Ok(reader
                .many_fill(io, &cache.codec, ids, pending, loaded, M::primary_key)
                .await)
        }
    }
}
