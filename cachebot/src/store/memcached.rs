//! The memcached store: entries and generations shared by every process
//! pointed at the same servers.
//!
//! # Why the meta protocol
//!
//! It talks to memcached's meta protocol. On the reference machine a
//! meta-protocol get costs 31 us (the loopback floor is 20 us) against
//! 134 us for the `memcache` crate's classic binary `Client`, whose ~21
//! syscalls per get make a "hit" slower than the query it replaces. The
//! meta protocol also pipelines: every [`Store`] method is one batch,
//! written at once and answered in order, so it costs one round trip per
//! server involved (one, with one server), whatever the number of keys.
//!
//! Most commands go through the `memcache` crate's `exp` [`MetaClient`].
//! The two hot paths, reads ([`Store::fetch`]) and bumps, write their
//! commands themselves over their own pooled sockets (module `pipeline`):
//! a hit costs a third of the instructions and fewer syscalls than
//! through the client. With several servers, keys are routed by rendezvous
//! hashing (the client's own, for reads and bumps too, so all agree), so
//! adding or removing a server only moves that server's keys; a batch is
//! split per server. The client visits those servers one after the other;
//! the pipeline writes to all of them before reading any answer.
//!
//! # Why decimal generations
//!
//! Generations are stored as ASCII decimal `u64`s so that memcached's own
//! arithmetic command (`ma`) can work on them: an increment by 0 with
//! auto-vivification (`ma <key> v D0 N1 J<fresh> T0`) returns the current
//! value, or atomically creates the key with the given random value and
//! returns that. Read-or-create is then one command, one round trip, and
//! two processes racing to create a generation get the same value, which
//! a get-then-add sequence would need two round trips for.
//!
//! TTL semantics, checked against memcached 1.6.18: `N<ttl>` is the TTL of
//! the vivified item, and the crate refuses `N0`; `N1` on its own expires
//! the item within a second. `T0` after it ("never expires") overrides it:
//! the server applies the flags in order, and the crate writes `N` before
//! `T`. Generations therefore never expire (they can still be evicted,
//! which only causes misses). A generation holding anything else than a
//! non-zero decimal (garbage written by someone else, or `0`) reads as
//! missing in [`Store::fetch`] and is overwritten with a fresh value by
//! [`Store::ensure_generations`]: the server refuses `ma` on it, the call
//! reads the doubtful keys back and rewrites the bad ones, two more round
//! trips on that rare path.
//!
//! # Keys
//!
//! `{prefix}{e|g}{32 lowercase hex digits}`: the prefix (default `cb:`,
//! at most 64 printable ASCII bytes), `e` for entries or `g` for
//! generations, and the 128-bit hash. At most 97 bytes, well within
//! memcached's 250-byte limit.
//!
//! # Failures
//!
//! Connections are dialed lazily, so building a store never fails because
//! a server is down: the cache starts, reads fall back to the database and
//! the store recovers when the server does. Every transport failure is
//! returned as a [`StoreError`] (never hidden, never a panic) with its
//! [`StoreErrorKind`]: a timeout is bounded by the configured I/O timeout
//! (default 250 ms), a refused connection fails at once.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use memcache::exp::{
    Arithmetic, Error as ClientError, Get, MetaClient, Op, OpResult, Set, Ttl, MAX_KEY_LENGTH,
};

use super::pipeline::{self, Answer, Pipeline};
use super::{fresh_generation, FetchedMany, Generation, Key, KeyKind, Store};
use crate::error::{ConfigError, StoreError, StoreErrorKind};

/// The store name used in errors and traces.
pub(super) const NAME: &str = "memcached";

/// Rendered key length past the prefix: the kind letter and 32 hex digits.
const KEY_SUFFIX_LEN: usize = 1 + 32;

/// The longest entry TTL sent: 30 days, memcached's largest relative TTL
/// (longer ones would have to be absolute timestamps, which depend on the
/// server's clock). Capping only makes an entry miss earlier.
const MAX_ENTRY_TTL_SECS: u32 = 30 * 24 * 60 * 60;

// The longest rendered key must fit memcached's key limit.
const _: () = assert!(MemcachedStore::MAX_PREFIX_LEN + KEY_SUFFIX_LEN <= MAX_KEY_LENGTH);

/// A [`Store`] backed by one or several memcached servers.
///
/// Cheap to clone: clones share the connection pools.
///
/// ```no_run
/// use std::time::Duration;
/// use cachebot::store::{Key, MemcachedStore, Store};
///
/// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
/// let table = Key::generation(1);
/// let entry = Key::entry(2);
///
/// let snapshot = store.ensure_generations(&[table]).unwrap();
/// store.put_entry(entry, b"rows", Duration::from_secs(60)).unwrap();
/// let fetched = store.fetch(entry, &[table]).unwrap();
/// assert_eq!(fetched.generations, vec![Some(snapshot[0])]);
/// ```
#[derive(Clone)]
pub struct MemcachedStore {
    /// Everything but reads and bumps.
    client: MetaClient,
    /// Reads and bumps, the hot paths (see `pipeline`).
    pipeline: Arc<Pipeline>,
    servers: Arc<[Server]>,
    prefix: Arc<str>,
    io_timeout: Duration,
    connect_timeout: Duration,
    max_value_size: usize,
}

/// A configured server: its address as given and what it resolved to.
struct Server {
    name: String,
    addrs: Vec<SocketAddr>,
}

impl MemcachedStore {
    /// The default key prefix: `"cb:"`.
    pub const DEFAULT_PREFIX: &'static str = "cb:";

    /// The longest key prefix accepted, in bytes.
    pub const MAX_PREFIX_LEN: usize = 64;

    /// The default time limit for one exchange with a server: 250 ms.
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_millis(250);

    /// The default time limit for dialing a server: 250 ms.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

    /// The default number of idle connections kept per server: 8.
    pub const DEFAULT_MAX_IDLE: usize = 8;

    /// The default largest entry value: memcached's default 1 MiB item
    /// size minus 1 KiB of headroom for the key and the item header.
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024 - 1024;

    /// A store over these servers (`"host:port"`) with the default settings.
    /// No connection is made yet.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when no server is given or an address cannot be
    /// resolved.
    ///
    /// ```no_run
    /// use cachebot::store::MemcachedStore;
    ///
    /// let store = MemcachedStore::connect(["10.0.0.1:11211", "10.0.0.2:11211"]).unwrap();
    /// store.ping().unwrap();
    /// ```
    pub fn connect(
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<MemcachedStore, ConfigError> {
        MemcachedStoreBuilder::new().servers(servers).build()
    }

    /// Start configuring a store.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachebot::store::MemcachedStore;
    ///
    /// // Building never dials: it works while the server is down.
    /// let store = MemcachedStore::builder()
    ///     .servers(["127.0.0.1:11211"])
    ///     .prefix("app1:")
    ///     .io_timeout(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// # let _ = store;
    /// ```
    pub fn builder() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder::new()
    }

