//! Test support for the memcached store (feature `__test-hooks`, internal).

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;

use memcache::exp::{Get, Set};

use super::{MemcachedStore, Server, NAME};
use crate::error::{StoreError, StoreErrorKind};
use crate::store::Key;

/// Test support (feature `__test-hooks`, internal): the integration tests
/// (`cachebot-tests`: the store against private memcached processes in
/// `tests/tests/memcached_store.rs`, hostile and faulty stores) plant bytes
/// where the store would not, read what it wrote, and empty servers. Not part
/// of the API: never enable `__test-hooks` in a production build.
impl MemcachedStore {
    /// Empty every server (memcached's `flush_all`). Everything on the servers is dropped, not only this
    /// store's keys, so dependents miss afterwards.
    ///
    /// The meta protocol has no flush command, so this sends the text
    /// protocol's `flush_all` on a short-lived connection per server,
    /// under the configured timeouts.
    ///
    /// # Errors
    ///
    /// The first server that could not be flushed, as a [`StoreError`].
    ///
    /// ```no_run
    /// use cachebot::store::MemcachedStore;
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// store.flush_all().unwrap();
    /// ```
    pub fn flush_all(&self) -> Result<(), StoreError> {
        for server in self.servers.iter() {
            self.flush_server(server).inspect_err(|error| {
                tracing::warn!(
                    store = NAME,
                    op = "flush_all",
                    server = %server.name,
                    kind = %error.kind(),
                    message = %error.message(),
                    "memcached flush failed"
                );
            })?;
        }
        Ok(())
    }

    /// Store raw bytes under a key, with no expiry, bypassing every check
    /// (tests use it to plant garbage where a generation or entry should
    /// be).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the server cannot be reached or refuses.
    ///
    /// ```no_run
    /// use cachebot::store::{Key, MemcachedStore};
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// store.raw_set(Key::generation(1), b"not a number").unwrap();
    /// ```
    pub fn raw_set(&self, key: Key, bytes: &[u8]) -> Result<(), StoreError> {
        let result = self
            .client
            .run(Set::new(self.render_key(key), bytes))
            .map_err(|error| self.fail("raw_set", error))?;
        if result.applied() {
            Ok(())
        } else {
            Err(self.unexpected("raw_set", format!("item not stored: {:?}", result.status)))
        }
    }

    /// Read the raw bytes under a key; `None` when it is absent.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the server cannot be reached or answers
    /// something unexpected.
    ///
    /// ```no_run
    /// use cachebot::store::{Key, MemcachedStore, Store};
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// let generation = store.ensure_generations(&[Key::generation(1)]).unwrap()[0];
    /// let raw = store.raw_get(Key::generation(1)).unwrap();
    /// assert_eq!(raw, Some(generation.to_string().into_bytes()));
    /// ```
    pub fn raw_get(&self, key: Key) -> Result<Option<Vec<u8>>, StoreError> {
        let result = self
            .client
            .run(Get::new(self.render_key(key)))
            .map_err(|error| self.fail("raw_get", error))?;
        Ok(if result.hit() {
            Some(result.value.unwrap_or_default())
        } else {
            None
        })
    }

    /// The store's non-blocking half, for the integration tests
    /// (`tests/tests/memcached_async.rs`): the crate-private async
    /// operations, as public methods. Shares the store's servers and the
    /// async half's sockets with every clone.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use cachebot::store::{Key, MemcachedStore};
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// let ops = store.async_ops_for_tests();
    /// let generations = ops.ensure_generations(&[Key::generation(1)]).await.unwrap();
    /// # let _ = generations;
    /// # }
    /// ```
    #[cfg(feature = "async")]
    #[doc(hidden)]
    pub fn async_ops_for_tests(&self) -> async_ops::AsyncOps {
        async_ops::AsyncOps {
            store: self.async_store(),
        }
    }

    /// `flush_all` on one server over the text protocol.
    fn flush_server(&self, server: &Server) -> Result<(), StoreError> {
        let io_error = |error: io::Error| {
            let kind = match error.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreErrorKind::Timeout,
                _ => StoreErrorKind::Unavailable,
            };
            StoreError::new(NAME, kind, format!("flush_all on {}", server.name)).with_source(error)
        };
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for addr in &server.addrs {
            match TcpStream::connect_timeout(addr, self.connect_timeout) {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(error) => last_error = error,
            }
        }
        let mut stream = stream.ok_or(last_error).map_err(io_error)?;
        stream
            .set_read_timeout(Some(self.io_timeout))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(self.io_timeout))
            .map_err(io_error)?;
        stream.write_all(b"flush_all\r\n").map_err(io_error)?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .map_err(io_error)?;
        if line.trim_end() == "OK" {
            Ok(())
        } else {
            Err(StoreError::new(
                NAME,
                StoreErrorKind::Protocol,
                format!(
                    "flush_all on {}: unexpected answer {:?}",
                    server.name,
                    line.trim_end()
                ),
            ))
        }
    }
}

#[cfg(feature = "async")]
mod async_ops {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::error::StoreError;
    use crate::store::{AsyncStore, FetchedMany, Generation, Key};

    /// A boxed operation of [`AsyncOps`]: the store's own future, so that
    /// tests can poll it step by step and drop it anywhere.
    type OpFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

    /// The memcached store's async operations (feature `__test-hooks`,
    /// internal; from [`MemcachedStore::async_ops_for_tests`]). Each
    /// method returns the store's future itself, unchanged.
    ///
    /// [`MemcachedStore::async_ops_for_tests`]: crate::store::MemcachedStore::async_ops_for_tests
    #[doc(hidden)]
    #[derive(Clone)]
    pub struct AsyncOps {
        pub(super) store: Arc<dyn AsyncStore>,
    }

    impl AsyncOps {
        /// See [`Store::fetch_many`](crate::store::Store::fetch_many).
        pub fn fetch_many<'a>(
            &'a self,
            entries: &'a [Key],
            generations: &'a [Key],
        ) -> OpFuture<'a, FetchedMany> {
            self.store.fetch_many(entries, generations)
        }

        /// See [`Store::ensure_generations`](crate::store::Store::ensure_generations).
        pub fn ensure_generations<'a>(&'a self, keys: &'a [Key]) -> OpFuture<'a, Vec<Generation>> {
            self.store.ensure_generations(keys)
        }

        /// See [`Store::put_entry`](crate::store::Store::put_entry).
        pub fn put_entry<'a>(
            &'a self,
            key: Key,
            value: &'a [u8],
            ttl: Duration,
        ) -> OpFuture<'a, ()> {
            self.store.put_entry(key, value, ttl)
        }

        /// See [`Store::bump`](crate::store::Store::bump).
        pub fn bump<'a>(&'a self, keys: &'a [Key]) -> OpFuture<'a, ()> {
            self.store.bump(keys)
        }
    }

    impl std::fmt::Debug for AsyncOps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AsyncOps").finish_non_exhaustive()
        }
    }
}
