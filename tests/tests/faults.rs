//! Cache faults never fail a read and never serve stale data: eviction,
//! a store that dies, pauses or comes back empty, corrupt and oversized
//! entries, several servers.

mod common;

use std::time::{Duration, Instant};

use cachebot::prelude::*;
use cachebot::store::{InProcessStore, Key, MemcachedStore};
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::{MemcachedProcess, TestDb};
use common::{caches_without_local, expect, seed, since, unique_prefix, wait_delivered};
use diesel::prelude::*;

fn cache_on(servers: &[String], io_timeout: Duration) -> Cache {
    let store = MemcachedStore::builder()
        .servers(servers.iter().cloned())
        .prefix(unique_prefix())
        .io_timeout(io_timeout)
        .connect_timeout(io_timeout)
        .build()
        .unwrap();
    // Store failures counted by the read that hit them, not by a background thread.
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .unwrap()
}

/// A write the cache was never told about, so only a miss can see it.
/// A write the cache does not see: on a connection of its own, which never
/// reads through the cache (a cached read instruments a bare connection).
fn rename_silently(db: &TestDb, id: i32, title: &str) {
    diesel::update(photos::table.find(id))
        .set(photos::title.eq(title))
        .execute(&mut db.conn())
        .unwrap();
}

#[test]
fn a_flushed_store_gives_misses_not_stale_hits() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let mc = MemcachedProcess::spawn();
    let cache = cache_on(&[mc.addr()], Duration::from_millis(500));
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    rename_silently(&db, seed.photos[0].id, "after-flush");
    mc.flush_all();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 1, "after flush_all");
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert_eq!(rows[0].title, "after-flush");
}

#[test]
fn evicted_generations_are_misses_under_memory_pressure() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    // A 2 MiB memcached; the filler below writes generation-sized items, so
    // evictions hit the slab class the query's own generations live in.
    let mc = MemcachedProcess::spawn_with_memory(2);
    let cache = cache_on(&[mc.addr()], Duration::from_millis(500));
    let filler = cache_on(&[mc.addr()], Duration::from_millis(500));
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let mut next = 0u128;
    for round in 0..5 {
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        // A write, and its invalidation...
        rename_silently(&db, seed.photos[0].id, &format!("round-{round}"));
        cache
            .invalidate_value(photos::user_id, seed.ann.id)
            .unwrap();
        // ...whose bumped generation may now be evicted (and re-created at
        // random by the next reader): never back to the value the old entry holds.
        for _ in 0..40 {
            let keys: Vec<Key> = (0..1000)
                .map(|_| {
                    next += 1;
                    Key::generation(next)
                })
                .collect();
            filler.store().bump(&keys).unwrap();
        }
        let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(
            rows,
            q().load::<Photo>(&mut conn).unwrap(),
            "round {round}: stale after eviction"
        );
    }
    let evictions: u64 = mc
        .stats()
        .get("evictions")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        evictions > 10_000,
        "the filler must have evicted generations: {evictions}"
    );
}

#[test]
fn a_dead_store_falls_back_to_the_database_and_recovers() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let mut mc = MemcachedProcess::spawn();
    let cache = cache_on(&[mc.addr()], Duration::from_millis(300));
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    mc.kill();
    rename_silently(&db, seed.photos[0].id, "while-down");
    let b = cache.stats();
    for _ in 0..3 {
        let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    }
    let d = since(&cache, b);
    assert_eq!((d.fallbacks, d.hits, d.stores), (3, 0, 0), "{d:?}");
    // Invalidation while down is reported to the caller, never hidden.
    assert!(cache.invalidate_table("photos").is_err());
    assert_eq!(since(&cache, b).invalidation_errors, 1);

    // Back, empty: once the kept invalidation is delivered (in the
    // background), a miss, then hits again.
    mc.restart();
    wait_delivered(&cache);
    assert_eq!(since(&cache, b).redelivered, 1);
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let b = expect(&cache, b, 0, 1, "after restart");
    assert_eq!(rows[0].title, "while-down");
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 0, "recovered");
}

