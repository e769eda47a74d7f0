//! The in-process store: entries and generations in this process's memory.
//!
//! This is the default store. A hit costs a few hash-map lookups and no
//! round trip, far less than the query it replaces. It is correct for one
//! process: generations live here, so writes made by other processes are
//! not seen. Use the memcached store when several processes share a
//! database.
//!
//! # Entries and generations
//!
//! Both live in sharded hash maps with second-chance eviction (`util::clock_map`),
//! each with its own bound, so a flood of large entries never evicts the
//! generations:
//!
//! - **Entries** are bounded by their total size in bytes (value length
//!   plus a small fixed per-entry overhead, so even empty values count) and
//!   expire after their own TTL, restarted by every overwrite.
//! - **Generations** are bounded by count and never expire. A brand-new
//!   generation (created right before the entry that depends on it is
//!   stored) is always admitted.
//!
//! Evicting either is harmless: an evicted entry is a miss, and an evicted
//! generation is re-created with a fresh random value, which no stored
//! entry can match, so its dependents miss rather than serve stale data.
//! Eviction keeps what is read: a slot read since the last sweep of its
//! shard survives the next one.
//!
//! Keys are [`Key`] values hashed directly (one multiply of the `u128`
//! they already are), never rendered to strings.
//!
//! # Why not a general-purpose cache
//!
//! Generations are read by every hit and entries written by every miss, so
//! per-access bookkeeping dominates the store's cost. A general-purpose
//! cache's policies (read recording, timer wheels, frequency-based
//! admission) buy nothing here: eviction is always safe, and the store
//! needs only a bound and a deadline, which `ClockMap` gives with a read
//! lock and a flag per access.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::generations::Generations;
use super::{FetchedMany, Generation, Key, Store};
use crate::error::{StoreError, StoreErrorKind};
use crate::util::clock_map::ClockMap;

/// The store name used in errors and traces.
const NAME: &str = "in-process";

/// Bytes charged to every entry on top of its value: the key, the slot
/// and the deadline. Keeps the byte bound meaningful for tiny or empty
/// values.
const ENTRY_OVERHEAD: usize = 64;

/// Entry shards hold at least this many times the largest value, so that
/// one large value evicts a fraction of its shard, not all of it.
const VALUES_PER_SHARD: usize = 4;

/// A [`Store`] that keeps entries and generations in this process's memory.
///
/// Cheap to clone: clones share the same caches.
///
/// ```
/// use std::time::Duration;
/// use cachebot::store::{InProcessStore, Key, Store};
///
/// let store = InProcessStore::new();
/// let table = Key::generation(1);
/// let entry = Key::entry(2);
///
/// // Miss path: read (or create) the generations, then store the entry.
/// let snapshot = store.ensure_generations(&[table]).unwrap();
/// store.put_entry(entry, b"rows", Duration::from_secs(60)).unwrap();
///
/// // Hit path: the entry and its generations in one call.
/// let fetched = store.fetch(entry, &[table]).unwrap();
/// assert_eq!(fetched.entry.as_deref(), Some(&b"rows"[..]));
/// assert_eq!(fetched.generations, vec![Some(snapshot[0])]);
///
/// // A write bumps the generation: the stored entry no longer matches.
/// store.bump(&[table]).unwrap();
/// assert_ne!(store.fetch(entry, &[table]).unwrap().generations[0], Some(snapshot[0]));
/// ```
#[derive(Clone)]
pub struct InProcessStore {
    entries: Arc<ClockMap<Key, Box<[u8]>>>,
    /// Whether any entry was ever stored. With a local tier (the default)
    /// results are kept decoded there and only those too large for it come
    /// here as bytes, usually none: until one does, a lookup skips the
    /// entries' map, a shard's lock and table that a miss would otherwise
    /// touch on caches the query just made cold. A stale `false` only
    /// reads as a miss.
    stored_any: Arc<AtomicBool>,
    generations: Arc<Generations>,
    max_bytes: u64,
    max_generations: u64,
    max_value_size: usize,
}

impl InProcessStore {
    /// Default bound on the total size of the entries: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    /// Default bound on the number of generations kept: 1,000,000.
    pub const DEFAULT_MAX_GENERATIONS: u64 = 1_000_000;

