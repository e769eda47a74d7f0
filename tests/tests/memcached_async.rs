//! The memcached store's non-blocking half (feature `async`) against private memcached
//! processes ([`MemcachedProcess`]): it agrees with the blocking store on the same servers
//! (values, generations, routing over two servers, repair of garbage, size limits), a paused
//! server times out without blocking the runtime, a killed one fails and the store recovers
//! after a restart, and futures dropped at any await point leave no socket out of step and no
//! partial value.
//!
//! The async operations are crate-private; the tests reach them through
//! `MemcachedStore::async_ops_for_tests` (feature `__test-hooks`), which returns the store's own
//! futures. Tests that need no server (wire format, hostile answers) are unit tests in
//! `cachebot/src/store/memcached/aio.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cachebot::store::{Key, MemcachedStore, Store};
use cachebot::{StoreError, StoreErrorKind};
use cachebot_tests::MemcachedProcess;

const MINUTE: Duration = Duration::from_secs(60);

/// A single-threaded runtime: a blocking call in the store would stall every task on it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(server: &MemcachedProcess) -> MemcachedStore {
    MemcachedStore::connect([server.addr()]).unwrap()
}

fn unique_hash() -> u128 {
    fastrand::u128(..)
}

fn generations(count: usize) -> Vec<Key> {
    (0..count).map(|_| Key::generation(unique_hash())).collect()
}

fn entries(count: usize) -> Vec<Key> {
    (0..count).map(|_| Key::entry(unique_hash())).collect()
}

fn some<T: Copy>(values: &[T]) -> Vec<Option<T>> {
    values.iter().copied().map(Some).collect()
}

#[test]
fn round_trips_agree_with_the_blocking_store() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    // A clone shares the async half.
    let ops = store.clone().async_ops_for_tests();
    let rt = runtime();

    // Generations created by one half are the other's.
    let by_async = generations(8);
    let by_sync = generations(8);
    let created = rt.block_on(ops.ensure_generations(&by_async)).unwrap();
    assert!(created.iter().all(|&g| g != 0));
    assert_eq!(store.ensure_generations(&by_async).unwrap(), created);
    assert_eq!(
        store.fetch(Key::entry(0), &by_async).unwrap().generations,
        some(&created)
    );
    let synced = store.ensure_generations(&by_sync).unwrap();
    assert_eq!(
        rt.block_on(ops.ensure_generations(&by_sync)).unwrap(),
        synced
    );
    let fetched = rt.block_on(ops.fetch_many(&[], &by_sync)).unwrap();
    assert_eq!(fetched.generations, some(&synced));
    for (key, value) in by_async.iter().zip(&created) {
        assert_eq!(
            store.raw_get(*key).unwrap(),
            Some(value.to_string().into_bytes())
        );
        assert_eq!(server.ttl(&store.render_key(*key)), Some(-1));
    }

    // Entries written by one half are read by the other.
    let [a, b, missing] = [
        Key::entry(unique_hash()),
        Key::entry(unique_hash()),
        Key::entry(unique_hash()),
    ];
    rt.block_on(ops.put_entry(a, b"from async", MINUTE))
        .unwrap();
    store.put_entry(b, b"from sync", MINUTE).unwrap();
    assert_eq!(
        store.fetch(a, &[]).unwrap().entry.as_deref(),
        Some(&b"from async"[..])
    );
    let fetched = rt
        .block_on(ops.fetch_many(&[a, b, missing], &by_async))
        .unwrap();
    assert_eq!(
        fetched.entries,
        vec![
            Some(b"from async".to_vec()),
            Some(b"from sync".to_vec()),
            None
        ]
    );
    assert_eq!(fetched.generations, some(&created));
    // An empty entry is an entry.
    rt.block_on(ops.put_entry(a, b"", MINUTE)).unwrap();
    assert_eq!(store.fetch(a, &[]).unwrap().entry, Some(Vec::new()));

    // TTLs: rounded up to whole seconds, capped at 30 days.
    rt.block_on(ops.put_entry(a, b"x", Duration::from_millis(1500)))
        .unwrap();
    assert_eq!(server.ttl(&store.render_key(a)), Some(2));
    rt.block_on(ops.put_entry(a, b"x", Duration::from_secs(40 * 24 * 3600)))
        .unwrap();
    let ttl = server.ttl(&store.render_key(a)).unwrap();
    assert!(
        (30 * 24 * 3600 - 5..=30 * 24 * 3600).contains(&ttl),
        "{ttl}"
    );

    // Bumps: fresh, non-zero, never expiring values, seen by the blocking store.
    let mut previous = created.clone();
    for _ in 0..10 {
        rt.block_on(ops.bump(&by_async)).unwrap();
        let now: Vec<u64> = store
            .fetch(Key::entry(0), &by_async)
            .unwrap()
            .generations
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!(now.iter().zip(&previous).all(|(n, p)| *n != 0 && n != p));
        previous = now;
    }
    assert_eq!(server.ttl(&store.render_key(by_async[0])), Some(-1));
    let fresh = Key::generation(unique_hash());
    rt.block_on(ops.bump(&[fresh])).unwrap();
    assert!(store.fetch(Key::entry(0), &[fresh]).unwrap().generations[0].is_some());

    // Nothing asked, nothing sent.
    rt.block_on(ops.bump(&[])).unwrap();
    assert_eq!(
        rt.block_on(ops.ensure_generations(&[])).unwrap(),
        Vec::<u64>::new()
    );
    let empty = rt.block_on(ops.fetch_many(&[], &[])).unwrap();
    assert!(empty.entries.is_empty() && empty.generations.is_empty());

    // Another runtime (the first one gone) uses the same pooled sockets.
    drop(rt);
    let fetched = runtime().block_on(ops.fetch_many(&[b], &by_sync)).unwrap();
    assert_eq!(fetched.entries, vec![Some(b"from sync".to_vec())]);
    assert_eq!(fetched.generations, some(&synced));
}

