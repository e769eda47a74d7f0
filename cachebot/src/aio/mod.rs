//! The crate on diesel-async connections (feature `async`).
//!
//! The same reads, writes and guarantees as the blocking API, awaited:
//! `query.cache(&cache).load(&mut conn).await` on an
//! [`AsyncPgConnection`](diesel_async::AsyncPgConnection). Reads share the
//! blocking API's pipeline (planning, keys, entry checks); what differs is
//! that the connection's catalog reads and the store's network I/O are
//! awaited. With the in-process store a hit never awaits; with memcached,
//! the one round trip of a read is made over tokio sockets.
//!
//! Writes through an instrumented async connection (any `execute`, the
//! crate's own write API, a `COMMIT`) bump their generations before the
//! statement's future completes. Diesel reports a finished statement to
//! its instrumentation synchronously, so a bump made there is a blocking
//! store call: on tokio's multi-threaded runtime it runs under
//! `block_in_place` (the worker's other tasks move to other threads); on
//! the current-thread runtime it blocks the runtime for that round trip
//! (bounded by the store's I/O timeout).
//!
//! Use [`prelude`] instead of the blocking [`crate::prelude`] (both add a
//! `cache` method to every query): its [`CacheDsl::cache`] returns a
//! [`CachedAsync`], whose `load`, `get_results`, `get_result` and `first`
//! are awaited, and are found before diesel-async's `RunQueryDsl` methods
//! of the same names.
//!
//! ```no_run
//! use cachebot::aio::prelude::*;
//! use diesel::{ExpressionMethods, QueryDsl};
//! use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
//!
//! diesel::table! { photos (id) { id -> Int4, user_id -> Int4, title -> Text } }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::in_process();
//! let mut conn = AsyncPgConnection::establish("postgres://localhost/app").await?;
//! cache.instrument_async(&mut conn).await?;
//!
//! let titles: Vec<String> = photos::table
//!     .select(photos::title)
//!     .filter(photos::user_id.eq(7))
//!     .cache(&cache)
//!     .load(&mut conn)
//!     .await?;
//! # let _ = titles; Ok(()) }
//! ```

mod dsl;
mod model;
#[cfg(any(feature = "deadpool", feature = "bb8"))]
mod pool;
pub mod write;

pub use dsl::{CacheDsl, CachedAsync};
pub use model::CachedModelAsync;
#[cfg(feature = "deadpool")]
pub(crate) use pool::deadpool_hook;
#[cfg(feature = "bb8")]
pub use pool::Bb8Customizer;

/// Everything an async reading application needs:
/// `use cachebot::aio::prelude::*;` (instead of `cachebot::prelude`).
pub mod prelude {
    pub use super::{CacheDsl, CachedModelAsync};
    pub use crate::Cache;
}