#[test]
fn a_paused_store_times_out_into_database_reads() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let mut mc = MemcachedProcess::spawn();
    let cache = cache_on(&[mc.addr()], Duration::from_millis(200));
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    mc.pause();
    rename_silently(&db, seed.photos[0].id, "while-paused");
    let b = cache.stats();
    let started = Instant::now();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let waited = started.elapsed();
    mc.resume();
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert_eq!(since(&cache, b).fallbacks, 1);
    // Bounded by the timeout, not by the pause (generous bound: a sanity check, not a benchmark).
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // Resumed: the invalidation of the rename goes through, and the next
    // read is fresh.
    cache
        .invalidate_value(photos::user_id, seed.ann.id)
        .unwrap();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 1, "after resume");
    assert_eq!(rows[0].title, "while-paused");
}

#[test]
fn corrupt_and_truncated_entries_are_misses() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches_without_local() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        let key = q()
            .cache(&cache)
            .explain_on::<_, Photo>(&mut conn)
            .unwrap()
            .entry
            .unwrap();
        let good = cache.store().fetch(key, &[]).unwrap().entry.unwrap();
        for (what, bytes) in [
            ("garbage", b"\xff\x00 not an entry \x80".to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("one byte flipped", {
                let mut b = good.clone();
                let last = b.len() - 1;
                b[last] ^= 0x40;
                b
            }),
        ] {
            cache
                .store()
                .put_entry(key, &bytes, Duration::from_secs(60))
                .unwrap();
            let b = cache.stats();
            let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
            let d = since(&cache, b);
            assert_eq!(
                (d.misses, d.decode_errors, d.hits),
                (1, 1, 0),
                "{store} {what}: {d:?}"
            );
            assert_eq!(
                rows,
                q().load::<Photo>(&mut conn).unwrap(),
                "{store} {what}"
            );
        }
        // The miss rewrote a good entry.
        let b = cache.stats();
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 1, 0, store);
    }
}

#[test]
fn oversized_results_are_served_and_not_stored() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    // In process: a small item limit.
    let small = Cache::builder()
        .store(InProcessStore::builder().max_value_size(256).build())
        .build()
        .unwrap();
    // memcached: its real 1 MiB item limit, with 2 MiB of rows.
    let big_title = "y".repeat(700_000);
    for p in &seed.photos[..3] {
        diesel::update(photos::table.find(p.id))
            .set(photos::title.eq(&big_title))
            .execute(&mut conn)
            .unwrap();
    }
    for (store, cache) in [
        ("in-process", small),
        (
            "memcached",
            common::memcached_cache(&cachebot_tests::memcached_servers()),
        ),
    ] {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        for _ in 0..2 {
            let b = cache.stats();
            let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
            let d = since(&cache, b);
            assert_eq!(
                (d.misses, d.oversized, d.stores, d.hits),
                (1, 1, 0, 0),
                "{store}: {d:?}"
            );
            assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
        }
    }
}

#[test]
fn several_memcached_servers_share_the_keys() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let servers = [
        MemcachedProcess::spawn(),
        MemcachedProcess::spawn(),
        MemcachedProcess::spawn(),
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr()).collect();
    let cache = cache_on(&addrs, Duration::from_millis(500));
    let ids: Vec<i32> = seed.photos.iter().map(|p| p.id).collect();
    let q = |i: i32| photos::table.filter(photos::id.eq(i));
    for round in 0..2 {
        let b = cache.stats();
        for &id in &ids {
            let row: Photo = q(id).cache(&cache).get_result(&mut conn).unwrap();
            assert_eq!(row.id, id);
        }
        let n = ids.len() as u64;
        if round == 0 {
            expect(&cache, b, 0, n, "first round");
        } else {
            expect(&cache, b, n, 0, "second round");
        }
    }
    let items: Vec<u64> = servers
        .iter()
        .map(|s| {
            s.stats()
                .get("curr_items")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        items.iter().filter(|&&n| n > 0).count() >= 2,
        "keys spread over servers: {items:?}"
    );
    // Invalidation reaches the right server.
    cache.invalidate_value(photos::id, ids[0]).unwrap();
    let b = cache.stats();
    let _: Photo = q(ids[0]).cache(&cache).get_result(&mut conn).unwrap();
    let _: Photo = q(ids[1]).cache(&cache).get_result(&mut conn).unwrap();
    expect(&cache, b, 1, 1, "after invalidating one id");
}

