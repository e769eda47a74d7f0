//! The memcached store against private memcached processes ([`MemcachedProcess`]): reads,
//! writes, generation creation and repair, TTLs, value limits, two servers, a killed and a
//! paused server. The store's tests that need no server (key rendering, builder checks, the
//! generation parser, TTL rounding, wire format, error kinds) are unit tests in
//! `cachebot/src/store/memcached/tests.rs`.
//!
//! Raw access goes through the store's `raw_set`/`raw_get`/`flush_all` (feature
//! `__test-hooks`) and [`MemcachedProcess::ttl`] (the meta protocol's `mg <key> t`).

use std::collections::HashSet;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use cachebot::store::{Fetched, Key, MemcachedStore, Store};
use cachebot::StoreErrorKind;
use cachebot_tests::MemcachedProcess;

const MINUTE: Duration = Duration::from_secs(60);

/// memcached's largest relative TTL (30 days; the store caps entry TTLs there, longer ones
/// would be read as absolute times).
const MAX_ENTRY_TTL_SECS: u32 = 30 * 24 * 60 * 60;

/// A store on one private server, with the default settings.
fn store(server: &MemcachedProcess) -> MemcachedStore {
    MemcachedStore::connect([server.addr()]).unwrap()
}

/// The remaining TTL memcached reports for a key (-1: never expires).
fn server_ttl(server: &MemcachedProcess, store: &MemcachedStore, key: Key) -> Option<i64> {
    server.ttl(&store.render_key(key))
}

/// A generation as the store reads one: a non-zero decimal `u64`, possibly followed by spaces
/// (memcached pads a number that got shorter in place).
fn parse_generation(raw: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(raw).ok()?.trim_end_matches(' ');
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&generation| generation != 0)
}

fn unique_hash() -> u128 {
    fastrand::u128(..)
}

#[test]
fn fetch_miss_then_hit() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    store.ping().unwrap();
    let entry = Key::entry(unique_hash());
    let gens = [
        Key::generation(unique_hash()),
        Key::generation(unique_hash()),
    ];

    let miss = store.fetch(entry, &gens).unwrap();
    assert_eq!(
        miss,
        Fetched {
            entry: None,
            generations: vec![None, None]
        }
    );

    let snapshot = store.ensure_generations(&gens).unwrap();
    store.put_entry(entry, b"payload", MINUTE).unwrap();
    let hit = store.fetch(entry, &gens).unwrap();
    assert_eq!(hit.entry.as_deref(), Some(&b"payload"[..]));
    assert_eq!(
        hit.generations,
        snapshot.iter().copied().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        store.fetch(entry, &[]).unwrap().generations,
        Vec::<Option<u64>>::new()
    );

    // Entries and generations with the same hash are distinct keys.
    assert_eq!(
        store
            .fetch(Key::entry(gens[0].hash()), &[Key::generation(entry.hash())])
            .unwrap(),
        Fetched {
            entry: None,
            generations: vec![None]
        }
    );

    // An empty entry is an entry.
    store.put_entry(entry, b"", MINUTE).unwrap();
    assert_eq!(store.fetch(entry, &[]).unwrap().entry, Some(Vec::new()));
}

#[test]
fn ensure_creates_once_as_never_expiring_decimal() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let keys: Vec<Key> = (0..20).map(|_| Key::generation(unique_hash())).collect();
    let first = store.ensure_generations(&keys).unwrap();
    assert!(first.iter().all(|&g| g != 0));
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len());
    assert_eq!(store.ensure_generations(&keys).unwrap(), first);
    assert_eq!(store.ensure_generations(&[]).unwrap(), Vec::<u64>::new());
    for (key, value) in keys.iter().zip(&first) {
        assert_eq!(
            store.raw_get(*key).unwrap(),
            Some(value.to_string().into_bytes())
        );
        assert_eq!(
            server_ttl(&server, &store, *key),
            Some(-1),
            "a generation must never expire"
        );
    }
    // N1 alone would have expired the items by now; T0 keeps them.
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(store.ensure_generations(&keys).unwrap(), first);
    let fetched = store.fetch(Key::entry(0), &keys).unwrap().generations;
    assert_eq!(fetched, first.iter().copied().map(Some).collect::<Vec<_>>());
}

