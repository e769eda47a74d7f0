//! Exact invalidation for writes: old and new images of every changed row.
//!
//! Diesel has no post-save signals, and its statements keep their parts
//! private, so the crate runs writes itself:
//!
//! - **insert**: `INSERT ... RETURNING` gives the new images;
//! - **delete**: `DELETE ... RETURNING` gives the old images;
//! - **update**: one statement, `WITH old AS (SELECT .. FROM t WHERE ..
//!   FOR UPDATE) UPDATE t SET .. FROM old WHERE t.pk = old.pk RETURNING
//!   old.*, t.*`: the rows are locked under the target's own `WHERE`, and
//!   exactly those rows are updated, so each old image is the committed
//!   value it replaced even under concurrent writers. (A model whose columns
//!   do not read back as plain columns of one table takes a two-statement
//!   path in one transaction: the same lock, then `UPDATE .. RETURNING`; a
//!   row updated without having been locked widens to its table.)
//!
//! Each changed row's old and new image bump the "content" generation of
//! every keyable column value, every declared composite key (and a
//! composite primary key) and the table's "rows" generation: whatever
//! changed in the row, a read keyed on one of its values is invalidated.
//!
//! Some reads need less (a count of a user's photos does not change when a
//! photo is retitled), so writes also bump finer generations, computed from
//! the old and new image of each row paired by primary key
//! (`change_keys`):
//!
//! - an inserted or deleted row: the *membership* generation of each of
//!   its keyable values and composite keys (it entered or left them); an
//!   insert (an upsert's rows too) also bumps the table's *inserts*
//!   generation;
//! - an updated row: for each column whose value changed (its bytes
//!   differ), the column's *change* generation, keyable or not, and the
//!   membership generations of its old and new value if keyable; for each
//!   composite key with a changed column, the membership generations of its
//!   old and new combination. Unchanged columns bump none of these.
//!
//! A primary-key change is a delete and an insert. An image that cannot be
//! compared column by column (a hand-written `row_keys` that records no
//! values, a value that does not encode) widens to the table's "all" key;
//! nothing is ever narrower than the content bumps above.
//!
//! Inside a transaction the bumps wait for the outermost COMMIT (the
//! connection must carry [`Cache::instrument`]'s instrumentation); outside,
//! they happen before the call returns.

use std::sync::Arc;

use diesel::connection::Connection;
use diesel::expression::{Expression, SelectableExpression};
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{
    AsChangeset, InsertStatement, IntoUpdateTarget, QueryFragment, ReturningClause,
    UpdateStatement, UpdateTarget,
};
use diesel::query_dsl::LoadQuery;
use diesel::query_source::QuerySource;
use diesel::result::Error as DieselError;
use diesel::{QueryResult, RunQueryDsl, Selectable, SelectableHelper, Table};

use crate::backend::BackendImpl;
use crate::cache::Cache;
use crate::codec::Codec;
use crate::conn::DbConn;
use crate::invalidate::instrument::{in_transaction, installed, scope_of, NoScope};
use crate::invalidate::Cascade;
use crate::key;
use crate::model::CacheModel;
use crate::scope::{Scope, Tables};
use crate::store::Key;
use statements::{CteShape, CteUpdate, LockRows, PlainInsert};

pub(crate) mod change_keys;
pub(crate) mod statements;

type Returning<M> = ReturningClause<diesel::dsl::AsSelect<M, Pg>>;

