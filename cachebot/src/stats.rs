//! Counters, per cache handle.
//!
//! Tests and operators read them to tell hits from misses without timing
//! anything; every fallback to the database is counted here and traced.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Reads served from the cache (the store, or the local tier of
    /// decoded results after checking the store's generations).
    pub hits: u64,
    /// Cacheable reads that went to the database (no entry, stale entry,
    /// corrupt entry).
    pub misses: u64,
    /// Results stored: written to the store, or, with the in-process
    /// store, kept decoded in the local tier.
    pub stores: u64,
    /// Reads that skipped the cache by design: inside a transaction, caching
    /// disabled, a never-cache table, or a query the crate must not cache.
    pub bypasses: u64,
    /// Reads that skipped the cache because the store failed (down, timeout,
    /// protocol error); served by the database.
    pub fallbacks: u64,
    /// Results too large for the store; served, not stored.
    pub oversized: u64,
    /// Entries that could not be decoded (corrupt or from an incompatible
    /// build); treated as misses.
    pub decode_errors: u64,
    /// Entries a cache with a secret refused because their MAC did not
    /// authenticate them (forged, written for another query or type, or
    /// written without the secret); treated as misses. Always 0 without a
    /// secret.
    pub forged: u64,
    /// Generation bumps sent (one per key).
    pub invalidations: u64,
    /// Invalidations the store failed to take when they were made (each is
    /// kept and delivered later).
    pub invalidation_errors: u64,
    /// Reads that skipped the cache because the connection does not carry
    /// the crate's instrumentation (another instrumentation replaced it),
    /// belongs to another database than the cache's, or its catalog could
    /// not be read: the crate cannot tell what its names mean or see its
    /// writes. Also counted in `bypasses`.
    pub uninstrumented: u64,
    /// Invalidations delivered after the store had failed to take them (by
    /// the background delivery, or carried along by a later bump), one per
    /// key.
    pub redelivered: u64,
    /// Background delivery attempts the store failed (each is retried with
    /// backoff).
    pub redelivery_errors: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;

    fn sub(self, o: Stats) -> Stats {
        Stats {
            hits: self.hits - o.hits,
            misses: self.misses - o.misses,
            stores: self.stores - o.stores,
            bypasses: self.bypasses - o.bypasses,
            fallbacks: self.fallbacks - o.fallbacks,
            oversized: self.oversized - o.oversized,
            decode_errors: self.decode_errors - o.decode_errors,
            forged: self.forged - o.forged,
            invalidations: self.invalidations - o.invalidations,
            invalidation_errors: self.invalidation_errors - o.invalidation_errors,
            uninstrumented: self.uninstrumented - o.uninstrumented,
            redelivered: self.redelivered - o.redelivered,
            redelivery_errors: self.redelivery_errors - o.redelivery_errors,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub bypasses: AtomicU64,
    pub fallbacks: AtomicU64,
    pub oversized: AtomicU64,
    pub decode_errors: AtomicU64,
    pub forged: AtomicU64,
    pub invalidations: AtomicU64,
    pub invalidation_errors: AtomicU64,
    pub uninstrumented: AtomicU64,
    pub redelivered: AtomicU64,
    pub redelivery_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stores: self.stores.load(Relaxed),
            bypasses: self.bypasses.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            forged: self.forged.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            invalidation_errors: self.invalidation_errors.load(Relaxed),
            uninstrumented: self.uninstrumented.load(Relaxed),
            redelivered: self.redelivered.load(Relaxed),
            redelivery_errors: self.redelivery_errors.load(Relaxed),
        }
    }
}
