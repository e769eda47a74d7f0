//! Write-behind: storing a miss's result without making the read wait.
//!
//! On a remote store the entry write is a round trip after the database
//! query; the read does not need its answer. With write-behind on, the
//! entry goes to one background thread and the read returns at once.
//! Correctness does not depend on when the entry lands: it carries the
//! generations read before the query, so an entry that arrives after a
//! write is never served. Only an immediate re-read may still miss.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::Counters;
use crate::store::{Key, Store};

/// Entries waiting for the background thread, at most.
const QUEUE: usize = 4096;

enum Job {
    Put(Key, Vec<u8>, Duration),
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
    pub(crate) fn put(&self, key: Key, bytes: Vec<u8>, ttl: Duration) -> bool {
        match self.tx.try_send(Job::Put(key, bytes, ttl)) {
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

fn run(rx: Receiver<Job>, store: Arc<dyn Store>, counters: Arc<Counters>) {
    // Ends when the cache (the only sender) is dropped.
    while let Ok(job) = rx.recv() {
        match job {
            Job::Put(key, bytes, ttl) => match store.put_entry(key, &bytes, ttl) {
                Ok(()) => Counters::bump(&counters.stores),
                Err(e) => {
                    Counters::bump(&counters.fallbacks);
                    tracing::warn!(store = store.name(), error = %e, "could not store entry");
                }
            },
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}