/// Insert rows (any `diesel::insert_into(..).values(..)` statement, with or
/// without `ON CONFLICT`) and invalidate what their new images can change.
/// Returns the inserted (or upserted) rows.
///
/// An upsert's `DO UPDATE` replaces rows whose old images the statement
/// cannot return, so upserts also invalidate the whole table.
///
/// The model `M` the rows are returned as must be named: by the type of
/// the result, or first in a turbofish. Nothing else determines it (a
/// table may have several models), and without it the call does not
/// compile (`error[E0283]: type annotations needed`).
///
/// ```no_run
/// # use cachebot::prelude::*;
/// # use diesel::prelude::*;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
/// #          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # fn run(cache: &Cache, c: &mut PgConnection) -> QueryResult<()> {
/// use cachebot::write;
///
/// let statement = diesel::insert_into(tags::table).values(tags::name.eq("x"));
/// let rows: Vec<Tag> = write::insert(cache, c, statement)?;
/// // or: write::insert::<Tag, _, _, _, _>(cache, c, statement)?;
/// # Ok(()) }
/// ```
pub fn insert<'q, M, T, U, Op, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    statement: InsertStatement<T, U, Op>,
) -> QueryResult<Vec<M>>
where
    M: CanInsert<'q, InsertStatement<T, U, Op>>,
    C: Codec,
    T: Table + QuerySource,
{
    M::insert_rows(cache, conn, statement)
}

/// What [`insert`] needs of the model `M` to run `S` (an insert statement)
/// and return its rows as `M`: implemented for every such pair. Naming it
/// as the bound on `M` lets a call that does not name `M` fail at once
/// with "type annotations needed".
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::write::insert` of `{S}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the statement's table"
)]
pub trait CanInsert<'q, S>: Sized {
    #[doc(hidden)]
    fn insert_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        statement: S,
    ) -> QueryResult<Vec<Self>>;
}

impl<'q, M, T, U, Op> CanInsert<'q, InsertStatement<T, U, Op>> for M
where
    M: CacheModel + Selectable<Pg>,
    T: Table + QuerySource,
    InsertStatement<T, U, Op>: QueryFragment<Pg>,
    InsertStatement<T, U, Op, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M> + QueryFragment<Pg>,
{
    fn insert_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        statement: InsertStatement<T, U, Op>,
    ) -> QueryResult<Vec<M>> {
        insert_rows(cache, conn, statement)
    }
}

fn insert_rows<'q, M, T, U, Op, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    statement: InsertStatement<T, U, Op>,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg>,
    C: Codec,
    T: Table + QuerySource,
    InsertStatement<T, U, Op>: QueryFragment<Pg>,
    InsertStatement<T, U, Op, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M> + QueryFragment<Pg>,
{
    let guard = Guard::check::<M, C>(cache, conn)?;
    let upsert = is_upsert(&statement);
    mark_own_write(conn);
    let rows: Vec<M> = statement.returning(M::as_returning()).get_results(conn)?;
    let keys = guard.inserted::<M, C>(cache, &rows, upsert);
    guard.invalidate(cache, conn, keys);
    Ok(rows)
}

/// Delete the rows of `target` (a table, or a table with `.filter(..)` or
/// `.find(..)`) and invalidate what their old images can change, including
/// the tables its foreign keys cascade to. Returns the deleted rows.
///
/// The model `M` the rows are returned as must be named (see [`insert`]).
///
/// ```no_run
/// # use cachebot::prelude::*;
/// # use diesel::prelude::*;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
/// #          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # fn run(cache: &Cache, c: &mut PgConnection) -> QueryResult<()> {
/// use cachebot::write;
///
/// let gone: Vec<Tag> = write::delete(cache, c, tags::table.find(1))?;
/// write::delete::<Tag, _, _>(cache, c, tags::table.filter(tags::name.eq("x")))?;
/// # Ok(()) }
/// ```
pub fn delete<'q, M, T, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    target: T,
) -> QueryResult<Vec<M>>
where
    M: CanDelete<'q, T>,
    C: Codec,
{
    M::delete_rows(cache, conn, target)
}

/// What [`delete`] needs of the model `M` to delete the rows of target `T`
/// and return them as `M`: implemented for every such pair (see
/// [`CanInsert`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::write::delete` of `{T}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the target's table"
)]
pub trait CanDelete<'q, T>: Sized {
    #[doc(hidden)]
    fn delete_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
    ) -> QueryResult<Vec<Self>>;
}