#[test]
fn concurrent_creators_get_the_same_value() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let threads = 8;
    for _ in 0..10 {
        let keys: Vec<Key> = (0..32).map(|_| Key::generation(unique_hash())).collect();
        let barrier = Barrier::new(threads);
        let results: Vec<Vec<u64>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        store.ensure_generations(&keys).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        for result in &results[1..] {
            assert_eq!(result, &results[0]);
        }
    }
}

#[test]
fn bump_changes_values_never_zero_and_never_expiring() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let keys: Vec<Key> = (0..10).map(|_| Key::generation(unique_hash())).collect();
    let mut previous = store.ensure_generations(&keys).unwrap();
    for _ in 0..50 {
        store.bump(&keys).unwrap();
        let current: Vec<u64> = store
            .fetch(Key::entry(0), &keys)
            .unwrap()
            .generations
            .into_iter()
            .map(|g| g.expect("bumped generation present"))
            .collect();
        for (now, before) in current.iter().zip(&previous) {
            assert_ne!(*now, 0);
            assert_ne!(now, before);
        }
        assert_eq!(store.ensure_generations(&keys).unwrap(), current);
        previous = current;
    }
    // Bumping a key that never existed creates it, as a decimal.
    let fresh = Key::generation(unique_hash());
    store.bump(&[fresh]).unwrap();
    let raw = store.raw_get(fresh).unwrap().unwrap();
    assert!(parse_generation(&raw).is_some(), "{raw:?}");
    assert_eq!(server_ttl(&server, &store, fresh), Some(-1));
    store.bump(&[]).unwrap();
}

