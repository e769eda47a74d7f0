//! The change stream's heartbeat: how far a change-stream follower got, kept
//! in the store, and the read side's check that it is recent enough.
//!
//! A follower (the `cachebot-follow` crate) applies each committed
//! transaction's bumps, then records the transaction's commit time here.
//! The statement it makes is exact: **every transaction committed before
//! that time has had its bumps delivered.** On an idle database the
//! follower commits a logical message every half bound
//! (`pg_logical_emit_message(true, 'cachebot.heartbeat', '')`), so the
//! heartbeat keeps moving while nothing is written.
//!
//! A reader configured with a staleness bound serves cached entries only
//! while the heartbeat is at most the bound old ([`Heartbeat`]); otherwise
//! (follower down, lagging, store lost the heartbeat) it reads the
//! database. The commit time is the database server's clock and the age is
//! measured with the reader's clock: skew between the two adds to (or
//! takes from) the bound.
//!
//! # Format
//!
//! One entry per database, under the entry key
//! `in_database(database, Key::entry(xxh3_128(b"cachebot.heartbeat/1")))`,
//! stored for [`TTL`] with `put_entry`:
//!
//! | bytes | content |
//! |---|---|
//! | 0..4 | magic `cbhb` |
//! | 4 | format version, 1 |
//! | 5..8 | zero |
//! | 8..16 | commit time, microseconds since the Unix epoch, `i64` little-endian |
//!
//! Anything else (missing, short, another magic or version) reads as "no
//! heartbeat": the reader bypasses the cache. The bytes are untrusted like
//! every store byte; a forged heartbeat can only make readers trust the
//! cache as a reader without a staleness bound does (generations still
//! decide every hit).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::scope;
use crate::store::{Key, Store};

/// How long the store keeps a heartbeat (a missing one means "stale").
pub(crate) const TTL: Duration = Duration::from_secs(24 * 3600);

const MAGIC: &[u8; 4] = b"cbhb";
const VERSION: u8 = 1;
const LEN: usize = 16;

/// The heartbeat's key for `database`.
pub(crate) fn key(database: u128) -> Key {
    scope::in_database(
        database,
        Key::entry(xxhash_rust::xxh3::xxh3_128(b"cachebot.heartbeat/1")),
    )
}

/// The stored form of `commit_time`.
pub(crate) fn encode(commit_time: SystemTime) -> [u8; LEN] {
    let micros = match commit_time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
    };
    let mut out = [0u8; LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4] = VERSION;
    out[8..].copy_from_slice(&micros.to_le_bytes());
    out
}

/// The commit time in `bytes`, if they are a heartbeat.
pub(crate) fn decode(bytes: &[u8]) -> Option<SystemTime> {
    let bytes: &[u8; LEN] = bytes.try_into().ok()?;
    if &bytes[..4] != MAGIC || bytes[4] != VERSION || bytes[5..8] != [0, 0, 0] {
        return None;
    }
    let mut micros = [0u8; 8];
    micros.copy_from_slice(&bytes[8..]);
    let micros = i64::from_le_bytes(micros);
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// Record that every transaction committed before `commit_time` was applied.
pub(crate) fn record(
    store: &dyn Store,
    database: u128,
    commit_time: SystemTime,
) -> Result<(), StoreError> {
    store.put_entry(key(database), &encode(commit_time), TTL)
}

/// The recorded heartbeat, if any.
pub(crate) fn read(store: &dyn Store, database: u128) -> Result<Option<SystemTime>, StoreError> {
    let fetched = store.fetch(key(database), &[])?;
    Ok(fetched.entry.as_deref().and_then(decode))
}

/// The read side's check: is the follower's last applied commit within the
/// bound? Remembers the newest heartbeat it read, so that while it is
/// recent, the check costs a lock and a clock read, no round trip; once the
/// remembered one is too old, it asks the store again, at most once per
/// retry interval (and answers "stale" in between).
///
/// A remembered heartbeat can only be older than the store's, never newer
/// than the truth: the check may say "stale" too early, never "fresh" too
/// late. One per cache (it remembers one database's heartbeat).
#[derive(Debug)]
pub(crate) struct Heartbeat {
    bound: Duration,
    retry: Duration,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    newest: Option<SystemTime>,
    asked: Option<Instant>,
}

impl Heartbeat {
    /// A check for `bound`; it asks the store at most every `bound / 8`
    /// (between 10 ms and 1 s) while the heartbeat is too old.
    pub(crate) fn new(bound: Duration) -> Heartbeat {
        Heartbeat {
            bound,
            retry: (bound / 8).clamp(Duration::from_millis(10), Duration::from_secs(1)),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Whether the follower applied every transaction committed more than
    /// the bound ago. `false` when the store cannot say (down, no
    /// heartbeat).
    pub(crate) fn within_bound(&self, store: &dyn Store, database: u128) -> bool {
        let fresh = |t: SystemTime| {
            // A commit time ahead of this clock is skew: age 0.
            SystemTime::now().duration_since(t).unwrap_or_default() <= self.bound
        };
        {
            let Ok(mut seen) = self.seen.lock() else {
                return false;
            };
            if seen.newest.is_some_and(fresh) {
                return true;
            }
            if seen.asked.is_some_and(|at| at.elapsed() < self.retry) {
                return false;
            }
            // Concurrent checks answer "stale" while this one asks.
            seen.asked = Some(Instant::now());
        }
        let read = read(store, database).ok().flatten();
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if let Some(t) = read {
            seen.newest = Some(seen.newest.map_or(t, |n| n.max(t)));
        }
        seen.newest.is_some_and(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InProcessStore;

    #[test]
    fn round_trip_and_garbage() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(decode(&encode(t)), Some(t));
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(decode(&encode(before)), Some(before));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&encode(t)[..15]), None);
        let mut bad = encode(t);
        bad[4] = 2;
        assert_eq!(decode(&bad), None);
        let mut extreme = encode(t);
        extreme[8..].copy_from_slice(&i64::MIN.to_le_bytes());
        let _ = decode(&extreme); // no panic, whatever the platform's range
        extreme[8..].copy_from_slice(&i64::MAX.to_le_bytes());
        let _ = decode(&extreme);
    }

    #[test]
    fn databases_do_not_share_a_heartbeat() {
        assert_ne!(key(1), key(2));
    }

    #[test]
    fn checks_the_bound() {
        let store = InProcessStore::new();
        let hb = Heartbeat::new(Duration::from_millis(200));
        assert!(!hb.within_bound(&store, 7), "no heartbeat: stale");
        record(&store, 7, SystemTime::now()).unwrap();
        // Asked less than the retry interval ago: still stale.
        std::thread::sleep(hb.retry + Duration::from_millis(5));
        assert!(hb.within_bound(&store, 7));
        assert_eq!(hb.bound, Duration::from_millis(200));
        // Old heartbeat: stale.
        let hb = Heartbeat::new(Duration::from_millis(200));
        record(&store, 9, SystemTime::now() - Duration::from_secs(1)).unwrap();
        assert!(!hb.within_bound(&store, 9));
        store.put_entry(key(10), b"garbage", TTL).unwrap();
        assert!(!Heartbeat::new(Duration::from_secs(60)).within_bound(&store, 10));
        assert!(read(&store, 9).unwrap().is_some());
    }
}
