//! Where entries and generations live.
//!
//! A [`Store`] is asked for four things, each in one round trip: fetch an
//! entry together with the generations it depends on, read-or-create
//! generations before a database read, write an entry, and bump generations
//! after a write. Everything else (keys, hashing, entry layout, statistics)
//! is the crate's business, so a store only moves bytes and 64-bit
//! generations.
//!
//! Generations are never 0 and are created at random: a generation that was
//! evicted and created again cannot match a snapshot taken before, so
//! eviction turns into a miss, never a stale hit.

use std::time::Duration;

mod generations;
#[cfg(feature = "memcached")]
mod memcached;
mod memory;
#[cfg(all(feature = "memcached", any(test, fuzzing)))]
pub(crate) use memcached::parse_stream;

#[cfg(feature = "memcached")]
pub use memcached::{MemcachedStore, MemcachedStoreBuilder};
pub use memory::{InProcessStore, InProcessStoreBuilder};

use crate::error::StoreError;
use crate::util::clock_map::ClockKey;

/// A generation value: random, never 0.
pub type Generation = u64;

/// What a key names: a cached result, or a generation counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// A cached query result (an entry).
    Entry,
    /// A generation a cached result depends on.
    Generation,
}

/// A store key: a 128-bit hash and what it names.
///
/// Stores render it however suits them (memcached: a short ASCII string
/// under the configured prefix); the hash is already strong (xxh3-128), so
/// two distinct keys never share a rendering.
///
/// ```
/// use cachebot::store::{Key, KeyKind};
///
/// let key = Key::generation(0xab);
/// assert_eq!(key.kind(), KeyKind::Generation);
/// assert_eq!(key.hash(), 0xab);
/// assert_eq!(Key::new(KeyKind::Entry, 1), Key::entry(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    kind: KeyKind,
    hash: u128,
}

impl Key {
    /// A key of the given kind with the given hash.
    pub const fn new(kind: KeyKind, hash: u128) -> Key {
        Key { kind, hash }
    }

    /// A key naming an entry.
    pub const fn entry(hash: u128) -> Key {
        Key::new(KeyKind::Entry, hash)
    }

    /// A key naming a generation.
    pub const fn generation(hash: u128) -> Key {
        Key::new(KeyKind::Generation, hash)
    }

    /// Entry or generation.
    pub const fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The 128-bit hash that identifies it.
    pub const fn hash(&self) -> u128 {
        self.hash
    }
}

impl ClockKey for Key {
    fn spread(&self) -> u64 {
        (self.hash as u64) ^ ((self.hash >> 64) as u64)
    }
}

/// The answer to [`Store::fetch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The entry's bytes, if the store has it.
    pub entry: Option<Vec<u8>>,
    /// One slot per requested generation key, in request order: `None` when
    /// the store does not have it (evicted, never created, or unreadable).
    pub generations: Vec<Option<Generation>>,
}

impl From<FetchedMany> for Fetched {
    /// The first entry of a one-entry fetch, and the generations.
    fn from(mut many: FetchedMany) -> Fetched {
        many.entries.truncate(1);
        Fetched {
            entry: many.entries.pop().flatten(),
            generations: many.generations,
        }
    }
}

/// The answer to [`Store::fetch_many`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedMany {
    /// One slot per requested entry key, in request order.
    pub entries: Vec<Option<Vec<u8>>>,
    /// One slot per requested generation key, in request order.
    pub generations: Vec<Option<Generation>>,
}

/// A place to keep cached entries and their generations.
///
/// Implementations must be safe to share between threads. Every method is
/// one round trip to the backing service (or none, in process). Errors are
/// reported, never hidden: the caller turns them into database reads and
/// counts them.
pub trait Store: Send + Sync + 'static {
    /// Fetch several entries and the given generations in one round trip
    /// (one per server involved).
    fn fetch_many(&self, entries: &[Key], generations: &[Key]) -> Result<FetchedMany, StoreError>;

    /// Fetch an entry and the given generations in one round trip.
    fn fetch(&self, entry: Key, generations: &[Key]) -> Result<Fetched, StoreError> {
        let mut many = self.fetch_many(std::slice::from_ref(&entry), generations)?;
        Ok(Fetched {
            entry: many.entries.pop().flatten(),
            generations: many.generations,
        })
    }

    /// Read the given generations, creating each missing one with a fresh
    /// random non-zero value (atomically: two callers racing to create the
    /// same generation get the same value). Returns one value per key, in
    /// order.
    fn ensure_generations(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError>;

    /// Store an entry for at most `ttl`.
    fn put_entry(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Give each generation a new random non-zero value, whether it existed
    /// or not. Every entry stored with the old value stops being served.
    fn bump(&self, keys: &[Key]) -> Result<(), StoreError>;

    /// The largest entry value this store accepts, in bytes. Larger results
    /// are served from the database and not stored.
    fn max_value_size(&self) -> usize;

    /// A short name for traces and errors ("in-process", "memcached").
    fn name(&self) -> &'static str;

    /// Whether the store lives in this process's memory, so that a call
    /// costs no round trip. The cache then reads a query's generations
    /// first and copies its entry out only when the decoded rows it keeps
    /// locally are not current. Default: `false` (one round trip fetches
    /// both).
    fn is_in_process(&self) -> bool {
        false
    }
}

/// A future of a store operation (feature `async`).
#[cfg(feature = "async")]
pub(crate) type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that does its I/O without blocking the async runtime (feature
/// `async`): the same four operations as [`Store`], as futures. Crate-private:
/// the crate's own remote stores provide one (memcached over tokio sockets);
/// an in-process store needs none (its calls never wait).
///
/// Cancellation: a future dropped at any await point leaves no connection
/// out of step (a socket with a request or answer in flight is closed, not
/// pooled) and no half-written value that could be read.
#[cfg(feature = "async")]
pub(crate) trait AsyncStore: Send + Sync + 'static {
    /// See [`Store::fetch_many`].
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [Key],
        generations: &'a [Key],
    ) -> StoreFuture<'a, FetchedMany>;

    /// See [`Store::ensure_generations`].
    fn ensure_generations<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Generation>>;

    /// See [`Store::put_entry`].
    fn put_entry<'a>(&'a self, key: Key, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;

    /// See [`Store::bump`].
    fn bump<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, ()>;
}

/// The non-blocking side of `store`, if it has one: the crate's memcached
/// store does (feature `async`).
#[cfg(feature = "async")]
pub(crate) fn async_side<S: Store>(store: &S) -> Option<std::sync::Arc<dyn AsyncStore>> {
    let any: &dyn std::any::Any = store;
    #[cfg(feature = "memcached")]
    if let Some(memcached) = any.downcast_ref::<MemcachedStore>() {
        return Some(memcached.async_store());
    }
    let _ = any;
    None
}

/// A fresh random generation: uniformly random and never 0.
pub(crate) fn fresh_generation() -> Generation {
    fastrand::u64(1..)
}
