//! Counters, per cache handle.
//!
//! Tests and operators read them to tell hits from misses without timing
//! anything; every fallback to the database is counted here and traced.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The public snapshot and the atomic counters behind it, from one list.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A snapshot of a cache's counters. Subtract two snapshots to see what
        /// happened between them.
        ///
        /// ```
        /// let cache = cachebot::Cache::in_process();
        /// let before = cache.stats();
        /// assert_eq!(cache.stats() - before, cachebot::Stats::default());
        /// ```
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// What happened between two snapshots (saturating: a snapshot of
        /// another cache, or the operands swapped, gives zeros, not a panic).
        impl std::ops::Sub for Stats {
            type Output = Stats;

            fn sub(self, o: Stats) -> Stats {
                Stats {
                    $($name: self.$name.saturating_sub(o.$name),)*
                }
            }
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats {
                    $($name: self.$name.load(Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Reads served from the cache (the store, or the local tier of
    /// decoded results after checking the store's generations).
    hits,
    /// Cacheable reads that went to the database (no entry, stale entry,
    /// corrupt entry).
    misses,
    /// Results stored: written to the store, or, with the in-process
    /// store, kept decoded in the local tier.
    stores,
    /// Reads that skipped the cache by design: inside a transaction, caching
    /// disabled, a never-cache table, or a query the crate must not cache.
    bypasses,
    /// Reads that skipped the cache because the store failed (down, timeout,
    /// protocol error); served by the database.
    fallbacks,
    /// Results too large for the store; served, not stored.
    oversized,
    /// Entries that could not be decoded (corrupt or from an incompatible
    /// build); treated as misses.
    decode_errors,
    /// Results the codec could not encode (a type whose `Serialize` fails);
    /// served, not stored.
    encode_errors,
    /// Entries a cache with a secret refused because their MAC did not
    /// authenticate them (forged, written for another query or type, or
    /// written without the secret); treated as misses. Always 0 without a
    /// secret.
    forged,
    /// Generation bumps sent (one per key).
    invalidations,
    /// Invalidations the store failed to take when they were made (each is
    /// kept and delivered later).
    invalidation_errors,
    /// Reads that skipped the cache because the connection does not carry
    /// the crate's instrumentation (another instrumentation replaced it),
    /// belongs to another database than the cache's, or its catalog could
    /// not be read: the crate cannot tell what its names mean or see its
    /// writes. Also counted in `bypasses`.
    uninstrumented,
    /// Invalidations delivered after the store had failed to take them (by
    /// the background delivery, or carried along by a later bump), one per
    /// key.
    redelivered,
    /// Reads that went to the database because the change-stream follower's
    /// heartbeat was older than the cache's staleness bound (or missing).
    /// Always 0 without [`CacheBuilder::staleness_bound`](crate::CacheBuilder::staleness_bound).
    behind_follower,
    /// Background delivery attempts the store failed (each is retried with
    /// backoff).
    redelivery_errors,
    /// Misses whose result depends on the rows it returned, and returned a
    /// row this process had not read the generation of before the query
    /// (the first read of the query here, or rows that joined the result
    /// since), and could not load again (the async API) or saw still other
    /// rows the second time: stored depending on every write to the table
    /// instead, until the next fill. See the README's "Precision".
    returned_widened,
    /// Misses whose result depends on the rows it returned and returned rows
    /// this process had not read the generation of: the generations were
    /// read, and the query run a second time (the blocking API), so the
    /// entry depends on its rows exactly.
    returned_reloads,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_saturates() {
        let c = Counters::default();
        let before = c.snapshot();
        Counters::bump(&c.hits);
        let after = c.snapshot();
        assert_eq!((after - before).hits, 1);
        assert_eq!((before - after).hits, 0);
    }
}
