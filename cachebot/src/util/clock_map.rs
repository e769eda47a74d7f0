//! A sharded map bounded by weight, with second-chance (CLOCK) eviction:
//! the in-process store's entries and generations, the local tier's decoded
//! results and the plan memo all live in one.
//!
//! These sit on the hottest paths (every read looks up all of its
//! generations, a miss writes an entry), and none of them needs more than a
//! bound and a deadline: eviction is always safe for them (an evicted
//! generation comes back with a fresh random value no entry can match; an
//! evicted entry, result or plan is a miss). So the map only keeps the hot
//! keys, with as little bookkeeping per access as possible: a lookup takes a
//! shard's read lock and marks its slot referenced; a shard that would
//! outgrow its share drops the expired and unreferenced slots first,
//! clearing the marks of the others (one CLOCK sweep), then arbitrary ones
//! if it must. A sweep leaves the shard at 7/8 of its share, so sweeps are
//! rare and their cost is spread over the inserts that follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use std::hash::Hash;

use super::key_hash::KeyHashBuilder;

/// A key of a [`ClockMap`]: already a hash (its bits uniformly spread), so
/// that the shard can be picked from its bits directly.
pub(crate) trait ClockKey: Hash + Eq + Copy {
    /// 64 uniformly spread bits of the key.
    fn spread(&self) -> u64;
}

/// Most shards: enough that two threads rarely share a write lock.
const MAX_SHARDS: usize = 64;

struct Slot<V> {
    value: V,
    weight: usize,
    /// Past it, the value is gone for readers, and a sweep drops it whether
    /// it was read or not. `None`: never (generations, absurd TTLs).
    expires: Option<Instant>,
    referenced: AtomicBool,
}

impl<V> Slot<V> {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|deadline| now >= deadline)
    }
}

struct Shard<K, V> {
    slots: HashMap<K, Slot<V>, KeyHashBuilder>,
    /// The sum of the slots' weights.
    weight: usize,
}

/// The map: see the module docs.
pub(crate) struct ClockMap<K, V> {
    /// A power of two of them.
    shards: Box<[RwLock<Shard<K, V>>]>,
    /// Most weight one shard keeps.
    shard_capacity: usize,
}

