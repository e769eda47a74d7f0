//! Bumps the store did not take, and the thread that delivers them.
//!
//! A write's bump can fail (the store is down, partitioned, slow past its
//! timeout) after the write committed. The write still returns `Ok` (its
//! rows are in the database; the failure is counted in
//! `invalidation_errors`), and the keys are kept here until the store
//! takes them:
//!
//! - **Reads of this process** that depend on a pending key bypass the
//!   cache (see [`Undelivered::blocks`]): an entry stored before the write
//!   is never served after it here. The check is one atomic load while
//!   nothing is pending; reads never retry the delivery themselves.
//! - **Other processes** see the write once the bump lands, so it must land
//!   without waiting for this process to read or write again: a background
//!   thread, started when the first bump fails, retries every pending key in
//!   one bump with exponential backoff (10 ms doubling to 1 s, with jitter)
//!   and ends once nothing is pending. It also ends (after one last attempt)
//!   when the cache's last handle is dropped. Later bumps of this process
//!   carry the pending keys along too, so a write after the store heals
//!   delivers them at once.
//!
//! **Ordering.** A bump writes a fresh random generation; it never writes a
//! value that depends on the one before. A late redelivery of an old bump
//! after a newer, successful one just writes another fresh value: one more
//! invalidation, never a regression. What must not happen is forgetting a
//! failed bump because an *earlier* one of the same key was delivered: a
//! delivery that started before the failure may have reached the store
//! before the write committed. So each pending key carries the number of
//! its latest failure, and a delivery forgets only the keys whose number
//! has not changed since it read them.
//!
//! **Bound.** At most [`MAX_PENDING`] keys are kept. Past that the set
//! collapses into "everything": every read of this process bypasses the
//! cache, and the delivery bumps the global generation, which every cached
//! result depends on (over-invalidation, never under-).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::key;
use crate::stats::Counters;
use crate::store::{Key, Store};

/// Pending keys kept at most; past this, the global generation is bumped.
pub(crate) const MAX_PENDING: usize = 4096;

/// The first retry waits about this long after a failure...
const FIRST_DELAY: Duration = Duration::from_millis(10);

/// ...doubling after every failed retry, up to this.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// What is pending, shared with the delivering thread.
#[derive(Default)]
struct Pending {
    /// Key -> the number of its latest failed bump.
    keys: HashMap<Key, u64>,
    /// The number of the failure that overflowed the set: until a global
    /// bump after it is delivered, everything is pending.
    overflow: Option<u64>,
    /// The global key an overflow bumps (scoped to the cache's database).
    global: Option<Key>,
    /// Numbers failures.
    seq: u64,
    /// Whether the delivering thread runs.
    thread: bool,
    /// Set when the cache is dropped: the thread makes one last attempt.
    stop: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.overflow.is_none()
    }
}

/// What one delivery attempt read: the keys to bump, and what to forget if
/// the store takes them.
pub(crate) struct Batch {
    keys: Vec<Key>,
    seqs: Vec<u64>,
    overflow: Option<u64>,
}

impl Batch {
    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the thread early when the cache is dropped.
    wake: Condvar,
    /// Set while anything is pending: all a read looks at when nothing is.
    any: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding it; a poisoned lock still holds a
        // consistent set.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> Option<Batch> {
        let p = self.lock();
        if p.is_empty() {
            return None;
        }
        let (mut keys, seqs): (Vec<Key>, Vec<u64>) = p.keys.iter().map(|(k, s)| (*k, *s)).unzip();
        if p.overflow.is_some() {
            keys.push(p.global.unwrap_or_else(key::global_key));
        }
        Some(Batch {
            keys,
            seqs,
            overflow: p.overflow,
        })
    }

    /// Forget what `batch` delivered, unless it failed again since.
    fn forget(&self, batch: &Batch) {
        let mut p = self.lock();
        for (k, seq) in batch.keys.iter().zip(&batch.seqs) {
            if p.keys.get(k) == Some(seq) {
                p.keys.remove(k);
            }
        }
        if batch.overflow.is_some() && p.overflow == batch.overflow {
            p.overflow = None;
        }
        self.any.store(!p.is_empty(), Ordering::Release);
    }
}

