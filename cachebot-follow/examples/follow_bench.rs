//! The follower's figures (issue 13): commit-to-bump lag p50/p99 at ~100 and ~1,000 single-row
//! writes/s on loopback, the follower's CPU per 1,000 changes, and the precision cost of the
//! follower bumping again what the crate's own writes already bumped.
//!
//! Run with `scripts/bench.sh follow` (release build, under services.sh: `LOGICAL_DATABASE_URL`
//! and `MEMCACHED_SERVERS`). Not part of CI.
//!
//! - Lag: one writer commits single-row UPDATEs (autocommit, from a connection the crate never
//!   saw) at a fixed rate; the follower's store records when each transaction's bump call
//!   returned (memcached acknowledged it). Lag = that instant minus the instant the writer's
//!   COMMIT returned, matched in commit order (one bump call per transaction).
//! - CPU: the follower thread's on-CPU time (`/proc/self/task/<tid>/schedstat`) over the phase,
//!   per 1,000 applied changes (idle polling included).
//! - Precision: a fixed set of 100 cached reads (one per owner); each round one update (synchronous
//!   bump), then the whole set is read. Updates go through the crate's write API
//!   (`cachebot::write::update`: exact old and new images); a raw UPDATE through an
//!   instrumented connection bumps wider without the follower already. Hit rate with
//!   the follower running vs stopped.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachebot::prelude::*;
use cachebot::store::{Fetched, FetchedMany, Generation, Key, MemcachedStore, Store};
use cachebot::StoreError;
use cachebot_follow::{Config, Follower, Status};
use cachebot_tests::{memcached_servers, LogicalDb};
use diesel::prelude::*;

diesel::table! {
    items (id) {
        id -> Int4,
        owner -> Int4,
        note -> Nullable<Text>,
    }
}

/// A row, for the crate's write API (exact bumps of the old and new images).
#[derive(
    Clone,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    serde::Serialize,
    serde::Deserialize,
    cachebot::CacheBot,
)]
#[diesel(table_name = items)]
#[allow(dead_code)]
struct Item {
    id: i32,
    owner: i32,
    note: Option<String>,
}

const ROWS: i32 = 10_000;
const OWNERS: i32 = 100;

const SETUP: &str = "
CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, note text);
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO items SELECT g, g % 100, 'n' FROM generate_series(1, 10000) g;
";

/// A memcached store that records when each bump call returned.
struct Timed {
    inner: MemcachedStore,
    bumps: Arc<Mutex<Vec<Instant>>>,
}

impl Store for Timed {
    fn fetch_many(&self, entries: &[Key], generations: &[Key]) -> Result<FetchedMany, StoreError> {
        self.inner.fetch_many(entries, generations)
    }
    fn fetch(&self, entry: Key, generations: &[Key]) -> Result<Fetched, StoreError> {
        self.inner.fetch(entry, generations)
    }
    fn ensure_generations(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError> {
        self.inner.ensure_generations(keys)
    }
    fn put_entry(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.inner.put_entry(key, value, ttl)
    }
    fn bump(&self, keys: &[Key]) -> Result<(), StoreError> {
        self.inner.bump(keys)?;
        if let Ok(mut b) = self.bumps.lock() {
            b.push(Instant::now());
        }
        Ok(())
    }
    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }
    fn name(&self) -> &'static str {
        "timed-memcached"
    }
}

fn memcached(prefix: &str) -> MemcachedStore {
    MemcachedStore::builder()
        .servers(memcached_servers())
        .prefix(prefix.to_owned())
        .build()
        .expect("memcached store")
}

/// The follower on a thread of its own (named, to find its CPU time).
struct Running {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    thread: std::thread::JoinHandle<()>,
    tid: u64,
}