    /// Default largest entry value accepted: 1 MiB.
    pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;

    /// A store with the default bounds ([`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES),
    /// [`DEFAULT_MAX_GENERATIONS`](Self::DEFAULT_MAX_GENERATIONS),
    /// [`DEFAULT_MAX_VALUE_SIZE`](Self::DEFAULT_MAX_VALUE_SIZE)).
    ///
    /// ```
    /// use cachebot::store::{InProcessStore, Store};
    ///
    /// let store = InProcessStore::new();
    /// assert_eq!(store.max_value_size(), InProcessStore::DEFAULT_MAX_VALUE_SIZE);
    /// ```
    pub fn new() -> InProcessStore {
        InProcessStoreBuilder::new().build()
    }

    /// Start configuring a store.
    ///
    /// ```
    /// use cachebot::store::InProcessStore;
    ///
    /// let store = InProcessStore::builder().max_bytes(16 * 1024 * 1024).build();
    /// # let _ = store;
    /// ```
    pub fn builder() -> InProcessStoreBuilder {
        InProcessStoreBuilder::new()
    }

    /// The number of entries currently held (expired ones included until
    /// their shard is next swept).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachebot::store::{InProcessStore, Key, Store};
    ///
    /// let store = InProcessStore::new();
    /// store.put_entry(Key::entry(1), b"x", Duration::from_secs(60)).unwrap();
    /// assert_eq!(store.entry_count(), 1);
    /// ```
    pub fn entry_count(&self) -> u64 {
        self.entries.len()
    }

    /// The number of generations currently held.
    ///
    /// ```
    /// use cachebot::store::{InProcessStore, Key, Store};
    ///
    /// let store = InProcessStore::new();
    /// store.ensure_generations(&[Key::generation(1), Key::generation(2)]).unwrap();
    /// assert_eq!(store.generation_count(), 2);
    /// ```
    pub fn generation_count(&self) -> u64 {
        self.generations.len()
    }

    /// The total weight of the entries held, in bytes: value lengths plus a
    /// small fixed per-entry overhead. Never above the configured
    /// [`max_bytes`](InProcessStoreBuilder::max_bytes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachebot::store::{InProcessStore, Key, Store};
    ///
    /// let store = InProcessStore::new();
    /// store.put_entry(Key::entry(1), &[0u8; 1000], Duration::from_secs(60)).unwrap();
    /// assert!(store.weighted_size() >= 1000);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.entries.weight()
    }
}

impl Default for InProcessStore {
    /// Same as [`InProcessStore::new`].
    fn default() -> InProcessStore {
        InProcessStore::new()
    }
}

impl fmt::Debug for InProcessStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessStore")
            .field("max_bytes", &self.max_bytes)
            .field("max_generations", &self.max_generations)
            .field("max_value_size", &self.max_value_size)
            .field("entry_count", &self.entries.len())
            .field("generation_count", &self.generations.len())
            .finish()
    }
}

impl Store for InProcessStore {
    fn fetch_many(&self, entries: &[Key], generations: &[Key]) -> Result<FetchedMany, StoreError> {
        Ok(FetchedMany {
            entries: if self.stored_any.load(Ordering::Relaxed) {
                entries
                    .iter()
                    .map(|key| self.entries.get(key, |bytes| Some(bytes.to_vec())))
                    .collect()
            } else {
                vec![None; entries.len()]
            },
            generations: generations
                .iter()
                .map(|key| self.generations.get(key))
                .collect(),
        })
    }