#[test]
fn invalidations_lost_while_the_store_is_unreachable_are_delivered_in_the_background() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let mut mc = MemcachedProcess::spawn();
    let cache = cache_on(&[mc.addr()], Duration::from_millis(200));
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    // The store stops answering (a partition, not a restart: it keeps its items).
    mc.pause();
    rename_silently(&db, seed.photos[0].id, "written-while-unreachable");
    let b = cache.stats();
    assert!(cache
        .invalidate_value(photos::user_id, seed.ann.id)
        .is_err());
    assert_eq!(since(&cache, b).invalidation_errors, 4);
    // Until the store takes the bump, reads of this process bypass the
    // cache (never a stale hit)...
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(rows[0].title, "written-while-unreachable");
    assert_eq!(since(&cache, b).hits, 0);
    mc.resume();
    // ...and the background delivery hands it over without any read. The
    // old entry and its old generations are still in the store; the bump
    // replaced them, so the read is a miss with fresh rows.
    wait_delivered(&cache);
    assert_eq!(since(&cache, b).redelivered, 4);
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let d = since(&cache, b);
    assert_eq!((d.hits, d.misses), (0, 1), "{d:?}");
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert_eq!(rows[0].title, "written-while-unreachable");
    let b = cache.stats();
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 0, "hits again once delivered");
}

#[test]
fn one_of_several_servers_failing_degrades_to_the_database_and_recovers() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let mut servers = [
        MemcachedProcess::spawn(),
        MemcachedProcess::spawn(),
        MemcachedProcess::spawn(),
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr()).collect();
    let cache = cache_on(&addrs, Duration::from_millis(200));
    let mut writer = db.conn();
    cache.instrument(&mut writer).unwrap();
    let q = |id: i32| photos::table.filter(photos::id.eq(id));
    let ids: Vec<i32> = seed.photos.iter().map(|p| p.id).collect();
    for &id in &ids {
        let _: Vec<Photo> = q(id).cache(&cache).load(&mut conn).unwrap();
    }
    servers[1].kill();
    // Writes still go through (their invalidations to the dead server are kept
    // for later), reads never fail and never serve stale rows.
    for (n, &id) in ids.iter().enumerate() {
        diesel::update(photos::table.find(id))
            .set(photos::title.eq(format!("while one is down {n}")))
            .execute(&mut writer)
            .unwrap();
        let rows: Vec<Photo> = q(id).cache(&cache).load(&mut conn).unwrap();
        assert_eq!(rows, q(id).load::<Photo>(&mut conn).unwrap());
    }
    servers[1].restart();
    for &id in &ids {
        let _: Vec<Photo> = q(id).cache(&cache).load(&mut conn).unwrap();
    }
    let b = cache.stats();
    for &id in &ids {
        let rows: Vec<Photo> = q(id).cache(&cache).load(&mut conn).unwrap();
        assert_eq!(rows, q(id).load::<Photo>(&mut conn).unwrap());
    }
    expect(
        &cache,
        b,
        ids.len() as u64,
        0,
        "all hits again once the server is back",
    );
}

#[test]
fn a_connection_lost_mid_write_surfaces_the_error_and_invalidates_nothing_wrongly() {
    use cachebot::write;
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let cache = Cache::in_process();
    let mut writer = db.conn();
    cache.instrument(&mut writer).unwrap();
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    // Kill the writer's backend from another session.
    let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "pg_backend_pid()",
    ))
    .get_result(&mut writer)
    .unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut conn)
        .unwrap();
    let b = cache.stats();
    let result: Result<Vec<Photo>, _> = write::update(
        &cache,
        &mut writer,
        photos::table.find(seed.photos[0].id),
        photos::title.eq("lost"),
    );
    assert!(result.is_err(), "the write's error surfaces");
    assert_eq!(
        since(&cache, b).invalidations,
        0,
        "nothing was written, nothing is invalidated"
    );
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert!(rows.iter().all(|p| p.title != "lost"));
}
