//! A bounded memo of values computed from a 128-bit hash of their input
//! (SQL text): the SQL analysis of rendered queries and of the statements
//! connections run. On the same second-chance map as the stores and the
//! read plans, so that the crate has one eviction policy.

use std::time::Duration;

use super::clock_map::{ClockKey, ClockMap};

impl ClockKey for u128 {
    fn spread(&self) -> u64 {
        (*self as u64) ^ ((*self >> 64) as u64)
    }
}

/// At least this many entries per shard.
const MIN_SHARD: usize = 256;

/// Values by input hash, at most `capacity` of them.
pub(crate) struct Memo<V> {
    map: ClockMap<u128, V>,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new(capacity: u64) -> Memo<V> {
        Memo {
            map: ClockMap::new(capacity, MIN_SHARD),
        }
    }

    /// The value for `key`, computed by `make` (outside any lock) when not
    /// memoised. Two threads missing at once both compute; the last stores.
    pub(crate) fn get_or_insert_with(&self, key: u128, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(&key, |v| Some(v.clone())) {
            return v;
        }
        let v = make();
        self.map.insert(&key, v.clone(), 1, Duration::MAX);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_and_stays_bounded() {
        let memo: Memo<u32> = Memo::new(512);
        let mut calls = 0;
        assert_eq!(
            memo.get_or_insert_with(1, || {
                calls += 1;
                7
            }),
            7
        );
        assert_eq!(
            memo.get_or_insert_with(1, || {
                calls += 1;
                8
            }),
            7
        );
        assert_eq!(calls, 1);
        for k in 0..10_000u128 {
            memo.get_or_insert_with(k, || k as u32);
        }
        let kept = (0..10_000u128)
            .filter(|k| memo.map.get(k, |_| Some(())).is_some())
            .count();
        assert!(kept <= 512, "{kept}");
    }
}
