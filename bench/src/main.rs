//! cachebot benchmarks (issue 5): latency ratios against the physical baselines of
//! `shared/perf-baseline.md`, throughput and memory. Run through `scripts/bench.sh`, which
//! provides the services and pins them and this process to one CPU.
//!
//! Environment: `DATABASE_URL`, `MEMCACHED_SERVERS` (required); `BENCH_QUICK=1` for a short
//! smoke run; `BENCH_PROFILE=<op>` (with `BENCH_PROFILE_ITERS`) runs one operation in a loop
//! for `valgrind --tool=callgrind --toggle-collect='cachebot_bench::measured*'` instead of the
//! benchmarks (build with `CARGO_PROFILE_RELEASE_DEBUG=line-tables-only` for line numbers).

mod harness;
mod model;
mod sys;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cachebot::codec::{Bincode, Codec};
use cachebot::store::{InProcessStore, Key, MemcachedStore, Store};
use cachebot::{Cache, Dependency, Stats};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use memcache::exp::{Get, MetaClient, Set};

use harness::{interleave, time1, time_n, Op, Report, Target};
use model::*;

#[global_allocator]
static GLOBAL: sys::CountingAlloc = sys::CountingAlloc;

/// Users whose entries are kept warm for the hit figures.
const HOT: usize = 64;

/// "Flat" for figure 7: the larger store may cost at most this much more.
const FLAT: f64 = 1.25;

struct Config {
    quick: bool,
    warmup: usize,
    /// Samples of single-call (network) operations.
    remote: usize,
    /// Samples of in-process operations, each the mean of `inner` calls.
    local: usize,
    inner: usize,
    /// Samples of the miss figures.
    misses: usize,
    /// Samples of the update figures (each commits with fsync when the server does).
    writes: usize,
    /// Entries in the large in-process store of figure 7.
    big_fill: usize,
    /// Cached queries on the table for the invalidation half of figure 7.
    inval_fill: usize,
    /// Seconds per throughput run.
    thr_secs: f64,
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Config {
                quick,
                warmup: 10,
                remote: 300,
                local: 100,
                inner: 50,
                misses: 300,
                writes: 60,
                big_fill: 100_000,
                inval_fill: 10_000,
                thr_secs: 0.5,
            }
        } else {
            Config {
                quick,
                warmup: 50,
                remote: 1500,
                local: 400,
                inner: 100,
                misses: 1000,
                writes: 300,
                big_fill: 1_000_000,
                inval_fill: 100_000,
                thr_secs: 1.0,
            }
        }
    }
}

fn hot_user(i: usize) -> i32 {
    (i % HOT) as i32 + 1
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => {
            eprintln!("{name} is not set: run through scripts/bench.sh (or scripts/services.sh)");
            std::process::exit(2);
        }
    }
}

fn memcached_store(servers: &[String], tag: &str) -> MemcachedStore {
    let store = MemcachedStore::builder()
        .servers(servers.iter().cloned())
        .prefix(format!("b{}{tag}:", std::process::id()))
        .build()
        .expect("memcached store");
    store.ping().expect("memcached does not answer");
    store
}

/// Entries stored inline, so that a figure's warm-up leaves them in the store (write-behind,
/// the default on memcached, has its own figure).
fn cache_on(store: impl Store) -> Cache {
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .expect("cache")
}

/// The 10-row filter's entry as a store holds it (user 1): in process, results are kept
/// decoded in the local tier, so the bytes come from a cache without one.
fn entry_bytes(conn: &mut PgConnection) -> Vec<u8> {
    let store = InProcessStore::new();
    let cache = Cache::builder()
        .store(store.clone())
        .local_tier(0)
        .write_behind(false)
        .build()
        .expect("cache");
    filter_cached(&cache, conn, 1);
    let entry = filter_explain(&cache, conn, 1).entry.expect("cacheable");
    store
        .fetch(entry, &[])
        .expect("fetch")
        .entry
        .expect("entry stored")
}

/// Tell `cache` its database (a read through it): explicit invalidation
/// needs it, and the figures should not pay for learning it.
fn bind(cache: &Cache, conn: &mut PgConnection) {
    filter_cached(cache, conn, 1);
}

/// Entries stored from the write-behind thread.
fn cache_behind(store: impl Store) -> Cache {
    Cache::builder()
        .store(store)
        .write_behind(true)
        .build()
        .expect("cache")
}

/// The memcached keys one cached read of the 10-row filter fetches, in the crate's order:
/// the entry, then its dependencies' generations.
fn raw_keys(
    cache: &Cache,
    conn: &mut PgConnection,
    store: &MemcachedStore,
    user: i32,
) -> Vec<String> {
    raw_keys_of(store, &filter_explain(cache, conn, user))
}

/// The memcached keys a cached read of `explain`'s query fetches.
fn raw_keys_of(store: &MemcachedStore, explain: &cachebot::Explain) -> Vec<String> {
    let mut keys = vec![store.render_key(explain.entry.expect("cacheable"))];
    // The crate snapshots generations in key order.
    keys.extend(explain.generations.iter().map(|k| store.render_key(*k)));
    keys
}

/// The crate's generation encoding in memcached: ASCII decimal, maybe space padded.
fn parse_generation(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim_end().parse().ok()
}

/// The crate's entry layout: magic (2) | n (u16 LE) | n generations (u64 LE) | checksum (8) |
/// payload. The payload, if the stored snapshot equals `current` (checksum not verified).
fn open_entry<'a>(bytes: &'a [u8], current: &[u64]) -> Option<&'a [u8]> {
    if bytes.get(..2)? != [0xCB, 0x01] {
        return None;
    }
    let n = u16::from_le_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize;
    if n != current.len() {
        return None;
    }
    let gens = bytes.get(4..4 + 8 * n)?;
    let fresh = gens
        .chunks_exact(8)
        .zip(current)
        .all(|(g, c)| g == c.to_le_bytes());
    fresh.then(|| bytes.get(4 + 8 * n + 8..)).flatten()
}

fn decode_rows(payload: &[u8]) -> Vec<Photo> {
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .expect("bincode decode")
        .0
}

/// The floor of a memcached hit: one pipelined meta-protocol get of exactly the keys the crate
/// fetches (pre-rendered), the generation check and the bincode decode.
fn raw_hit(client: &MetaClient, keys: &[String]) -> Vec<Photo> {
    let results = client.run_many(keys.iter().map(Get::new)).expect("raw get");
    let mut results = results.into_iter().map(|r| r.expect("raw get result"));
    let entry = results.next().and_then(|r| r.value).expect("entry present");
    let gens: Vec<u64> = results
        .map(|r| {
            r.value
                .as_deref()
                .and_then(parse_generation)
                .expect("generation present")
        })
        .collect();
    decode_rows(open_entry(&entry, &gens).expect("entry fresh"))
}