impl<K: ClockKey, V> ClockMap<K, V> {
    /// A map holding at most `capacity` weight in all (at least one), in
    /// shards of at least `min_shard` each (so that small bounds stay exact
    /// and a value as heavy as `min_shard` always fits).
    pub(crate) fn new(capacity: u64, min_shard: usize) -> ClockMap<K, V> {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        let shards = (capacity / min_shard.max(1)).clamp(1, MAX_SHARDS);
        let shard_bits = shards.ilog2();
        let hasher = KeyHashBuilder::new();
        ClockMap {
            shards: (0..1usize << shard_bits)
                .map(|_| {
                    RwLock::new(Shard {
                        slots: HashMap::with_hasher(hasher.clone()),
                        weight: 0,
                    })
                })
                .collect(),
            shard_capacity: (capacity >> shard_bits).max(1),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<Shard<K, V>> {
        let mixed = key.spread().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = self.shards.len().trailing_zeros();
        let index = mixed.checked_shr(64 - bits).unwrap_or(0) as usize;
        &self.shards[index % self.shards.len()]
    }

    fn read(&self, key: &K) -> RwLockReadGuard<'_, Shard<K, V>> {
        // A panic never happens under these locks; recover if one did.
        self.shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &K) -> RwLockWriteGuard<'_, Shard<K, V>> {
        self.shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What `read` makes of the key's value, if it has not expired, under
    /// the shard's read lock. The slot counts as used when `read` returns
    /// `Some`. Only values stored with a TTL read the clock.
    pub(crate) fn get<R>(&self, key: &K, read: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let shard = self.read(key);
        let slot = shard.slots.get(key)?;
        if slot.expires.is_some() && slot.expired(Instant::now()) {
            return None;
        }
        let found = read(&slot.value)?;
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(found)
    }

    /// Store `value` under `key` for `ttl`, replacing what was there. A
    /// value heavier than a shard's share is not stored (`false`), as it
    /// would have to evict everything around it and then itself.
    pub(crate) fn insert(&self, key: &K, value: V, weight: usize, ttl: Duration) -> bool {
        if weight > self.shard_capacity {
            return false;
        }
        let mut shard = self.write(key);
        // An overwritten key keeps its mark: it was read if it is hot.
        let referenced = match shard.slots.remove(key) {
            Some(old) => {
                shard.weight -= old.weight;
                old.referenced.into_inner()
            }
            None => false,
        };
        self.make_room(&mut shard, weight);
        shard.weight += weight;
        shard.slots.insert(
            *key,
            Slot {
                value,
                weight,
                expires: Instant::now().checked_add(ttl),
                referenced: AtomicBool::new(referenced),
            },
        );
        true
    }

    /// Under the shard's write lock: `change` gets the key's value, if any,
    /// to modify in place, and returns its answer and, when there was no
    /// value, the one to insert (of weight 1, never expiring). For values
    /// that all weigh 1.
    pub(crate) fn upsert<R>(
        &self,
        key: &K,
        change: impl FnOnce(Option<&mut V>) -> (R, Option<V>),
    ) -> R {
        let mut shard = self.write(key);
        if let Some(slot) = shard.slots.get_mut(key) {
            return change(Some(&mut slot.value)).0;
        }
        let (answer, new) = change(None);
        if let Some(value) = new {
            self.make_room(&mut shard, 1);
            shard.weight += 1;
            shard.slots.insert(
                *key,
                Slot {
                    value,
                    weight: 1,
                    expires: None,
                    // A new slot survives until its shard's next sweep
                    // (thousands of inserts later at the default bounds),
                    // by which time it has been read if it is hot.
                    referenced: AtomicBool::new(false),
                },
            );
        }
        answer
    }

    /// Make room for `incoming` more weight in a shard: one CLOCK sweep
    /// (drop the expired slots and those nobody read since the last sweep,
    /// unmark the others), then arbitrary slots if that freed too little.
    /// Leaves the shard at 7/8 of its share with the newcomer.
    fn make_room(&self, shard: &mut Shard<K, V>, incoming: usize) {
        if shard.weight + incoming <= self.shard_capacity {
            return;
        }
        let target = (self.shard_capacity - self.shard_capacity / 8).saturating_sub(incoming);
        let now = Instant::now();
        let mut weight = shard.weight;
        shard.slots.retain(|_, slot| {
            let keep = slot.referenced.swap(false, Ordering::Relaxed) && !slot.expired(now);
            if !keep {
                weight -= slot.weight;
            }
            keep
        });
        if weight > target {
            shard.slots.retain(|_, slot| {
                if weight <= target {
                    return true;
                }
                weight -= slot.weight;
                false
            });
        }
        shard.weight = weight;
    }

    /// How many values are held (expired ones included until swept).
    pub(crate) fn len(&self) -> u64 {
        self.fold(|shard| shard.slots.len())
    }

    /// Their total weight.
    pub(crate) fn weight(&self) -> u64 {
        self.fold(|shard| shard.weight)
    }

    fn fold(&self, f: impl Fn(&Shard<K, V>) -> usize) -> u64 {
        self.shards
            .iter()
            .map(|s| f(&s.read().unwrap_or_else(PoisonError::into_inner)) as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Key;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(i: u128) -> Key {
        Key::entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
    }

    #[test]
    fn weight_is_bounded_and_exact() {
        let map: ClockMap<Key, u32> = ClockMap::new(10_000, 10_000);
        assert_eq!(map.shards.len(), 1);
        for i in 0..1000 {
            assert!(map.insert(&key(i), 0, 100, HOUR));
            assert!(map.weight() <= 10_000, "{}", map.weight());
        }
        assert_eq!(map.weight(), map.len() * 100);
        // Overwrites replace the weight, they do not add to it.
        let before = map.weight();
        map.insert(&key(999), 1, 100, HOUR);
        assert_eq!(map.weight(), before);
        assert_eq!(map.get(&key(999), |v| Some(*v)), Some(1));
        // Too heavy for a shard: refused, nothing evicted for it.
        assert!(!map.insert(&key(5000), 0, 10_001, HOUR));
        assert_eq!(map.weight(), before);
    }

    #[test]
    fn bound_holds_under_concurrent_writers() {
        let map: ClockMap<Key, u32> = ClockMap::new(64 * 1024, 1024);
        assert!(map.shards.len() > 1);
        std::thread::scope(|s| {
            for t in 0..4u128 {
                let map = &map;
                s.spawn(move || {
                    for i in 0..20_000u128 {
                        let k = key((t << 64) | (i % 3000));
                        map.insert(&k, 0, 1 + (i as usize * 7919) % 900, HOUR);
                        map.get(&key((t << 64) | ((i / 2) % 3000)), |_| Some(()));
                    }
                });
            }
        });
        // Each shard's tally is the sum of its slots, and within its share.
        for shard in map.shards.iter() {
            let shard = shard.read().unwrap();
            let sum: usize = shard.slots.values().map(|slot| slot.weight).sum();
            assert_eq!(shard.weight, sum);
            assert!(shard.weight <= map.shard_capacity);
        }
        assert!(map.weight() <= 64 * 1024);
    }

    #[test]
    fn expired_values_are_gone_and_swept_before_referenced_ones() {
        let map: ClockMap<Key, u32> = ClockMap::new(1000, 1000);
        // Read while alive, so marked referenced; then past its deadline.
        map.insert(&key(1), 1, 100, Duration::from_millis(50));
        map.insert(&key(2), 2, 100, HOUR);
        assert_eq!(map.get(&key(1), |v| Some(*v)), Some(1));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(map.get(&key(1), |v| Some(*v)), None);
        // Enough inserts for a sweep; the hot alive key is read between them.
        for i in 10..40 {
            map.get(&key(2), |_| Some(()));
            map.insert(&key(i), 0, 100, HOUR);
        }
        let held = |k: Key| {
            map.shards
                .iter()
                .any(|s| s.read().unwrap().slots.contains_key(&k))
        };
        assert!(!held(key(1)), "the expired slot survived a sweep");
        assert!(held(key(2)));
        assert_eq!(map.len(), map.weight() / 100);
        // A zero TTL is expired at once; an absurd one never expires.
        map.insert(&key(3), 3, 100, Duration::ZERO);
        assert_eq!(map.get(&key(3), |v| Some(*v)), None);
        map.insert(&key(4), 4, 100, Duration::MAX);
        assert_eq!(map.get(&key(4), |v| Some(*v)), Some(4));
    }
}
