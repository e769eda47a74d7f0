//! The in-process store's generations: a sharded hash map bounded by
//! count, with second-chance (CLOCK) eviction.
//!
//! Every read looks up all of its generations (three for a one-table
//! filter), so this map is on the hottest path of an in-process hit. A moka
//! cache costs about a microsecond per `get` here (read recording, the
//! clock, housekeeping); a read-locked shard of a plain hash map costs a
//! tenth of that. Generations need none of moka's policies anyway: they
//! never expire, and evicting one is always safe (it is re-created with a
//! fresh random value that no stored entry can match, so its dependents
//! miss). Eviction only has to keep the hot ones: each lookup marks its slot
//! referenced, and a shard that outgrows its share drops the unreferenced
//! slots first, clearing the marks of the others (one CLOCK sweep), then
//! arbitrary ones if it must.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{fresh_generation, Generation, Key, KeyHashBuilder};

/// Most shards: enough that two threads rarely share a write lock.
const MAX_SHARDS: usize = 64;

struct Slot {
    generation: Generation,
    referenced: AtomicBool,
}

impl Slot {
    /// A new slot starts unreferenced: it survives until its shard's next
    /// sweep (thousands of inserts later at the default capacity), by which
    /// time the entry it was created for has been read if it is hot.
    fn new(generation: Generation) -> Slot {
        Slot {
            generation,
            referenced: AtomicBool::new(false),
        }
    }
}

type Shard = HashMap<u128, Slot, KeyHashBuilder>;

pub(crate) struct Generations {
    /// A power of two of them.
    shards: Box<[RwLock<Shard>]>,
    /// Most slots one shard keeps.
    shard_capacity: usize,
}

impl Generations {
    /// A map holding at most `capacity` generations (at least one).
    pub(crate) fn new(capacity: u64) -> Generations {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        // Shards of at least 16 slots, so that small bounds stay exact.
        let shards = (capacity / 16).clamp(1, MAX_SHARDS);
        let shard_bits = shards.ilog2();
        let hasher = KeyHashBuilder::new();
        Generations {
            shards: (0..1usize << shard_bits)
                .map(|_| RwLock::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            shard_capacity: (capacity >> shard_bits).max(1),
        }
    }

    fn shard(&self, key: &Key) -> &RwLock<Shard> {
        let folded = (key.hash as u64) ^ ((key.hash >> 64) as u64);
        let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = self.shards.len().trailing_zeros();
        let index = mixed.checked_shr(64 - bits).unwrap_or(0) as usize;
        &self.shards[index % self.shards.len()]
    }

    fn read(&self, key: &Key) -> RwLockReadGuard<'_, Shard> {
        // A panic never happens under these locks; recover if one did.
        self.shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &Key) -> RwLockWriteGuard<'_, Shard> {
        self.shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current value, if the map holds one.
    pub(crate) fn get(&self, key: &Key) -> Option<Generation> {
        let shard = self.read(key);
        let slot = shard.get(&key.hash)?;
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.generation)
    }

    /// The current value, created at random when missing. Callers racing to
    /// create the same key all get the one value that won.
    pub(crate) fn get_or_create(&self, key: &Key) -> Generation {
        if let Some(g) = self.get(key) {
            return g;
        }
        let mut shard = self.write(key);
        if let Some(slot) = shard.get(&key.hash) {
            return slot.generation;
        }
        self.make_room(&mut shard);
        let generation = fresh_generation();
        shard.insert(key.hash, Slot::new(generation));
        generation
    }

    /// Give the key a fresh random value.
    pub(crate) fn bump(&self, key: &Key) {
        let mut shard = self.write(key);
        if let Some(slot) = shard.get_mut(&key.hash) {
            slot.generation = fresh_generation();
            return;
        }
        self.make_room(&mut shard);
        shard.insert(key.hash, Slot::new(fresh_generation()));
    }

    /// Make room for one more slot in a full shard: one CLOCK sweep (drop
    /// the slots nobody read since the last sweep, unmark the others), then
    /// arbitrary slots if that freed too little. Leaves the shard at 7/8 of
    /// its capacity, so sweeps are rare.
    fn make_room(&self, shard: &mut Shard) {
        if shard.len() < self.shard_capacity {
            return;
        }
        let target = (self.shard_capacity - self.shard_capacity / 8).saturating_sub(1);
        shard.retain(|_, slot| slot.referenced.swap(false, Ordering::Relaxed));
        let mut excess = shard.len().saturating_sub(target);
        if excess > 0 {
            shard.retain(|_, _| {
                let keep = excess == 0;
                excess = excess.saturating_sub(1);
                keep
            });
        }
    }

    /// How many generations are held.
    pub(crate) fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_read_bump() {
        let g = Generations::new(100);
        let k = Key::generation(42);
        assert_eq!(g.get(&k), None);
        let v = g.get_or_create(&k);
        assert_ne!(v, 0);
        assert_eq!(g.get(&k), Some(v));
        assert_eq!(g.get_or_create(&k), v);
        g.bump(&k);
        let w = g.get(&k).unwrap();
        assert_ne!(w, v);
        assert_ne!(w, 0);
        g.bump(&Key::generation(7));
        assert!(g.get(&Key::generation(7)).is_some());
    }

    #[test]
    fn bounded_and_keeps_what_is_read() {
        // 64 shards of 16.
        let g = Generations::new(1024);
        let hot = Key::generation(1 << 127);
        let v = g.get_or_create(&hot);
        for i in 1..100_000u128 {
            let cold = Key::generation(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
            g.get_or_create(&cold);
            // The hot key is read between inserts, as a hot dependency is.
            assert_eq!(g.get(&hot), Some(v), "evicted after {i} inserts");
        }
        assert!(g.len() <= 1024, "{}", g.len());
    }

    #[test]
    fn racing_creators_agree() {
        let g = Generations::new(1000);
        let k = Key::generation(99);
        let values: Vec<Generation> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| g.get_or_create(&k))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    }
}