/// Allocations per call of `f`, on this thread.
fn allocs_per<T>(n: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let before = sys::allocations();
    for i in 0..n {
        black_box(f(i));
    }
    (sys::allocations() - before) as f64 / n as f64
}

/// One stale miss of the 10-row filter, timed: `invalidate` makes the entry stale first and,
/// with write-behind, the background write is waited for after, both untimed (on one pinned
/// CPU the write would otherwise land in whatever runs next).
fn timed_stale_miss(
    cache: &Cache,
    conn: &mut PgConnection,
    user: i32,
    invalidate: impl Fn(&Cache, i32),
) -> f64 {
    invalidate(cache, user);
    let t = time1(|| filter_cached(cache, conn, user));
    cache.flush_write_behind();
    t
}

/// Make a user's cached filter stale, the usual way (the query is keyed on the user).
fn invalidate_user(cache: &Cache, user: i32) {
    cache
        .invalidate_value(photos::user_id, user)
        .expect("invalidate");
}

/// The medians of a `BENCH_PROFILE=*-split` run, one line each.
fn print_split(names: &[&str], medians: Vec<f64>) {
    for (name, t) in names.iter().zip(medians) {
        eprintln!("[bench] {name}: {} us", harness::us(t));
    }
}

/// Run `f` where callgrind's `--toggle-collect='cachebot_bench::measured*'` counts it.
#[inline(never)]
fn measured<T>(f: impl FnOnce() -> T) -> T {
    black_box(f())
}

fn check_stats(report: &mut Report, what: &str, delta: Stats, hits: bool) {
    let bad = if hits {
        delta.misses + delta.fallbacks + delta.bypasses + delta.decode_errors
    } else {
        delta.hits + delta.fallbacks + delta.bypasses + delta.decode_errors
    };
    if bad != 0 {
        report.note(format!(
            "WARNING {what}: expected only {}, counters moved: {delta:?}",
            if hits { "hits" } else { "misses" }
        ));
    }
}

fn main() {
    let cfg = Config::from_env();
    let url = required_env("DATABASE_URL");
    let servers: Vec<String> = required_env("MEMCACHED_SERVERS")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();

    let started = Instant::now();
    eprintln!("[bench] creating schema and data ({PHOTOS} photos, {USERS} users)");
    let db = BenchDb::create(&url);
    let mut conn = db.conn();
    assert_eq!(count_db(&mut conn), i64::from(PHOTOS)); // and warms the buffer cache
    eprintln!(
        "[bench] data ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    if let Ok(op) = std::env::var("BENCH_PROFILE") {
        profile(&op, &db, &mut conn, &servers);
        return;
    }

    println!("## Setup\n");
    println!(
        "- PostgreSQL {} (fsync={}, synchronous_commit={}, full_page_writes={}), schema `{}`",
        setting(&mut conn, "server_version"),
        setting(&mut conn, "fsync"),
        setting(&mut conn, "synchronous_commit"),
        setting(&mut conn, "full_page_writes"),
        db.schema
    );
    println!(
        "- memcached: figures use one server ({}); MEMCACHED_SERVERS={}",
        servers[0],
        servers.join(",")
    );
    println!(
        "- bench process CPU affinity: {:?}; {} mode",
        sys::affinity(),
        if cfg.quick { "quick" } else { "full" }
    );
    println!(
        "- samples: {} per network op, {}x{} per in-process op, {} per miss, {} per update \
         (after {} warm-up rounds)\n",
        cfg.remote, cfg.local, cfg.inner, cfg.misses, cfg.writes, cfg.warmup
    );

    let mut report = Report::default();
    latency(&cfg, &db, &mut conn, &servers, &mut report);
    scaling(&cfg, &db, &mut conn, &servers, &mut report);
    throughput(&cfg, &db, &mut conn, &mut report);

    println!("## Results\n");
    report.print();
    println!(
        "\nTotal bench time: {:.0}s (including setup)",
        started.elapsed().as_secs_f64()
    );
}