#[test]
fn entry_ttl_is_rounded_up_and_expires() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let long = Key::entry(unique_hash());
    store
        .put_entry(long, b"x", Duration::from_millis(1500))
        .unwrap();
    assert_eq!(server_ttl(&server, &store, long), Some(2));
    let capped = Key::entry(unique_hash());
    store
        .put_entry(capped, b"x", Duration::from_secs(40 * 24 * 3600))
        .unwrap();
    let ttl = server_ttl(&server, &store, capped).unwrap();
    assert!((i64::from(MAX_ENTRY_TTL_SECS) - 5..=i64::from(MAX_ENTRY_TTL_SECS)).contains(&ttl));

    // 10 ms becomes 1 s: present now, gone within memcached's
    // one-second clock granularity.
    let short = Key::entry(unique_hash());
    store
        .put_entry(short, b"x", Duration::from_millis(10))
        .unwrap();
    assert!(matches!(server_ttl(&server, &store, short), Some(0..=1)));
    let started = Instant::now();
    while store.fetch(short, &[]).unwrap().entry.is_some() {
        assert!(
            started.elapsed() < Duration::from_millis(2100),
            "entry did not expire"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn garbage_generations_read_as_missing_and_are_repaired() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let valid_before = Key::generation(unique_hash());
    let garbage = Key::generation(unique_hash());
    let zero = Key::generation(unique_hash());
    let valid_after = Key::generation(unique_hash());
    let missing = Key::generation(unique_hash());
    let keys = [valid_before, garbage, zero, valid_after, missing];

    let before = store
        .ensure_generations(&[valid_before, valid_after])
        .unwrap();
    store.raw_set(garbage, b"not a number").unwrap();
    store.raw_set(zero, b"0").unwrap();

    let fetched = store.fetch(Key::entry(0), &keys).unwrap();
    assert_eq!(
        fetched.generations,
        vec![Some(before[0]), None, None, Some(before[1]), None]
    );

    // One call: garbage overwritten, valid keys behind it untouched,
    // the missing one created.
    let ensured = store.ensure_generations(&keys).unwrap();
    assert_eq!(ensured[0], before[0]);
    assert_eq!(ensured[3], before[1]);
    assert!(ensured.iter().all(|&g| g != 0));
    for (key, value) in keys.iter().zip(&ensured) {
        assert_eq!(
            store.raw_get(*key).unwrap(),
            Some(value.to_string().into_bytes())
        );
        assert_eq!(server_ttl(&server, &store, *key), Some(-1));
    }
    let fetched = store.fetch(Key::entry(0), &keys).unwrap();
    assert_eq!(
        fetched.generations,
        ensured.iter().copied().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(store.ensure_generations(&keys).unwrap(), ensured);

    // A garbage key listed twice is repaired once: both slots agree.
    store.raw_set(garbage, b"junk").unwrap();
    let twice = store
        .ensure_generations(&[garbage, valid_before, garbage])
        .unwrap();
    assert_eq!(twice[0], twice[2]);
    assert_eq!(twice[1], before[0]);
    assert_eq!(
        store.raw_get(garbage).unwrap(),
        Some(twice[0].to_string().into_bytes())
    );

    // An empty value is garbage too; padded decimals are fine.
    store.raw_set(garbage, b"").unwrap();
    assert_eq!(
        store.fetch(Key::entry(0), &[garbage]).unwrap().generations,
        vec![None]
    );
    let repaired = store.ensure_generations(&[garbage]).unwrap()[0];
    assert_ne!(repaired, 0);
    // A lone "0" is answered by `ma` as the number 0: overwritten too.
    store.raw_set(zero, b"0").unwrap();
    let repaired = store.ensure_generations(&[zero]).unwrap()[0];
    assert_ne!(repaired, 0);
    assert_eq!(
        store.raw_get(zero).unwrap(),
        Some(repaired.to_string().into_bytes())
    );
    store.raw_set(zero, b"42  ").unwrap();
    assert_eq!(
        store.fetch(Key::entry(0), &[zero]).unwrap().generations,
        vec![Some(42)]
    );
    assert_eq!(store.ensure_generations(&[zero]).unwrap(), vec![42]);
}

#[test]
fn value_size_limit() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    // The default limit fits memcached's default 1 MiB item size.
    let largest = vec![7u8; MemcachedStore::DEFAULT_MAX_VALUE_SIZE];
    let key = Key::entry(unique_hash());
    store.put_entry(key, &largest, MINUTE).unwrap();
    assert_eq!(
        store.fetch(key, &[]).unwrap().entry.map(|v| v.len()),
        Some(largest.len())
    );
    let too_big = Key::entry(unique_hash());
    let error = store
        .put_entry(too_big, &[largest.as_slice(), b"x"].concat(), MINUTE)
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected);
    assert_eq!(store.raw_get(too_big).unwrap(), None);

    let small = MemcachedStore::builder()
        .servers([server.addr()])
        .max_value_size(100)
        .build()
        .unwrap();
    small.put_entry(key, &[1; 100], MINUTE).unwrap();
    let error = small.put_entry(key, &[1; 101], MINUTE).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected);
    assert_eq!(error.store(), "memcached");
    assert_eq!(small.fetch(key, &[]).unwrap().entry, Some(vec![1; 100]));
}

#[test]
fn two_servers_spread_keys_and_fetch_across_both() {
    let first = MemcachedProcess::spawn();
    let second = MemcachedProcess::spawn();
    let both = MemcachedStore::connect([first.addr(), second.addr()]).unwrap();
    let only_first = store(&first);
    let only_second = store(&second);

    let keys: Vec<Key> = (0..64).map(|_| Key::generation(unique_hash())).collect();
    let values = both.ensure_generations(&keys).unwrap();
    let (mut on_first, mut on_second) = (0, 0);
    for (key, value) in keys.iter().zip(&values) {
        let expected = Some(value.to_string().into_bytes());
        match (
            only_first.raw_get(*key).unwrap(),
            only_second.raw_get(*key).unwrap(),
        ) {
            (Some(raw), None) if Some(&raw) == expected.as_ref() => on_first += 1,
            (None, Some(raw)) if Some(&raw) == expected.as_ref() => on_second += 1,
            other => panic!("key on both or neither server: {other:?}"),
        }
    }
    assert!(on_first > 0 && on_second > 0, "{on_first} / {on_second}");

    let entry = Key::entry(unique_hash());
    both.put_entry(entry, b"rows", MINUTE).unwrap();
    let fetched = both.fetch(entry, &keys).unwrap();
    assert_eq!(fetched.entry.as_deref(), Some(&b"rows"[..]));
    assert_eq!(
        fetched.generations,
        values.iter().copied().map(Some).collect::<Vec<_>>()
    );

    both.bump(&keys).unwrap();
    let bumped = both.fetch(entry, &keys).unwrap().generations;
    assert!(bumped
        .iter()
        .zip(&values)
        .all(|(now, before)| matches!(now, Some(g) if g != before)));

    both.ping().unwrap();
    both.flush_all().unwrap();
    assert_eq!(
        both.fetch(entry, &keys[..2]).unwrap(),
        Fetched {
            entry: None,
            generations: vec![None, None]
        }
    );
    assert_eq!(only_first.raw_get(keys[0]).unwrap(), None);
    assert_eq!(only_second.raw_get(keys[0]).unwrap(), None);
}

