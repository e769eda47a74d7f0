//! The store I/O of a read: blocking calls, or (feature `async`) futures
//! that wait for the network without blocking the runtime.
//!
//! The read path (`Reader::read_through`, `Query::plan`) is written once,
//! over [`StoreIo`]. The blocking API passes [`Blocking`], whose futures
//! are ready when created (see `util::ready`); async reads pass
//! [`Waiting`] for a remote store, and [`Blocking`] for one in this
//! process, whose calls never wait (no await on the in-process hot path).

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;
use crate::store::{Fetched, FetchedMany, Generation, Key, Store};

/// The store operations a read makes. See the module docs.
pub(crate) trait StoreIo: Sync {
    /// [`Store::fetch_many`].
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [Key],
        generations: &'a [Key],
    ) -> impl Future<Output = Result<FetchedMany, StoreError>> + Send + 'a;

    /// [`Store::fetch`].
    fn fetch<'a>(
        &'a self,
        entry: Key,
        generations: &'a [Key],
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send + 'a;

    /// [`Store::ensure_generations`].
    fn ensure_generations<'a>(
        &'a self,
        keys: &'a [Key],
    ) -> impl Future<Output = Result<Vec<Generation>, StoreError>> + Send + 'a;

    /// [`Store::put_entry`].
    fn put_entry<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// A [`Store`]'s blocking calls, as ready futures.
pub(crate) struct Blocking<'s>(pub(crate) &'s dyn Store);

impl StoreIo for Blocking<'_> {
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [Key],
        generations: &'a [Key],
    ) -> impl Future<Output = Result<FetchedMany, StoreError>> + Send + 'a {
        std::future::ready(self.0.fetch_many(entries, generations))
    }

    fn fetch<'a>(
        &'a self,
        entry: Key,
        generations: &'a [Key],
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send + 'a {
        std::future::ready(self.0.fetch(entry, generations))
    }

    fn ensure_generations<'a>(
        &'a self,
        keys: &'a [Key],
    ) -> impl Future<Output = Result<Vec<Generation>, StoreError>> + Send + 'a {
        std::future::ready(self.0.ensure_generations(keys))
    }

    fn put_entry<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        std::future::ready(self.0.put_entry(key, value, ttl))
    }
}

/// A store's non-blocking side (feature `async`).
#[cfg(feature = "async")]
pub(crate) struct Waiting<'s>(pub(crate) &'s dyn crate::store::AsyncStore);

#[cfg(feature = "async")]
impl StoreIo for Waiting<'_> {
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [Key],
        generations: &'a [Key],
    ) -> impl Future<Output = Result<FetchedMany, StoreError>> + Send + 'a {
        self.0.fetch_many(entries, generations)
    }

    async fn fetch<'a>(
        &'a self,
        entry: Key,
        generations: &'a [Key],
    ) -> Result<Fetched, StoreError> {
        let entries = [entry];
        self.0
            .fetch_many(&entries, generations)
            .await
            .map(Fetched::from)
    }

    fn ensure_generations<'a>(
        &'a self,
        keys: &'a [Key],
    ) -> impl Future<Output = Result<Vec<Generation>, StoreError>> + Send + 'a {
        self.0.ensure_generations(keys)
    }

    fn put_entry<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        self.0.put_entry(key, value, ttl)
    }
}