    /// The memcached key for a store key:
    /// `{prefix}{e|g}{32 lowercase hex digits}`.
    ///
    /// ```
    /// use cachebot::store::{Key, MemcachedStore};
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// assert_eq!(
    ///     store.render_key(Key::generation(0xab)),
    ///     "cb:g000000000000000000000000000000ab"
    /// );
    /// ```
    pub fn render_key(&self, key: Key) -> String {
        let mut bytes = Vec::with_capacity(self.prefix.len() + 33);
        self.write_key(key, &mut bytes);
        // Always ASCII: the prefix is checked when the store is built.
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// Append the key's rendering to `out`. By hand: `format!`'s padded hex
    /// of a u128 was a sixth of a memcached hit's own instructions.
    fn write_key(&self, key: Key, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(match key.kind {
            KeyKind::Entry => b'e',
            KeyKind::Generation => b'g',
        });
        let mut digits = [0u8; 32];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = HEX[(key.hash >> (124 - 4 * i)) as usize & 0xf];
        }
        out.extend_from_slice(&digits);
    }

    /// Round-trip a no-op to every server: checks that they are all
    /// reachable and answering.
    ///
    /// # Errors
    ///
    /// The first server's failure, as a [`StoreError`].
    ///
    /// ```no_run
    /// use cachebot::store::MemcachedStore;
    ///
    /// let store = MemcachedStore::connect(["127.0.0.1:11211"]).unwrap();
    /// if let Err(error) = store.ping() {
    ///     eprintln!("memcached is not reachable: {error}");
    /// }
    /// ```
    pub fn ping(&self) -> Result<(), StoreError> {
        self.client
            .noop()
            .map_err(|error| self.fail("ping", &error))
    }

    /// Empty every server (memcached's `flush_all`), for tests and
    /// operations. Everything on the servers is dropped, not only this
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
                    kind = %error.kind,
                    message = %error.message,
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
            .map_err(|error| self.fail("raw_set", &error))?;
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
            .map_err(|error| self.fail("raw_get", &error))?;
        Ok(if result.hit() {
            Some(result.value.unwrap_or_default())
        } else {
            None
        })
    }

    /// A [`StoreError`] for a client failure, traced at debug level: the
    /// callers count and report store failures themselves.
    fn fail(&self, op: &'static str, error: &ClientError) -> StoreError {
        let kind = error_kind(error);
        tracing::debug!(store = NAME, op, kind = %kind, message = %error, "memcached operation failed");
        StoreError::new(NAME, kind, format!("{op}: {error}"))
    }

    /// A [`StoreErrorKind::Protocol`] error for an answer the store did not
    /// expect.
    fn unexpected(&self, op: &'static str, message: String) -> StoreError {
        tracing::debug!(store = NAME, op, kind = %StoreErrorKind::Protocol, %message, "memcached operation failed");
        StoreError::new(NAME, StoreErrorKind::Protocol, format!("{op}: {message}"))
    }

    /// The read-or-create command for one generation key.
    fn vivify(&self, key: &str) -> Arithmetic {
        vivify_op(key, fresh_generation())
    }

    /// Second chance for the generations whose `ma` failed with a client
    /// error: a non-numeric value makes the server refuse the command, and
    /// the client then fails every later command of that server's batch
    /// (it cannot tell which of them ran). Read them back in one batch:
    /// keep the valid ones, overwrite garbage with a fresh value and
    /// re-create the ones that vanished meanwhile, in one more batch.
    fn repair_generations(
        &self,
        rendered: &[String],
        doubtful: &[usize],
        values: &mut [Generation],
    ) -> Result<(), StoreError> {
        const OP: &str = "ensure_generations";
        // A key listed twice is repaired once, so both slots agree.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut unique = Vec::with_capacity(doubtful.len());
        let mut duplicates = Vec::new();
        for &index in doubtful {
            match first_of.entry(rendered[index].as_str()) {
                Entry::Occupied(first) => duplicates.push((index, *first.get())),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                    unique.push(index);
                }
            }
        }
        let reads = self
            .client
            .run_many(unique.iter().map(|&index| Get::new(&rendered[index])))
            .map_err(|error| self.fail(OP, &error))?;
        let mut writes: Vec<(usize, Op, Generation)> = Vec::new();
        for (&index, read) in unique.iter().zip(reads) {
            let read = read.map_err(|error| self.fail(OP, &error))?;
            if !read.hit() {
                let fresh = fresh_generation();
                writes.push((index, vivify_op(&rendered[index], fresh).into(), fresh));
                continue;
            }
            match read.value.as_deref().and_then(parse_generation) {
                Some(current) => values[index] = current,
                None => {
                    tracing::warn!(
                        store = NAME,
                        key = %rendered[index],
                        "overwriting an unreadable generation with a fresh value"
                    );
                    let fresh = fresh_generation();
                    writes.push((
                        index,
                        Set::new(&rendered[index], fresh.to_string()).into(),
                        fresh,
                    ));
                }
            }
        }
        if !writes.is_empty() {
            self.write_repairs(rendered, &writes, values)?;
        }
        for (duplicate, first) in duplicates {
            values[duplicate] = values[first];
        }
        Ok(())
    }

    /// The writes planned by [`repair_generations`](Self::repair_generations),
    /// in one batch.
    fn write_repairs(
        &self,
        rendered: &[String],
        writes: &[(usize, Op, Generation)],
        values: &mut [Generation],
    ) -> Result<(), StoreError> {
        const OP: &str = "ensure_generations";
        let results = self
            .client
            .run_batch(writes.iter().map(|(_, op, _)| op.clone()))
            .map_err(|error| self.fail(OP, &error))?;
        for ((index, _, fresh), result) in writes.iter().zip(results) {
            values[*index] = match result.map_err(|error| self.fail(OP, &error))? {
                OpResult::Mutation(stored) if stored.applied() => *fresh,
                OpResult::Arithmetic(counter) => match counter.value {
                    Some(value) if value != 0 => value,
                    other => {
                        return Err(self.unexpected(
                            OP,
                            format!("generation {} not created: {other:?}", rendered[*index]),
                        ))
                    }
                },
                other => {
                    return Err(self.unexpected(
                        OP,
                        format!("generation {} not repaired: {other:?}", rendered[*index]),
                    ))
                }
            };
        }
        Ok(())
    }

    /// `flush_all` on one server over the text protocol.
    fn flush_server(&self, server: &Server) -> Result<(), StoreError> {
        let io_error = |error: io::Error| {
            let kind = match error.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreErrorKind::Timeout,
                _ => StoreErrorKind::Unavailable,
            };
            StoreError::new(NAME, kind, format!("flush_all on {}: {error}", server.name))
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

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<&str> = self
            .servers
            .iter()
            .map(|server| server.name.as_str())
            .collect();
        f.debug_struct("MemcachedStore")
            .field("servers", &servers)
            .field("prefix", &self.prefix)
            .field("io_timeout", &self.io_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl Store for MemcachedStore {
    fn fetch_many(&self, entries: &[Key], generations: &[Key]) -> Result<FetchedMany, StoreError> {
        let mut found = vec![None; entries.len()];
        let mut values = vec![None; generations.len()];
        let split = entries.len();
        self.pipeline.get(
            split + generations.len(),
            |i, out| match entries.get(i) {
                Some(&key) => self.write_key(key, out),
                None => self.write_key(generations[i - split], out),
            },
            |i, value| match found.get_mut(i) {
                Some(slot) => *slot = value.map(<[u8]>::to_vec),
                None => values[i - split] = value.and_then(parse_generation),
            },
        )?;
        Ok(FetchedMany {
            entries: found,
            generations: values,
        })
    }

    fn ensure_generations(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError> {
        const OP: &str = "ensure_generations";
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rendered: Vec<String> = keys.iter().map(|&key| self.render_key(key)).collect();
        let results = self
            .client
            .run_many(rendered.iter().map(|key| self.vivify(key)))
            .map_err(|error| self.fail(OP, &error))?;
        if results.len() != keys.len() {
            return Err(self.unexpected(OP, "missing generation results".to_owned()));
        }
        let mut values = vec![0; keys.len()];
        let mut doubtful = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(counter) => match counter.value {
                    Some(value) if value != 0 => values[index] = value,
                    // A stored "0": garbage, overwrite it.
                    Some(_) => doubtful.push(index),
                    None => {
                        return Err(self.unexpected(
                            OP,
                            format!(
                                "generation {} not created: {:?}",
                                rendered[index], counter.status
                            ),
                        ))
                    }
                },
                Err(error) if is_client_error(&error) => doubtful.push(index),
                Err(error) => return Err(self.fail(OP, &error)),
            }
        }
        if !doubtful.is_empty() {
            self.repair_generations(&rendered, &doubtful, &mut values)?;
        }
        Ok(values)
    }

    fn put_entry(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        const OP: &str = "put_entry";
        if value.len() > self.max_value_size {
            return Err(StoreError::new(
                NAME,
                StoreErrorKind::Rejected,
                format!(
                    "{OP}: value of {} bytes exceeds the limit of {} bytes",
                    value.len(),
                    self.max_value_size
                ),
            ));
        }
        let set = Set::new(self.render_key(key), value).ttl(Ttl::secs(entry_ttl_secs(ttl)));
        let result = self
            .client
            .run(set)
            .map_err(|error| self.fail(OP, &error))?;
        if result.applied() {
            Ok(())
        } else {
            Err(self.unexpected(OP, format!("item not stored: {:?}", result.status)))
        }
    }

    fn bump(&self, keys: &[Key]) -> Result<(), StoreError> {
        const OP: &str = "bump";
        if keys.is_empty() {
            return Ok(());
        }
        // No TTL: the protocol default never expires.
        let mut not_stored = 0;
        let mut value = Vec::with_capacity(20);
        self.pipeline
            .run(
                OP,
                keys.len(),
                |i, out| self.write_key(keys[i], out),
                |_, key, out| {
                    value.clear();
                    pipeline::push_decimal(fresh_generation(), &mut value);
                    pipeline::push_set(key, &value, out);
                },
                |_, answer| {
                    if answer != Answer::Stored {
                        not_stored += 1;
                    }
                },
            )
            .inspect_err(|error| {
                tracing::warn!(store = NAME, op = OP, kind = %error.kind, message = %error.message, "memcached bump failed");
            })?;
        if not_stored > 0 {
            let error = self.unexpected(OP, format!("{not_stored} generations not stored"));
            tracing::warn!(store = NAME, op = OP, message = %error.message, "memcached bump failed");
            return Err(error);
        }
        Ok(())
    }

    fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    fn name(&self) -> &'static str {
        NAME
    }
}