/// Figures 1-6.
fn latency(
    cfg: &Config,
    db: &BenchDb,
    conn: &mut PgConnection,
    servers: &[String],
    report: &mut Report,
) {
    let one = &servers[..1];
    let mc_store = memcached_store(one, "a");
    let mc = cache_on(mc_store.clone());
    bind(&mc, conn);
    let mem_store = InProcessStore::new();
    let mem = cache_on(mem_store.clone());
    bind(&mem, conn);
    let client = MetaClient::builder()
        .io_timeout(Some(MemcachedStore::DEFAULT_IO_TIMEOUT))
        .connect_timeout(Some(MemcachedStore::DEFAULT_CONNECT_TIMEOUT))
        .connect(one[0].clone())
        .expect("meta client");

    // What the 10-row filter depends on.
    let explain = filter_explain(&mem, conn, 1);
    report.note(format!(
        "10-row filter: `{}`; entry + {} generation keys fetched per read: {:?}",
        explain.sql,
        explain.dependencies.len(),
        explain.dependencies
    ));
    let keyed_on_user = explain
        .dependencies
        .iter()
        .any(|d| matches!(d, Dependency::Value { column, .. } if column == "user_id"));
    let invalidate = |cache: &Cache, user: i32| {
        if keyed_on_user {
            cache.invalidate_value(photos::user_id, user)
        } else {
            cache.invalidate_value(photos::status, 2)
        }
        .expect("invalidate")
    };

    // Warm every hot entry in both stores.
    for i in 0..HOT {
        let u = hot_user(i);
        let rows = filter_cached(&mc, conn, u);
        assert_eq!(rows.len(), 10, "the filter returns 10 rows");
        filter_cached(&mem, conn, u);
        find_cached(&mc, conn, u);
        find_cached(&mem, conn, u);
        join_cached(&mc, conn, u);
        join_cached(&mem, conn, u);
    }
    count_cached(&mc, conn);
    count_cached(&mem, conn);
    let raw: Vec<Vec<String>> = (0..HOT)
        .map(|i| raw_keys(&mc, conn, &mc_store, hot_user(i)))
        .collect();
    assert_eq!(
        raw_hit(&client, &raw[0]),
        filter_db(conn, 1),
        "the raw get decodes what the query returns"
    );
    let entry_bytes = entry_bytes(conn);
    report.note(format!(
        "10-row filter entry: {} bytes in the store (header {} + bincode payload {})",
        entry_bytes.len(),
        4 + 8 * explain.generations.len() + 8,
        entry_bytes.len() - (4 + 8 * explain.generations.len() + 8)
    ));

    let (mc0, mem0) = (mc.stats(), mem.stats());
    let inner = cfg.inner;

    // Figures 1, 2 (filter) and 3: one interleaved group.
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| filter_cached(&mc, c, hot_user(r)))),
            Box::new(|_, r| time1(|| raw_hit(&client, &raw[r % HOT]))),
            Box::new(|c, r| time1(|| filter_db(c, hot_user(r)))),
            Box::new(|c, r| time_n(inner, |i| filter_cached(&mem, c, hot_user(r * inner + i)))),
        ];
        interleave(conn, cfg.warmup, cfg.remote, &mut ops)
    };
    let (mc_filter, raw_filter, db_filter, mem_filter) = (m[0], m[1], m[2], m[3]);
    report.timed(
        "1",
        "memcached hit, 10-row filter",
        mc_filter,
        "raw meta get of the same keys + decode",
        raw_filter,
        Target::AtMost(1.15),
    );
    report.timed(
        "2",
        "memcached hit, 10-row filter",
        mc_filter,
        "uncached Diesel query",
        db_filter,
        Target::AtMost(0.45),
    );
    report.timed(
        "2",
        "  floor: raw meta get of its keys + decode",
        raw_filter,
        "uncached Diesel query",
        db_filter,
        Target::None,
    );

    // Figure 1s: what a secret costs a memcached hit: with the local tier (the default) the
    // decoded rows are served after the generations are checked, as without a secret; without
    // it, every hit checks the entry's MAC (BLAKE3 over ~900 bytes) before decoding.
    {
        let secret = b"bench secret, 32 bytes or longer";
        let build = |tag: &str, local: bool, sealed: bool| {
            let b = Cache::builder()
                .store(memcached_store(one, tag))
                .write_behind(false);
            let b = if local { b } else { b.local_tier(0) };
            let b = if sealed { b.secret(secret) } else { b };
            b.build().expect("cache")
        };
        let (plain, sealed) = (build("p", true, false), build("s", true, true));
        let (plain_decode, sealed_decode) = (build("pd", false, false), build("sd", false, true));
        // An identical second cache: runs of this group on the loaded VM showed one position
        // of the interleave 1.2x-2x slower whatever cache sat there.
        let plain2 = build("p2", true, false);
        let caches = [&plain, &plain2, &sealed, &plain_decode, &sealed_decode];
        for c in caches {
            for i in 0..HOT {
                // A miss, then a first hit (which fills the local tier).
                filter_cached(c, conn, hot_user(i));
                filter_cached(c, conn, hot_user(i));
            }
        }
        let before: Vec<_> = caches.iter().map(|c| c.stats()).collect();
        let m = {
            let mut ops: Vec<Op> = caches
                .iter()
                .map(|&c| -> Op {
                    Box::new(move |conn, r| time1(|| filter_cached(c, conn, hot_user(r))))
                })
                .collect();
            interleave(conn, cfg.warmup, cfg.remote, &mut ops)
        };
        for (c, b) in caches.iter().zip(before) {
            let d = c.stats() - b;
            assert_eq!(
                (d.misses, d.forged),
                (0, 0),
                "figure 1s: every read a hit: {d:?}"
            );
        }
        report.timed(
            "1s",
            "memcached hit with a secret, 10-row filter",
            m[2],
            "the same without a secret",
            m[0],
            Target::AtMost(1.05),
        );
        report.timed(
            "1s",
            "  control: a second cache without a secret (A/A, the noise of this group)",
            m[1],
            "the same without a secret",
            m[0],
            Target::None,
        );
        report.timed(
            "1s",
            "  without the local tier (MAC checked, then decoded)",
            m[4],
            "the same without a secret",
            m[3],
            Target::AtMost(1.05),
        );
    }

    // Figure 2 (find).
    let raw_find: Vec<Vec<String>> = (0..HOT)
        .map(|i| raw_keys_of(&mc_store, &find_explain(&mc, conn, hot_user(i))))
        .collect();
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| find_cached(&mc, c, hot_user(r)))),
            Box::new(|c, r| time1(|| find_db(c, hot_user(r)))),
            Box::new(|c, r| time_n(inner, |i| find_cached(&mem, c, hot_user(r * inner + i)))),
            Box::new(|_, r| time1(|| raw_hit(&client, &raw_find[r % HOT]))),
        ];
        interleave(conn, cfg.warmup, cfg.remote, &mut ops)
    };
    let (mc_find, db_find, mem_find, raw_find) = (m[0], m[1], m[2], m[3]);
    report.timed(
        "2",
        "memcached hit, find by pk",
        mc_find,
        "uncached Diesel query",
        db_find,
        Target::AtMost(0.65),
    );
    report.timed(
        "2",
        "  floor: raw meta get of its keys + decode",
        raw_find,
        "uncached Diesel query",
        db_find,
        Target::None,
    );
    report.timed(
        "3",
        "in-process hit, 10-row filter",
        mem_filter,
        "uncached Diesel query",
        db_filter,
        Target::AtMost(0.03),
    );
    report.timed(
        "3",
        "in-process hit, find by pk",
        mem_find,
        "uncached Diesel query",
        db_find,
        Target::None,
    );

    // Join and count, for information.
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| join_cached(&mc, c, hot_user(r)))),
            Box::new(|c, r| time1(|| join_db(c, hot_user(r)))),
            Box::new(|c, r| time_n(inner, |i| join_cached(&mem, c, hot_user(r * inner + i)))),
            Box::new(|c, _| time1(|| count_cached(&mc, c))),
            Box::new(|c, _| time1(|| count_db(c))),
            Box::new(|c, _| time_n(inner, |_| count_cached(&mem, c))),
        ];
        interleave(conn, cfg.warmup / 5, cfg.remote / 5, &mut ops)
    };
    report.timed(
        "2",
        "memcached hit, join photos-users",
        m[0],
        "uncached Diesel query",
        m[1],
        Target::None,
    );
    report.timed(
        "3",
        "in-process hit, join photos-users",
        m[2],
        "uncached Diesel query",
        m[1],
        Target::None,
    );
    report.timed(
        "2",
        "memcached hit, count()",
        m[3],
        "uncached Diesel query",
        m[4],
        Target::None,
    );
    report.timed(
        "3",
        "in-process hit, count()",
        m[5],
        "uncached Diesel query",
        m[4],
        Target::None,
    );

    // Figure 1 with every server (the client visits them one after the other).
    if servers.len() > 1 {
        let mc2_store = memcached_store(servers, "b");
        let mc2 = cache_on(mc2_store.clone());
        bind(&mc2, conn);
        let client2 = MetaClient::builder()
            .io_timeout(Some(MemcachedStore::DEFAULT_IO_TIMEOUT))
            .connect_multiple(servers.to_vec())
            .expect("meta client");
        for i in 0..HOT {
            filter_cached(&mc2, conn, hot_user(i));
        }
        let raw2: Vec<Vec<String>> = (0..HOT)
            .map(|i| raw_keys(&mc2, conn, &mc2_store, hot_user(i)))
            .collect();
        let before = mc2.stats();
        let m = {
            let mut ops: Vec<Op> = vec![
                Box::new(|c, r| time1(|| filter_cached(&mc2, c, hot_user(r)))),
                Box::new(|_, r| time1(|| raw_hit(&client2, &raw2[r % HOT]))),
                Box::new(|c, r| time1(|| filter_db(c, hot_user(r)))),
            ];
            interleave(conn, cfg.warmup, cfg.remote / 3, &mut ops)
        };
        check_stats(report, "2-server hits", mc2.stats() - before, true);
        let label = format!("memcached hit, 10-row filter, {} servers", servers.len());
        report.timed(
            "1",
            &label,
            m[0],
            "raw meta get of the same keys + decode",
            m[1],
            Target::None,
        );
        report.timed(
            "2",
            &label,
            m[0],
            "uncached Diesel query",
            m[2],
            Target::None,
        );
    }

    // Figure 4 and the in-process hit's parts.
    let moka: moka::sync::Cache<i32, Arc<Vec<Photo>>> = moka::sync::Cache::new(1024);
    for i in 0..HOT {
        let u = hot_user(i);
        moka.insert(u, Arc::new(filter_db(conn, u)));
    }
    let plans: Vec<(Key, Vec<Key>)> = (0..HOT)
        .map(|i| {
            let e = filter_explain(&mem, conn, hot_user(i));
            (e.entry.expect("cacheable"), e.generations)
        })
        .collect();
    let header = 4 + 8 * explain.generations.len() + 8;
    let payload = entry_bytes[header..].to_vec();
    let one_row =
        bincode::serde::encode_to_vec(vec![find_db(conn, 1)], bincode::config::standard())
            .expect("encode");
    let rows10 = decode_rows(&payload);
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time_n(inner, |i| filter_cached(&mem, c, hot_user(r * inner + i)))),
            Box::new(|_, r| {
                time_n(inner, |i| {
                    let rows = moka.get(&hot_user(r * inner + i)).expect("moka hit");
                    Vec::clone(&rows)
                })
            }),
            Box::new(|c, r| {
                time_n(inner, |i| {
                    filter_explain(&mem, c, hot_user(r * inner + i))
                        .generations
                        .len()
                })
            }),
            Box::new(|_, r| {
                time_n(inner, |i| {
                    let (entry, gens) = &plans[(r * inner + i) % HOT];
                    mem_store.fetch(*entry, gens).expect("fetch")
                })
            }),
            Box::new(|_, _| time_n(inner, |_| xxhash_rust::xxh3::xxh3_64(&payload))),
            Box::new(|_, _| time_n(inner, |_| decode_rows(&payload))),
            Box::new(|_, _| {
                time_n(inner, |_| {
                    bincode::serde::decode_from_slice::<Vec<Photo>, _>(
                        &one_row,
                        bincode::config::standard(),
                    )
                    .expect("decode")
                })
            }),
            Box::new(|_, _| time_n(inner, |_| rows10.clone())),
            // What a secret adds to a hit that decodes: the MAC over the entry (about what
            // `entry::open` hashes: the key, the header and the payload) and the clock read.
            Box::new(|_, _| {
                time_n(inner, |_| {
                    let now = std::time::SystemTime::now();
                    (blake3::keyed_hash(&[7; 32], &entry_bytes), now)
                })
            }),
        ];
        interleave(conn, cfg.warmup, cfg.local, &mut ops)
    };
    report.timed(
        "4",
        "in-process hit, 10-row filter",
        m[0],
        "moka get of decoded Arc<Vec<Photo>> + Vec clone",
        m[1],
        Target::AtMost(4.0),
    );
    let parts = [
        (
            "  part: plan computed in full (explain: render, binds, deps, keys; a hit reuses the keys)",
            m[2],
        ),
        (
            "  part: InProcessStore::fetch (its generations; the rows are in the local tier)",
            m[3],
        ),
        ("  part: xxh3-64 checksum of the payload", m[4]),
        ("  part: bincode decode, 10 rows", m[5]),
        ("  part: bincode decode, 1 row", m[6]),
        ("  part: Vec<Photo> clone, 10 rows", m[7]),
        (
            "  part: entry MAC with a secret (BLAKE3 keyed, whole entry) + clock read",
            m[8],
        ),
    ];
    for (what, v) in parts {
        report.timed(
            "4",
            what,
            v,
            "in-process hit, 10-row filter",
            m[0],
            Target::None,
        );
    }
    check_stats(report, "memcached hit figures", mc.stats() - mc0, true);
    check_stats(report, "in-process hit figures", mem.stats() - mem0, true);

    // Allocations per operation (counted on this thread, outside the timed runs).
    let n = 200;
    let allocs = [
        (
            "in-process hit, 10-row filter",
            allocs_per(n, |i| filter_cached(&mem, conn, hot_user(i))),
        ),
        (
            "in-process hit, find by pk",
            allocs_per(n, |i| find_cached(&mem, conn, hot_user(i))),
        ),
        (
            "memcached hit, 10-row filter",
            allocs_per(n, |i| filter_cached(&mc, conn, hot_user(i))),
        ),
        (
            "raw meta get + decode, 10-row filter",
            allocs_per(n, |i| raw_hit(&client, &raw[i % HOT])),
        ),
        (
            "bincode decode, 10 rows",
            allocs_per(n, |_| decode_rows(&payload)),
        ),
        (
            "plan (explain) of the 10-row filter",
            allocs_per(n, |i| filter_explain(&mem, conn, hot_user(i))),
        ),
        (
            "uncached Diesel 10-row filter",
            allocs_per(n, |i| filter_db(conn, hot_user(i))),
        ),
    ];
    for (what, a) in allocs {
        report.plain(
            "alloc",
            what,
            format!("{a:.1} allocs/op"),
            "",
            String::new(),
        );
    }

    // Figure 5: misses. A stale entry (its generation bumped between iterations, untimed):
    // fetch + query + put. A cold miss (a bind value never seen: its generation is missing):
    // fetch + ensure_generations + query + put.
    let miss_user = |r: usize| 100 + (r % HOT) as i32;
    for r in 0..HOT {
        filter_cached(&mc, conn, miss_user(r));
        filter_cached(&mem, conn, miss_user(r));
    }
    // Each cache against its own interleaved baseline (same users, same rounds).
    let (mc0, mem0) = (mc.stats(), mem.stats());
    // With write-behind, the background write is waited for after each timed miss, untimed:
    // on one pinned CPU it would otherwise land in whatever runs next (the baseline query).
    let stale = |cache: &Cache, conn: &mut PgConnection| {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| timed_stale_miss(cache, c, miss_user(r), invalidate)),
            Box::new(|c, r| time1(|| filter_db(c, miss_user(r)))),
        ];
        interleave(conn, cfg.warmup, cfg.misses, &mut ops)
    };
    // The memcached miss beside its floor on this machine: the lookup round trip (a raw
    // meta get of the same keys, which the miss cannot avoid) plus the query.
    let miss_keys: Vec<Vec<String>> = (0..HOT)
        .map(|r| raw_keys(&mc, conn, &mc_store, miss_user(r)))
        .collect();
    // The same keys as store keys, for the crate's own lookup (`Store::fetch`).
    let miss_store_keys: Vec<(cachebot::store::Key, Vec<cachebot::store::Key>)> = (0..HOT)
        .map(|r| {
            let explain = filter_explain(&mc, conn, miss_user(r));
            let gens = explain.generations.clone();
            (explain.entry.expect("cacheable"), gens)
        })
        .collect();
    // Write-behind (the default for memcached): the entry is stored by a background thread,
    // the read does not wait for the store's answer. All memcached misses and their floors
    // in one interleave: on these VMs the speed of the machine drifts between phases.
    let mc_wb = cache_behind(mc_store.clone());
    bind(&mc_wb, conn);
    for r in 0..HOT {
        filter_cached(&mc_wb, conn, miss_user(r));
    }
    mc_wb.flush_write_behind();
    let wb0 = mc_wb.stats();
    let m_mc = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| timed_stale_miss(&mc, c, miss_user(r), invalidate)),
            Box::new(|c, r| time1(|| filter_db(c, miss_user(r)))),
            Box::new(|_, r| {
                time1(|| {
                    client
                        .run_many(miss_keys[r % HOT].iter().map(Get::new))
                        .expect("raw get")
                })
            }),
            Box::new(|_, r| {
                let (entry, gens) = &miss_store_keys[r % HOT];
                time1(|| mc_store.fetch(*entry, gens).expect("fetch"))
            }),
            Box::new(|c, r| timed_stale_miss(&mc_wb, c, miss_user(r), invalidate)),
        ];
        interleave(conn, cfg.warmup, cfg.misses, &mut ops)
    };
    let m_mem = stale(&mem, conn);
    // In process too, to compare handing the entry to the thread with storing it inline.
    let mem_wb = cache_behind(InProcessStore::new());
    bind(&mem_wb, conn);
    for r in 0..HOT {
        filter_cached(&mem_wb, conn, miss_user(r));
    }
    mem_wb.flush_write_behind();
    let mem_wb0 = mem_wb.stats();
    let m_mem_wb = stale(&mem_wb, conn);
    check_stats(report, "memcached misses", mc.stats() - mc0, false);
    check_stats(report, "in-process misses", mem.stats() - mem0, false);
    check_stats(
        report,
        "memcached misses, write-behind",
        mc_wb.stats() - wb0,
        false,
    );
    check_stats(
        report,
        "in-process misses, write-behind",
        mem_wb.stats() - mem_wb0,
        false,
    );
    report.timed(
        "5",
        "memcached miss (stale entry), write-behind on (default)",
        m_mc[4],
        "uncached Diesel query",
        m_mc[1],
        Target::AtMost(1.45),
    );
    report.timed(
        "5",
        // Not the target's configuration: the target allows no wait for the store write,
        // and without write-behind the read waits for it.
        "memcached miss (stale entry), write-behind off (waits for the store write)",
        m_mc[0],
        "uncached Diesel query",
        m_mc[1],
        Target::None,
    );
    report.timed(
        "5",
        "  floor: lookup round trip (the crate's own Store::fetch of its keys) + query",
        m_mc[3] + m_mc[1],
        "uncached Diesel query",
        m_mc[1],
        Target::None,
    );
    report.timed(
        "5",
        "  floor: lookup round trip (raw meta get of its keys, exp client) + query",
        m_mc[2] + m_mc[1],
        "uncached Diesel query",
        m_mc[1],
        Target::None,
    );
    let mem_miss = m_mem[0];
    report.timed(
        "5",
        "in-process miss (stale entry), 10-row filter",
        m_mem[0],
        "uncached Diesel query",
        m_mem[1],
        Target::AtMost(1.10),
    );
    report.timed(
        "5",
        "in-process miss, write-behind on (not the default)",
        m_mem_wb[0],
        "uncached Diesel query",
        m_mem_wb[1],
        Target::None,
    );
    // Cold misses: users never read before (disjoint ranges per store).
    let cold = (cfg.warmup + cfg.misses).min(4000);
    let (mc0, mem0) = (mc.stats(), mem.stats());
    let cold_miss = |cache: &Cache, first: i32, conn: &mut PgConnection| {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| filter_cached(cache, c, first + r as i32))),
            Box::new(|c, r| time1(|| filter_db(c, first + r as i32))),
        ];
        interleave(conn, cfg.warmup, cold - cfg.warmup, &mut ops)
    };
    let m_mc = cold_miss(&mc, 1000, conn);
    let m_mem = cold_miss(&mem, 5000, conn);
    check_stats(report, "memcached cold misses", mc.stats() - mc0, false);
    check_stats(report, "in-process cold misses", mem.stats() - mem0, false);
    report.timed(
        "5",
        "memcached cold miss (generation missing), 10-row filter",
        m_mc[0],
        "uncached Diesel query",
        m_mc[1],
        Target::None,
    );
    report.timed(
        "5",
        "in-process cold miss (generation missing), 10-row filter",
        m_mem[0],
        "uncached Diesel query",
        m_mem[1],
        Target::None,
    );
    // The in-process miss's own work besides the query, in isolation.
    let scratch = InProcessStore::new();
    let scratch_cache = cache_on(InProcessStore::new());
    bind(&scratch_cache, conn);
    let snapshot = [1u64, 2, 3];
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|_, _| time_n(inner, |_| Bincode.encode(&rows10).expect("encode"))),
            Box::new(|_, _| {
                time_n(inner, |i| {
                    scratch
                        .put_entry(
                            Key::entry((i % HOT) as u128),
                            &entry_bytes,
                            cachebot::DEFAULT_TTL,
                        )
                        .expect("put")
                })
            }),
            Box::new(|_, _| {
                time_n(inner, |i| {
                    let mut v = Vec::with_capacity(payload.len() + 36);
                    v.extend_from_slice(&[0xCB, 0x01, 3, 0]);
                    for g in snapshot {
                        v.extend_from_slice(&g.to_le_bytes());
                    }
                    v.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
                    v.extend_from_slice(&payload);
                    v[3] = (i & 1) as u8;
                    v
                })
            }),
            Box::new(|_, r| {
                time_n(inner, |i| {
                    invalidate(&scratch_cache, hot_user(r * inner + i))
                })
            }),
            Box::new(|_, _| {
                time_n(inner, |_| {
                    bincode::serde::encode_to_vec(&rows10, bincode::config::standard())
                        .expect("encode")
                })
            }),
        ];
        interleave(conn, cfg.warmup, cfg.local, &mut ops)
    };
    let parts = [
        (
            "  (remote misses, on the write-behind thread) encode, 10 rows, Bincode codec",
            m[0],
        ),
        (
            "  (for comparison) bincode::serde::encode_to_vec, same bytes",
            m[4],
        ),
        (
            "  (results too large for the local tier) InProcessStore::put_entry, 573 B",
            m[1],
        ),
        ("  (same) entry layout (header + checksum + copy)", m[2]),
        ("  (untimed above) invalidate_value, in-process", m[3]),
    ];
    for (what, v) in parts {
        report.timed(
            "5",
            what,
            v,
            "in-process miss (stale entry), 10-row filter",
            mem_miss,
            Target::None,
        );
    }
    let miss_allocs = {
        let mut total = 0;
        for r in 0..100 {
            invalidate(&mem, miss_user(r));
            let before = sys::allocations();
            black_box(filter_cached(&mem, conn, miss_user(r)));
            total += sys::allocations() - before;
        }
        total as f64 / 100.0
    };
    report.plain(
        "alloc",
        "in-process miss (stale), 10-row filter",
        format!("{miss_allocs:.1} allocs/op"),
        "",
        String::new(),
    );

    // Figure 6: exact update vs plain Diesel update, both autocommit. Beside them, the
    // memcached update's floor: the plain update plus the one round trip its bump needs
    // after the commit (a pipelined meta set of the same generation keys, with fresh values).
    let bump_keys = |conn: &mut PgConnection, id: i32| -> Vec<String> {
        let row = photo(conn, id);
        // The same number of keys as the update bumps (their names differ
        // by the schema: the floor needs their count and size, not their names).
        let mut keys = cachebot::model::RowKeys::as_written();
        cachebot::model::CacheModel::row_keys(&row, &mut keys);
        let mut keys = keys.keys().to_vec();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().map(|k| mc_store.render_key(k)).collect()
    };
    let bumps: Vec<Vec<String>> = (1..=1000).map(|id| bump_keys(conn, id)).collect();
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| update_db(c, 1 + (r % 1000) as i32, r as f64))),
            Box::new(|c, r| time1(|| update_cached(&mc, c, 1 + (r % 1000) as i32, r as f64))),
            Box::new(|c, r| time1(|| update_cached(&mem, c, 1 + (r % 1000) as i32, r as f64))),
            Box::new(|_, r| {
                time1(|| {
                    let fresh = fastrand::u64(1..).to_string();
                    client
                        .run_many(bumps[r % 1000].iter().map(|k| Set::new(k, &fresh)))
                        .expect("raw set")
                })
            }),
        ];
        interleave(conn, cfg.warmup / 5, cfg.writes, &mut ops)
    };
    report.timed(
        "6",
        "cachebot::write::update by pk, memcached",
        m[1],
        "diesel::update(..).set(..).execute",
        m[0],
        Target::AtMost(1.20),
    );
    report.timed(
        "6",
        &format!(
            "  floor: the plain update + one pipelined meta set of its {} generation keys",
            bumps[0].len()
        ),
        m[0] + m[3],
        "diesel::update(..).set(..).execute",
        m[0],
        Target::None,
    );
    report.timed(
        "6",
        "cachebot::write::update by pk, in-process",
        m[2],
        "diesel::update(..).set(..).execute",
        m[0],
        Target::AtMost(1.20),
    );
    // The same on a session with synchronous_commit=off: without the fsync wait, the write
    // path's extra round trips (BEGIN, SELECT .. FOR UPDATE, UPDATE, COMMIT, bump) show.
    let mut nosync = db.conn();
    nosync
        .batch_execute("SET synchronous_commit = off")
        .expect("set synchronous_commit");
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time1(|| update_db(c, 1 + (r % 1000) as i32, r as f64))),
            Box::new(|c, r| time1(|| update_cached(&mc, c, 1 + (r % 1000) as i32, r as f64))),
            Box::new(|c, r| time1(|| update_cached(&mem, c, 1 + (r % 1000) as i32, r as f64))),
        ];
        interleave(&mut nosync, cfg.warmup / 5, cfg.writes, &mut ops)
    };
    report.timed(
        "6",
        "same, memcached, session synchronous_commit=off",
        m[1],
        "same plain update, synchronous_commit=off",
        m[0],
        Target::None,
    );
    report.timed(
        "6",
        "same, in-process, session synchronous_commit=off",
        m[2],
        "same plain update, synchronous_commit=off",
        m[0],
        Target::None,
    );
}

