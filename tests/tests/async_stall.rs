//! A paused memcached (SIGSTOP: connections accepted, nothing answered)
//! never stalls the other tasks of the runtime: a read through it returns
//! the database's rows after about the store's I/O timeout, counted as a
//! fallback, while a ticking task spawned alongside keeps ticking.
//!
//! The tick count is the one measure of time here, and it is about
//! liveness: a task that gets no turn for the whole read ticks zero times.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachebot::aio::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::{MemcachedProcess, TestDb};
use common::{seed, since};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _};

const IO_TIMEOUT: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(5);
/// Of the ~20 ticks a 100 ms wait leaves room for: "several".
const MIN_TICKS: u64 = 4;

macro_rules! by_user {
    ($u:expr) => {
        photos::table
            .filter(photos::user_id.eq($u))
            .order(photos::id)
    };
}

fn cache_on(mc: &MemcachedProcess) -> Cache {
    let store = MemcachedStore::builder()
        .servers([mc.addr()])
        .prefix(common::unique_prefix())
        .io_timeout(IO_TIMEOUT)
        .connect_timeout(IO_TIMEOUT)
        .build()
        .unwrap();
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .unwrap()
}

/// Spawns a task that ticks every [`TICK`] until aborted.
fn ticker() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let handle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            t.fetch_add(1, Ordering::SeqCst);
        }
    });
    (ticks, handle)
}

fn ticks_now(ticks: &AtomicU64) -> u64 {
    AtomicU64::load(ticks, Ordering::SeqCst)
}

/// `readers` reads at once (each a task on its own connection), through a
/// cache whose memcached is paused, with a ticker running.
async fn paused_memcached_never_stalls_the_runtime(readers: usize) {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut mc = MemcachedProcess::spawn();
    let cache = Arc::new(cache_on(&mc));
    let mut conns = Vec::new();
    for _ in 0..readers {
        let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut conn).await.unwrap();
        // Warm: the store's connections are open, the entry is current.
        let _: Vec<Photo> = by_user!(seed.ann.id)
            .cache(&cache)
            .load(&mut conn)
            .await
            .unwrap();
        conns.push(conn);
    }
    let b = cache.stats();
    let _: Vec<Photo> = by_user!(seed.ann.id)
        .cache(&cache)
        .load(&mut conns[0])
        .await
        .unwrap();
    assert_eq!(since(&cache, b).hits, 1, "a hit while memcached is up");
    let mut plain = AsyncPgConnection::establish(&db.url()).await.unwrap();
    let truth: Vec<Photo> = by_user!(seed.ann.id).load(&mut plain).await.unwrap();

    mc.pause();
    let (ticks, ticking) = ticker();
    // Let the ticker start before the reads.
    while ticks_now(&ticks) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let b = cache.stats();
    let started = Instant::now();
    let from = ticks_now(&ticks);
    let reads: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (cache, ann) = (cache.clone(), seed.ann.id);
            tokio::spawn(async move {
                let rows: Vec<Photo> = by_user!(ann).cache(&cache).load(&mut conn).await.unwrap();
                (rows, Instant::now())
            })
        })
        .collect();
    let mut last = started;
    for r in reads {
        let (rows, done) = r.await.unwrap();
        assert_eq!(rows, truth, "the database's rows");
        last = last.max(done);
    }
    let ticked = ticks_now(&ticks) - from;
    let took = last - started;
    ticking.abort();
    mc.resume();
    let d = since(&cache, b);
    println!(
        "{readers} reads with memcached paused: {took:.1?}, the ticker ticked {ticked} times, {d:?}"
    );
    assert_eq!(d.hits, 0, "{d:?}");
    assert!(
        d.fallbacks >= readers as u64,
        "each read fell back to the database: {d:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "the reads waited {took:?}, far beyond the I/O timeout"
    );
    assert!(
        ticked >= MIN_TICKS,
        "the ticking task ticked {ticked} times in {took:?}: the runtime stalled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_memcached_does_not_stall_a_multi_thread_runtime() {
    paused_memcached_never_stalls_the_runtime(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_memcached_does_not_stall_a_multi_thread_runtime_with_every_worker_reading() {
    paused_memcached_never_stalls_the_runtime(2).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_paused_memcached_does_not_stall_a_current_thread_runtime() {
    paused_memcached_never_stalls_the_runtime(1).await;
}

/// A raw write on an instrumented connection while memcached is paused:
/// its bump is a blocking store call, run under `block_in_place` on the
/// multi-threaded runtime, so the ticker keeps ticking; the bump is kept
/// for delivery, reads that depend on it go to the database, and once
/// memcached is back it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_while_memcached_is_paused_does_not_stall_a_multi_thread_runtime() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut mc = MemcachedProcess::spawn();
    let cache = Arc::new(cache_on(&mc));
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    cache.instrument_async(&mut conn).await.unwrap();
    let mut plain = AsyncPgConnection::establish(&db.url()).await.unwrap();
    for _ in 0..2 {
        let _: Vec<Photo> = by_user!(seed.ann.id)
            .cache(&cache)
            .load(&mut conn)
            .await
            .unwrap();
    }
    mc.pause();
    let (ticks, ticking) = ticker();
    while ticks_now(&ticks) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let from = ticks_now(&ticks);
    let started = Instant::now();
    let id = seed.photos[0].id;
    let write = tokio::spawn(async move {
        diesel::update(photos::table.find(id))
            .set(photos::title.eq("written while paused"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });
    let mut conn = write.await.unwrap();
    let took = started.elapsed();
    let ticked = ticks_now(&ticks) - from;
    ticking.abort();
    println!("a write with memcached paused: {took:.1?}, the ticker ticked {ticked} times");
    assert!(cache.pending_invalidations() > 0, "the bump was kept");
    assert!(took < Duration::from_secs(5), "the write waited {took:?}");
    assert!(
        ticked >= MIN_TICKS,
        "the ticking task ticked {ticked} times in {took:?}: the runtime stalled"
    );
    let truth: Vec<Photo> = by_user!(seed.ann.id).load(&mut plain).await.unwrap();
    assert_eq!(truth[0].title, "written while paused");
    let b = cache.stats();
    let rows: Vec<Photo> = by_user!(seed.ann.id)
        .cache(&cache)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, truth, "STALE while the bump waits for delivery");
    let d = since(&cache, b);
    assert_eq!((d.hits, d.fallbacks), (0, 1), "{d:?}");
    mc.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.pending_invalidations() > 0 {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rows: Vec<Photo> = by_user!(seed.ann.id)
        .cache(&cache)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, truth, "STALE after delivery");
}