/// `ma <key> v D0 N1 J<initial> T0`: read the counter, or create it with
/// `initial`. `N` requires a TTL of at least one second in the crate; the
/// `T0` that follows it on the wire makes the item never expire, created
/// or not.
fn vivify_op(key: &str, initial: Generation) -> Arithmetic {
    Arithmetic::new(key)
        .delta(0)
        .initial(initial, 1)
        .ttl(Ttl::NEVER)
}

/// A stored generation: ASCII decimal, non-zero. Trailing spaces are
/// allowed because memcached pads a counter in place when an increment
/// shortens it (`007` becomes `7  `).
fn parse_generation(bytes: &[u8]) -> Option<Generation> {
    let end = bytes
        .iter()
        .rposition(|&byte| byte != b' ')
        .map_or(0, |last| last + 1);
    let digits = &bytes[..end];
    if digits.is_empty() {
        return None;
    }
    // By hand: `str::parse` was a third of a hit's parsing.
    digits
        .iter()
        .try_fold(0u64, |value, &digit| {
            if !digit.is_ascii_digit() {
                return None;
            }
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .filter(|&value| value != 0)
}

/// Whole seconds for an entry TTL: rounded up, at least 1, at most 30 days.
fn entry_ttl_secs(ttl: Duration) -> u32 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    u32::try_from(secs)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_ENTRY_TTL_SECS)
}

/// Whether the server refused the command as malformed (`CLIENT_ERROR`),
/// directly or as the unknown outcome of a command the client wrote but
/// could not read the answer of.
fn is_client_error(error: &ClientError) -> bool {
    match error {
        ClientError::Rejected(_) => true,
        ClientError::Ambiguous { source, .. } => is_client_error(source),
        _ => false,
    }
}

/// The broad class of a client error.
fn error_kind(error: &ClientError) -> StoreErrorKind {
    match error {
        ClientError::Timeout { .. } => StoreErrorKind::Timeout,
        ClientError::Io(error) => match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreErrorKind::Timeout,
            _ => StoreErrorKind::Unavailable,
        },
        ClientError::Ambiguous { source, .. } => error_kind(source),
        ClientError::Rejected(_)
        | ClientError::Usage(_)
        | ClientError::EmptyValue
        | ClientError::Encode(_) => StoreErrorKind::Rejected,
        ClientError::Server(message) if message.contains("too large") => StoreErrorKind::Rejected,
        _ => StoreErrorKind::Protocol,
    }
}

