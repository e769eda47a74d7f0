//! The memcached store: entries and generations shared by every process
//! pointed at the same servers.
//!
//! # Why the meta protocol
//!
//! It talks to memcached's meta protocol, which pipelines: every [`Store`]
//! method is one batch, written at once and answered in order, so it costs
//! one round trip per server involved (one, with one server), whatever the
//! number of keys. A cached read must cost much less than the query it
//! replaces, and a round trip per key (or a chatty client) would eat that
//! margin.
//!
//! Most commands go through the `memcache` crate's `exp` [`MetaClient`].
//! The two hot paths, reads ([`Store::fetch`]) and bumps, write their
//! commands themselves over their own pooled sockets (module `pipeline`),
//! with fewer system calls and allocations than through the client. With several servers, keys are routed by rendezvous
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
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "async")]
mod aio;
mod exchange;
mod pipeline;
mod protocol;
#[cfg(any(test, feature = "__test-hooks"))]
mod test_support;

#[cfg(any(test, fuzzing))]
pub(crate) use protocol::parse_stream;

use memcache::exp::{
    Arithmetic, Error as ClientError, Get, MetaClient, Op, OpResult, Set, Ttl, MAX_KEY_LENGTH,
};

#[cfg(feature = "async")]
use super::AsyncStore;
use super::{fresh_generation, FetchedMany, Generation, Key, KeyKind, Store};
use crate::error::{ConfigError, StoreError, StoreErrorKind};
use pipeline::Pipeline;
use protocol::{hint, Answer, NAME};

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
    /// The same operations without blocking (feature `async`, see `aio`).
    #[cfg(feature = "async")]
    aio: Arc<aio::AsyncMemcached>,
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

    /// Append the key's rendering to `out`. By hand rather than with
    /// `format!`'s padded hex: it runs for every key of every read.
    fn write_key(&self, key: Key, out: &mut Vec<u8>) {
        write_key(&self.prefix, key, out);
    }

    /// The store's non-blocking half (feature `async`): the same servers,
    /// prefix, timeouts and limits over tokio sockets, built with the
    /// store (never dialing) and shared by its clones.
    #[cfg(feature = "async")]
    pub(crate) fn async_store(&self) -> Arc<dyn AsyncStore> {
        self.aio.clone()
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
        self.client.noop().map_err(|error| self.fail("ping", error))
    }

    /// A [`StoreError`] for a client failure, traced at debug level: the
    /// callers count and report store failures themselves.
    fn fail(&self, op: &'static str, error: ClientError) -> StoreError {
        let kind = error_kind(&error);
        tracing::debug!(store = NAME, op, kind = %kind, message = %error, "memcached operation failed");
        StoreError::new(NAME, kind, format!("{op} ({})", hint(kind))).with_source(error)
    }

    /// A [`StoreErrorKind::Protocol`] error for an answer the store did not
    /// expect.
    fn unexpected(&self, op: &'static str, message: String) -> StoreError {
        tracing::debug!(store = NAME, op, kind = %StoreErrorKind::Protocol, %message, "memcached operation failed");
        let hint = hint(StoreErrorKind::Protocol);
        StoreError::new(
            NAME,
            StoreErrorKind::Protocol,
            format!("{op}: {message} ({hint})"),
        )
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
            .map_err(|error| self.fail(OP, error))?;
        let mut writes: Vec<(usize, Op, Generation)> = Vec::new();
        for (&index, read) in unique.iter().zip(reads) {
            let read = read.map_err(|error| self.fail(OP, error))?;
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
            .map_err(|error| self.fail(OP, error))?;
        for ((index, _, fresh), result) in writes.iter().zip(results) {
            values[*index] = match result.map_err(|error| self.fail(OP, error))? {
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
            .map_err(|error| self.fail(OP, error))?;
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
                Err(error) => return Err(self.fail(OP, error)),
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
        let result = self.client.run(set).map_err(|error| self.fail(OP, error))?;
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
                    protocol::push_decimal(fresh_generation(), &mut value);
                    protocol::push_set(key, &value, out);
                },
                |_, answer| {
                    if answer != Answer::Stored {
                        not_stored += 1;
                    }
                },
            )
            .inspect_err(|error| {
                tracing::warn!(store = NAME, op = OP, kind = %error.kind(), message = %error.message(), "memcached bump failed");
            })?;
        if not_stored > 0 {
            let error = self.unexpected(OP, format!("{not_stored} generations not stored"));
            tracing::warn!(store = NAME, op = OP, message = %error.message(), "memcached bump failed");
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

/// Append `{prefix}{e|g}{32 lowercase hex digits}` to `out` (see
/// [`MemcachedStore::render_key`]): the one rendering both halves of the
/// store use, blocking and async.
fn write_key(prefix: &str, key: Key, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(prefix.as_bytes());
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
    // By hand rather than `str::parse`: trailing blanks are allowed, and it
    // runs for every generation of every read.
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
    /// of the store's pools (reads and bumps; everything else; with the
    /// `async` feature, the async operations'). More concurrent operations
    /// dial extra connections, closed after use.
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
    /// the store's pools (reads and bumps; everything else; with the
    /// `async` feature, the async operations'): up to twice this many per
    /// server in all, three times with `async`. At the cap, an operation
    /// waits up to the connect timeout for a free connection (an async one
    /// without blocking its thread), then fails with
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
        let prefix: Arc<str> = self.prefix.into();
        #[cfg(feature = "async")]
        let aio = aio::AsyncMemcached::new(
            servers
                .iter()
                .map(|server| (server.name.clone(), server.addrs.clone())),
            prefix.clone(),
            self.io_timeout,
            self.connect_timeout,
            self.max_idle,
            self.max_connections,
            self.max_value_size,
        );
        Ok(MemcachedStore {
            client,
            pipeline: Arc::new(pipeline),
            #[cfg(feature = "async")]
            aio: Arc::new(aio),
            servers: servers.into(),
            prefix,
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
mod tests;