    fn ensure_generations(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError> {
        // Concurrent callers for a missing key all get the value that won.
        Ok(keys
            .iter()
            .map(|key| self.generations.get_or_create(key))
            .collect())
    }

    fn put_entry(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        if value.len() > self.max_value_size {
            return Err(StoreError::new(
                NAME,
                StoreErrorKind::Rejected,
                format!(
                    "value of {} bytes exceeds the limit of {} bytes",
                    value.len(),
                    self.max_value_size
                ),
            ));
        }
        // Heavier than a shard's share (a store bounded below a few values):
        // not kept, like any evicted entry.
        let weight = value.len().saturating_add(ENTRY_OVERHEAD);
        if !self.stored_any.load(Ordering::Relaxed) {
            self.stored_any.store(true, Ordering::Relaxed);
        }
        self.entries.insert(&key, Box::from(value), weight, ttl);
        Ok(())
    }

    fn bump(&self, keys: &[Key]) -> Result<(), StoreError> {
        for key in keys {
            self.generations.bump(key);
        }
        Ok(())
    }

    fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn is_in_process(&self) -> bool {
        true
    }
}

/// Configures an [`InProcessStore`].
///
/// ```
/// use cachebot::store::{InProcessStore, InProcessStoreBuilder, Store};
///
/// let store: InProcessStore = InProcessStoreBuilder::new()
///     .max_bytes(256 * 1024 * 1024)
///     .max_generations(5_000_000)
///     .max_value_size(4 * 1024 * 1024)
///     .build();
/// assert_eq!(store.max_value_size(), 4 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct InProcessStoreBuilder {
    max_bytes: u64,
    max_generations: u64,
    max_value_size: usize,
}

impl InProcessStoreBuilder {
    /// A builder with the default settings.
    ///
    /// ```
    /// use cachebot::store::InProcessStoreBuilder;
    ///
    /// let store = InProcessStoreBuilder::new().build();
    /// # let _ = store;
    /// ```
    pub fn new() -> InProcessStoreBuilder {
        InProcessStoreBuilder {
            max_bytes: InProcessStore::DEFAULT_MAX_BYTES,
            max_generations: InProcessStore::DEFAULT_MAX_GENERATIONS,
            max_value_size: InProcessStore::DEFAULT_MAX_VALUE_SIZE,
        }
    }

    /// Bound the total size of the entries, in bytes (default 64 MiB). Each
    /// entry weighs its value length plus a small fixed overhead; entries
    /// not read lately are evicted first above the bound. A bound below
    /// four times [`max_value_size`](Self::max_value_size) is kept exactly
    /// in one shard, and a value too large for it is not kept.
    ///
    /// ```
    /// use cachebot::store::InProcessStoreBuilder;
    ///
    /// let store = InProcessStoreBuilder::new().max_bytes(8 * 1024 * 1024).build();
    /// # let _ = store;
    /// ```
    pub fn max_bytes(mut self, max_bytes: u64) -> InProcessStoreBuilder {
        self.max_bytes = max_bytes;
        self
    }

    /// Bound the number of generations kept (default 1,000,000). Evicting
    /// a generation only turns its dependents' next reads into misses.
    ///
    /// ```
    /// use cachebot::store::InProcessStoreBuilder;
    ///
    /// let store = InProcessStoreBuilder::new().max_generations(100_000).build();
    /// # let _ = store;
    /// ```
    pub fn max_generations(mut self, max_generations: u64) -> InProcessStoreBuilder {
        self.max_generations = max_generations;
        self
    }

    /// The largest entry value accepted, in bytes (default 1 MiB). Larger
    /// values are refused with [`StoreErrorKind::Rejected`].
    ///
    /// ```
    /// use cachebot::store::{InProcessStoreBuilder, Store};
    ///
    /// let store = InProcessStoreBuilder::new().max_value_size(64 * 1024).build();
    /// assert_eq!(store.max_value_size(), 64 * 1024);
    /// ```
    pub fn max_value_size(mut self, max_value_size: usize) -> InProcessStoreBuilder {
        self.max_value_size = max_value_size;
        self
    }

    /// Build the store.
    ///
    /// ```
    /// use cachebot::store::{InProcessStoreBuilder, Store};
    ///
    /// let store = InProcessStoreBuilder::new().build();
    /// assert_eq!(store.name(), "in-process");
    /// ```
    pub fn build(self) -> InProcessStore {
        let largest = self.max_value_size.saturating_add(ENTRY_OVERHEAD);
        let entries = Arc::new(ClockMap::new(
            self.max_bytes,
            largest.saturating_mul(VALUES_PER_SHARD),
        ));
        let generations = Arc::new(Generations::new(self.max_generations));
        InProcessStore {
            entries,
            stored_any: Arc::new(AtomicBool::new(false)),
            generations,
            max_bytes: self.max_bytes,
            max_generations: self.max_generations,
            max_value_size: self.max_value_size,
        }
    }
}

