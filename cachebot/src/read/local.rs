//! The local tier: decoded results, next to the store.
//!
//! Decoding is most of an in-process hit (and a large part of a remote
//! one): decoding rows costs several times cloning them. So each process
//! keeps results as Rust values, with the generations they were read under. With a remote store, a
//! result enters on its first hit, not when a miss stores it: a result
//! read once is not worth the clone. With the in-process store, a miss
//! puts its rows here directly, weighed by an estimate of their size in
//! memory (`weigh`), and the store keeps only their generations: encoding
//! rows that never leave the process would cost more than the copy, and
//! the first hit would decode them again. A read still asks the store for
//! the *current* generations, every time, and serves the local value only
//! if they equal its snapshot: correctness stays with the generations; the
//! local tier only skips moving and decoding the entry.

use std::any::Any;
use std::time::Duration;

use crate::store::{Generation, Key};
use crate::util::clock_map::ClockMap;

/// Bytes accounted per value on top of its encoded size.
const OVERHEAD: usize = 128;

/// Shards of at least this many bytes. Small, so that the default 32 MiB
/// spreads over the most shards (64, of 512 KiB): every hit takes a read
/// lock here, and threads reading hot results in the same shard contend
/// for its lock word, and more shards spread them. A result larger than
/// its shard is not kept locally; it is decoded from the store on each hit.
const MIN_SHARD: usize = 256 << 10;

struct Decoded {
    snapshot: Box<[Generation]>,
    /// Cloned out under the map's read lock, never shared: no `Arc`.
    rows: Box<dyn Any + Send + Sync>,
}

/// Decoded results of this process, bounded by their size (encoded, or
/// estimated in memory).
///
/// Kept in the same sharded map as the in-process store, not in a moka
/// cache: every in-process hit looks here, and moka's `get` (epoch guards,
/// read recording) was the largest single cost of a hit with cold caches,
/// right after a query had run on the same CPU.
pub(crate) struct Local {
    values: ClockMap<Key, Decoded>,
    ttl: Duration,
}

impl Local {
    pub(crate) fn new(max_bytes: u64, ttl: Duration) -> Local {
        Local {
            values: ClockMap::new(max_bytes, MIN_SHARD),
            ttl,
        }
    }

    /// The rows, if the local value was stored under exactly `current`
    /// (`None` slots: generations the store does not hold, never current).
    pub(crate) fn get<U: Clone + 'static>(
        &self,
        key: &Key,
        current: impl ExactSizeIterator<Item = Option<Generation>>,
    ) -> Option<Vec<U>> {
        // Cloned under the shard's read lock, which other readers share.
        self.values.get(key, |d| {
            let same = d.snapshot.len() == current.len()
                && d.snapshot.iter().map(|s| Some(*s)).eq(current);
            if !same {
                return None;
            }
            d.rows.downcast_ref::<Vec<U>>().cloned()
        })
    }

    /// Keep `rows`, read under `snapshot`; `weight` is their encoded size,
    /// or their estimated size in memory. `false` if they are too large to
    /// keep (larger than a shard).
    pub(crate) fn insert<U: Send + Sync + 'static>(
        &self,
        key: Key,
        snapshot: &[Generation],
        rows: Vec<U>,
        weight: usize,
    ) -> bool {
        let decoded = Decoded {
            snapshot: snapshot.into(),
            rows: Box::new(rows),
        };
        // Too heavy for a shard: not kept, read from the store instead.
        self.values
            .insert(&key, decoded, weight.saturating_add(OVERHEAD), self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_under_the_same_generations_and_type() {
        let local = Local::new(1 << 20, Duration::from_secs(60));
        let k = Key::entry(1);
        local.insert(k, &[5, 6], vec![1i32, 2], 8);
        assert_eq!(
            local.get::<i32>(&k, [Some(5), Some(6)].into_iter()),
            Some(vec![1, 2])
        );
        assert_eq!(local.get::<i32>(&k, [Some(5), Some(7)].into_iter()), None);
        assert_eq!(local.get::<i32>(&k, [Some(5), None].into_iter()), None);
        assert_eq!(local.get::<i32>(&k, [Some(5)].into_iter()), None);
        assert_eq!(local.get::<i64>(&k, [Some(5), Some(6)].into_iter()), None);
        assert_eq!(
            local.get::<i32>(&Key::entry(2), [Some(5), Some(6)].into_iter()),
            None
        );
    }

    #[test]
    fn values_expire_after_the_ttl() {
        let local = Local::new(1 << 20, Duration::from_millis(100));
        let k = Key::entry(1);
        local.insert(k, &[5], vec![1u8], 1);
        assert_eq!(local.get::<u8>(&k, [Some(5)].into_iter()), Some(vec![1]));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(local.get::<u8>(&k, [Some(5)].into_iter()), None);
    }

    #[test]
    fn bounded_by_weight() {
        let max = 64 * 1024;
        let local = Local::new(max, Duration::from_secs(60));
        for i in 0..1000 {
            local.insert(Key::entry(i), &[1], vec![0u8; 8], 1000);
        }
        assert!(local.values.weight() <= max, "{}", local.values.weight());
        assert!(local.values.len() <= max / (1000 + OVERHEAD as u64));
        // The newest value is there: a newcomer is never refused.
        assert!(local
            .get::<u8>(&Key::entry(999), [Some(1)].into_iter())
            .is_some());
    }
}