#[test]
fn concurrent_creators_get_the_same_value() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let ops = store.async_ops_for_tests();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..5 {
        let keys = Arc::new(generations(32));
        let results: Vec<Vec<u64>> = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (ops, keys) = (ops.clone(), keys.clone());
                    tokio::spawn(async move { ops.ensure_generations(&keys).await.unwrap() })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            results
        });
        let sync = store.ensure_generations(&keys).unwrap();
        for result in &results {
            assert_eq!(result, &sync);
        }
    }
}

#[test]
fn two_servers_route_like_the_blocking_store() {
    let first = MemcachedProcess::spawn();
    let second = MemcachedProcess::spawn();
    let both = MemcachedStore::connect([first.addr(), second.addr()]).unwrap();
    let ops = both.async_ops_for_tests();
    let only_first = store(&first);
    let only_second = store(&second);
    let rt = runtime();

    let keys = generations(64);
    let values = rt.block_on(ops.ensure_generations(&keys)).unwrap();
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
    // The blocking store looks for them where the async half put them.
    assert_eq!(
        both.fetch(Key::entry(0), &keys).unwrap().generations,
        some(&values)
    );

    // And the other way round.
    let synced_keys = generations(64);
    let synced = both.ensure_generations(&synced_keys).unwrap();
    let stored = entries(32);
    for (i, key) in stored.iter().enumerate() {
        both.put_entry(*key, format!("entry {i}").as_bytes(), MINUTE)
            .unwrap();
    }
    let fetched = rt.block_on(ops.fetch_many(&stored, &synced_keys)).unwrap();
    assert_eq!(fetched.generations, some(&synced));
    for (i, entry) in fetched.entries.iter().enumerate() {
        assert_eq!(entry.as_deref(), Some(format!("entry {i}").as_bytes()));
    }

    // Async writes, blocking reads.
    let written = entries(32);
    for (i, key) in written.iter().enumerate() {
        rt.block_on(ops.put_entry(*key, format!("async {i}").as_bytes(), MINUTE))
            .unwrap();
    }
    for (i, key) in written.iter().enumerate() {
        assert_eq!(
            both.fetch(*key, &[]).unwrap().entry.as_deref(),
            Some(format!("async {i}").as_bytes())
        );
    }
    rt.block_on(ops.bump(&synced_keys)).unwrap();
    let bumped = both.fetch(Key::entry(0), &synced_keys).unwrap().generations;
    assert!(bumped
        .iter()
        .zip(&synced)
        .all(|(now, before)| matches!(now, Some(g) if g != before)));
}