impl Default for InProcessStoreBuilder {
    /// Same as [`InProcessStoreBuilder::new`].
    fn default() -> InProcessStoreBuilder {
        InProcessStoreBuilder::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier};
    use std::thread;

    use super::*;
    use crate::store::Fetched;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn fetch_miss_then_hit() {
        let store = InProcessStore::new();
        let entry = Key::entry(7);
        let gens = [Key::generation(1), Key::generation(2)];

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

        // No generations requested: just the entry.
        assert_eq!(
            store.fetch(entry, &[]).unwrap().generations,
            Vec::<Option<u64>>::new()
        );
    }

    #[test]
    fn kinds_do_not_collide() {
        let store = InProcessStore::new();
        store.put_entry(Key::entry(5), b"entry", MINUTE).unwrap();
        let fetched = store.fetch(Key::entry(5), &[Key::generation(5)]).unwrap();
        assert_eq!(fetched.generations, vec![None]);
        let generation = store.ensure_generations(&[Key::generation(5)]).unwrap()[0];
        assert_eq!(store.fetch(Key::generation(5), &[]).unwrap().entry, None);
        assert_eq!(
            store.fetch(Key::entry(5), &[Key::generation(5)]).unwrap(),
            Fetched {
                entry: Some(b"entry".to_vec()),
                generations: vec![Some(generation)]
            }
        );
    }