/// The bumps of one cache that its store has not taken yet.
pub(crate) struct Undelivered {
    shared: Arc<Shared>,
    store: Arc<dyn Store>,
    counters: Arc<Counters>,
}

impl Undelivered {
    pub(crate) fn new(store: Arc<dyn Store>, counters: Arc<Counters>) -> Self {
        Undelivered {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                wake: Condvar::new(),
                any: AtomicBool::new(false),
            }),
            store,
            counters,
        }
    }

    /// Whether anything is pending: one atomic load.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.shared.any.load(Ordering::Acquire)
    }

    /// Whether a read that depends on `keys` must bypass the cache: one of
    /// them (or, after an overflow, any key) waits for delivery. One atomic
    /// load while nothing is pending.
    #[inline]
    pub(crate) fn blocks(&self, keys: &[Key]) -> bool {
        if !self.any() {
            return false;
        }
        self.blocks_slow(keys)
    }

    #[cold]
    fn blocks_slow(&self, keys: &[Key]) -> bool {
        let p = self.shared.lock();
        p.overflow.is_some() || keys.iter().any(|k| p.keys.contains_key(k))
    }

    /// How many keys wait for delivery (the global generation counts once
    /// after an overflow).
    pub(crate) fn len(&self) -> usize {
        let p = self.shared.lock();
        p.keys.len() + usize::from(p.overflow.is_some())
    }

    /// Keep `keys`, whose bump failed, and make sure the thread delivers them.
    /// `global` is what an overflow bumps: the global key, as the store
    /// names it for this cache.
    pub(crate) fn add(&self, keys: &[Key], global: Key) {
        if keys.is_empty() {
            return;
        }
        let start = {
            let mut p = self.shared.lock();
            p.global = Some(global);
            p.seq += 1;
            let seq = p.seq;
            if p.overflow.is_some() || p.keys.len() + keys.len() > MAX_PENDING {
                if p.overflow.is_none() {
                    tracing::warn!(
                        max = MAX_PENDING,
                        "too many undelivered invalidations; everything bypasses the cache \
                         until a global invalidation is delivered"
                    );
                }
                // Keys of before the overflow are covered by the global bump
                // of after it; later ones are too.
                p.keys.clear();
                p.overflow = Some(seq);
            } else {
                for k in keys {
                    p.keys.insert(*k, seq);
                }
            }
            self.shared.any.store(true, Ordering::Release);
            !std::mem::replace(&mut p.thread, true)
        };
        if start {
            self.start_thread();
        }
    }

    fn start_thread(&self) {
        let shared = self.shared.clone();
        let store = self.store.clone();
        let counters = self.counters.clone();
        let spawned = std::thread::Builder::new()
            .name("cachebot-deliver".into())
            .spawn(move || run(&shared, &*store, &counters));
        if let Err(e) = spawned {
            // The keys stay pending: the next failed bump tries again, and
            // every later bump carries them.
            tracing::warn!(error = %crate::error::Chain(&e), "cannot start the invalidation delivery thread");
            self.shared.lock().thread = false;
        }
    }

    /// The pending keys, for a bump to carry along (`None` if nothing is
    /// pending).
    pub(crate) fn batch(&self) -> Option<Batch> {
        if !self.any() {
            return None;
        }
        self.shared.snapshot()
    }

    /// The store took `batch`: forget it and count it.
    pub(crate) fn delivered(&self, batch: &Batch) {
        delivered(&self.shared, &self.counters, batch);
    }
}