impl<'q, M, T> CanDelete<'q, T> for M
where
    M: CacheModel + Selectable<Pg>,
    T: IntoUpdateTarget,
    T::Table: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: SelectableExpression<T::Table>,
    diesel::query_builder::DeleteStatement<T::Table, T::WhereClause, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M>,
{
    fn delete_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
    ) -> QueryResult<Vec<M>> {
        delete_rows(cache, conn, target)
    }
}

fn delete_rows<'q, M, T, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    target: T,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg>,
    C: Codec,
    T: IntoUpdateTarget,
    T::Table: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: SelectableExpression<T::Table>,
    diesel::query_builder::DeleteStatement<T::Table, T::WhereClause, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M>,
{
    let guard = Guard::check::<M, C>(cache, conn)?;
    mark_own_write(conn);
    let rows: Vec<M> = diesel::delete(target)
        .returning(M::as_returning())
        .get_results(conn)?;
    let keys = guard.deleted::<M, C>(cache, &rows);
    guard.invalidate(cache, conn, keys);
    Ok(rows)
}

/// Update the rows of `target` with `changes` and invalidate what their old
/// and new images can change. Returns the updated rows (new images).
///
/// The rows are locked and read before the update, in one transaction (a
/// savepoint inside an open transaction).
///
/// The model `M` the rows are returned as must be named (see [`insert`]):
///
/// ```no_run
/// # use cachebot::prelude::*;
/// # use diesel::prelude::*;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
/// #          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # fn run(cache: &Cache, c: &mut PgConnection) -> QueryResult<()> {
/// use cachebot::write;
///
/// let rows: Vec<Tag> = write::update(cache, c, tags::table.find(1), tags::name.eq("x"))?;
/// write::update::<Tag, _, _, _>(cache, c, tags::table.find(1), tags::name.eq("y"))?;
/// # Ok(()) }
/// ```
///
/// Without either, the call fails to compile, at once:
///
/// ```compile_fail,E0283
/// # use diesel::prelude::*;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # fn run(cache: &cachebot::Cache, c: &mut PgConnection) {
/// cachebot::write::update(cache, c, tags::table.find(1), tags::name.eq("x")).unwrap();
/// # }
/// ```
pub fn update<'q, M, T, Ch, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    target: T,
    changes: Ch,
) -> QueryResult<Vec<M>>
where
    M: CanUpdate<'q, T, Ch>,
    C: Codec,
{
    M::update_rows(cache, conn, target, changes)
}

/// What [`update`] needs of the model `M` to update the rows of target `T`
/// with changes `Ch` and return them as `M`: implemented for every such
/// triple (see [`CanInsert`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by `cachebot::write::update` of `{T}` with `{Ch}`",
    note = "the model must derive `CacheBot` and `Selectable`, and belong to the target's table"
)]
pub trait CanUpdate<'q, T, Ch>: Sized {
    #[doc(hidden)]
    fn update_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
        changes: Ch,
    ) -> QueryResult<Vec<Self>>;
}

impl<'q, M, T, Ch> CanUpdate<'q, T, Ch> for M
where
    M: CacheModel + Selectable<Pg>,
    T: IntoUpdateTarget + Clone,
    T::Table: Table + QuerySource,
    <T::Table as QuerySource>::FromClause: QueryFragment<Pg>,
    T::WhereClause: QueryFragment<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg> + Expression,
    LockRows<M, T::Table, T::WhereClause>: LoadQuery<'q, PgConnection, M>,
    Ch: AsChangeset<Target = T::Table>,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset>: diesel::query_builder::AsQuery,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M>,
    <T::Table as Table>::PrimaryKey: QueryFragment<Pg>,
    Ch::Changeset: QueryFragment<Pg>,
    CteUpdate<M, T::Table, T::WhereClause, Ch::Changeset>: LoadQuery<'q, PgConnection, (M, M)>,
{
    fn update_rows<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
        changes: Ch,
    ) -> QueryResult<Vec<M>> {
        update_rows(cache, conn, target, changes)
    }
}

