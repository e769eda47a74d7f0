//! The in-process store's generations: a [`ClockMap`] of random values,
//! bounded by count, that never expire.

use super::{fresh_generation, Generation, Key};
use crate::util::clock_map::ClockMap;

/// Shards of at least this many generations, so that small bounds stay exact.
const MIN_SHARD: usize = 16;

pub(crate) struct Generations {
    map: ClockMap<Key, Generation>,
}

impl Generations {
    /// A map holding at most `capacity` generations (at least one).
    pub(crate) fn new(capacity: u64) -> Generations {
        Generations {
            map: ClockMap::new(capacity, MIN_SHARD),
        }
    }

    /// The current value, if the map holds one.
    pub(crate) fn get(&self, key: &Key) -> Option<Generation> {
        self.map.get(key, |g| Some(*g))
    }

    /// The current value, created at random when missing. Callers racing to
    /// create the same key all get the one value that won.
    pub(crate) fn get_or_create(&self, key: &Key) -> Generation {
        if let Some(g) = self.get(key) {
            return g;
        }
        self.map.upsert(key, |current| match current {
            Some(g) => (*g, None),
            None => {
                let g = fresh_generation();
                (g, Some(g))
            }
        })
    }

    /// Give the key a fresh random value.
    pub(crate) fn bump(&self, key: &Key) {
        self.map.upsert(key, |current| match current {
            Some(g) => {
                *g = fresh_generation();
                ((), None)
            }
            None => ((), Some(fresh_generation())),
        })
    }

    /// How many generations are held.
    pub(crate) fn len(&self) -> u64 {
        self.map.len()
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
