//! Query caching for Diesel with automatic, precise invalidation.
//!
//! Add `.cache(&cache)` to a Diesel query and its results are cached in
//! process or in memcached, and invalidated when a row they depend on
//! changes:
//!
//! ```no_run
//! use cachebot::prelude::*;
//! use diesel::prelude::*;
//!
//! diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }
//!
//! # fn run(conn: &mut PgConnection) -> QueryResult<()> {
//! let cache = Cache::in_process();
//! let q = || photos::table.select(photos::id).filter(photos::user_id.eq(7));
//! let first: Vec<i32> = q().cache(&cache).load(conn)?; // miss: the database
//! let again: Vec<i32> = q().cache(&cache).load(conn)?; // hit: the store
//! assert_eq!(first, again);
//! cache.invalidate_value(photos::user_id, 7).unwrap(); // what a write to user 7's photos does
//! let fresh: Vec<i32> = q().cache(&cache).load(conn)?; // miss again
//! # Ok(()) }
//! ```
//!
//! # How it stays correct
//!
//! Every cached result depends on *generations*: random 64-bit values kept
//! in the store, one per table, per "all rows of a table", and per
//! (table, column, value) the query filters on by equality. A result is
//! stored with the generations read *before* the database query, and served
//! only while every one of them is unchanged; a write replaces the
//! generations of the rows it touched. Nothing is deleted, so an evicted or
//! lost generation turns into a miss, never a stale hit, and a reader that
//! races a writer stores a result nobody will be served.
//!
//! The dependencies come from the SQL Diesel renders (its typed AST cannot
//! be walked from outside): the crate renders the query with the real
//! backend, collects the exact bind bytes, and parses the SQL to find, per
//! table, the equality conditions every relevant row must meet. When in
//! doubt it widens to the whole table; it never narrows.
//!
//! # Failure
//!
//! A read never fails because of the cache: a store that is down, slow or
//! returns garbage turns the read into a database read, counted in
//! [`Stats`] and traced with `tracing`. No bytes in the store can crash a
//! reader: decoding is bounded by the entry's length.
//!
//! # Trust
//!
//! Without a secret, whoever can write to the store chooses what cached
//! reads return: trust the cache network like the database. With
//! [`CacheBuilder::secret`], entries carry a keyed MAC checked before
//! decoding, and only authentic, unexpired entries written for the same
//! query and result type are served (the README's threat model says what
//! remains: replay within the TTL).
//!
//! # The API
//!
//! - Reading: [`CacheDsl::cache`] on any query, then [`CachedRunQueryDsl`]'s
//!   `load`, `get_result(s)`, `first`; [`Cached::keyed_on`] to narrow,
//!   [`Cached::explain`] / [`Cached::explain_on`] to see the keys.
//! - The cache: [`Cache`], built with [`CacheBuilder`]; [`Stats`] for what
//!   happened; explicit invalidation (`invalidate_*`).
//! - Connections: [`Cache::instrument`] (or `pool_customizer`, feature
//!   `r2d2`) installs [`CacheInstrumentation`], which sees every write.
//! - Models: `#[derive(CacheBot)]` implements [`CacheModel`]; [`write`](mod@write)
//!   runs inserts, updates and deletes with exact invalidation.
//! - The change stream: [`Cache::invalidate_changes`] applies a committed
//!   transaction's row changes ([`changes`]), what the `cachebot-follow`
//!   follower calls; [`CacheBuilder::staleness_bound`] bounds how stale
//!   writes outside the crate can be.
//! - Async (feature `async`): the module `aio` has the same on diesel-async
//!   connections: `query.cache(&cache).load(&mut conn).await` through its
//!   prelude, `CachedModelAsync`, `aio::write`, `Cache::instrument_async`,
//!   `Cache::invalidate_*_async`, and hooks for deadpool and bb8 pools.
//! - Errors: one [`Error`] from building, instrumenting and invalidating
//!   ([`ConfigError`], [`StoreError`], [`UsageError`] inside it).
//! - Modules: [`store`] (where entries and generations live: in process,
//!   memcached), [`codec`] (how results become bytes); [`CacheBackend`] names
//!   the databases a cache can read (PostgreSQL).
//!
//! Everything else is private; the derive's generated code calls
//! `model::__private`, which is not a public API.

#![deny(unsafe_code)] // one audited exception: read::behind::lower_priority
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[cfg(feature = "async")]
pub mod aio;
mod backend;
mod cache;
pub mod codec;
mod conn;
mod dsl;
mod error;
mod extract;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
#[cfg(feature = "__test-hooks")]
pub mod hooks;
mod invalidate;
mod key;
pub mod model;
mod read;
mod render;
mod scope;
mod stats;
pub mod store;
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub mod test_keys;
mod util;
mod weigh;
pub mod write;

pub use backend::CacheBackend;
pub use cache::{Cache, CacheBuilder, DEFAULT_LOCAL_BYTES, DEFAULT_TTL, MAX_TTL};
/// `#[derive(CacheBot)]`: see [`CacheModel`] and the crate's README.
pub use cachebot_derive::CacheBot;
pub use dsl::{CacheDsl, Cached, CachedFirst, CachedLoad, CachedRunQueryDsl};
pub use error::{CodecError, ConfigError, Error, StoreError, StoreErrorKind, UsageError};
pub use invalidate::instrument::CacheInstrumentation;
/// Committed row changes from the database's change stream, for
/// [`Cache::invalidate_changes`].
pub mod changes {
    pub use crate::invalidate::changes::{
        Change, Column, Image, TableName, Transaction, Value, MAX_VALUE_KEYS_PER_TABLE,
    };
}
#[cfg(feature = "r2d2")]
pub use invalidate::instrument::PoolCustomizer;
pub use key::Dependency;
pub use model::{CacheModel, CachedModel, DeclaredKey};
pub use read::Explain;
pub use stats::Stats;

/// Fires a test hook (internal feature `__test-hooks`); nothing otherwise.
macro_rules! hook {
    ($point:ident) => {
        #[cfg(feature = "__test-hooks")]
        crate::hooks::fire(crate::hooks::Point::$point);
    };
}
pub(crate) use hook;

/// Everything a reading application needs: `use cachebot::prelude::*;`.
pub mod prelude {
    pub use crate::{Cache, CacheDsl, CachedModel, CachedRunQueryDsl};
}