/// Figure 7: hit cost against store size, invalidation cost against cached queries.
fn scaling(
    cfg: &Config,
    _db: &BenchDb,
    conn: &mut PgConnection,
    servers: &[String],
    report: &mut Report,
) {
    let inner = cfg.inner;
    let big_store = || {
        InProcessStore::builder()
            .max_bytes(8 << 30)
            .max_value_size(1 << 20)
            .build()
    };
    let small_store = big_store();
    let small = cache_on(small_store.clone());
    bind(&small, conn);
    let large_store = big_store();
    let large = cache_on(large_store.clone());
    bind(&large, conn);
    for i in 0..HOT {
        filter_cached(&small, conn, hot_user(i));
        filter_cached(&large, conn, hot_user(i));
    }
    // Filler: the real 10-row entry's bytes under random entry keys.
    let bytes = entry_bytes(conn);
    let ttl = Duration::from_secs(3600);
    let fill = |store: &InProcessStore, n: usize| {
        for _ in 0..n {
            store
                .put_entry(Key::entry(fastrand::u128(..)), &bytes, ttl)
                .expect("put");
        }
    };
    fill(&small_store, 1000 - HOT);
    sys::trim_heap();
    let rss0 = sys::rss_bytes();
    let t = Instant::now();
    fill(&large_store, cfg.big_fill - HOT);
    let fill_secs = t.elapsed().as_secs_f64();
    sys::trim_heap();
    let rss1 = sys::rss_bytes();
    let (count, weight) = (large_store.entry_count(), large_store.weighted_size());
    eprintln!(
        "[bench] filled {count} entries in {fill_secs:.1}s, RSS +{} MB",
        (rss1 - rss0) >> 20
    );

    let (s0, l0) = (small.stats(), large.stats());
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| time_n(inner, |i| filter_cached(&small, c, hot_user(r * inner + i)))),
            Box::new(|c, r| time_n(inner, |i| filter_cached(&large, c, hot_user(r * inner + i)))),
        ];
        interleave(conn, cfg.warmup, cfg.local, &mut ops)
    };
    check_stats(report, "1k-entry store hits", small.stats() - s0, true);
    check_stats(report, "large store hits", large.stats() - l0, true);
    report.timed(
        "7",
        &format!(
            "in-process hit, 10-row filter, {} entries",
            large_store.entry_count()
        ),
        m[1],
        "same, 1,000 entries",
        m[0],
        Target::AtMost(FLAT),
    );
    report.plain(
        "8",
        &format!(
            "memory per in-process entry ({count} entries of {} B)",
            bytes.len()
        ),
        format!(
            "{:.0} B (RSS delta / entries)",
            (rss1 - rss0) as f64 / count as f64
        ),
        "weighted_size / entry_count",
        format!("{:.0} B", weight as f64 / count as f64),
    );
    drop((small, large, small_store, large_store));
    sys::trim_heap();

    // In process, results are kept decoded in the local tier: its memory per cached
    // result (with the result's generation), for one-row finds by primary key.
    let ids: Vec<i32> = (1..=cfg.big_fill.min(PHOTOS as usize) as i32).collect();
    let finds = Cache::builder()
        .store(InProcessStore::new())
        .local_tier(1 << 30)
        .write_behind(false)
        .build()
        .expect("cache");
    let rss0 = sys::rss_bytes();
    cache_finds(&finds, conn, &ids);
    sys::trim_heap();
    let rss1 = sys::rss_bytes();
    let stored = finds.stats().stores;
    report.plain(
        "8",
        &format!("memory per in-process result kept decoded ({stored} finds by pk, 1 row)"),
        format!(
            "{:.0} B (RSS delta / results)",
            (rss1 - rss0) as f64 / stored.max(1) as f64
        ),
        "",
        String::new(),
    );
    drop(finds);
    sys::trim_heap();

    // Invalidation against the number of cached queries on the table.
    let few: Vec<i32> = (1..=10).collect();
    let many: Vec<i32> = (1..=cfg.inval_fill as i32).collect();
    let mem_few = cache_on(InProcessStore::new());
    bind(&mem_few, conn);
    let mem_many = cache_on(
        InProcessStore::builder()
            .max_bytes(1 << 30)
            .max_generations(4_000_000)
            .build(),
    );
    bind(&mem_many, conn);
    let mc_few = cache_on(memcached_store(&servers[..1], "f"));
    bind(&mc_few, conn);
    let mc_many = cache_on(memcached_store(&servers[..1], "m"));
    bind(&mc_many, conn);
    let t = Instant::now();
    cache_finds(&mem_few, conn, &few);
    cache_finds(&mem_many, conn, &many);
    cache_finds(&mc_few, conn, &few);
    cache_finds(&mc_many, conn, &many);
    eprintln!(
        "[bench] cached {} find queries per store in {:.1}s",
        many.len(),
        t.elapsed().as_secs_f64()
    );
    let inval = |c: &Cache, r: usize| {
        c.invalidate_value(photos::user_id, hot_user(r))
            .expect("invalidate")
    };
    let m = {
        let mut ops: Vec<Op> = vec![
            Box::new(|_, r| time_n(inner, |i| inval(&mem_few, r * inner + i))),
            Box::new(|_, r| time_n(inner, |i| inval(&mem_many, r * inner + i))),
            Box::new(|_, r| time1(|| inval(&mc_few, r))),
            Box::new(|_, r| time1(|| inval(&mc_many, r))),
        ];
        interleave(conn, cfg.warmup, cfg.local, &mut ops)
    };
    report.timed(
        "7",
        &format!(
            "invalidate_value, in-process, {} cached queries",
            many.len()
        ),
        m[1],
        "same, 10 cached queries",
        m[0],
        Target::AtMost(FLAT),
    );
    report.timed(
        "7",
        &format!("invalidate_value, memcached, {} cached queries", many.len()),
        m[3],
        "same, 10 cached queries",
        m[2],
        Target::AtMost(FLAT),
    );
}