fn update_rows<'q, M, T, Ch, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    target: T,
    changes: Ch,
) -> QueryResult<Vec<M>>
where
    M: CacheModel + Selectable<Pg>,
    C: Codec,
    T: IntoUpdateTarget + Clone,
    T::Table: Table + QuerySource,
    <T::Table as QuerySource>::FromClause: QueryFragment<Pg>,
    T::WhereClause: QueryFragment<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg> + Expression,
    LockRows<M, T::Table, T::WhereClause>: LoadQuery<'q, PgConnection, M>,
    Ch: AsChangeset<Target = T::Table>,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset>: diesel::query_builder::AsQuery,
    UpdateStatement<T::Table, T::WhereClause, Ch::Changeset, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M>,
    <T::Table as Table>::PrimaryKey: QueryFragment<Pg>,
    Ch::Changeset: QueryFragment<Pg>,
    CteUpdate<M, T::Table, T::WhereClause, Ch::Changeset>: LoadQuery<'q, PgConnection, (M, M)>,
{
    let guard = Guard::check::<M, C>(cache, conn)?;
    let (old, new, exact) = match UpdatePlan::<M, T, Ch>::of(&target, changes)? {
        UpdatePlan::Exact(statement) => {
            mark_own_write(conn);
            let pairs: Vec<(M, M)> = statement.load(conn)?;
            let (old, new): (Vec<M>, Vec<M>) = pairs.into_iter().unzip();
            (old, new, true)
        }
        UpdatePlan::Locked(changes) => {
            let (old, new) = conn.transaction(|conn| {
                let old: Vec<M> = lock_rows::<M, T>(target.clone()).load(conn)?;
                mark_own_write(conn);
                let new: Vec<M> = diesel::update(target)
                    .set(changes)
                    .returning(M::as_returning())
                    .get_results(conn)?;
                Ok::<_, DieselError>((old, new))
            })?;
            (old, new, false)
        }
    };
    let keys = guard.updated::<M, C>(cache, &old, &new, exact);
    guard.invalidate(cache, conn, keys);
    Ok(new)
}

/// Whether an insert statement has an `ON CONFLICT` clause (or cannot be
/// rendered: then it is treated as one, which only widens).
pub(crate) fn is_upsert<S: QueryFragment<Pg>>(statement: &S) -> bool {
    Pg::render(statement)
        .map(|s| s.contains(" ON CONFLICT "))
        .unwrap_or(true)
}

/// The locking read of an update's old images.
pub(crate) fn lock_rows<M, T>(target: T) -> LockRows<M, T::Table, T::WhereClause>
where
    M: Selectable<Pg>,
    T: IntoUpdateTarget,
    T::Table: QuerySource,
{
    let UpdateTarget {
        table,
        where_clause,
    } = target.into_update_target();
    LockRows {
        selection: M::as_select(),
        from: table.from_clause(),
        where_clause,
    }
}

/// How an update runs: one statement that returns old and new images of
/// exactly the rows it locked (when the model reads back as plain columns
/// of one table: always, for derived models), or the locking read then
/// `UPDATE .. RETURNING`, in one transaction.
pub(crate) enum UpdatePlan<M, T, Ch>
where
    M: Selectable<Pg>,
    T: IntoUpdateTarget,
    T::Table: QuerySource,
    Ch: AsChangeset<Target = T::Table>,
{
    /// `WITH old AS (SELECT .. FOR UPDATE) UPDATE .. FROM old .. RETURNING old, new`.
    Exact(CteUpdate<M, T::Table, T::WhereClause, Ch::Changeset>),
    /// The changes, for the two-statement path.
    Locked(Ch),
}

