//! Storing a miss's result: inline, or without making the read wait.
//!
//! After the database query, a miss still has to encode its rows and hand
//! the entry to the store: on a remote store a round trip, and in any store
//! the encode (microseconds for ten rows with timestamps, more with the
//! caches cold after the query). The read needs neither. With write-behind
//! on, the read hands a copy of the rows to one background thread, which
//! encodes and stores them while the read returns. Correctness does not
//! depend on when the entry lands: it carries the generations read before
//! the query, so an entry that arrives after a write is never served. Only
//! an immediate re-read may still miss.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CodecError, StoreError};
use crate::stats::Counters;
use crate::store::{Key, Store};

/// Entries waiting for the background thread, at most.
const QUEUE: usize = 4096;

/// An entry, laid out and encoded: `Ok(None)` when it can't be (more
/// generations than the entry format holds).
pub(crate) type Encoded = Result<Option<Vec<u8>>, CodecError>;

/// The encoding of an entry, left to the thread.
pub(crate) type Encode = Box<dyn FnOnce() -> Encoded + Send>;

enum Job {
    Put(Key, Duration, Encode),
    Barrier(SyncSender<()>),
}

/// The handle the read path sends entries to.
pub(crate) struct WriteBehind {
    tx: SyncSender<Job>,
}

impl WriteBehind {
    pub(crate) fn start(store: Arc<dyn Store>, counters: Arc<Counters>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("cachebot-write-behind".into())
            .spawn(move || run(rx, store, counters))?;
        Ok(WriteBehind { tx })
    }

    /// Queue an entry; `false` if the queue is full (the entry is dropped:
    /// a later miss stores it).
    pub(crate) fn put(&self, key: Key, ttl: Duration, encode: Encode) -> bool {
        match self.tx.try_send(Job::Put(key, ttl, encode)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Wait until every entry queued before this call has been written.
    pub(crate) fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.tx.send(Job::Barrier(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// Store an encoded entry, counting what happens to it: stored, too large,
/// not encodable, or refused by the store. The same inline and behind.
pub(crate) fn store_entry(
    store: &dyn Store,
    c: &Counters,
    key: Key,
    ttl: Duration,
    encoded: Encoded,
) {
    if let Some(bytes) = storable(store.max_value_size(), c, encoded) {
        stored(store.name(), c, store.put_entry(key, &bytes, ttl));
    }
}

/// The bytes of an encoded entry if they can be stored; counted otherwise
/// (too large, or not encodable).
pub(crate) fn storable(max_value_size: usize, c: &Counters, encoded: Encoded) -> Option<Vec<u8>> {
    let bytes = match encoded {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            Counters::bump(&c.oversized);
            return None;
        }
        Err(e) => {
            Counters::bump(&c.encode_errors);
            tracing::warn!(error = %crate::error::Chain(&e), "result does not encode; not caching");
            return None;
        }
    };
    if bytes.len() > max_value_size {
        Counters::bump(&c.oversized);
        tracing::debug!(
            size = bytes.len(),
            "result larger than the store's item limit; not caching"
        );
        return None;
    }
    Some(bytes)
}

/// Count what the store said to an entry.
pub(crate) fn stored(store: &str, c: &Counters, result: Result<(), StoreError>) {
    match result {
        Ok(()) => Counters::bump(&c.stores),
        Err(e) => {
            Counters::bump(&c.fallbacks);
            tracing::warn!(store, error = %crate::error::Chain(&e), "could not store entry");
        }
    }
}

/// Nice value of the writer thread on Linux: below request threads.
#[cfg(target_os = "linux")]
const NICE: libc::c_int = 10;

/// The writer yields to request threads. Waking it hands it the CPU at
/// once on a busy (or single) CPU, and the store write it makes would then
/// run inside the very read that queued it, which writing behind exists to
/// avoid; at a lower priority it runs when the request thread waits (for
/// the database, the network) or on another core. Linux only; elsewhere
/// the thread keeps the default priority. The crate's only `unsafe`.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: two system calls about the calling thread, no memory is
        // passed. Failure (a sandbox forbidding it) leaves the default
        // priority, which is only slower.
        let done = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
        };
        if done != 0 {
            tracing::debug!("write-behind thread keeps the default priority");
        }
    }
}

/// While entries keep coming, the writer looks for the next one this often
/// instead of sleeping until a read wakes it...
const POLL: Duration = Duration::from_micros(250);

/// ...until none has come for this long.
const POLL_FOR: Duration = Duration::from_millis(50);

/// Waking a sleeping writer is a futex call, and on a busy CPU a switch to
/// the scheduler, inside the read that queued the entry: as much as the
/// rest of a memcached miss's own work. So after an entry the writer polls the queue (a read that finds
/// it polling queues without waking anything) and goes back to sleeping
/// on the queue only once misses stop: a busy service's misses never pay
/// the wake-up, an idle one's writer does not spin. Polling costs a timer
/// wake-up per `POLL` while it lasts, and an entry may land up to `POLL`
/// later (an immediate re-read may miss once more; nothing else depends
/// on when it lands).
fn run(rx: Receiver<Job>, store: Arc<dyn Store>, counters: Arc<Counters>) {
    lower_priority();
    let mut last = Instant::now();
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Empty) if last.elapsed() < POLL_FOR => {
                std::thread::sleep(POLL);
                continue;
            }
            // Ends when the cache (the only sender) is dropped.
            Err(TryRecvError::Empty) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(TryRecvError::Disconnected) => return,
        };
        match job {
            Job::Put(key, ttl, encode) => store_entry(&*store, &counters, key, ttl, encode()),
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InProcessStore;

    #[test]
    fn a_result_that_does_not_encode_is_counted_as_such() {
        let store = InProcessStore::new();
        let c = Counters::default();
        let failed = Err(CodecError::new("test", "a field refused to serialize"));
        store_entry(
            &store,
            &c,
            Key::generation(1),
            Duration::from_secs(60),
            failed,
        );
        let s = c.snapshot();
        assert_eq!((s.encode_errors, s.decode_errors, s.stores), (1, 0, 0));
    }
}