impl Drop for Undelivered {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

fn delivered(shared: &Shared, counters: &Counters, batch: &Batch) {
    shared.forget(batch);
    Counters::add(&counters.redelivered, batch.keys.len() as u64);
    tracing::info!(
        keys = batch.keys.len(),
        "undelivered invalidations delivered"
    );
}

/// A delay between `d / 2` and `d`: processes that lost the same store do
/// not retry in step.
fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Retry until nothing is pending (then end), or until the cache is
/// dropped (then one last attempt, and end).
fn run(shared: &Shared, store: &dyn Store, counters: &Counters) {
    let mut delay = FIRST_DELAY;
    loop {
        let stopping = {
            let p = shared.lock();
            let (p, _) = shared
                .wake
                .wait_timeout_while(p, jittered(delay), |p| !p.stop)
                .unwrap_or_else(|e| e.into_inner());
            p.stop
        };
        let Some(batch) = shared.snapshot() else {
            let mut p = shared.lock();
            // A failure may have come in since the snapshot: then keep going.
            if p.is_empty() || p.stop {
                p.thread = false;
                return;
            }
            continue;
        };
        match store.bump(batch.keys()) {
            Ok(()) => {
                delivered(shared, counters, &batch);
                delay = FIRST_DELAY;
            }
            Err(e) => {
                Counters::bump(&counters.redelivery_errors);
                tracing::debug!(error = %crate::error::Chain(&e), keys = batch.keys.len(), "redelivery failed; backing off");
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
        if stopping {
            let mut p = shared.lock();
            p.thread = false;
            if !p.is_empty() {
                tracing::warn!(
                    keys = p.keys.len(),
                    "cache dropped with undelivered invalidations"
                );
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;
    use crate::error::StoreErrorKind;
    use crate::store::{FetchedMany, Generation, InProcessStore};
    use crate::Cache;
    use std::time::Instant;

    /// The in-process store, whose bumps fail while `down` is set.
    struct Flaky {
        inner: InProcessStore,
        down: Arc<AtomicBool>,
        bumped: Arc<Mutex<Vec<Key>>>,
    }

    impl Store for Flaky {
        fn fetch_many(&self, e: &[Key], g: &[Key]) -> Result<FetchedMany, StoreError> {
            self.inner.fetch_many(e, g)
        }
        fn ensure_generations(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError> {
            self.inner.ensure_generations(keys)
        }
        fn put_entry(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
            self.inner.put_entry(key, value, ttl)
        }
        fn bump(&self, keys: &[Key]) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::new(
                    "flaky",
                    StoreErrorKind::Unavailable,
                    "down",
                ));
            }
            self.bumped.lock().unwrap().extend_from_slice(keys);
            self.inner.bump(keys)
        }
        fn max_value_size(&self) -> usize {
            self.inner.max_value_size()
        }
        fn name(&self) -> &'static str {
            "flaky"
        }
    }

    type Handles = (Arc<AtomicBool>, Arc<Mutex<Vec<Key>>>);

    fn flaky_cache() -> (Cache, Handles) {
        let down = Arc::new(AtomicBool::new(true));
        let bumped = Arc::new(Mutex::new(Vec::new()));
        let store = Flaky {
            inner: InProcessStore::new(),
            down: down.clone(),
            bumped: bumped.clone(),
        };
        let cache = Cache::builder().store(store).build().unwrap();
        // As if a connection had told the cache its database.
        let _ = cache.reader.invalidator.database.set(1);
        (cache, (down, bumped))
    }

    fn thread_runs(u: &Undelivered) -> bool {
        u.shared.lock().thread
    }

    fn within_10s(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_failed_bump_is_delivered_in_the_background_and_the_thread_ends() {
        let (cache, (down, bumped)) = flaky_cache();
        let u = &cache.reader.invalidator.undelivered;
        let photos = crate::scope::in_database(1, key::table_key("public.photos"));
        assert!(!u.blocks(&[photos]));
        assert!(cache.invalidate_table("public.photos").is_err());
        assert_eq!(cache.stats().invalidation_errors, 1);
        assert!(u.blocks(&[photos]));
        assert!(!u.blocks(&[key::table_key("users")]));
        assert!(thread_runs(u));
        // Retries fail while the store is down, and are counted.
        within_10s("retries", || cache.stats().redelivery_errors >= 2);
        assert_eq!(cache.pending_invalidations(), 1);
        down.store(false, Ordering::SeqCst);
        within_10s("delivery", || cache.pending_invalidations() == 0);
        assert!(!u.blocks(&[photos]));
        assert_eq!(cache.stats().redelivered, 1);
        assert_eq!(*bumped.lock().unwrap(), vec![photos]);
        within_10s("the thread ends", || !thread_runs(u));
        // A later failure starts it again.
        down.store(true, Ordering::SeqCst);
        assert!(cache.invalidate_all().is_err());
        assert!(thread_runs(u));
        down.store(false, Ordering::SeqCst);
        within_10s("second delivery", || cache.pending_invalidations() == 0);
        within_10s("the thread ends again", || !thread_runs(u));
    }

    #[test]
    fn a_later_bump_carries_the_pending_keys() {
        let (cache, (down, bumped)) = flaky_cache();
        // As the store names them: scoped to the cache's database.
        let photos = crate::scope::in_database(1, key::table_key("public.photos"));
        let users = crate::scope::in_database(1, key::table_key("public.users"));
        assert!(cache.invalidate_table("public.photos").is_err());
        down.store(false, Ordering::SeqCst);
        // Whether or not the thread got there first, nothing is pending
        // once a later bump has gone through.
        cache.invalidate_table("public.users").unwrap();
        assert_eq!(cache.pending_invalidations(), 0);
        assert!(cache.stats().redelivered >= 1);
        let got = bumped.lock().unwrap().clone();
        assert!(got.contains(&photos) && got.contains(&users), "{got:?}");
    }

    #[test]
    fn a_delivery_forgets_only_what_did_not_fail_again() {
        let (cache, (down, _)) = flaky_cache();
        let u = &cache.reader.invalidator.undelivered;
        let (a, b) = (key::table_key("a"), key::table_key("b"));
        u.add(&[a, b], key::global_key());
        let first = u.batch().unwrap();
        // `a` fails again (a newer write) while `first` is in flight.
        u.add(&[a], key::global_key());
        u.delivered(&first);
        assert!(u.blocks(&[a]));
        assert!(!u.blocks(&[b]));
        assert_eq!(u.len(), 1);
        down.store(false, Ordering::SeqCst);
        within_10s("delivery", || u.len() == 0);
    }

    #[test]
    fn an_overflow_bypasses_everything_and_bumps_the_global_generation() {
        let (cache, (down, bumped)) = flaky_cache();
        let u = &cache.reader.invalidator.undelivered;
        let keys: Vec<Key> = (0..MAX_PENDING as u128).map(Key::generation).collect();
        u.add(&keys, key::global_key());
        assert_eq!(u.len(), MAX_PENDING);
        assert!(!u.blocks(&[key::table_key("elsewhere")]));
        u.add(&[key::table_key("one more")], key::global_key());
        assert_eq!(u.len(), 1, "collapsed into the global generation");
        assert!(u.blocks(&[key::table_key("elsewhere")]));
        assert_eq!(u.batch().unwrap().keys(), &[key::global_key()]);
        down.store(false, Ordering::SeqCst);
        within_10s("delivery", || u.len() == 0);
        assert!(!u.blocks(&[key::table_key("elsewhere")]));
        assert!(bumped.lock().unwrap().contains(&key::global_key()));
    }

    #[test]
    fn dropping_the_cache_ends_the_thread() {
        let (cache, (_down, _)) = flaky_cache();
        assert!(cache.invalidate_all().is_err());
        let shared = cache.reader.invalidator.undelivered.shared.clone();
        assert!(shared.lock().thread);
        drop(cache);
        // The thread held the only other reference.
        within_10s("the thread ends", || Arc::strong_count(&shared) == 1);
        assert!(!shared.lock().thread);
    }
}
