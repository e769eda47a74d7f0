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