/// Whether a prefix is acceptable: short, printable ASCII, no spaces.
fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.len() > MemcachedStore::MAX_PREFIX_LEN {
        return Err(ConfigError::new(
            "prefix",
            format!(
                "memcached key prefix is {} bytes long, the limit is {}",
                prefix.len(),
                MemcachedStore::MAX_PREFIX_LEN
            ),
        ));
    }
    if let Some(bad) = prefix.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ConfigError::new("prefix", format!(
            "memcached key prefix {prefix:?} contains {bad:?}: only printable ASCII without spaces is allowed"
        )));
    }
    Ok(())
}

/// Configures a [`MemcachedStore`].
///
/// ```
/// use std::time::Duration;
/// use cachebot::store::MemcachedStoreBuilder;
///
/// let store = MemcachedStoreBuilder::new()
///     .servers(["127.0.0.1:11211", "127.0.0.1:11212"])
///     .prefix("shop:")
///     .io_timeout(Duration::from_millis(100))
///     .connect_timeout(Duration::from_millis(100))
///     .max_idle(16)
///     .max_connections(64)
///     .max_value_size(512 * 1024)
///     .build()
///     .unwrap();
/// # let _ = store;
/// ```
#[derive(Clone, Debug)]
pub struct MemcachedStoreBuilder {
    servers: Vec<String>,
    prefix: String,
    io_timeout: Duration,
    connect_timeout: Duration,
    max_idle: usize,
    max_connections: Option<usize>,
    max_value_size: usize,
}

impl MemcachedStoreBuilder {
    /// A builder with the default settings and no server yet.
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// // A server is required.
    /// assert!(MemcachedStoreBuilder::new().build().is_err());
    /// ```
    pub fn new() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder {
            servers: Vec::new(),
            prefix: MemcachedStore::DEFAULT_PREFIX.to_owned(),
            io_timeout: MemcachedStore::DEFAULT_IO_TIMEOUT,
            connect_timeout: MemcachedStore::DEFAULT_CONNECT_TIMEOUT,
            max_idle: MemcachedStore::DEFAULT_MAX_IDLE,
            max_connections: None,
            max_value_size: MemcachedStore::DEFAULT_MAX_VALUE_SIZE,
        }
    }

    /// The servers, as `"host:port"` (replacing any given before). With
    /// several, keys are spread by rendezvous hashing on the addresses as
    /// written here, so every process must list the same strings (in any
    /// order). Names are resolved once, by [`build`](Self::build).
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().servers(["127.0.0.1:11211"]);
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn servers(
        mut self,
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> MemcachedStoreBuilder {
        self.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The prefix of every key (default `"cb:"`): at most 64 bytes of
    /// printable ASCII, no spaces. Give each application sharing the
    /// servers its own.
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().servers(["127.0.0.1:11211"]);
    /// assert!(builder.clone().prefix("billing:").build().is_ok());
    /// assert!(builder.prefix("has space").build().is_err());
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> MemcachedStoreBuilder {
        self.prefix = prefix.into();
        self
    }

    /// The time limit for one exchange with a server, request and answer
    /// (default 250 ms). A slow or hung server fails the operation with
    /// [`StoreErrorKind::Timeout`] after this long.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().io_timeout(Duration::from_millis(50));
    /// # let _ = builder;
    /// ```
    pub fn io_timeout(mut self, timeout: Duration) -> MemcachedStoreBuilder {
        self.io_timeout = timeout;
        self
    }

    /// The time limit for dialing a server (default 250 ms); also bounds
    /// the wait for a connection when
    /// [`max_connections`](Self::max_connections) is reached.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().connect_timeout(Duration::from_millis(50));
    /// # let _ = builder;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> MemcachedStoreBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How many idle connections to keep per server (default 8), in each
    /// of the store's two pools (reads and bumps; everything else). More
    /// concurrent operations dial extra connections, closed after use.
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().max_idle(32);
    /// # let _ = builder;
    /// ```
    pub fn max_idle(mut self, max_idle: usize) -> MemcachedStoreBuilder {
        self.max_idle = max_idle;
        self
    }

    /// Cap the connections in use per server (default: no cap), in each of
    /// the store's two pools (reads and bumps; everything else): up to
    /// twice this many per server in all. At the cap, an operation waits up
    /// to the connect timeout for a free connection, then fails with
    /// [`StoreErrorKind::Timeout`].
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let capped = MemcachedStoreBuilder::new().max_connections(16);
    /// let uncapped = MemcachedStoreBuilder::new().max_connections(None);
    /// # let _ = (capped, uncapped);
    /// ```
    pub fn max_connections(
        mut self,
        max_connections: impl Into<Option<usize>>,
    ) -> MemcachedStoreBuilder {
        self.max_connections = max_connections.into();
        self
    }

    /// The largest entry value accepted, in bytes (default 1 MiB - 1 KiB,
    /// leaving room for the key and item header within memcached's default
    /// 1 MiB item size). Raise it only together with the server's `-I`.
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// let builder = MemcachedStoreBuilder::new().max_value_size(256 * 1024);
    /// # let _ = builder;
    /// ```
    pub fn max_value_size(mut self, max_value_size: usize) -> MemcachedStoreBuilder {
        self.max_value_size = max_value_size;
        self
    }

    /// Check the settings, resolve the addresses and build the store. No
    /// connection is made: servers are dialed on first use, so this
    /// succeeds while they are down.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when no server is given, a server is listed twice,
    /// an address cannot be resolved, the prefix is invalid, a timeout is
    /// zero or `max_connections` is zero.
    ///
    /// ```
    /// use cachebot::store::MemcachedStoreBuilder;
    ///
    /// assert!(MemcachedStoreBuilder::new().servers(["127.0.0.1:11211"]).build().is_ok());
    /// assert!(MemcachedStoreBuilder::new().servers(["no port here"]).build().is_err());
    /// ```
    pub fn build(self) -> Result<MemcachedStore, ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::new(
                "servers",
                "the memcached store needs at least one server",
            ));
        }
        check_prefix(&self.prefix)?;
        if self.io_timeout.is_zero() {
            return Err(ConfigError::new(
                "io_timeout",
                "the memcached io_timeout must not be zero",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "the memcached connect_timeout must not be zero",
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::new(
                "max_connections",
                "the memcached max_connections must not be zero",
            ));
        }
        let mut seen = HashSet::new();
        let mut servers = Vec::with_capacity(self.servers.len());
        for name in &self.servers {
            if !seen.insert(name.as_str()) {
                return Err(ConfigError::new(
                    "servers",
                    format!("memcached server {name:?} is listed twice"),
                ));
            }
            let addrs: Vec<SocketAddr> = name
                .as_str()
                .to_socket_addrs()
                .map_err(|error| {
                    ConfigError::new(
                        "servers",
                        format!("cannot resolve memcached server {name:?}"),
                    )
                    .with_source(error)
                })?
                .collect();
            if addrs.is_empty() {
                return Err(ConfigError::new(
                    "servers",
                    format!("memcached server {name:?} resolves to no address"),
                ));
            }
            servers.push(Server {
                name: name.clone(),
                addrs,
            });
        }
        let client = MetaClient::builder()
            .io_timeout(Some(self.io_timeout))
            .connect_timeout(Some(self.connect_timeout))
            .max_idle(self.max_idle)
            .max_connections(self.max_connections)
            .connect_multiple(self.servers.iter().cloned())
            .map_err(|error| {
                ConfigError::new("servers", "the memcached client could not be built")
                    .with_source(error)
            })?;
        let pipeline = Pipeline::new(
            servers
                .iter()
                .map(|server| (server.name.clone(), server.addrs.clone())),
            self.io_timeout,
            self.connect_timeout,
            self.max_idle,
            self.max_connections,
            self.max_value_size,
        );
        Ok(MemcachedStore {
            client,
            pipeline: Arc::new(pipeline),
            servers: servers.into(),
            prefix: self.prefix.into(),
            io_timeout: self.io_timeout,
            connect_timeout: self.connect_timeout,
            max_value_size: self.max_value_size,
        })
    }
}

