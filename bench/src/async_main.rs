//! cachebot's async figures (issue 14): cached reads on a diesel-async connection against
//! the same reads on a blocking connection and against the uncached async query, and the
//! throughput of hits with 64 concurrent tasks. Run through `scripts/bench.sh async`, which
//! provides the services and pins them and this process to one CPU (the throughput figure
//! widens its runtime to every CPU).
//!
//! Method as the main bench (`harness`): operations interleaved round by round, medians,
//! ratios of medians measured in the same process. Async operations run on a current-thread
//! runtime driven by this thread, so an async figure and its blocking baseline share a CPU
//! and a moment.

#[path = "harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "model.rs"]
#[allow(dead_code)]
mod model;
#[path = "sys.rs"]
#[allow(dead_code)]
mod sys;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachebot::store::{InProcessStore, MemcachedStore, Store};
use cachebot::Cache;
use diesel::pg::PgConnection;
use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use harness::{median, Report, Target};
use model::{filter_cached, filter_db, BenchDb, Photo, PHOTOS, USERS};

#[global_allocator]
static GLOBAL: sys::CountingAlloc = sys::CountingAlloc;

/// Users whose entries are kept warm.
const HOT: usize = 64;

/// Concurrent tasks of the throughput figure.
const TASKS: usize = 64;

fn hot_user(i: usize) -> i32 {
    (i % HOT) as i32 + 1
}

async fn filter_async_db(conn: &mut AsyncPgConnection, user: i32) -> Vec<Photo> {
    use diesel_async::RunQueryDsl;
    model::photos::table
        .filter(model::photos::user_id.eq(user))
        .filter(model::photos::status.eq(2))
        .select(Photo::as_select())
        .load(conn)
        .await
        .expect("async filter query")
}

async fn filter_async_cached(cache: &Cache, conn: &mut AsyncPgConnection, user: i32) -> Vec<Photo> {
    use cachebot::aio::prelude::*;
    model::photos::table
        .filter(model::photos::user_id.eq(user))
        .filter(model::photos::status.eq(2))
        .select(Photo::as_select())
        .cache(cache)
        .load::<AsyncPgConnection, Photo>(conn)
        .await
        .expect("async cached filter query")
}

fn cache_on(store: impl Store) -> Cache {
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .expect("cache")
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => {
            eprintln!("{name} is not set: run through scripts/bench.sh async");
            std::process::exit(2);
        }
    }
}

/// One operation of a figure, timed: nanoseconds per call of one sample.
#[derive(Clone, Copy)]
enum Op {
    SyncHit,
    AsyncHit,
    AsyncQuery,
    SyncQuery,
    AsyncMiss,
}

struct Setup<'a> {
    cache: &'a Cache,
    sync: &'a mut PgConnection,
    conn: &'a mut AsyncPgConnection,
    inner: usize,
}

impl Setup<'_> {
    async fn run(&mut self, op: Op, round: usize) -> f64 {
        let inner = self.inner;
        let start = Instant::now();
        for i in 0..inner {
            let user = hot_user(round * inner + i);
            match op {
                Op::SyncHit => drop(black_box(filter_cached(self.cache, self.sync, user))),
                Op::AsyncHit => drop(black_box(
                    filter_async_cached(self.cache, self.conn, user).await,
                )),
                Op::AsyncQuery => drop(black_box(filter_async_db(self.conn, user).await)),
                Op::SyncQuery => drop(black_box(filter_db(self.sync, user))),
                Op::AsyncMiss => {
                    // A user whose entry was invalidated just before (untimed below).
                    drop(black_box(
                        filter_async_cached(self.cache, self.conn, user).await,
                    ))
                }
            }
        }
        start.elapsed().as_nanos() as f64 / inner as f64
    }
}

/// Interleaved medians of `ops` (see `harness`), `inner` calls per sample.
async fn interleave(s: &mut Setup<'_>, warmup: usize, samples: usize, ops: &[Op]) -> Vec<f64> {
    let n = ops.len();
    let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); n];
    for round in 0..warmup + samples {
        for k in 0..n {
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            let v = s.run(ops[i], round).await;
            if round >= warmup {
                out[i].push(v);
            }
        }
    }
    out.iter_mut().map(|v| median(v)).collect()
}

/// Misses: each sample invalidates its user (untimed), then reads it through the cache
/// (async miss) and, interleaved, reads it uncached (the async query).
async fn misses(cache: &Cache, conn: &mut AsyncPgConnection, samples: usize) -> (f64, f64) {
    let mut miss = Vec::with_capacity(samples);
    let mut query = Vec::with_capacity(samples);
    for round in 0..samples + 20 {
        let user = hot_user(round) + HOT as i32;
        cache
            .invalidate_value(model::photos::user_id, user)
            .expect("invalidate");
        let before = cache.stats();
        let t = Instant::now();
        black_box(filter_async_cached(cache, conn, user).await);
        let m = t.elapsed().as_nanos() as f64;
        assert_eq!((cache.stats() - before).misses, 1, "a miss");
        let t = Instant::now();
        black_box(filter_async_db(conn, user).await);
        let q = t.elapsed().as_nanos() as f64;
        if round >= 20 {
            miss.push(m);
            query.push(q);
        }
    }
    (median(&mut miss), median(&mut query))
}