#[test]
fn garbage_generations_read_as_missing_and_are_repaired() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let ops = store.async_ops_for_tests();
    let rt = runtime();
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
    let fetched = rt.block_on(ops.fetch_many(&[], &keys)).unwrap();
    assert_eq!(
        fetched.generations,
        vec![Some(before[0]), None, None, Some(before[1]), None]
    );

    // One call: garbage overwritten, valid keys behind it untouched, the missing one created.
    let ensured = rt.block_on(ops.ensure_generations(&keys)).unwrap();
    assert_eq!(ensured[0], before[0]);
    assert_eq!(ensured[3], before[1]);
    assert!(ensured.iter().all(|&g| g != 0));
    for (key, value) in keys.iter().zip(&ensured) {
        assert_eq!(
            store.raw_get(*key).unwrap(),
            Some(value.to_string().into_bytes())
        );
        assert_eq!(server.ttl(&store.render_key(*key)), Some(-1));
    }
    assert_eq!(store.ensure_generations(&keys).unwrap(), ensured);

    // A garbage key listed twice is repaired once: both slots agree.
    store.raw_set(garbage, b"junk").unwrap();
    let twice = rt
        .block_on(ops.ensure_generations(&[garbage, valid_before, garbage]))
        .unwrap();
    assert_eq!(twice[0], twice[2]);
    assert_eq!(twice[1], before[0]);
    assert_eq!(
        store.raw_get(garbage).unwrap(),
        Some(twice[0].to_string().into_bytes())
    );

    // An empty value is garbage; a padded decimal is fine.
    store.raw_set(garbage, b"").unwrap();
    assert_eq!(
        rt.block_on(ops.fetch_many(&[], &[garbage]))
            .unwrap()
            .generations,
        vec![None]
    );
    assert_ne!(
        rt.block_on(ops.ensure_generations(&[garbage])).unwrap()[0],
        0
    );
    store.raw_set(zero, b"42  ").unwrap();
    assert_eq!(
        rt.block_on(ops.fetch_many(&[], &[zero]))
            .unwrap()
            .generations,
        vec![Some(42)]
    );
    assert_eq!(
        rt.block_on(ops.ensure_generations(&[zero])).unwrap(),
        vec![42]
    );
}

#[test]
fn value_size_limit() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let ops = store.async_ops_for_tests();
    let rt = runtime();
    let largest = vec![7u8; MemcachedStore::DEFAULT_MAX_VALUE_SIZE];
    let key = Key::entry(unique_hash());
    rt.block_on(ops.put_entry(key, &largest, MINUTE)).unwrap();
    let fetched = rt.block_on(ops.fetch_many(&[key], &[])).unwrap();
    assert_eq!(
        fetched.entries[0].as_ref().map(Vec::len),
        Some(largest.len())
    );
    assert_eq!(store.fetch(key, &[]).unwrap().entry, Some(largest.clone()));

    let too_big = Key::entry(unique_hash());
    let error = rt
        .block_on(ops.put_entry(too_big, &[largest.as_slice(), b"x"].concat(), MINUTE))
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
    assert_eq!(store.raw_get(too_big).unwrap(), None);

    // A smaller limit refuses larger values, and larger answers (not read into memory).
    let small = MemcachedStore::builder()
        .servers([server.addr()])
        .max_value_size(100)
        .build()
        .unwrap();
    let small_ops = small.async_ops_for_tests();
    let fits = Key::entry(unique_hash());
    rt.block_on(small_ops.put_entry(fits, &[1; 100], MINUTE))
        .unwrap();
    let error = rt
        .block_on(small_ops.put_entry(fits, &[1; 101], MINUTE))
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected);
    assert_eq!(error.store(), "memcached");
    let error = rt
        .block_on(small_ops.fetch_many(&[key, fits], &[]))
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Protocol, "{error}");
    // The socket that answered too much was closed: the next read is in step.
    let fetched = rt.block_on(small_ops.fetch_many(&[fits], &[])).unwrap();
    assert_eq!(fetched.entries, vec![Some(vec![1; 100])]);
}

