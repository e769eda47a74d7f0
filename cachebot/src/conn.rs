//! What the cache needs of a connection, blocking or async: its
//! instrumentation slot, Diesel's transaction state, and the catalog reads
//! (the only database I/O the cache does besides the application's own
//! statements).
//!
//! The read path and the connection instrumentation are written once over
//! [`DbConn`]. A blocking Diesel connection implements it directly (its
//! catalog futures are ready when created); an async one (feature `async`)
//! through [`Async`], whose catalog reads await the database.

use std::future::Future;

use diesel::connection::{Instrumentation, LoadConnection};
use diesel::QueryResult;

use crate::backend::{BackendImpl, CacheBackend, CascadeFacts};
use crate::scope::Catalog;

/// A connection as the cache sees it. See the module docs.
pub(crate) trait DbConn {
    /// The connection's Diesel backend.
    type Backend: CacheBackend;

    /// The instrumentation the connection carries.
    fn instrumentation(&mut self) -> &mut dyn Instrumentation;

    /// Replace the connection's instrumentation (with the crate's).
    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation);

    /// Whether Diesel's transaction manager has a transaction open, or is
    /// in a state where it cannot tell.
    fn diesel_in_transaction(&mut self) -> bool;

    /// [`BackendImpl::catalog`] on this connection.
    fn catalog<'a>(
        &'a mut self,
        qualified: &'a [String],
    ) -> impl Future<Output = QueryResult<Catalog>> + Send + 'a;

    /// [`BackendImpl::cascades`] on this connection.
    fn cascades(&mut self) -> impl Future<Output = QueryResult<CascadeFacts>> + Send + '_;
}

impl<C> DbConn for C
where
    C: LoadConnection + 'static,
    C::Backend: CacheBackend,
{
    type Backend = C::Backend;

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        diesel::Connection::instrumentation(self)
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        diesel::Connection::set_instrumentation(self, instrumentation);
    }

    fn diesel_in_transaction(&mut self) -> bool {
        use diesel::connection::TransactionManager;
        let status = C::TransactionManager::transaction_manager_status_mut(self);
        !matches!(status.transaction_depth(), Ok(None))
    }

    fn catalog<'a>(
        &'a mut self,
        qualified: &'a [String],
    ) -> impl Future<Output = QueryResult<Catalog>> + Send + 'a {
        std::future::ready(<C::Backend as BackendImpl>::catalog(self, qualified))
    }

    fn cascades(&mut self) -> impl Future<Output = QueryResult<CascadeFacts>> + Send + '_ {
        std::future::ready(<C::Backend as BackendImpl>::cascades(self))
    }
}

/// A diesel-async connection as a [`DbConn`] (feature `async`).
#[cfg(feature = "async")]
pub(crate) struct Async<'c, C>(pub(crate) &'c mut C);

#[cfg(feature = "async")]
impl<C> DbConn for Async<'_, C>
where
    C: diesel_async::AsyncConnection + 'static,
    C::Backend: CacheBackend,
{
    type Backend = C::Backend;

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        diesel_async::AsyncConnection::instrumentation(self.0)
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        diesel_async::AsyncConnection::set_instrumentation(self.0, instrumentation);
    }

    fn diesel_in_transaction(&mut self) -> bool {
        use diesel_async::TransactionManager;
        let broken = C::TransactionManager::is_broken_transaction_manager(self.0);
        let status = C::TransactionManager::transaction_manager_status_mut(self.0);
        broken || !matches!(status.transaction_depth(), Ok(None))
    }

    fn catalog<'a>(
        &'a mut self,
        qualified: &'a [String],
    ) -> impl Future<Output = QueryResult<Catalog>> + Send + 'a {
        <C::Backend as BackendImpl>::catalog_async(&mut *self.0, qualified)
    }

    fn cascades(&mut self) -> impl Future<Output = QueryResult<CascadeFacts>> + Send + '_ {
        <C::Backend as BackendImpl>::cascades_async(&mut *self.0)
    }
}