/// Hits per second of `TASKS` tasks on a multi-thread runtime with `workers` workers, each
/// task on its own async connection.
fn throughput(url: &str, cache: &Cache, workers: usize, secs: f64) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let mut conns = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
            cache.instrument_async(&mut conn).await.expect("instrument");
            filter_async_cached(cache, &mut conn, 1).await;
            conns.push(conn);
        }
        let mut tasks = Vec::with_capacity(TASKS);
        for (t, mut conn) in conns.into_iter().enumerate() {
            let (stop, total, cache) = (stop.clone(), total.clone(), cache.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                let mut i = t * 17;
                while !stop.load(Ordering::Relaxed) {
                    black_box(filter_async_cached(&cache, &mut conn, hot_user(i)).await);
                    i += 1;
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            }));
        }
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("task");
        }
        total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (warmup, remote, local, inner_local, miss_samples, thr_secs) = if quick {
        (10, 300, 100, 50, 200, 0.5)
    } else {
        (50, 1500, 400, 100, 1000, 2.0)
    };
    let url = required_env("DATABASE_URL");
    let servers: Vec<String> = required_env("MEMCACHED_SERVERS")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let started = Instant::now();
    eprintln!("[bench-async] creating schema and data ({PHOTOS} photos, {USERS} users)");
    let db = BenchDb::create(&url);
    let mut sync = db.conn();
    let mc_store = MemcachedStore::builder()
        .servers([servers[0].clone()])
        .prefix(format!("ba{}:", std::process::id()))
        .build()
        .expect("memcached store");
    mc_store.ping().expect("memcached does not answer");
    let mc = cache_on(mc_store);
    let mem = cache_on(InProcessStore::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = Report::default();
    println!("## Setup\n");
    println!(
        "- bench process CPU affinity: {:?}; {} mode; async figures on a current-thread \
         runtime; {warmup} warm-up rounds, {remote} samples per network op, \
         {local}x{inner_local} per in-process op\n",
        sys::affinity(),
        if quick { "quick" } else { "full" }
    );
    rt.block_on(async {
        let mut conn = AsyncPgConnection::establish(db.url())
            .await
            .expect("async connection");
        for cache in [&mem, &mc] {
            cache.instrument(&mut sync).expect("instrument");
            cache
                .instrument_async(&mut conn)
                .await
                .expect("instrument async");
            for i in 0..HOT {
                filter_cached(cache, &mut sync, hot_user(i));
                filter_async_cached(cache, &mut conn, hot_user(i)).await;
            }
        }
        // In process: async hit vs blocking hit (overhead in ns), and vs the async query.
        let before = mem.stats();
        let mut s = Setup {
            cache: &mem,
            sync: &mut sync,
            conn: &mut conn,
            inner: inner_local,
        };
        let m = interleave(&mut s, warmup, local, &[Op::SyncHit, Op::AsyncHit]).await;
        let d = mem.stats() - before;
        assert_eq!(
            d.misses, 0,
            "in-process hit figures must be all hits: {d:?}"
        );
        report.timed(
            "A1",
            "async in-process hit (10 rows)",
            m[1],
            "blocking in-process hit",
            m[0],
            Target::None,
        );
        report.note(format!(
            "A1: async in-process hit overhead = {:.0} ns per read (target <= 300 ns)",
            m[1] - m[0]
        ));
        // memcached: async hit vs blocking hit; async hit vs the async query.
        let before = mc.stats();
        let mut s = Setup {
            cache: &mc,
            sync: &mut sync,
            conn: &mut conn,
            inner: 1,
        };
        let m = interleave(
            &mut s,
            warmup,
            remote,
            &[Op::SyncHit, Op::AsyncHit, Op::AsyncQuery, Op::SyncQuery],
        )
        .await;
        let d = mc.stats() - before;
        assert_eq!(d.misses, 0, "memcached hit figures must be all hits: {d:?}");
        report.timed(
            "A2",
            "async memcached hit (10 rows)",
            m[1],
            "blocking memcached hit",
            m[0],
            Target::AtMost(1.10),
        );
        report.timed(
            "A3",
            "async memcached hit (10 rows)",
            m[1],
            "async query (diesel-async, uncached)",
            m[2],
            Target::None,
        );
        report.timed(
            "A3b",
            "async query (diesel-async, uncached)",
            m[2],
            "blocking query (diesel)",
            m[3],
            Target::None,
        );
        let (miss, query) = misses(&mc, &mut conn, miss_samples).await;
        report.timed(
            "A4",
            "async memcached miss (10 rows)",
            miss,
            "async query (diesel-async, uncached)",
            query,
            Target::None,
        );
        let _ = Op::AsyncMiss;
    });
    // Throughput: 64 tasks, every CPU.
    let all: Vec<usize> = (0..sys::online_cpus()).collect();
    sys::set_affinity(&all);
    for (name, cache) in [("in-process", &mem), ("memcached", &mc)] {
        let mut runs: Vec<f64> = (0..if quick { 1 } else { 3 })
            .map(|_| throughput(db.url(), cache, 2, thr_secs))
            .collect();
        report.plain(
            "A5",
            &format!("{name} hits/s, {TASKS} tasks, 2 workers, CPUs {all:?}"),
            format!("{:.0}", median(&mut runs)),
            "",
            String::new(),
        );
    }
    println!("## Results\n");
    report.print();
    println!(
        "\nTotal bench time: {:.0}s (including setup)",
        started.elapsed().as_secs_f64()
    );
}