#[test]
fn a_paused_server_times_out_without_blocking_the_runtime() {
    let mut server = MemcachedProcess::spawn();
    let timeout = Duration::from_millis(200);
    let store = MemcachedStore::builder()
        .servers([server.addr()])
        .io_timeout(timeout)
        .build()
        .unwrap();
    let ops = store.async_ops_for_tests();
    let rt = runtime();
    let keys = generations(4);
    let entry = Key::entry(unique_hash());
    rt.block_on(ops.ensure_generations(&keys)).unwrap();
    rt.block_on(ops.put_entry(entry, b"rows", MINUTE)).unwrap();

    server.pause();
    type Op<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;
    let operations: Vec<(&str, Op<'_>)> = vec![
        (
            "fetch",
            Box::pin(async { ops.fetch_many(&[entry], &keys).await.map(drop) }),
        ),
        (
            "ensure",
            Box::pin(async { ops.ensure_generations(&keys).await.map(drop) }),
        ),
        ("put", ops.put_entry(entry, b"new rows", MINUTE)),
        ("bump", ops.bump(&keys)),
    ];
    for (name, operation) in operations {
        let ticks = Arc::new(AtomicU64::new(0));
        let (error, elapsed, ticked) = rt.block_on(async {
            let counter = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            let started = Instant::now();
            let error = operation.await.unwrap_err();
            let elapsed = started.elapsed();
            ticker.abort();
            (error, elapsed, ticks.load(Ordering::Relaxed))
        });
        assert_eq!(error.kind(), StoreErrorKind::Timeout, "{name}: {error}");
        assert_eq!(error.store(), "memcached");
        assert!(
            elapsed >= timeout - Duration::from_millis(20),
            "{name}: {elapsed:?}"
        );
        assert!(
            elapsed < timeout + Duration::from_millis(300),
            "{name}: {elapsed:?}"
        );
        // 200 ms of 5 ms ticks: about 40 while the operation waited, on the same thread (fewer
        // on a loaded machine). The count is read as soon as the operation returns, before the
        // ticker runs again: had the operation blocked the thread, it would be 0.
        assert!(
            ticked >= 5,
            "{name}: the runtime was blocked ({ticked} ticks)"
        );
    }

    server.resume();
    // The timed-out sockets were closed; fresh ones are in step. The requests sent while paused
    // may or may not land, and later than the next ones, on other connections: let the server
    // catch up before comparing two reads.
    std::thread::sleep(Duration::from_millis(300));
    let fetched = rt.block_on(ops.fetch_many(&[entry], &keys)).unwrap();
    assert!(fetched.generations.iter().all(Option::is_some));
    assert!(matches!(
        fetched.entries[0].as_deref(),
        Some(b"rows" | b"new rows")
    ));
    let now = rt.block_on(ops.ensure_generations(&keys)).unwrap();
    assert_eq!(fetched.generations, some(&now));
}