impl<M, T, Ch> UpdatePlan<M, T, Ch>
where
    M: Selectable<Pg>,
    T: IntoUpdateTarget + Clone,
    T::Table: Table + QuerySource,
    <T::Table as Table>::PrimaryKey: QueryFragment<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg>,
    Ch: AsChangeset<Target = T::Table>,
    Ch::Changeset: QueryFragment<Pg>,
{
    /// The plan for updating `target` with `changes`; an empty changeset
    /// is refused (as Diesel refuses it).
    pub(crate) fn of(target: &T, changes: Ch) -> QueryResult<Self> {
        let UpdateTarget {
            table,
            where_clause,
        } = target.clone().into_update_target();
        let Some(shape) = CteShape::of(&M::as_select(), &table.primary_key()) else {
            return Ok(UpdatePlan::Locked(changes));
        };
        let changeset = changes.as_changeset();
        if changeset.is_noop(&Pg)? {
            return Err(DieselError::QueryBuilderError(Box::new(
                diesel::result::EmptyChangeset,
            )));
        }
        Ok(UpdatePlan::Exact(CteUpdate {
            selection: M::as_select(),
            from: table.from_clause(),
            where_clause,
            changeset,
            shape,
        }))
    }
}

pub(crate) fn mark_own_write<Conn: DbConn>(conn: &mut Conn) {
    if let Some(i) = installed(conn) {
        i.expect_own_write();
    }
}

/// Checked before a write: where its invalidation will go, and what the
/// connection's table names mean.
pub(crate) struct Guard {
    /// `None` when the catalog could not be read: every key widens to
    /// everything.
    scope: Option<Arc<Scope>>,
}

/// Resolves no name: every write widens to everything.
struct Unknown;

impl Tables for Unknown {
    fn qualified(&self, _: &str) -> Option<Vec<String>> {
        None
    }
}