    #[test]
    fn ensure_creates_once() {
        let store = InProcessStore::new();
        let keys: Vec<Key> = (0..50).map(Key::generation).collect();
        let first = store.ensure_generations(&keys).unwrap();
        assert_eq!(first.len(), keys.len());
        assert!(first.iter().all(|&g| g != 0));
        // Random per key.
        assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len());
        assert_eq!(store.ensure_generations(&keys).unwrap(), first);
        // Duplicates in one call get the same value.
        let dup = store
            .ensure_generations(&[Key::generation(99), Key::generation(99)])
            .unwrap();
        assert_eq!(dup[0], dup[1]);
        assert_eq!(store.ensure_generations(&[]).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn ensure_concurrent_threads_agree() {
        let store = InProcessStore::new();
        for round in 0..20u128 {
            let keys: Vec<Key> = (0..32).map(|i| Key::generation(round * 1000 + i)).collect();
            let threads = 8;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let store = store.clone();
                    let keys = keys.clone();
                    let barrier = Arc::clone(&barrier);
                    thread::spawn(move || {
                        barrier.wait();
                        store.ensure_generations(&keys).unwrap()
                    })
                })
                .collect();
            let results: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            for result in &results[1..] {
                assert_eq!(result, &results[0]);
            }
            let fetched = store.fetch(Key::entry(0), &keys).unwrap().generations;
            assert_eq!(
                fetched,
                results[0].iter().copied().map(Some).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn bump_changes_value_and_is_never_zero() {
        let store = InProcessStore::new();
        let key = Key::generation(1);
        let mut previous = store.ensure_generations(&[key]).unwrap()[0];
        for _ in 0..1000 {
            store.bump(&[key]).unwrap();
            let current = store.fetch(Key::entry(0), &[key]).unwrap().generations[0];
            let current = current.expect("bumped generation is present");
            assert_ne!(current, 0);
            assert_ne!(current, previous);
            previous = current;
        }
        // Bumping a generation that never existed creates it.
        let fresh = Key::generation(2);
        store.bump(&[fresh]).unwrap();
        let created = store.fetch(Key::entry(0), &[fresh]).unwrap().generations[0];
        assert!(matches!(created, Some(g) if g != 0));
        assert_eq!(
            store.ensure_generations(&[fresh]).unwrap(),
            vec![created.unwrap_or(0)]
        );
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let store = InProcessStore::new();
        let short = Key::entry(1);
        let long = Key::entry(2);
        let renewed = Key::entry(3);
        store
            .put_entry(short, b"short", Duration::from_millis(150))
            .unwrap();
        store.put_entry(long, b"long", MINUTE).unwrap();
        // Overwriting restarts the TTL with the new value's own.
        store
            .put_entry(renewed, b"v1", Duration::from_millis(150))
            .unwrap();
        store.put_entry(renewed, b"v2", MINUTE).unwrap();
        assert!(store.fetch(short, &[]).unwrap().entry.is_some());

        thread::sleep(Duration::from_millis(300));
        assert_eq!(store.fetch(short, &[]).unwrap().entry, None);
        assert_eq!(
            store.fetch(long, &[]).unwrap().entry.as_deref(),
            Some(&b"long"[..])
        );
        assert_eq!(
            store.fetch(renewed, &[]).unwrap().entry.as_deref(),
            Some(&b"v2"[..])
        );

        // A zero TTL stores nothing visible.
        store
            .put_entry(Key::entry(4), b"gone", Duration::ZERO)
            .unwrap();
        assert_eq!(store.fetch(Key::entry(4), &[]).unwrap().entry, None);
        // An absurd TTL does not overflow.
        store
            .put_entry(Key::entry(5), b"kept", Duration::MAX)
            .unwrap();
        assert!(store.fetch(Key::entry(5), &[]).unwrap().entry.is_some());
    }

    #[test]
    fn eviction_by_weight_keeps_generations() {
        let max_bytes = 64 * 1024;
        let store = InProcessStore::builder().max_bytes(max_bytes).build();
        let gens: Vec<Key> = (0..100).map(Key::generation).collect();
        let snapshot = store.ensure_generations(&gens).unwrap();

        let value = vec![0xab_u8; 1024];
        for i in 0..1000 {
            store.put_entry(Key::entry(i), &value, MINUTE).unwrap();
        }
        assert!(
            store.weighted_size() <= max_bytes,
            "{} > {max_bytes}",
            store.weighted_size()
        );
        assert!(store.entry_count() < 1000);
        assert!(store.entry_count() <= max_bytes / 1024);

        // The generations are untouched by entry pressure.
        let fetched = store.fetch(Key::entry(0), &gens).unwrap().generations;
        assert_eq!(
            fetched,
            snapshot.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(store.generation_count(), 100);
    }

    #[test]
    fn evicted_generations_come_back_different() {
        let store = InProcessStore::builder().max_generations(10).build();
        let keys: Vec<Key> = (0..200).map(Key::generation).collect();
        let first = store.ensure_generations(&keys).unwrap();
        assert!(store.generation_count() <= 10);
        let fetched = store.fetch(Key::entry(0), &keys).unwrap().generations;
        // Every generation still present has its original value; the
        // others are gone, never replaced behind the caller's back.
        let mut missing = 0;
        for (got, original) in fetched.iter().zip(&first) {
            match got {
                Some(value) => assert_eq!(value, original),
                None => missing += 1,
            }
        }
        assert!(missing >= 190);
        // Re-created generations are fresh random values.
        let again = store.ensure_generations(&keys).unwrap();
        let changed = again.iter().zip(&first).filter(|(a, b)| a != b).count();
        assert!(changed >= 190);
        assert!(again.iter().all(|&g| g != 0));
    }

    #[test]
    fn max_value_size_is_enforced() {
        let default = InProcessStore::default();
        assert_eq!(default.max_value_size(), 1024 * 1024);
        let big = vec![1_u8; 1024 * 1024];
        default.put_entry(Key::entry(1), &big, MINUTE).unwrap();
        let error = default.put_entry(Key::entry(2), &[big.as_slice(), b"x"].concat(), MINUTE);
        assert!(matches!(
            error,
            Err(error) if error.kind() == StoreErrorKind::Rejected
        ));

        let store = InProcessStore::builder().max_value_size(10).build();
        assert_eq!(store.max_value_size(), 10);
        store.put_entry(Key::entry(1), &[0; 10], MINUTE).unwrap();
        let error = store
            .put_entry(Key::entry(2), &[0; 11], MINUTE)
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Rejected);
        assert_eq!(error.store(), "in-process");
        assert_eq!(store.fetch(Key::entry(2), &[]).unwrap().entry, None);
        // An empty value is a value.
        store.put_entry(Key::entry(3), &[], MINUTE).unwrap();
        assert_eq!(
            store.fetch(Key::entry(3), &[]).unwrap().entry,
            Some(Vec::new())
        );
    }

    #[test]
    fn usable_as_trait_object() {
        let store: Arc<dyn Store> = Arc::new(InProcessStore::new());
        assert_eq!(store.name(), "in-process");
        let debug = format!("{:?}", InProcessStore::new());
        assert!(debug.contains("max_bytes"));
    }
}