#[test]
fn killed_server_fails_fast_and_building_still_works() {
    let mut server = MemcachedProcess::spawn();
    let store = store(&server);
    let keys = [Key::generation(unique_hash())];
    store.ensure_generations(&keys).unwrap();
    server.kill();

    let started = Instant::now();
    let error = store.fetch(Key::entry(1), &keys).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert_eq!(error.store(), "memcached");
    for result in [
        store.ensure_generations(&keys).map(drop),
        store.bump(&keys),
        store.put_entry(Key::entry(1), b"x", MINUTE),
        store.ping(),
        store.flush_all(),
        store.raw_set(keys[0], b"1").map(drop),
        store.raw_get(keys[0]).map(drop),
    ] {
        assert_eq!(result.unwrap_err().kind(), StoreErrorKind::Unavailable);
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    // A store can be built while the server is down.
    let rebuilt = MemcachedStore::connect([server.addr()]).unwrap();
    assert_eq!(
        rebuilt.fetch(Key::entry(1), &keys).unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );
}

#[test]
fn paused_server_times_out_within_the_io_timeout() {
    let mut server = MemcachedProcess::spawn();
    let timeout = Duration::from_millis(200);
    let store = MemcachedStore::builder()
        .servers([server.addr()])
        .io_timeout(timeout)
        .build()
        .unwrap();
    let keys = [Key::generation(unique_hash())];
    store.ensure_generations(&keys).unwrap();

    server.pause();
    let started = Instant::now();
    let error = store.fetch(Key::entry(1), &keys).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(
        elapsed >= timeout - Duration::from_millis(20),
        "{elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(300),
        "{elapsed:?}"
    );

    // Writes time out too (their outcome is unknown, still a timeout).
    let started = Instant::now();
    assert_eq!(
        store.bump(&keys).unwrap_err().kind(),
        StoreErrorKind::Timeout
    );
    assert!(started.elapsed() < timeout + Duration::from_millis(300));

    server.resume();
    // The timed-out connections were discarded; fresh ones work. The
    // bump sent while paused may or may not have landed.
    let after = store.fetch(Key::entry(1), &keys).unwrap().generations;
    assert!(after[0].is_some());
}

/// A restart the store did not see, with several pooled sockets (from concurrent reads): the
/// reads and bumps (the pipelined hot paths) are sent again on a fresh socket, not on another
/// dead pooled one.
#[test]
fn a_restart_with_several_dead_pooled_sockets_is_retried_on_a_fresh_one() {
    let mut server = MemcachedProcess::spawn();
    let store = store(&server);
    let keys: Vec<Key> = (0..4).map(|_| Key::generation(unique_hash())).collect();
    store.ensure_generations(&keys).unwrap();
    let barrier = Barrier::new(4);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..20 {
                    store.fetch(Key::entry(1), &keys).unwrap();
                }
            });
        }
    });
    for _ in 0..3 {
        server.restart();
        let fetched = store.fetch(Key::entry(1), &keys).unwrap();
        assert_eq!(
            fetched.generations,
            vec![None; 4],
            "a fresh server holds nothing"
        );
        server.restart();
        store.bump(&keys).unwrap();
    }
}