impl Guard {
    fn check<M: CacheModel, C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
    ) -> QueryResult<Guard> {
        crate::util::ready::run_ready(Guard::check_on::<M, C, _>(cache, conn))
    }

    /// Check `conn` before a write of `M`'s table.
    pub(crate) async fn check_on<M: CacheModel, C: Codec, Conn: DbConn>(
        cache: &Cache<C>,
        conn: &mut Conn,
    ) -> QueryResult<Guard> {
        let inv = &cache.reader.invalidator;
        let scope = match scope_of(inv, conn, &[M::table_name()]).await {
            Ok(scope) => Some(scope),
            Err(NoScope::Catalog) => None,
            Err(why) => return Err(why.into_error().into_diesel()),
        };
        // Deferring to COMMIT needs this cache's instrumentation (another
        // cache's would bump its own store).
        let ours = installed(conn).is_some_and(|i| i.serves(inv));
        if !ours && in_transaction(conn) {
            return Err(crate::Error::NotInstrumentedInTransaction.into_diesel());
        }
        Ok(Guard { scope })
    }

    fn tables(&self) -> &dyn Tables {
        match &self.scope {
            Some(scope) => &**scope,
            None => &Unknown,
        }
    }

    /// The keys the old and new images of the rows bump: their content
    /// keys, and the finer keys of their changes (see [`change_keys`]),
    /// old and new images paired by identity. Sorted, without duplicates.
    pub(crate) fn keys_of<M: CacheModel>(&self, old: &[M], new: &[M]) -> Vec<Key> {
        self.paired_keys(old, new).0
    }

    /// [`keys_of`](Self::keys_of), and whether some new image had no old
    /// one (an inserted row).
    fn paired_keys<M: CacheModel>(&self, old: &[M], new: &[M]) -> (Vec<Key>, bool) {
        change_keys::row_keys(self.tables(), old, new)
    }

    /// `key` of the model's table (everything when it does not resolve).
    pub(crate) fn table_keys<M: CacheModel>(&self, key: impl Fn(&str) -> Key) -> Vec<Key> {
        match self.tables().qualified(M::table_name()) {
            Some(tables) => tables.iter().map(|t| key(t)).collect(),
            None => vec![key::global_key()],
        }
    }

    /// The tables a cascade of `kind` reaches from the model's table.
    pub(crate) fn cascade_children<M: CacheModel, C: Codec>(
        &self,
        cache: &Cache<C>,
        kind: Cascade,
    ) -> Vec<Key> {
        match self.tables().qualified(M::table_name()) {
            Some(tables) => tables
                .iter()
                .flat_map(|t| cache.reader.invalidator.cascade_children(t, kind))
                .collect(),
            None => vec![key::global_key()],
        }
    }

    /// What an insert of `rows` bumps (the whole table too for an upsert,
    /// whose `DO UPDATE` replaced rows it cannot return: every returned row
    /// counts as inserted).
    pub(crate) fn inserted<M: CacheModel, C: Codec>(
        &self,
        cache: &Cache<C>,
        rows: &[M],
        upsert: bool,
    ) -> Vec<Key> {
        let mut keys = self.keys_of(&[], rows);
        if upsert {
            keys.extend(self.table_keys::<M>(key::table_key));
            keys.extend(self.table_keys::<M>(key::inserts_key));
        }
        if !rows.is_empty() {
            // Partitions and inheritance relatives, or everything for a table with rules.
            keys.extend(self.cascade_children::<M, C>(cache, Cascade::Insert));
        }
        keys
    }

    /// What a delete of `rows` bumps, with the tables it cascades to.
    pub(crate) fn deleted<M: CacheModel, C: Codec>(
        &self,
        cache: &Cache<C>,
        rows: &[M],
    ) -> Vec<Key> {
        let mut keys = self.keys_of(rows, &[]);
        if !rows.is_empty() {
            keys.extend(self.cascade_children::<M, C>(cache, Cascade::Delete));
        }
        keys
    }

    /// What an update bumps: old and new images, paired by identity (a
    /// primary-key change is a delete and an insert); with `exact == false`
    /// (the two-statement path) a new row that was not locked first (its
    /// old image is unknown) also widens to the table.
    pub(crate) fn updated<M: CacheModel, C: Codec>(
        &self,
        cache: &Cache<C>,
        old: &[M],
        new: &[M],
        exact: bool,
    ) -> Vec<Key> {
        let (mut keys, unpaired_new) = self.paired_keys(old, new);
        if !exact && unpaired_new {
            keys.extend(self.table_keys::<M>(key::table_key));
        }
        if !new.is_empty() {
            keys.extend(self.cascade_children::<M, C>(cache, Cascade::Update));
        }
        keys
    }

    /// [`invalidate`](Self::invalidate) on an async connection: the bump,
    /// when the connection's instrumentation does not take the keys, goes
    /// through the store's non-blocking side.
    #[cfg(feature = "async")]
    pub(crate) async fn invalidate_async<C: Codec, Conn: DbConn>(
        self,
        cache: &Cache<C>,
        conn: &mut Conn,
        keys: Vec<Key>,
    ) {
        if let Some(keys) = self.defer(cache, conn, keys) {
            // Errors are counted and traced by `bump_async`; the write itself succeeded.
            let _ = cache.reader.invalidator.bump_async(&keys).await;
        }
    }

    fn invalidate<C: Codec>(self, cache: &Cache<C>, conn: &mut PgConnection, keys: Vec<Key>) {
        if let Some(keys) = self.defer(cache, conn, keys) {
            // Errors are counted and traced by `bump`; the write itself succeeded.
            let _ = cache.reader.invalidator.bump(&keys);
        }
    }

    /// Hand `keys` to the connection's instrumentation, which bumps them
    /// now or at the outermost COMMIT; the keys back when the caller must
    /// bump them itself (the connection carries no instrumentation of this
    /// cache), `None` when there is nothing left to do.
    pub(crate) fn defer<C: Codec, Conn: DbConn>(
        self,
        cache: &Cache<C>,
        conn: &mut Conn,
        keys: Vec<Key>,
    ) -> Option<Vec<Key>> {
        crate::hook!(WriteBeforeInvalidate);
        if keys.is_empty() {
            return None;
        }
        let inv = &cache.reader.invalidator;
        match installed(conn).filter(|i| i.serves(inv)) {
            Some(i) => {
                i.invalidate(keys);
                None
            }
            None => Some(keys),
        }
    }
}

