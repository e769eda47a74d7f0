//! The cached gets and invalidating writes of a model: [`CachedModel`].
//!
//! `#[derive(CacheBot)]` implements the trait's few required items (the
//! primary key's type and value, and the queries that find rows by it); the
//! methods users call (`get`, `get_many`, `get_by`, `insert`, `save`,
//! `delete`) are provided here, once, for every model. They are trait
//! methods rather than generated inherent methods so that a model's own
//! inherent methods of the same name win: with `use cachebot::prelude::*;`
//! `Photo::get(&cache, conn, 7)` calls this trait's `get` unless `Photo`
//! defines a `get` of its own (then `<Photo as CachedModel>::get` still
//! reaches this one).

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::query_dsl::LoadQuery;
use diesel::result::Error as DieselError;
use diesel::{QueryResult, RunQueryDsl};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::CacheModel;
use crate::codec::Codec;
use crate::write::{CanDelete, InsertValues, UpdateChanges};
use crate::{Cache, CacheDsl};

/// Cached primary-key and composite-key gets, and writes that invalidate
/// exactly what they change, for a model deriving `CacheBot`.
///
/// Implemented by `#[derive(CacheBot)]`; in the prelude. The required items
/// describe the primary key and the queries that find rows by it; every
/// method a program calls is provided:
///
/// ```no_run
/// use cachebot::prelude::*;
/// use diesel::prelude::*;
///
/// diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
///
/// #[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset,
///          serde::Serialize, serde::Deserialize, cachebot::CacheBot)]
/// #[diesel(table_name = photos)]
/// #[cachebot(key(user_id, status))]
/// struct Photo { id: i32, user_id: i32, status: i32 }
///
/// # fn run(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
/// let one: Option<Photo> = Photo::get(cache, conn, 7)?;
/// let some: Vec<Photo> = Photo::get_many(cache, conn, &[7, 8, 9])?;
/// // A declared key: its columns (a tuple for several), then their values.
/// let drafts: Vec<Photo> =
///     Photo::get_by(cache, conn, (photos::user_id, photos::status), (3, 1))?;
/// let new: Vec<Photo> = Photo::insert(cache, conn, (photos::user_id.eq(3), photos::status.eq(1)))?;
/// let saved: Photo = new[0].save(cache, conn)?;
/// let deleted: usize = saved.delete(cache, conn)?;
/// # Ok(()) }
/// ```
pub trait CachedModel: CacheModel + Clone + Serialize + DeserializeOwned + Send + Sync {
    /// The primary key's type: the field's type, or a tuple of the fields'
    /// types (in key order) for a composite primary key.
    type Id: Clone + PartialEq + 'static;

    /// The query [`find`](Self::find) builds: the row with one primary key,
    /// selecting the model (`table.find(id).select(Self::as_select())`).
    type Find: Query
        + QueryFragment<Pg>
        + QueryId
        + RunQueryDsl<PgConnection>
        + LoadQuery<'static, PgConnection, Self>
        + 'static;

    /// The write target [`target`](Self::target) builds: the row with one
    /// primary key (`table.find(id)`), what `save` updates and `delete`
    /// deletes.
    type Target;

    /// This row's primary key.
    fn primary_key(&self) -> Self::Id;

    /// The query that loads the row whose primary key is `id`.
    fn find(id: Self::Id) -> Self::Find;

    /// The write target of the row whose primary key is `id`.
    fn target(id: Self::Id) -> Self::Target;

    /// The query type of [`by_primary_keys`](Self::by_primary_keys):
    /// `table.filter(pk.eq_any(ids)).select(Self::as_select())`, or
    /// [`Find`](Self::Find) for a composite primary key.
    type ByPrimaryKeys: Query
        + QueryFragment<Pg>
        + QueryId
        + RunQueryDsl<PgConnection>
        + LoadQuery<'static, PgConnection, Self>
        + 'static;

    /// The queries that load the rows whose primary keys are `ids`, in any
    /// order: one `= ANY` query, or one query per id for a composite
    /// primary key (which has no `= ANY`). What
    /// [`load_by_primary_keys`](Self::load_by_primary_keys) (and the async
    /// `get_many`) runs for the ids the cache does not hold.
    fn by_primary_keys(ids: &[Self::Id]) -> Vec<Self::ByPrimaryKeys>;

    /// Load the rows whose primary keys are `ids` from the database, in any
    /// order: the queries of [`by_primary_keys`](Self::by_primary_keys).
    fn load_by_primary_keys(conn: &mut PgConnection, ids: &[Self::Id]) -> QueryResult<Vec<Self>> {
        let mut rows = Vec::with_capacity(ids.len());
        for query in Self::by_primary_keys(ids) {
            rows.extend(RunQueryDsl::load::<Self>(query, conn)?);
        }
        Ok(rows)
    }

