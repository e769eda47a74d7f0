//! The write API on diesel-async connections: [`insert`], [`delete`],
//! [`update`] and [`insert_values`] on an
//! [`AsyncPgConnection`], awaited.
//!
//! The same statements, checks and invalidation as
//! [`cachebot::write`](crate::write): `INSERT`/`DELETE .. RETURNING`, the
//! one-statement update that returns old and new images (or, for a model
//! whose columns are not plain columns of one table, the locking read and
//! `UPDATE .. RETURNING` in one transaction), the same keys, and the same
//! errors (a connection inside a transaction must carry this cache's
//! instrumentation: [`Error::NotInstrumentedInTransaction`](crate::Error)
//! otherwise). Inside a transaction the bumps wait for the outermost
//! COMMIT; outside, they are sent (through the store's non-blocking side)
//! before the call returns.
//!
//! The model the rows are returned as must be named, as for the blocking
//! API: by the type of the result, or first in a turbofish.
//!
//! ```no_run
//! # use cachebot::aio::prelude::*;
//! # use diesel::{ExpressionMethods, QueryDsl, QueryResult};
//! # use diesel_async::AsyncPgConnection;
//! # diesel::table! { tags (id) { id -> Int4, name -> Text } }
//! # #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
//! #          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
//! # #[diesel(table_name = tags)]
//! # struct Tag { id: i32, name: String }
//! # async fn run(cache: &Cache, c: &mut AsyncPgConnection) -> QueryResult<()> {
//! use cachebot::aio::write;
//!
//! let new: Vec<Tag> = write::insert_values(cache, c, tags::name.eq("x")).await?;
//! let changed: Vec<Tag> =
//!     write::update(cache, c, tags::table.find(new[0].id), tags::name.eq("y")).await?;
//! write::delete::<Tag, _, _>(cache, c, tags::table.find(changed[0].id)).await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use diesel::expression::{Expression, SelectableExpression};
use diesel::pg::Pg;
use diesel::query_builder::{
    AsChangeset, AsQuery, DeleteStatement, InsertStatement, IntoUpdateTarget, Query, QueryFragment,
    ReturningClause, UpdateStatement,
};
use diesel::query_source::QuerySource;
use diesel::result::Error as DieselError;
use diesel::{QueryResult, Selectable, SelectableHelper, Table};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::cache::Cache;
use crate::codec::Codec;
use crate::conn::Async;
use crate::model::CacheModel;
use crate::write::statements::{CteUpdate, LockRows, PlainInsert};
use crate::write::{is_upsert, lock_rows, mark_own_write, Guard, UpdatePlan};

type Returning<M> = ReturningClause<diesel::dsl::AsSelect<M, Pg>>;

/// [`cachebot::write::insert`](crate::write::insert) on an async
/// connection: insert rows (any `diesel::insert_into(..).values(..)`
/// statement, with or without `ON CONFLICT`; an upsert also invalidates its
/// whole table) and invalidate what their new images can change. Returns
/// the inserted rows.
///
/// ```no_run
/// # use cachebot::aio::prelude::*;
/// # use diesel::{ExpressionMethods, QueryResult};
/// # use diesel_async::AsyncPgConnection;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
/// #          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # async fn run(cache: &Cache, c: &mut AsyncPgConnection) -> QueryResult<()> {
/// let statement = diesel::insert_into(tags::table).values(tags::name.eq("x"));
/// let rows: Vec<Tag> = cachebot::aio::write::insert(cache, c, statement).await?;
/// # Ok(()) }
/// ```
pub async fn insert<M, T, U, Op, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    statement: InsertStatement<T, U, Op>,
) -> QueryResult<Vec<M>>
where
    M: CanInsert<InsertStatement<T, U, Op>>,
    C: Codec,
    T: Table + QuerySource,
{
    M::insert_rows(cache, conn, statement).await
}

/// What [`insert`] needs of the model `M` to run `S` (an insert statement)
/// on an async connection and return its rows as `M`: implemented for
/// every such pair.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::aio::write::insert` of `{S}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the statement's table"
)]
pub trait CanInsert<S>: Sized {
    #[doc(hidden)]
    fn insert_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        statement: S,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send;
}