/// Values that can be inserted into `M`'s table with `RETURNING` `M`'s
/// columns: what [`insert_values`] and the derive's `insert` accept (any
/// Diesel `Insertable` of the table: a struct, a `Vec` of them, a tuple of
/// `column.eq(value)`).
pub trait InsertValues<'q, M>: Sized {
    #[doc(hidden)]
    fn insert<C: Codec>(self, cache: &Cache<C>, conn: &mut PgConnection) -> QueryResult<Vec<M>>;
}

impl<'q, M, V> InsertValues<'q, M> for V
where
    M: CacheModel + Selectable<Pg>,
    M::Table: Table + QuerySource,
    V: diesel::Insertable<M::Table>,
    InsertStatement<M::Table, V::Values>: QueryFragment<Pg>,
    InsertStatement<M::Table, V::Values, PlainInsert<M::Table, V::Values>, Returning<M>>:
        diesel::query_builder::Query + LoadQuery<'q, PgConnection, M> + QueryFragment<Pg>,
{
    fn insert<C: Codec>(self, cache: &Cache<C>, conn: &mut PgConnection) -> QueryResult<Vec<M>> {
        insert_rows(
            cache,
            conn,
            diesel::insert_into(M::Table::default()).values(self),
        )
    }
}

/// Insert `values` into `M`'s table; see [`insert`].
///
/// The model `M` must be named, as for [`insert`]:
///
/// ```no_run
/// # use cachebot::prelude::*;
/// # use diesel::prelude::*;
/// # diesel::table! { tags (id) { id -> Int4, name -> Text } }
/// # #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
/// #          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// # #[diesel(table_name = tags)]
/// # struct Tag { id: i32, name: String }
/// # fn run(cache: &Cache, c: &mut PgConnection) -> QueryResult<()> {
/// let rows: Vec<Tag> = cachebot::write::insert_values(cache, c, tags::name.eq("x"))?;
/// # Ok(()) }
/// ```
pub fn insert_values<'q, M, V, C>(
    cache: &Cache<C>,
    conn: &mut PgConnection,
    values: V,
) -> QueryResult<Vec<M>>
where
    M: CanInsertValues<'q, V>,
    C: Codec,
{
    M::insert_values(cache, conn, values)
}

/// What [`insert_values`] needs of the model `M` to insert `V` into its
/// table: implemented wherever `V:` [`InsertValues`]`<M>` (see
/// [`CanInsert`]).
#[diagnostic::on_unimplemented(
    message = "`{V}` cannot be inserted into the table of `{Self}` by `cachebot::write::insert_values`",
    note = "the values must be `Insertable` into the model's table"
)]
pub trait CanInsertValues<'q, V>: Sized {
    #[doc(hidden)]
    fn insert_values<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        values: V,
    ) -> QueryResult<Vec<Self>>;
}

impl<'q, M, V: InsertValues<'q, M>> CanInsertValues<'q, V> for M {
    fn insert_values<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        values: V,
    ) -> QueryResult<Vec<M>> {
        values.insert(cache, conn)
    }
}

/// A changeset that can update the rows of target `T` of `M`'s table with
/// exact invalidation: what the derive's `save` needs of `&Model`.
pub trait UpdateChanges<'q, M, T>: Sized {
    #[doc(hidden)]
    fn update<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
    ) -> QueryResult<Vec<M>>;
}

impl<'q, M, T, Ch> UpdateChanges<'q, M, T> for Ch
where
    M: CanUpdate<'q, T, Ch>,
{
    fn update<C: Codec>(
        self,
        cache: &Cache<C>,
        conn: &mut PgConnection,
        target: T,
    ) -> QueryResult<Vec<M>> {
        M::update_rows(cache, conn, target, self)
    }
}