/// Figure 8: in-process hits per second, 1 and 2 threads, against the machine's own scaling
/// (the same threads decoding the 10-row payload, sharing nothing) measured in alternation.
fn throughput(cfg: &Config, db: &BenchDb, conn: &mut PgConnection, report: &mut Report) {
    let cache = cache_on(InProcessStore::new());
    bind(&cache, conn);
    for i in 0..HOT {
        filter_cached(&cache, conn, hot_user(i));
    }
    let explain = filter_explain(&cache, conn, 1);
    let bytes = entry_bytes(conn);
    let payload = &bytes[4 + 8 * explain.generations.len() + 8..];
    let own = sys::affinity();
    let all: Vec<usize> = (0..sys::online_cpus()).collect();
    // Operations per second of `op` on `threads` threads allowed on `cpus`.
    let run = |threads: usize, cpus: &[usize], hits: bool| -> f64 {
        let stop = AtomicBool::new(false);
        let total = AtomicU64::new(0);
        let ready = Barrier::new(threads + 1);
        let elapsed = std::thread::scope(|s| {
            for t in 0..threads {
                let (stop, total, ready, cache) = (&stop, &total, &ready, &cache);
                s.spawn(move || {
                    sys::set_affinity(cpus);
                    let mut conn = db.conn();
                    let payload = payload.to_vec();
                    ready.wait();
                    let mut n = 0u64;
                    let mut i = t * 17;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..32 {
                            if hits {
                                black_box(filter_cached(cache, &mut conn, hot_user(i)));
                            } else {
                                black_box(decode_rows(&payload));
                            }
                            i += 1;
                        }
                        n += 32;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                });
            }
            ready.wait();
            let start = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(cfg.thr_secs));
            stop.store(true, Ordering::Relaxed);
            start.elapsed().as_secs_f64()
        });
        total.load(Ordering::Relaxed) as f64 / elapsed
    };
    let rounds = if cfg.quick { 1 } else { 5 };
    let mut m: Vec<Vec<f64>> = vec![Vec::new(); 5];
    for _ in 0..rounds {
        m[0].push(run(1, &own, true));
        m[1].push(run(1, &all, true));
        m[2].push(run(2, &all, true));
        m[3].push(run(1, &all, false));
        m[4].push(run(2, &all, false));
    }
    let m: Vec<f64> = m.iter_mut().map(|v| harness::median(v)).collect();
    report.plain(
        "8",
        &format!("in-process hits/s, 1 thread, CPUs {own:?}"),
        format!("{:.0}/s", m[0]),
        "",
        String::new(),
    );
    report.plain(
        "8",
        &format!("in-process hits/s, 1 thread, CPUs {all:?}"),
        format!("{:.0}/s", m[1]),
        "",
        String::new(),
    );
    report.plain(
        "8",
        &format!("in-process hits/s, 2 threads, CPUs {all:?}"),
        format!("{:.0}/s ({:.2}x 1 thread)", m[2], m[2] / m[1]),
        "machine: 10-row decode, 2 threads vs 1",
        format!("{:.0}/s vs {:.0}/s ({:.2}x)", m[4], m[3], m[4] / m[3]),
    );
}