impl<M, T, U, Op> CanInsert<InsertStatement<T, U, Op>> for M
where
    M: CacheModel + Selectable<Pg> + Send,
    T: Table + QuerySource,
    InsertStatement<T, U, Op>: QueryFragment<Pg> + Send,
    InsertStatement<T, U, Op, Returning<M>>: Query + for<'r> LoadQuery<'r, AsyncPgConnection, M>,
{
    fn insert_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        statement: InsertStatement<T, U, Op>,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        insert_rows(cache, conn, statement)
    }
}

async fn insert_rows<M, T, U, Op, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    statement: InsertStatement<T, U, Op>,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg> + Send,
    C: Codec,
    T: Table + QuerySource,
    InsertStatement<T, U, Op>: QueryFragment<Pg> + Send,
    InsertStatement<T, U, Op, Returning<M>>: Query + for<'r> LoadQuery<'r, AsyncPgConnection, M>,
{
    let guard = Guard::check_on::<M, C, _>(cache, &mut Async(&mut *conn)).await?;
    let upsert = is_upsert(&statement);
    mark_own_write(&mut Async(&mut *conn));
    let rows: Vec<M> = statement
        .returning(M::as_returning())
        .get_results(&mut *conn)
        .await?;
    let keys = guard.inserted::<M, C>(cache, &rows, upsert);
    guard.invalidate_async(cache, &mut Async(conn), keys).await;
    Ok(rows)
}

/// [`cachebot::write::delete`](crate::write::delete) on an async
/// connection: delete the rows of `target` (a table, or a table with
/// `.filter(..)` or `.find(..)`) and invalidate what their old images can
/// change, including the tables its foreign keys cascade to. Returns the
/// deleted rows.
///
/// ```no_run
/// # use cachebot::aio::prelude::*;
/// # use diesel::{QueryDsl, QueryResult};
/// # use diesel_async::AsyncPgConnection;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
/// #          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # async fn run(cache: &Cache, c: &mut AsyncPgConnection) -> QueryResult<()> {
/// let gone: Vec<Tag> = cachebot::aio::write::delete(cache, c, tags::table.find(1)).await?;
/// # Ok(()) }
/// ```
pub async fn delete<M, T, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    target: T,
) -> QueryResult<Vec<M>>
where
    M: CanDelete<T>,
    C: Codec,
{
    M::delete_rows(cache, conn, target).await
}

/// What [`delete`] needs of the model `M` to delete the rows of target `T`
/// on an async connection and return them as `M`: implemented for every
/// such pair.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::aio::write::delete` of `{T}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the target's table"
)]
pub trait CanDelete<T>: Sized {
    #[doc(hidden)]
    fn delete_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send;
}

impl<M, T> CanDelete<T> for M
where
    M: CacheModel + Selectable<Pg> + Send,
    T: IntoUpdateTarget + Send,
    T::Table: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: SelectableExpression<T::Table>,
    DeleteStatement<T::Table, T::WhereClause, Returning<M>>:
        Query + for<'r> LoadQuery<'r, AsyncPgConnection, M>,
{
    fn delete_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        delete_rows(cache, conn, target)
    }
}

async fn delete_rows<M, T, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    target: T,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg> + Send,
    C: Codec,
    T: IntoUpdateTarget + Send,
    T::Table: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: SelectableExpression<T::Table>,
    DeleteStatement<T::Table, T::WhereClause, Returning<M>>:
        Query + for<'r> LoadQuery<'r, AsyncPgConnection, M>,
{
    let guard = Guard::check_on::<M, C, _>(cache, &mut Async(&mut *conn)).await?;
    mark_own_write(&mut Async(&mut *conn));
    let rows: Vec<M> = diesel::delete(target)
        .returning(M::as_returning())
        .get_results(&mut *conn)
        .await?;
    let keys = guard.deleted::<M, C>(cache, &rows);
    guard.invalidate_async(cache, &mut Async(conn), keys).await;
    Ok(rows)
}