#[test]
fn a_killed_server_fails_fast_and_the_store_recovers_after_a_restart() {
    let mut server = MemcachedProcess::spawn();
    let store = store(&server);
    let ops = store.async_ops_for_tests();
    let rt = runtime();
    let keys = generations(4);
    let entry = Key::entry(unique_hash());
    rt.block_on(ops.ensure_generations(&keys)).unwrap();
    rt.block_on(ops.put_entry(entry, b"rows", MINUTE)).unwrap();

    // A restart the store did not see: the pooled sockets are dead (several of them, from
    // concurrent batches), and each batch is sent again on a fresh one.
    let entries = [entry];
    rt.block_on(async {
        let (a, b, c, d) = tokio::join!(
            ops.fetch_many(&entries, &keys),
            ops.fetch_many(&entries, &keys),
            ops.fetch_many(&entries, &keys),
            ops.fetch_many(&entries, &keys),
        );
        for fetched in [a, b, c, d] {
            assert_eq!(fetched.unwrap().entries, vec![Some(b"rows".to_vec())]);
        }
    });
    server.restart();
    let fetched = rt.block_on(ops.fetch_many(&[entry], &keys)).unwrap();
    assert_eq!(fetched.entries, vec![None]);
    assert_eq!(fetched.generations, vec![None; 4]);
    for _ in 0..3 {
        server.restart();
        rt.block_on(ops.ensure_generations(&keys)).unwrap();
        server.restart();
        rt.block_on(ops.bump(&keys)).unwrap();
        server.restart();
        rt.block_on(ops.put_entry(entry, b"rows", MINUTE)).unwrap();
    }

    server.kill();
    let started = Instant::now();
    let results = rt.block_on(async {
        vec![
            ops.fetch_many(&[entry], &keys).await.map(drop),
            ops.ensure_generations(&keys).await.map(drop),
            ops.put_entry(entry, b"x", MINUTE).await,
            ops.bump(&keys).await,
        ]
    });
    for result in results {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        assert_eq!(error.store(), "memcached");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let created = rt.block_on(ops.ensure_generations(&keys)).unwrap();
    rt.block_on(ops.put_entry(entry, b"again", MINUTE)).unwrap();
    let fetched = store.fetch(entry, &keys).unwrap();
    assert_eq!(fetched.entry.as_deref(), Some(&b"again"[..]));
    assert_eq!(fetched.generations, some(&created));
}

/// Poll `future` up to `polls` times with a waker that does nothing, letting the runtime run
/// (and its I/O driver deliver events) between polls, then drop it where it stands. Whether it
/// finished first.
async fn poll_then_drop<T>(
    future: Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + '_>>,
    polls: usize,
    sleep: bool,
) -> bool {
    let mut future = future;
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
            result.unwrap();
            return true;
        }
        if sleep {
            tokio::time::sleep(Duration::from_micros(300)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    false
}

/// Distinct keys holding distinct values, to check that every answer goes to its own request.
struct Witness {
    entries: Vec<Key>,
    values: Vec<Vec<u8>>,
    generations: Vec<Key>,
    snapshot: Vec<u64>,
}

impl Witness {
    fn new(store: &MemcachedStore) -> Witness {
        let entries = entries(12);
        let values: Vec<Vec<u8>> = (0..entries.len())
            .map(|i| format!("witness {i} {}", unique_hash()).into_bytes())
            .collect();
        for (key, value) in entries.iter().zip(&values) {
            store.put_entry(*key, value, MINUTE).unwrap();
        }
        let generations = generations(6);
        let snapshot = store.ensure_generations(&generations).unwrap();
        Witness {
            entries,
            values,
            generations,
            snapshot,
        }
    }

    /// Several reads of varying subsets on the same store: each gets its own values.
    async fn check(&self, store: &MemcachedStore) {
        let ops = store.async_ops_for_tests();
        for split in [0, 1, 5, 12] {
            let fetched = ops
                .fetch_many(&self.entries[split..], &self.generations)
                .await
                .unwrap();
            let expected: Vec<Option<Vec<u8>>> =
                self.values[split..].iter().cloned().map(Some).collect();
            assert_eq!(fetched.entries, expected, "split {split}");
            assert_eq!(fetched.generations, some(&self.snapshot), "split {split}");
        }
        assert_eq!(
            ops.ensure_generations(&self.generations).await.unwrap(),
            self.snapshot
        );
    }
}

/// A large value, distinct for each `n`: writing it may take several polls.
fn put_value(n: usize, len: usize) -> Vec<u8> {
    let mut value = format!("put {n} ").into_bytes();
    value.resize(len, (n % 251) as u8);
    value
}

/// Whether `got` is nothing or one of the values written whole: never a part of one.
fn whole_or_nothing(got: Option<Vec<u8>>, written: &[Vec<u8>]) {
    if let Some(got) = got {
        assert!(
            written.contains(&got),
            "a value that was never written whole: {} bytes, {:?}...",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(16)])
        );
    }
}