    /// Load the row whose primary key is `id`, or `None`.
    ///
    /// Reads through `cache` ("not found" is cached too) unless the model
    /// has `#[cachebot(cache_get = false)]` or the cache was built with
    /// `cache_gets(false)`; then it queries the database (counted as a
    /// bypass).
    fn get<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        id: Self::Id,
    ) -> QueryResult<Option<Self>> {
        let query = Self::find(id);
        let rows: Vec<Self> = if caches_gets::<Self, C>(cache) {
            CacheDsl::cache(query, cache).load_once(conn)?
        } else {
            count_bypass(cache, 1);
            RunQueryDsl::load(query, conn)?
        };
        Ok(rows.into_iter().next())
    }

    /// Load the rows whose primary keys are `ids`, in the order of `ids`
    /// (ids without a row are skipped; a repeated id yields its row once).
    ///
    /// Through the cache: one store round trip for all ids, and one
    /// database query for the ids the cache does not hold (one per id for a
    /// composite primary key); each id shares its entry with
    /// [`get`](Self::get). Without cached gets (`#[cachebot(cache_get =
    /// false)]`, `cache_gets(false)`) the rows come from the database
    /// directly.
    fn get_many<C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        ids: &[Self::Id],
    ) -> QueryResult<Vec<Self>> {
        if caches_gets::<Self, C>(cache) {
            return cache.get_many(
                conn,
                ids,
                |id: &Self::Id| Self::find(id.clone()),
                Self::load_by_primary_keys,
                Self::primary_key,
            );
        }
        count_bypass(cache, ids.len() as u64);
        let rows = Self::load_by_primary_keys(conn, ids)?;
        Ok(in_order(ids, rows))
    }

    /// Load the rows whose declared key `key` has the values `values` (SQL
    /// `=`: a `NULL` matches nothing), through `cache`.
    ///
    /// `key` names the columns of a `#[cachebot(key(..))]` declared on the
    /// model, in the declared order: the column alone for a one-column key,
    /// a tuple of columns otherwise; `values` has the fields' types (a tuple
    /// for several). Anything else does not compile. With the model
    /// registered on the cache (`Cache::builder().model::<Photo>()`), the
    /// result is keyed on the declared composite key, so only writes to rows
    /// with these values (before or after) invalidate it; without, on one
    /// of its columns (correct, but wider).
    ///
    /// For `#[cachebot(key(user_id, status))]`:
    /// `Photo::get_by(&cache, conn, (photos::user_id, photos::status), (7, 2))`.
    fn get_by<K, C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        key: K,
        values: K::Values,
    ) -> QueryResult<Vec<Self>>
    where
        K: DeclaredKey<Self>,
    {
        CacheDsl::cache(key.query(values), cache).load_once(conn)
    }

    /// Insert `values` into the model's table (any Diesel `Insertable` of
    /// the table: a struct, a `Vec` of them, a tuple of `column.eq(value)`)
    /// and return the inserted rows, invalidating every cached result their
    /// values can change.
    fn insert<'q, V, C: Codec>(
        cache: &Cache<C>,
        conn: &mut PgConnection,
        values: V,
    ) -> QueryResult<Vec<Self>>
    where
        V: InsertValues<'q, Self>,
    {
        crate::write::insert_values::<Self, V, C>(cache, conn, values)
    }

    /// Write this row's fields to its row (found by primary key) and return
    /// the row as stored, invalidating what its old and new values can
    /// change; `Err(NotFound)` if the row is gone.
    ///
    /// Needs `#[derive(AsChangeset)]` on the model.
    fn save<'a, C: Codec>(&'a self, cache: &Cache<C>, conn: &mut PgConnection) -> QueryResult<Self>
    where
        &'a Self: UpdateChanges<'a, Self, Self::Target>,
    {
        let target = Self::target(self.primary_key());
        let rows = UpdateChanges::update(self, cache, conn, target)?;
        rows.into_iter().next().ok_or(DieselError::NotFound)
    }

    /// Delete this row (by primary key) and return how many rows were
    /// deleted (0 or 1), invalidating what its values can change, including
    /// tables whose foreign keys cascade from the model's table.
    fn delete<'q, C: Codec>(&self, cache: &Cache<C>, conn: &mut PgConnection) -> QueryResult<usize>
    where
        Self: CanDelete<'q, Self::Target>,
    {
        let target = Self::target(self.primary_key());
        let rows: Vec<Self> = crate::write::delete::<Self, _, C>(cache, conn, target)?;
        Ok(rows.len())
    }
}

/// The columns of a key declared on the model `M` with
/// `#[cachebot(key(..))]`: what [`CachedModel::get_by`] takes.
///
/// Implemented by `#[derive(CacheBot)]` for each declared key, on the
/// column's type for a one-column key and on the tuple of the columns' types
/// (in declared order) otherwise, so that `get_by` checks at compile time
/// both that the columns form a declared key and the values' types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key declared on `{M}`",
    label = "not the columns of a `#[cachebot(key(..))]` of `{M}`",
    note = "declare the key on the model with `#[cachebot(key(field, ..))]`, and pass its \
            columns in the declared order: one column alone, several as a tuple"
)]
pub trait DeclaredKey<M> {
    /// The key's values: the field's type, or a tuple of the fields' types.
    type Values;

    /// The query [`query`](Self::query) builds: the rows with the key's
    /// values, selecting the model.
    type Query: Query
        + QueryFragment<Pg>
        + QueryId
        + RunQueryDsl<PgConnection>
        + LoadQuery<'static, PgConnection, M>
        + 'static;

    /// `table.filter(a.eq(..)).filter(b.eq(..)).select(M::as_select())`.
    fn query(self, values: Self::Values) -> Self::Query;
}

/// Whether `M`'s primary-key gets read through `cache`.
pub(crate) fn caches_gets<M: CacheModel, C: Codec>(cache: &Cache<C>) -> bool {
    M::CACHE_GET && cache.caches_gets()
}

/// Count reads that skip the cache by design (a model's gets switched off).
pub(crate) fn count_bypass<C: Codec>(cache: &Cache<C>, reads: u64) {
    crate::stats::Counters::add(&cache.reader.counters().bypasses, reads);
}

/// `rows` in the order of `ids`, each row once (as the cached path returns
/// them).
pub(crate) fn in_order<M: CachedModel>(ids: &[M::Id], rows: Vec<M>) -> Vec<M> {
    let mut rows: Vec<Option<M>> = rows.into_iter().map(Some).collect();
    ids.iter()
        .filter_map(|id| {
            rows.iter_mut()
                .find(|row| row.as_ref().is_some_and(|row| row.primary_key() == *id))?
                .take()
        })
        .collect()
}
