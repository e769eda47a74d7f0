//! Read plans remembered per query and binds.
//!
//! Planning a read is most of an in-process hit: render the query (its
//! template is memoised per type), collect the binds, then hash each
//! dependency's generation key and the entry key. The binds must be
//! collected on every read (they are the values), but the keys computed
//! from them are the same whenever the query text, the binds, the result
//! type and the narrowing are, so a read looks them up by one hash of those
//! instead of hashing every dependency and the entry.
//!
//! What else decides the keys is in the lookup key too: the backend, and
//! the version of the composite-key registry (a model registering its
//! composite keys changes how later reads key). The
//! cache's fingerprint and codec are fixed per cache, and so is this memo.
//!
//! Bounded, with the same second-chance eviction as the stores: reads of
//! values seen once (a find over millions of ids) pass through it at the
//! cost of an insert, and they are misses anyway, where the database query
//! dwarfs that.

use std::sync::Arc;
use std::time::Duration;

use super::returned::Returned;
use super::Plan;
use crate::store::Key;
use crate::util::clock_map::ClockMap;

/// Bytes accounted per plan on top of its generation keys.
const OVERHEAD: usize = 96;

/// The default bound: 4 MiB, some 20,000 plans of three dependencies.
pub(crate) const DEFAULT_BYTES: u64 = 4 << 20;

/// Shards of at least this many bytes.
const MIN_SHARD: usize = 64 << 10;

struct Planned {
    entry: Key,
    generations: Box<[Key]>,
    returned: Option<Arc<Returned>>,
}

/// Entry and generation keys per (query, binds, result type, narrowing).
pub(crate) struct Plans {
    map: ClockMap<Key, Planned>,
}

impl Plans {
    pub(crate) fn new(max_bytes: u64) -> Plans {
        Plans {
            map: ClockMap::new(max_bytes, MIN_SHARD),
        }
    }

    /// The plan remembered under `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<Plan> {
        self.map.get(key, |p| {
            Some(Plan::Cache {
                entry: p.entry,
                generations: p.generations.to_vec(),
                returned: p.returned.clone(),
            })
        })
    }

    pub(crate) fn insert(
        &self,
        key: &Key,
        entry: Key,
        generations: &[Key],
        returned: Option<Arc<Returned>>,
    ) {
        // A plan depending on its returned rows also holds their keys.
        let hinted = returned.as_ref().map_or(0, |_| {
            super::returned::MAX_RETURNED * std::mem::size_of::<Key>() / 4
        });
        let weight = OVERHEAD + std::mem::size_of_val(generations) + hinted;
        let planned = Planned {
            entry,
            generations: generations.into(),
            returned,
        };
        self.map.insert(key, planned, weight, Duration::MAX);
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_is_bounded() {
        let plans = Plans::new(MIN_SHARD as u64);
        let gens = [Key::generation(1), Key::generation(2)];
        plans.insert(&Key::entry(7), Key::entry(70), &gens, None);
        assert!(matches!(
            plans.get(&Key::entry(7)),
            Some(Plan::Cache { entry, generations, returned: None })
                if entry == Key::entry(70) && generations == gens.to_vec()
        ));
        assert!(plans.get(&Key::entry(8)).is_none());
        for i in 0..10_000 {
            plans.insert(&Key::entry(1000 + i), Key::entry(i), &gens, None);
        }
        let most = MIN_SHARD as u64 / (OVERHEAD + 2 * std::mem::size_of::<Key>()) as u64;
        assert!(plans.len() <= most, "{} > {most}", plans.len());
    }
}
