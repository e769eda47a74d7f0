//! Instrumenting every connection of a diesel-async pool: a deadpool
//! post-create hook (feature `deadpool`) and a bb8 connection customizer
//! (feature `bb8`). Both install the crate's instrumentation the way
//! [`Cache::instrument_async`](crate::Cache::instrument_async) does,
//! chained with Diesel's default instrumentation, when the pool creates a
//! connection.

use std::sync::Arc;

use crate::invalidate::instrument::install;
use crate::invalidate::Invalidator;

/// A deadpool `post_create` hook that instruments every connection the
/// pool creates (feature `deadpool`). Made by
/// [`Cache::deadpool_hook`](crate::Cache::deadpool_hook).
#[cfg(feature = "deadpool")]
pub(crate) fn deadpool_hook<Conn>(
    core: Arc<Invalidator>,
) -> diesel_async::pooled_connection::deadpool::Hook<Conn>
where
    Conn: diesel_async::pooled_connection::PoolableConnection + 'static,
    Conn::Backend: crate::CacheBackend,
    for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, diesel::sql_types::Integer>>:
        diesel_async::methods::LoadQuery<'a, Conn, i32>,
    diesel::query_builder::SqlQuery: diesel::query_builder::QueryFragment<Conn::Backend>,
{
    use diesel_async::pooled_connection::deadpool::{Hook, HookError};
    use diesel_async::pooled_connection::PoolError;
    Hook::async_fn(move |conn: &mut Conn, _| {
        let core = core.clone();
        Box::pin(async move {
            let mut db = crate::conn::Async(conn);
            install(&core, &mut db)
                .await
                .map_err(|e| HookError::Backend(PoolError::QueryError(e.into_diesel())))
        })
    })
}

/// Instruments every connection a diesel-async bb8 pool creates (feature
/// `bb8`). Made by [`Cache::bb8_customizer`](crate::Cache::bb8_customizer).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel_async::pooled_connection::{bb8::Pool, AsyncDieselConnectionManager};
/// use diesel_async::AsyncPgConnection;
///
/// let cache = cachebot::Cache::in_process();
/// let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new("postgres://localhost/app");
/// let pool = Pool::builder()
///     .connection_customizer(Box::new(cache.bb8_customizer()))
///     .build(manager)
///     .await?;
/// # let _ = pool; Ok(()) }
/// ```
#[cfg(feature = "bb8")]
#[derive(Clone)]
pub struct Bb8Customizer {
    core: Arc<Invalidator>,
}

#[cfg(feature = "bb8")]
impl Bb8Customizer {
    pub(crate) fn new(core: Arc<Invalidator>) -> Bb8Customizer {
        Bb8Customizer { core }
    }
}

#[cfg(feature = "bb8")]
impl std::fmt::Debug for Bb8Customizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bb8Customizer")
    }
}

#[cfg(feature = "bb8")]
impl<Conn> bb8::CustomizeConnection<Conn, diesel_async::pooled_connection::PoolError>
    for Bb8Customizer
where
    Conn: diesel_async::AsyncConnection + 'static,
    Conn::Backend: crate::CacheBackend,
{
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut Conn,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<(), diesel_async::pooled_connection::PoolError>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let mut db = crate::conn::Async(conn);
            install(&self.core, &mut db).await.map_err(|e| {
                diesel_async::pooled_connection::PoolError::QueryError(e.into_diesel())
            })
        })
    }
}