impl Default for MemcachedStoreBuilder {
    /// Same as [`MemcachedStoreBuilder::new`].
    fn default() -> MemcachedStoreBuilder {
        MemcachedStoreBuilder::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::Barrier;
    use std::thread;
    use std::time::Instant;

    use memcache::exp::Meta;

    use super::*;
    use crate::store::Fetched;

    const MINUTE: Duration = Duration::from_secs(60);

    /// The memcached binary: `$MEMCACHED_BIN` when it names a file, else
    /// `memcached` on `PATH`.
    fn memcached_bin() -> Option<PathBuf> {
        if let Some(bin) = std::env::var_os("MEMCACHED_BIN").map(PathBuf::from) {
            if bin.is_file() {
                return Some(bin);
            }
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("memcached"))
            .find(|bin| bin.is_file())
    }

    /// A private memcached on a free loopback port, killed on drop.
    struct Memcached {
        child: Child,
        port: u16,
        stopped: bool,
    }

    impl Memcached {
        /// `None` (after printing a notice) when there is no binary.
        fn spawn() -> Option<Memcached> {
            let Some(bin) = memcached_bin() else {
                eprintln!(
                    "skipping: no memcached binary (set MEMCACHED_BIN or put memcached on PATH)"
                );
                return None;
            };
            for _ in 0..5 {
                if let Some(server) = Memcached::try_spawn(&bin) {
                    return Some(server);
                }
            }
            panic!("could not start {}", bin.display());
        }

        fn try_spawn(bin: &Path) -> Option<Memcached> {
            let port = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            // `-u root` is required when running as root and ignored otherwise.
            let child = Command::new(bin)
                .args(["-u", "root", "-l", "127.0.0.1", "-U", "0", "-m", "64", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let mut server = Memcached {
                child,
                port,
                stopped: false,
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    return None; // Lost the port race: try another.
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Some(server);
                }
                thread::sleep(Duration::from_millis(10));
            }
            None
        }

        fn addr(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }

        fn store(&self) -> MemcachedStore {
            MemcachedStore::connect([self.addr()]).unwrap()
        }

        fn signal(&self, signal: &str) {
            let status = Command::new("kill")
                .arg(signal)
                .arg(self.child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
        }

        /// SIGSTOP, then wait until every thread is actually stopped: the
        /// signal is delivered asynchronously, and a worker thread could
        /// still answer one more request.
        fn pause(&mut self) {
            self.signal("-STOP");
            self.stopped = true;
            let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
            let all_stopped = || -> Option<bool> {
                let mut stopped = true;
                for task in std::fs::read_dir(&tasks).ok()? {
                    let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                    // The state follows the parenthesised command name.
                    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
                    stopped &= state == "T" || state == "t";
                }
                Some(stopped)
            };
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                match all_stopped() {
                    Some(true) => return,
                    Some(false) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    // No /proc (or too slow): give the signal a moment.
                    _ => return thread::sleep(Duration::from_millis(50)),
                }
            }
        }

        fn resume(&mut self) {
            self.signal("-CONT");
            self.stopped = false;
        }

        fn kill(&mut self) {
            if self.stopped {
                self.resume();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Memcached {
        fn drop(&mut self) {
            self.kill();
        }
    }

    macro_rules! memcached_or_skip {
        () => {
            match Memcached::spawn() {
                Some(server) => server,
                None => return,
            }
        };
    }

    /// A port nothing listens on.
    fn dead_addr() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr.to_string()
    }

    /// The remaining TTL memcached reports for a key (-1: never expires).
    fn server_ttl(store: &MemcachedStore, key: Key) -> Option<i64> {
        let result = store
            .client
            .run(Get::new(store.render_key(key)).meta(Meta::NONE.ttl()))
            .unwrap();
        if result.hit() {
            result.item.ttl
        } else {
            None
        }
    }

    fn unique_hash() -> u128 {
        fastrand::u128(..)
    }

    // ----- no server needed -------------------------------------------------

    #[test]
    fn key_rendering_and_length_bound() {
        let store = MemcachedStore::connect([dead_addr()]).unwrap();
        assert_eq!(
            store.render_key(Key::entry(1)),
            "cb:e00000000000000000000000000000001"
        );
        assert_eq!(
            store.render_key(Key::generation(u128::MAX)),
            format!("cb:g{}", "f".repeat(32))
        );
        // The same text as padded lowercase hex, whatever the hash.
        for i in 0..1000u128 {
            let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) >> (i % 128);
            assert_eq!(
                store.render_key(Key::entry(hash)),
                format!("cb:e{hash:032x}")
            );
        }

        let longest = "~".repeat(MemcachedStore::MAX_PREFIX_LEN);
        let store = MemcachedStore::builder()
            .servers([dead_addr()])
            .prefix(longest.clone())
            .build()
            .unwrap();
        for key in [
            Key::entry(u128::MAX),
            Key::generation(u128::MAX),
            Key::entry(0),
        ] {
            let rendered = store.render_key(key);
            assert_eq!(rendered.len(), MemcachedStore::MAX_PREFIX_LEN + 33);
            assert!(
                rendered.len() <= MAX_KEY_LENGTH,
                "{} > {MAX_KEY_LENGTH}",
                rendered.len()
            );
            assert!(rendered.starts_with(&longest));
            assert!(rendered.bytes().all(|byte| byte.is_ascii_graphic()));
        }

        let bare = MemcachedStore::builder()
            .servers([dead_addr()])
            .prefix("")
            .build()
            .unwrap();
        assert_eq!(
            bare.render_key(Key::generation(0x10)),
            "g00000000000000000000000000000010"
        );
    }

    #[test]
    fn builder_validation() {
        let server = dead_addr();
        let ok = || MemcachedStore::builder().servers([server.clone()]);
        assert!(ok().build().is_ok());
        assert!(MemcachedStore::builder().build().is_err());
        assert!(MemcachedStore::connect(Vec::<String>::new()).is_err());
        assert!(ok().prefix("~".repeat(64)).build().is_ok());
        for prefix in [
            "~".repeat(65),
            "a b".into(),
            "tab\t".into(),
            "nl\n".into(),
            "é:".into(),
            "\u{7f}".into(),
        ] {
            let error = ok().prefix(prefix.clone()).build().unwrap_err();
            assert!(error.to_string().contains("prefix"), "{prefix:?}: {error}");
        }
        // Unresolvable addresses (no DNS involved).
        for bad in ["127.0.0.1", "127.0.0.1:notaport", "", "127.0.0.1:99999"] {
            let error = MemcachedStore::connect([bad]).unwrap_err();
            assert!(error.to_string().contains("resolve"), "{bad:?}: {error}");
        }
        assert!(ok().io_timeout(Duration::ZERO).build().is_err());
        assert!(ok().connect_timeout(Duration::ZERO).build().is_err());
        assert!(ok().max_connections(0).build().is_err());
        assert!(ok().max_connections(4).max_idle(0).build().is_ok());
        assert!(MemcachedStore::connect([server.clone(), server.clone()]).is_err());

        let store = ok().max_value_size(1234).build().unwrap();
        assert_eq!(store.max_value_size(), 1234);
        assert_eq!(store.name(), "memcached");
        assert_eq!(ok().build().unwrap().max_value_size(), 1024 * 1024 - 1024);
        assert!(format!("{store:?}").contains(&server));
    }

    #[test]
    fn generation_parsing() {
        assert_eq!(parse_generation(b"123"), Some(123));
        assert_eq!(parse_generation(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_generation(b"7  "), Some(7));
        assert_eq!(parse_generation(b"007"), Some(7));
        for bad in [
            &b""[..],
            b"0",
            b"000",
            b" ",
            b"abc",
            b"12a",
            b"+5",
            b"-1",
            b" 5",
            b"1 2",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_generation(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ttl_rounding() {
        assert_eq!(entry_ttl_secs(Duration::ZERO), 1);
        assert_eq!(entry_ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(entry_ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(entry_ttl_secs(Duration::from_secs(300)), 300);
        assert_eq!(
            entry_ttl_secs(Duration::from_secs(40 * 24 * 3600)),
            MAX_ENTRY_TTL_SECS
        );
        assert_eq!(entry_ttl_secs(Duration::MAX), MAX_ENTRY_TTL_SECS);
    }

    #[test]
    fn vivify_wire_format_puts_never_expire_last() {
        // The server applies N then T in wire order; T0 must come after N1
        // for a created generation to never expire.
        let command = memcache::exp::Operation::prepare(&vivify_op("cb:gk", 42)).unwrap();
        assert_eq!(
            command.encode().unwrap(),
            b"ma cb:gk v D0 N1 J42 T0\r\n".to_vec()
        );
    }

    #[test]
    fn error_kinds() {
        let io = |kind| ClientError::Io(io::Error::from(kind));
        assert_eq!(
            error_kind(&ClientError::Timeout { key: b"k".to_vec() }),
            StoreErrorKind::Timeout
        );
        assert_eq!(
            error_kind(&io(io::ErrorKind::TimedOut)),
            StoreErrorKind::Timeout
        );
        assert_eq!(
            error_kind(&io(io::ErrorKind::ConnectionRefused)),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            error_kind(&io(io::ErrorKind::UnexpectedEof)),
            StoreErrorKind::Unavailable
        );
        let ambiguous = ClientError::Ambiguous {
            key: b"k".to_vec(),
            source: Box::new(ClientError::Timeout { key: b"k".to_vec() }),
        };
        assert_eq!(error_kind(&ambiguous), StoreErrorKind::Timeout);
        assert_eq!(
            error_kind(&ClientError::Protocol("x".into())),
            StoreErrorKind::Protocol
        );
        assert_eq!(
            error_kind(&ClientError::Server("out of memory".into())),
            StoreErrorKind::Protocol
        );
        assert_eq!(
            error_kind(&ClientError::Server("object too large for cache".into())),
            StoreErrorKind::Rejected
        );
        assert_eq!(
            error_kind(&ClientError::Rejected("bad".into())),
            StoreErrorKind::Rejected
        );
        assert_eq!(
            error_kind(&ClientError::Usage("key too long")),
            StoreErrorKind::Rejected
        );
        let rejected = ClientError::Ambiguous {
            key: b"k".to_vec(),
            source: Box::new(ClientError::Rejected("non-numeric".into())),
        };
        assert!(is_client_error(&rejected));
        assert!(!is_client_error(&ambiguous));
    }

    // ----- against a real memcached -----------------------------------------

    #[test]
    fn fetch_miss_then_hit() {
        let server = memcached_or_skip!();
        let store = server.store();
        store.ping().unwrap();
        let entry = Key::entry(unique_hash());
        let gens = [
            Key::generation(unique_hash()),
            Key::generation(unique_hash()),
        ];

        let miss = store.fetch(entry, &gens).unwrap();
        assert_eq!(
            miss,
            Fetched {
                entry: None,
                generations: vec![None, None]
            }
        );

        let snapshot = store.ensure_generations(&gens).unwrap();
        store.put_entry(entry, b"payload", MINUTE).unwrap();
        let hit = store.fetch(entry, &gens).unwrap();
        assert_eq!(hit.entry.as_deref(), Some(&b"payload"[..]));
        assert_eq!(
            hit.generations,
            snapshot.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(
            store.fetch(entry, &[]).unwrap().generations,
            Vec::<Option<u64>>::new()
        );

        // Entries and generations with the same hash are distinct keys.
        assert_eq!(
            store
                .fetch(Key::entry(gens[0].hash), &[Key::generation(entry.hash)])
                .unwrap(),
            Fetched {
                entry: None,
                generations: vec![None]
            }
        );

        // An empty entry is an entry.
        store.put_entry(entry, b"", MINUTE).unwrap();
        assert_eq!(store.fetch(entry, &[]).unwrap().entry, Some(Vec::new()));
    }

    #[test]
    fn ensure_creates_once_as_never_expiring_decimal() {
        let server = memcached_or_skip!();
        let store = server.store();
        let keys: Vec<Key> = (0..20).map(|_| Key::generation(unique_hash())).collect();
        let first = store.ensure_generations(&keys).unwrap();
        assert!(first.iter().all(|&g| g != 0));
        assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len());
        assert_eq!(store.ensure_generations(&keys).unwrap(), first);
        assert_eq!(store.ensure_generations(&[]).unwrap(), Vec::<u64>::new());
        for (key, value) in keys.iter().zip(&first) {
            assert_eq!(
                store.raw_get(*key).unwrap(),
                Some(value.to_string().into_bytes())
            );
            assert_eq!(
                server_ttl(&store, *key),
                Some(-1),
                "a generation must never expire"
            );
        }
        // N1 alone would have expired the items by now; T0 keeps them.
        thread::sleep(Duration::from_millis(1100));
        assert_eq!(store.ensure_generations(&keys).unwrap(), first);
        let fetched = store.fetch(Key::entry(0), &keys).unwrap().generations;
        assert_eq!(fetched, first.iter().copied().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_creators_get_the_same_value() {
        let server = memcached_or_skip!();
        let store = server.store();
        let threads = 8;
        for _ in 0..10 {
            let keys: Vec<Key> = (0..32).map(|_| Key::generation(unique_hash())).collect();
            let barrier = Barrier::new(threads);
            let results: Vec<Vec<u64>> = thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            store.ensure_generations(&keys).unwrap()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap())
                    .collect()
            });
            for result in &results[1..] {
                assert_eq!(result, &results[0]);
            }
        }
    }

    #[test]
    fn bump_changes_values_never_zero_and_never_expiring() {
        let server = memcached_or_skip!();
        let store = server.store();
        let keys: Vec<Key> = (0..10).map(|_| Key::generation(unique_hash())).collect();
        let mut previous = store.ensure_generations(&keys).unwrap();
        for _ in 0..50 {
            store.bump(&keys).unwrap();
            let current: Vec<u64> = store
                .fetch(Key::entry(0), &keys)
                .unwrap()
                .generations
                .into_iter()
                .map(|g| g.expect("bumped generation present"))
                .collect();
            for (now, before) in current.iter().zip(&previous) {
                assert_ne!(*now, 0);
                assert_ne!(now, before);
            }
            assert_eq!(store.ensure_generations(&keys).unwrap(), current);
            previous = current;
        }
        // Bumping a key that never existed creates it, as a decimal.
        let fresh = Key::generation(unique_hash());
        store.bump(&[fresh]).unwrap();
        let raw = store.raw_get(fresh).unwrap().unwrap();
        assert!(parse_generation(&raw).is_some());
        assert_eq!(server_ttl(&store, fresh), Some(-1));
        store.bump(&[]).unwrap();
    }

    #[test]
    fn entry_ttl_is_rounded_up_and_expires() {
        let server = memcached_or_skip!();
        let store = server.store();
        let long = Key::entry(unique_hash());
        store
            .put_entry(long, b"x", Duration::from_millis(1500))
            .unwrap();
        assert_eq!(server_ttl(&store, long), Some(2));
        let capped = Key::entry(unique_hash());
        store
            .put_entry(capped, b"x", Duration::from_secs(40 * 24 * 3600))
            .unwrap();
        let ttl = server_ttl(&store, capped).unwrap();
        assert!((i64::from(MAX_ENTRY_TTL_SECS) - 5..=i64::from(MAX_ENTRY_TTL_SECS)).contains(&ttl));

        // 10 ms becomes 1 s: present now, gone within memcached's
        // one-second clock granularity.
        let short = Key::entry(unique_hash());
        store
            .put_entry(short, b"x", Duration::from_millis(10))
            .unwrap();
        assert!(matches!(server_ttl(&store, short), Some(0..=1)));
        let started = Instant::now();
        while store.fetch(short, &[]).unwrap().entry.is_some() {
            assert!(
                started.elapsed() < Duration::from_millis(2100),
                "entry did not expire"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn garbage_generations_read_as_missing_and_are_repaired() {
        let server = memcached_or_skip!();
        let store = server.store();
        let valid_before = Key::generation(unique_hash());
        let garbage = Key::generation(unique_hash());
        let zero = Key::generation(unique_hash());
        let valid_after = Key::generation(unique_hash());
        let missing = Key::generation(unique_hash());
        let keys = [valid_before, garbage, zero, valid_after, missing];

        let before = store
            .ensure_generations(&[valid_before, valid_after])
            .unwrap();
        store.raw_set(garbage, b"not a number").unwrap();
        store.raw_set(zero, b"0").unwrap();

        let fetched = store.fetch(Key::entry(0), &keys).unwrap();
        assert_eq!(
            fetched.generations,
            vec![Some(before[0]), None, None, Some(before[1]), None]
        );

        // One call: garbage overwritten, valid keys behind it untouched,
        // the missing one created.
        let ensured = store.ensure_generations(&keys).unwrap();
        assert_eq!(ensured[0], before[0]);
        assert_eq!(ensured[3], before[1]);
        assert!(ensured.iter().all(|&g| g != 0));
        for (key, value) in keys.iter().zip(&ensured) {
            assert_eq!(
                store.raw_get(*key).unwrap(),
                Some(value.to_string().into_bytes())
            );
            assert_eq!(server_ttl(&store, *key), Some(-1));
        }
        let fetched = store.fetch(Key::entry(0), &keys).unwrap();
        assert_eq!(
            fetched.generations,
            ensured.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(store.ensure_generations(&keys).unwrap(), ensured);

        // A garbage key listed twice is repaired once: both slots agree.
        store.raw_set(garbage, b"junk").unwrap();
        let twice = store
            .ensure_generations(&[garbage, valid_before, garbage])
            .unwrap();
        assert_eq!(twice[0], twice[2]);
        assert_eq!(twice[1], before[0]);
        assert_eq!(
            store.raw_get(garbage).unwrap(),
            Some(twice[0].to_string().into_bytes())
        );

        // An empty value is garbage too; padded decimals are fine.
        store.raw_set(garbage, b"").unwrap();
        assert_eq!(
            store.fetch(Key::entry(0), &[garbage]).unwrap().generations,
            vec![None]
        );
        let repaired = store.ensure_generations(&[garbage]).unwrap()[0];
        assert_ne!(repaired, 0);
        // A lone "0" is answered by `ma` as the number 0: overwritten too.
        store.raw_set(zero, b"0").unwrap();
        let repaired = store.ensure_generations(&[zero]).unwrap()[0];
        assert_ne!(repaired, 0);
        assert_eq!(
            store.raw_get(zero).unwrap(),
            Some(repaired.to_string().into_bytes())
        );
        store.raw_set(zero, b"42  ").unwrap();
        assert_eq!(
            store.fetch(Key::entry(0), &[zero]).unwrap().generations,
            vec![Some(42)]
        );
        assert_eq!(store.ensure_generations(&[zero]).unwrap(), vec![42]);
    }

    #[test]
    fn value_size_limit() {
        let server = memcached_or_skip!();
        let store = server.store();
        // The default limit fits memcached's default 1 MiB item size.
        let largest = vec![7u8; MemcachedStore::DEFAULT_MAX_VALUE_SIZE];
        let key = Key::entry(unique_hash());
        store.put_entry(key, &largest, MINUTE).unwrap();
        assert_eq!(
            store.fetch(key, &[]).unwrap().entry.map(|v| v.len()),
            Some(largest.len())
        );
        let too_big = Key::entry(unique_hash());
        let error = store
            .put_entry(too_big, &[largest.as_slice(), b"x"].concat(), MINUTE)
            .unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::Rejected);
        assert_eq!(store.raw_get(too_big).unwrap(), None);

        let small = MemcachedStore::builder()
            .servers([server.addr()])
            .max_value_size(100)
            .build()
            .unwrap();
        small.put_entry(key, &[1; 100], MINUTE).unwrap();
        let error = small.put_entry(key, &[1; 101], MINUTE).unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::Rejected);
        assert_eq!(error.store, "memcached");
        assert_eq!(small.fetch(key, &[]).unwrap().entry, Some(vec![1; 100]));
    }

    #[test]
    fn two_servers_spread_keys_and_fetch_across_both() {
        let first = memcached_or_skip!();
        let second = memcached_or_skip!();
        let both = MemcachedStore::connect([first.addr(), second.addr()]).unwrap();
        let only_first = first.store();
        let only_second = second.store();

        let keys: Vec<Key> = (0..64).map(|_| Key::generation(unique_hash())).collect();
        let values = both.ensure_generations(&keys).unwrap();
        let (mut on_first, mut on_second) = (0, 0);
        for (key, value) in keys.iter().zip(&values) {
            let expected = Some(value.to_string().into_bytes());
            match (
                only_first.raw_get(*key).unwrap(),
                only_second.raw_get(*key).unwrap(),
            ) {
                (Some(raw), None) if Some(&raw) == expected.as_ref() => on_first += 1,
                (None, Some(raw)) if Some(&raw) == expected.as_ref() => on_second += 1,
                other => panic!("key on both or neither server: {other:?}"),
            }
        }
        assert!(on_first > 0 && on_second > 0, "{on_first} / {on_second}");

        let entry = Key::entry(unique_hash());
        both.put_entry(entry, b"rows", MINUTE).unwrap();
        let fetched = both.fetch(entry, &keys).unwrap();
        assert_eq!(fetched.entry.as_deref(), Some(&b"rows"[..]));
        assert_eq!(
            fetched.generations,
            values.iter().copied().map(Some).collect::<Vec<_>>()
        );

        both.bump(&keys).unwrap();
        let bumped = both.fetch(entry, &keys).unwrap().generations;
        assert!(bumped
            .iter()
            .zip(&values)
            .all(|(now, before)| matches!(now, Some(g) if g != before)));

        both.ping().unwrap();
        both.flush_all().unwrap();
        assert_eq!(
            both.fetch(entry, &keys[..2]).unwrap(),
            Fetched {
                entry: None,
                generations: vec![None, None]
            }
        );
        assert_eq!(only_first.raw_get(keys[0]).unwrap(), None);
        assert_eq!(only_second.raw_get(keys[0]).unwrap(), None);
    }

    #[test]
    fn killed_server_fails_fast_and_building_still_works() {
        let mut server = memcached_or_skip!();
        let store = server.store();
        let keys = [Key::generation(unique_hash())];
        store.ensure_generations(&keys).unwrap();
        server.kill();

        let started = Instant::now();
        let error = store.fetch(Key::entry(1), &keys).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.kind, StoreErrorKind::Unavailable, "{error}");
        assert_eq!(error.store, "memcached");
        for result in [
            store.ensure_generations(&keys).map(drop),
            store.bump(&keys),
            store.put_entry(Key::entry(1), b"x", MINUTE),
            store.ping(),
            store.flush_all(),
            store.raw_set(keys[0], b"1").map(drop),
            store.raw_get(keys[0]).map(drop),
        ] {
            assert_eq!(result.unwrap_err().kind, StoreErrorKind::Unavailable);
        }
        assert!(started.elapsed() < Duration::from_secs(2));

        // A store can be built while the server is down.
        let rebuilt = MemcachedStore::connect([server.addr()]).unwrap();
        assert_eq!(
            rebuilt.fetch(Key::entry(1), &keys).unwrap_err().kind,
            StoreErrorKind::Unavailable
        );
    }

    #[test]
    fn paused_server_times_out_within_the_io_timeout() {
        let mut server = memcached_or_skip!();
        let timeout = Duration::from_millis(200);
        let store = MemcachedStore::builder()
            .servers([server.addr()])
            .io_timeout(timeout)
            .build()
            .unwrap();
        let keys = [Key::generation(unique_hash())];
        store.ensure_generations(&keys).unwrap();

        server.pause();
        let started = Instant::now();
        let error = store.fetch(Key::entry(1), &keys).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(error.kind, StoreErrorKind::Timeout, "{error}");
        assert!(
            elapsed >= timeout - Duration::from_millis(20),
            "{elapsed:?}"
        );
        assert!(
            elapsed < timeout + Duration::from_millis(300),
            "{elapsed:?}"
        );

        // Writes time out too (their outcome is unknown, still a timeout).
        let started = Instant::now();
        assert_eq!(store.bump(&keys).unwrap_err().kind, StoreErrorKind::Timeout);
        assert!(started.elapsed() < timeout + Duration::from_millis(300));

        server.resume();
        // The timed-out connections were discarded; fresh ones work. The
        // bump sent while paused may or may not have landed.
        let after = store.fetch(Key::entry(1), &keys).unwrap().generations;
        assert!(after[0].is_some());
    }
}