/// Touch 16 MiB, evicting this process's data and code from every cache level, as
/// another process's turn on the CPU does.
fn thrash() {
    thread_local!(static JUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 << 20]));
    JUNK.with(|junk| {
        for (i, b) in junk.borrow_mut().iter_mut().step_by(64).enumerate() {
            *b = b.wrapping_add(i as u8);
        }
    });
}

/// `BENCH_PROFILE=<op>`: run one operation `BENCH_PROFILE_ITERS` times inside `measured`.
fn profile(op: &str, db: &BenchDb, conn: &mut PgConnection, servers: &[String]) {
    let iters: usize = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mc_store = memcached_store(&servers[..1], "p");
    let mc = cache_on(mc_store.clone());
    bind(&mc, conn);
    let mem = cache_on(InProcessStore::new());
    bind(&mem, conn);
    let client = MetaClient::connect(servers[0].clone()).expect("meta client");
    for i in 0..HOT {
        filter_cached(&mc, conn, hot_user(i));
        filter_cached(&mem, conn, hot_user(i));
        find_cached(&mem, conn, hot_user(i));
    }
    let raw: Vec<Vec<String>> = (0..HOT)
        .map(|i| raw_keys(&mc, conn, &mc_store, hot_user(i)))
        .collect();
    if op == "miss-split" {
        // Not for callgrind: medians of an in-process miss and the bare query, interleaved
        // (the miss's overhead with cold caches, unlike the parts of figure 5).
        let off = cache_on(InProcessStore::new());
        bind(&off, conn);
        off.set_enabled(false);
        let wb = cache_behind(InProcessStore::new());
        bind(&wb, conn);
        let u = |r: usize| 100 + (r % HOT) as i32;
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| timed_stale_miss(&mem, c, u(r), invalidate_user)),
            Box::new(|c, r| time1(|| filter_db(c, u(r)))),
            Box::new(|c, r| time1(|| filter_cached(&off, c, u(r)))),
            Box::new(|c, r| timed_stale_miss(&wb, c, u(r), invalidate_user)),
        ];
        let m = interleave(conn, 100, iters, &mut ops);
        print_split(
            &[
                "in-process miss",
                "uncached query",
                "cache disabled",
                "in-process miss, write-behind",
            ],
            m,
        );
        return;
    }
    if op == "mc-miss-split" {
        // Not for callgrind: a memcached miss with write-behind against its parts, interleaved:
        // the query, a hit (plan + the lookup round trip + the local clone), and the same
        // miss with write-behind off.
        let wb = cache_behind(mc_store.clone());
        bind(&wb, conn);
        let u = |r: usize| 100 + (r % HOT) as i32;
        for r in 0..HOT {
            filter_cached(&wb, conn, u(r));
        }
        wb.flush_write_behind();
        let mut ops: Vec<Op> = vec![
            Box::new(|c, r| timed_stale_miss(&wb, c, u(r), invalidate_user)),
            Box::new(|c, r| time1(|| filter_db(c, u(r)))),
            Box::new(|c, r| time1(|| filter_cached(&mc, c, hot_user(r)))),
            Box::new(|c, r| timed_stale_miss(&mc, c, u(r), invalidate_user)),
        ];
        let m = interleave(conn, 100, iters, &mut ops);
        print_split(
            &[
                "memcached miss, write-behind",
                "uncached query",
                "memcached hit",
                "memcached miss, write-behind off",
            ],
            m,
        );
        return;
    }
    if op == "cold-parts" {
        // Not for callgrind: a miss's own work right after a query (its caches cold, as in
        // a miss) against the same work repeated at once (warm, as figure 5's parts).
        let rows10 = filter_db(conn, 100);
        let mut v: Vec<Vec<f64>> = vec![Vec::new(); 4];
        for i in 0..iters {
            let u = hot_user(i);
            drop(filter_db(conn, u));
            v[0].push(time1(|| filter_explain(&mem, conn, u)));
            v[1].push(time1(|| filter_explain(&mem, conn, u)));
            drop(filter_db(conn, u));
            v[2].push(time1(|| Bincode.encode(&rows10)));
            v[3].push(time1(|| Bincode.encode(&rows10)));
        }
        let names = [
            "plan (explain) right after a query",
            "plan again, warm",
            "encode of 10 rows right after a query",
            "encode again, warm",
        ];
        for (name, s) in names.iter().zip(&mut v) {
            eprintln!("[bench] {name}: {} us", harness::us(harness::median(s)));
        }
        return;
    }
    let allocs0 = sys::allocations();
    let mut excluded = 0;
    for i in 0..iters {
        let u = hot_user(i);
        match op {
            "mem-hit" => drop(measured(|| filter_cached(&mem, conn, u))),
            "mem-hit-find" => drop(measured(|| find_cached(&mem, conn, u))),
            "mc-hit" => drop(measured(|| filter_cached(&mc, conn, u))),
            "raw-hit" => drop(measured(|| raw_hit(&client, &raw[i % HOT]))),
            "db-filter" => drop(measured(|| filter_db(conn, u))),
            "mem-miss-cold" => {
                mem.invalidate_value(photos::user_id, u)
                    .expect("invalidate");
                // What a query on the same CPU does to the caches (callgrind --cache-sim).
                thrash();
                drop(measured(|| filter_cached(&mem, conn, u)));
            }
            "mem-miss" | "mc-miss" => {
                let cache = if op == "mem-miss" { &mem } else { &mc };
                let before = sys::allocations();
                cache
                    .invalidate_value(photos::user_id, u)
                    .expect("invalidate");
                excluded += sys::allocations() - before;
                drop(measured(|| filter_cached(cache, conn, u)));
            }
            "mc-update" => drop(measured(|| update_cached(&mc, conn, u, i as f64))),
            "mem-update" => drop(measured(|| update_cached(&mem, conn, u, i as f64))),
            "db-update" => drop(measured(|| update_db(conn, u, i as f64))),
            other => {
                eprintln!(
                    "unknown BENCH_PROFILE={other}; one of mem-hit mem-hit-find mc-hit raw-hit \
                     db-filter mem-miss mem-miss-cold mc-miss mc-update mem-update db-update \
                     miss-split mc-miss-split cold-parts"
                );
                std::process::exit(2);
            }
        }
    }
    let allocs = sys::allocations() - allocs0 - excluded;
    eprintln!(
        "[bench] profile {op}: {iters} iterations, {:.1} allocations each",
        allocs as f64 / iters as f64
    );
    let _ = db;
}