/// [`cachebot::write::update`](crate::write::update) on an async
/// connection: update the rows of `target` with `changes` and invalidate
/// what their old and new images can change. Returns the updated rows (new
/// images). The rows are locked and read before the update, in the same
/// statement (or, for a model that does not read back as plain columns of
/// one table, in one transaction: a savepoint inside an open one).
///
/// ```no_run
/// # use cachebot::aio::prelude::*;
/// # use diesel::{ExpressionMethods, QueryDsl, QueryResult};
/// # use diesel_async::AsyncPgConnection;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
/// #          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # async fn run(cache: &Cache, c: &mut AsyncPgConnection) -> QueryResult<()> {
/// use cachebot::aio::write;
///
/// let rows: Vec<Tag> = write::update(cache, c, tags::table.find(1), tags::name.eq("x")).await?;
/// write::update::<Tag, _, _, _>(cache, c, tags::table.find(1), tags::name.eq("y")).await?;
/// # Ok(()) }
/// ```
pub async fn update<M, T, Ch, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    target: T,
    changes: Ch,
) -> QueryResult<Vec<M>>
where
    M: CanUpdate<T, Ch>,
    C: Codec,
{
    M::update_rows(cache, conn, target, changes).await
}

/// What [`update`] needs of the model `M` to update the rows of target `T`
/// with changes `Ch` on an async connection and return them as `M`:
/// implemented for every such triple.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::aio::write::update` of `{T}` with `{Ch}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the target's table"
)]
pub trait CanUpdate<T, Ch>: Sized {
    #[doc(hidden)]
    fn update_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
        changes: Ch,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send;
}

impl<M, T, Ch> CanUpdate<T, Ch> for M
where
    M: CacheModel + Selectable<Pg> + Send,
    T: IntoUpdateTarget + Clone + Send,
    T::Table: Table + QuerySource,
    <T::Table as QuerySource>::FromClause: QueryFragment<Pg>,
    T::WhereClause: QueryFragment<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg> + Expression,
    for<'r> LockRows<M, T::Table, T::WhereClause>: LoadQuery<'r, AsyncPgConnection, M>,
    Ch: AsChangeset<Target = T::Table> + Send,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset>: AsQuery,
    for<'r> UpdateStatement<T::Table, T::WhereClause, Ch::Changeset, Returning<M>>:
        Query + LoadQuery<'r, AsyncPgConnection, M>,
    <T::Table as Table>::PrimaryKey: QueryFragment<Pg>,
    Ch::Changeset: QueryFragment<Pg>,
    CteUpdate<M, T::Table, T::WhereClause, Ch::Changeset>:
        for<'r> LoadQuery<'r, AsyncPgConnection, (M, M)>,
    UpdatePlan<M, T, Ch>: Send,
{
    fn update_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
        changes: Ch,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        update_rows(cache, conn, target, changes)
    }
}

async fn update_rows<M, T, Ch, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    target: T,
    changes: Ch,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg> + Send,
    C: Codec,
    T: IntoUpdateTarget + Clone + Send,
    T::Table: Table + QuerySource,
    <T::Table as QuerySource>::FromClause: QueryFragment<Pg>,
    T::WhereClause: QueryFragment<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg> + Expression,
    for<'r> LockRows<M, T::Table, T::WhereClause>: LoadQuery<'r, AsyncPgConnection, M>,
    Ch: AsChangeset<Target = T::Table> + Send,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset>: AsQuery,
    for<'r> UpdateStatement<T::Table, T::WhereClause, Ch::Changeset, Returning<M>>:
        Query + LoadQuery<'r, AsyncPgConnection, M>,
    <T::Table as Table>::PrimaryKey: QueryFragment<Pg>,
    Ch::Changeset: QueryFragment<Pg>,
    CteUpdate<M, T::Table, T::WhereClause, Ch::Changeset>:
        for<'r> LoadQuery<'r, AsyncPgConnection, (M, M)>,
    UpdatePlan<M, T, Ch>: Send,
{
    let guard = Guard::check_on::<M, C, _>(cache, &mut Async(&mut *conn)).await?;
    let (old, new, exact) = match UpdatePlan::<M, T, Ch>::of(&target, changes)? {
        UpdatePlan::Exact(statement) => {
            mark_own_write(&mut Async(&mut *conn));
            let pairs: Vec<(M, M)> = statement.load(&mut *conn).await?;
            let (old, new): (Vec<M>, Vec<M>) = pairs.into_iter().unzip();
            (old, new, true)
        }
        UpdatePlan::Locked(changes) => {
            let (old, new) = conn
                .transaction(async move |conn: &mut AsyncPgConnection| {
                    let old: Vec<M> = lock_rows::<M, T>(target.clone()).load(&mut *conn).await?;
                    mark_own_write(&mut Async(&mut *conn));
                    let new: Vec<M> = diesel::update(target)
                        .set(changes)
                        .returning(M::as_returning())
                        .get_results(&mut *conn)
                        .await?;
                    Ok::<_, DieselError>((old, new))
                })
                .await?;
            (old, new, false)
        }
    };
    let keys = guard.updated::<M, C>(cache, &old, &new, exact);
    guard.invalidate_async(cache, &mut Async(conn), keys).await;
    Ok(new)
}