#[test]
fn futures_dropped_at_every_await_point_leave_no_socket_out_of_step() {
    let server = MemcachedProcess::spawn();
    let store = store(&server);
    let ops = store.async_ops_for_tests();
    let witness = Witness::new(&store);
    let rt = runtime();
    let bump_keys = generations(4);
    store.ensure_generations(&bump_keys).unwrap();
    let put_key = Key::entry(unique_hash());
    let mut written = Vec::new();
    for kind in ["fetch", "ensure", "put", "bump"] {
        for sleep in [false, true] {
            // Drop after 1 poll, 2 polls, ... until the operation finishes on its own: every
            // await point it reaches is a place where it was dropped once.
            for polls in 1.. {
                assert!(polls < 500, "{kind} never finished");
                let new_generations = generations(3);
                written.push(put_value(written.len(), 256 * 1024));
                let value = written.last().unwrap().clone();
                let finished = rt.block_on(async {
                    let finished = match kind {
                        "fetch" => {
                            poll_then_drop(
                                ops.fetch_many(&witness.entries, &witness.generations),
                                polls,
                                sleep,
                            )
                            .await
                        }
                        "ensure" => {
                            poll_then_drop(ops.ensure_generations(&new_generations), polls, sleep)
                                .await
                        }
                        "put" => {
                            poll_then_drop(ops.put_entry(put_key, &value, MINUTE), polls, sleep)
                                .await
                        }
                        _ => poll_then_drop(ops.bump(&bump_keys), polls, sleep).await,
                    };
                    // The same store, right after: every answer is its own request's.
                    witness.check(&store).await;
                    finished
                });
                whole_or_nothing(store.fetch(put_key, &[]).unwrap().entry, &written);
                let ensured = rt
                    .block_on(ops.ensure_generations(&new_generations))
                    .unwrap();
                assert_eq!(store.ensure_generations(&new_generations).unwrap(), ensured);
                let bumped = store.fetch(Key::entry(0), &bump_keys).unwrap().generations;
                assert!(bumped.iter().all(Option::is_some), "{bumped:?}");
                if finished {
                    break;
                }
            }
        }
    }
}

#[test]
fn futures_dropped_while_the_server_is_paused_leave_no_socket_out_of_step() {
    let mut server = MemcachedProcess::spawn();
    // A long I/O timeout: the futures are cut by the test, not by the store.
    let store = MemcachedStore::builder()
        .servers([server.addr()])
        .io_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ops = store.async_ops_for_tests();
    let witness = Witness::new(&store);
    let rt = runtime();
    let bump_keys = generations(4);
    store.ensure_generations(&bump_keys).unwrap();
    let mut written = Vec::new();
    for cut in [1, 10, 50] {
        for kind in ["fetch", "ensure", "put", "bump"] {
            // A socket in the pool, to be taken by the operation that is cut.
            rt.block_on(witness.check(&store));
            let new_generations = generations(3);
            let put_key = Key::entry(unique_hash());
            // Larger than the socket buffers of a server that does not read: cut mid-write.
            written.push(put_value(written.len(), 900 * 1024));
            let value = written.last().unwrap().clone();
            server.pause();
            let cut_short = rt.block_on(async {
                let cut = Duration::from_millis(cut);
                match kind {
                    "fetch" => tokio::time::timeout(
                        cut,
                        ops.fetch_many(&witness.entries, &witness.generations),
                    )
                    .await
                    .is_err(),
                    "ensure" => tokio::time::timeout(cut, ops.ensure_generations(&new_generations))
                        .await
                        .is_err(),
                    "put" => tokio::time::timeout(cut, ops.put_entry(put_key, &value, MINUTE))
                        .await
                        .is_err(),
                    _ => tokio::time::timeout(cut, ops.bump(&bump_keys))
                        .await
                        .is_err(),
                }
            });
            assert!(cut_short, "{kind} finished against a paused server");
            server.resume();
            rt.block_on(witness.check(&store));
            whole_or_nothing(store.fetch(put_key, &[]).unwrap().entry, &written);
            let ensured = rt
                .block_on(ops.ensure_generations(&new_generations))
                .unwrap();
            assert_eq!(store.ensure_generations(&new_generations).unwrap(), ensured);
        }
    }
}