impl Running {
    fn start(db: &LogicalDb, cache: Cache) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(Status::default()));
        let name = format!("cbf-{:06x}", fastrand::u32(..0xff_ffff));
        let config = Config::new(db.url(), &db.schema, &db.schema).bound(Duration::from_secs(5));
        let (s, st) = (stop.clone(), status.clone());
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || Follower::new(cache, config).run(&s, &st))
            .expect("follower thread");
        let tid = (0..200)
            .find_map(|_| {
                let found = std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
                    let e = e.ok()?;
                    let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                    (comm.trim() == name).then(|| e.file_name().to_str()?.parse().ok())?
                });
                if found.is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                found
            })
            .expect("the follower thread's tid");
        Running {
            stop,
            status,
            thread,
            tid,
        }
    }

    fn confirmed(&self) -> u64 {
        self.status.lock().map(|s| s.confirmed_lsn).unwrap_or(0)
    }

    /// On-CPU time of the follower thread so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/schedstat", self.tid))
            .expect("schedstat");
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("schedstat ns");
        Duration::from_nanos(ns)
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Commit-to-bump lag and follower CPU at `rate` writes/s for `secs` seconds.
fn lag(db: &LogicalDb, rate: u32, secs: u32) {
    let prefix = format!("lag{:08x}:", fastrand::u32(..));
    let bumps = Arc::new(Mutex::new(Vec::new()));
    let store = Timed {
        inner: memcached(&prefix),
        bumps: bumps.clone(),
    };
    let cache = Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .expect("cache");
    let follower = Running::start(db, cache);
    let mut conn = db.conn();
    // Commit-to-bump as production runs it: the commit's WAL is flushed (and sent) at once.
    // Under `synchronous_commit = off` the walsender waits for the WAL writer (up to
    // `wal_writer_delay`, 200 ms by default), which the lag then includes.
    diesel::sql_query("SET synchronous_commit = on")
        .execute(&mut conn)
        .expect("synchronous_commit");
    db.wait_applied(&mut conn, || follower.confirmed());
    bumps.lock().expect("bumps").clear();

    let n = rate * secs;
    let every = Duration::from_secs(1) / rate;
    let mut commits = Vec::with_capacity(n as usize);
    let cpu_before = follower.cpu();
    let start = Instant::now();
    for i in 0..n {
        let due = start + every * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = 1 + (i as i32 * 7919) % ROWS;
        diesel::sql_query(format!("UPDATE items SET note = 'w{i}' WHERE id = {id}"))
            .execute(&mut conn)
            .expect("update");
        commits.push(Instant::now());
    }
    let elapsed = start.elapsed();
    db.wait_applied(&mut conn, || follower.confirmed());
    let cpu = follower.cpu().saturating_sub(cpu_before);
    follower.stop();

    let bumps = bumps.lock().expect("bumps").clone();
    if bumps.len() != commits.len() {
        println!(
            "  warning: {} bump calls for {} transactions (matched in order)",
            bumps.len(),
            commits.len()
        );
    }
    let mut lags: Vec<Duration> = commits
        .iter()
        .zip(&bumps)
        .map(|(c, b)| b.saturating_duration_since(*c))
        .collect();
    lags.sort();
    println!(
        "| {rate}/s target, {:.0}/s achieved, {n} writes | {:.2} | {:.2} | {:.2} | {:.1} |",
        f64::from(n) / elapsed.as_secs_f64(),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or_default()),
        ms(cpu) * 1000.0 / f64::from(n),
    );
}

/// Hit rate of the fixed read set under `rounds` rounds of (one instrumented update, read all).
fn hit_rate(reader: &Cache, conn: &mut PgConnection, rounds: u32) -> (f64, u64, u64) {
    let read = |conn: &mut PgConnection, owner: i32| {
        items::table
            .filter(items::owner.eq(owner))
            .select((items::id, items::note))
            .order(items::id)
            .cache(reader)
            .load::<(i32, Option<String>)>(conn)
            .expect("cached read")
    };
    for owner in 0..OWNERS {
        read(conn, owner);
    }
    let before = reader.stats();
    for round in 0..rounds {
        let id = 1 + fastrand::i32(0..ROWS);
        cachebot::write::update::<Item, _, _, _>(
            reader,
            conn,
            items::table.find(id),
            items::note.eq(format!("r{round}")),
        )
        .expect("update");
        for owner in 0..OWNERS {
            read(conn, owner);
        }
    }
    let after = reader.stats();
    let hits = after.hits - before.hits;
    let misses = after.misses - before.misses;
    (hits as f64 / (hits + misses) as f64, hits, misses)
}

fn precision(db: &LogicalDb, rounds: u32) {
    let prefix = format!("prc{:08x}:", fastrand::u32(..));
    let reader = Cache::builder()
        .store(memcached(&prefix))
        .write_behind(false)
        .build()
        .expect("reader");
    let mut conn = db.conn();
    diesel::sql_query("SET synchronous_commit = on")
        .execute(&mut conn)
        .expect("synchronous_commit");
    reader.instrument(&mut conn).expect("instrument");
    let follower_cache = Cache::builder()
        .store(memcached(&prefix))
        .write_behind(false)
        .build()
        .expect("follower cache");
    let follower = Running::start(db, follower_cache);
    db.wait_applied(&mut conn, || follower.confirmed());
    let with = hit_rate(&reader, &mut conn, rounds);
    db.wait_applied(&mut conn, || follower.confirmed());
    follower.stop();
    let without = hit_rate(&reader, &mut conn, rounds);
    println!(
        "| without the follower | {:.2}% | {} | {} |",
        without.0 * 100.0,
        without.1,
        without.2
    );
    println!(
        "| with the follower | {:.2}% | {} | {} |",
        with.0 * 100.0,
        with.1,
        with.2
    );
    println!(
        "hit-rate cost of double bumps: {:.2} points ({:.2} extra misses per write)",
        (without.0 - with.0) * 100.0,
        (with.2 as f64 - without.2 as f64) / f64::from(rounds)
    );
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let secs = if quick { 2 } else { 5 };
    let db = LogicalDb::new(SETUP);
    println!("## cachebot-follow: commit-to-bump lag (loopback, memcached ack), CPU\n");
    println!(
        "| load | lag p50 (ms) | lag p99 (ms) | max (ms) | follower CPU per 1,000 changes (ms) |"
    );
    println!("|---|---:|---:|---:|---:|");
    lag(&db, 100, secs);
    lag(&db, 1000, secs);
    println!("\n## precision cost of double bumps (100 cached reads; per round 1 update through cachebot::write, then all 100 read)\n");
    println!("| run | hit rate | hits | misses |");
    println!("|---|---:|---:|---:|");
    precision(&db, if quick { 200 } else { 1000 });
}