/// Values that can be inserted into `M`'s table on an async connection,
/// with `RETURNING` `M`'s columns: what [`insert_values`] and
/// [`CachedModelAsync::insert`](crate::aio::CachedModelAsync::insert)
/// accept (any Diesel `Insertable` of the table: a struct, a `Vec` of
/// them, a tuple of `column.eq(value)`).
pub trait InsertValues<M>: Sized {
    #[doc(hidden)]
    fn insert<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send;
}

impl<M, V> InsertValues<M> for V
where
    M: CacheModel + Selectable<Pg> + Send,
    M::Table: Table + QuerySource,
    V: diesel::Insertable<M::Table>,
    InsertStatement<M::Table, V::Values>: QueryFragment<Pg> + Send,
    InsertStatement<M::Table, V::Values, PlainInsert<M::Table, V::Values>, Returning<M>>:
        Query + for<'r> LoadQuery<'r, AsyncPgConnection, M>,
{
    fn insert<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        insert_rows(
            cache,
            conn,
            diesel::insert_into(M::Table::default()).values(self),
        )
    }
}

/// [`cachebot::write::insert_values`](crate::write::insert_values) on an
/// async connection: insert `values` into `M`'s table; see [`insert`].
///
/// ```no_run
/// # use cachebot::aio::prelude::*;
/// # use diesel::{ExpressionMethods, QueryResult};
/// # use diesel_async::AsyncPgConnection;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Identifiable,
/// #          diesel::AsChangeset, serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # async fn run(cache: &Cache, c: &mut AsyncPgConnection) -> QueryResult<()> {
/// let rows: Vec<Tag> = cachebot::aio::write::insert_values(cache, c, tags::name.eq("x")).await?;
/// # Ok(()) }
/// ```
pub async fn insert_values<M, V, C>(
    cache: &Cache<C>,
    conn: &mut AsyncPgConnection,
    values: V,
) -> QueryResult<Vec<M>>
where
    M: CanInsertValues<V>,
    C: Codec,
{
    M::insert_values(cache, conn, values).await
}

/// What [`insert_values`] needs of the model `M` to insert `V` into its
/// table: implemented wherever `V:` [`InsertValues`]`<M>`.
#[diagnostic::on_unimplemented(
    message = "`{V}` cannot be inserted into the table of `{Self}` by `cachebot::aio::write::insert_values`",
    note = "the values must be `Insertable` into the model's table"
)]
pub trait CanInsertValues<V>: Sized {
    #[doc(hidden)]
    fn insert_values<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        values: V,
    ) -> impl Future<Output = QueryResult<Vec<Self>>> + Send;
}

impl<M, V: InsertValues<M>> CanInsertValues<V> for M {
    fn insert_values<C: Codec>(
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        values: V,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        values.insert(cache, conn)
    }
}

/// A changeset that can update the rows of target `T` of `M`'s table on an
/// async connection, with exact invalidation: implemented wherever `M:`
/// [`CanUpdate`]`<T, Self>` (the async counterpart of
/// [`cachebot::write::UpdateChanges`](crate::write::UpdateChanges)).
pub trait UpdateChanges<M, T>: Sized {
    #[doc(hidden)]
    fn update<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send;
}

impl<M, T, Ch> UpdateChanges<M, T> for Ch
where
    M: CanUpdate<T, Ch>,
{
    fn update<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut AsyncPgConnection,
        target: T,
    ) -> impl Future<Output = QueryResult<Vec<M>>> + Send {
        M::update_rows(cache, conn, target, self)
    }
}
