//! The memcached store against private memcached processes (skipped without a binary).

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::thread;
use std::time::Instant;

use memcache::exp::Meta;

use super::*;
use crate::store::Fetched;

const MINUTE: Duration = Duration::from_secs(60);

/// The memcached binary: `$MEMCACHED_BIN` when it names a file, else
/// `memcached` on `PATH`.
fn memcached_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("MEMCACHED_BIN").map(PathBuf::from) {
        if bin.is_file() {
            return Some(bin);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("memcached"))
        .find(|bin| bin.is_file())
}

/// A private memcached on a free loopback port, killed on drop.
struct Memcached {
    child: Child,
    port: u16,
    stopped: bool,
}

impl Memcached {
    /// `None` (after printing a notice) when there is no binary.
    fn spawn() -> Option<Memcached> {
        let Some(bin) = memcached_bin() else {
            eprintln!("skipping: no memcached binary (set MEMCACHED_BIN or put memcached on PATH)");
            return None;
        };
        for _ in 0..5 {
            if let Some(server) = Memcached::try_spawn(&bin) {
                return Some(server);
            }
        }
        panic!("could not start {}", bin.display());
    }

    fn try_spawn(bin: &Path) -> Option<Memcached> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        // `-u root` is required when running as root and ignored otherwise.
        let child = Command::new(bin)
            .args(["-u", "root", "-l", "127.0.0.1", "-U", "0", "-m", "64", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = Memcached {
            child,
            port,
            stopped: false,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                return None; // Lost the port race: try another.
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Some(server);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn store(&self) -> MemcachedStore {
        MemcachedStore::connect([self.addr()]).unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGSTOP, then wait until every thread is actually stopped: the
    /// signal is delivered asynchronously, and a worker thread could
    /// still answer one more request.
    fn pause(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        let all_stopped = || -> Option<bool> {
            let mut stopped = true;
            for task in std::fs::read_dir(&tasks).ok()? {
                let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                // The state follows the parenthesised command name.
                let state = stat.rsplit(')').next()?.split_whitespace().next()?;
                stopped &= state == "T" || state == "t";
            }
            Some(stopped)
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match all_stopped() {
                Some(true) => return,
                Some(false) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                // No /proc (or too slow): give the signal a moment.
                _ => return thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn resume(&mut self) {
        self.signal("-CONT");
        self.stopped = false;
    }

    fn kill(&mut self) {
        if self.stopped {
            self.resume();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

macro_rules! memcached_or_skip {
    () => {
        match Memcached::spawn() {
            Some(server) => server,
            None => return,
        }
    };
}

/// A port nothing listens on.
fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

/// The remaining TTL memcached reports for a key (-1: never expires).
fn server_ttl(store: &MemcachedStore, key: Key) -> Option<i64> {
    let result = store
        .client
        .run(Get::new(store.render_key(key)).meta(Meta::NONE.ttl()))
        .unwrap();
    if result.hit() {
        result.item.ttl
    } else {
        None
    }
}

fn unique_hash() -> u128 {
    fastrand::u128(..)
}

// ----- no server needed -------------------------------------------------

#[test]
fn key_rendering_and_length_bound() {
    let store = MemcachedStore::connect([dead_addr()]).unwrap();
    assert_eq!(
        store.render_key(Key::entry(1)),
        "cb:e00000000000000000000000000000001"
    );
    assert_eq!(
        store.render_key(Key::generation(u128::MAX)),
        format!("cb:g{}", "f".repeat(32))
    );
    // The same text as padded lowercase hex, whatever the hash.
    for i in 0..1000u128 {
        let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) >> (i % 128);
        assert_eq!(
            store.render_key(Key::entry(hash)),
            format!("cb:e{hash:032x}")
        );
    }

    let longest = "~".repeat(MemcachedStore::MAX_PREFIX_LEN);
    let store = MemcachedStore::builder()
        .servers([dead_addr()])
        .prefix(longest.clone())
        .build()
        .unwrap();
    for key in [
        Key::entry(u128::MAX),
        Key::generation(u128::MAX),
        Key::entry(0),
    ] {
        let rendered = store.render_key(key);
        assert_eq!(rendered.len(), MemcachedStore::MAX_PREFIX_LEN + 33);
        assert!(
            rendered.len() <= MAX_KEY_LENGTH,
            "{} > {MAX_KEY_LENGTH}",
            rendered.len()
        );
        assert!(rendered.starts_with(&longest));
        assert!(rendered.bytes().all(|byte| byte.is_ascii_graphic()));
    }

    let bare = MemcachedStore::builder()
        .servers([dead_addr()])
        .prefix("")
        .build()
        .unwrap();
    assert_eq!(
        bare.render_key(Key::generation(0x10)),
        "g00000000000000000000000000000010"
    );
}

#[test]
fn builder_validation() {
    let server = dead_addr();
    let ok = || MemcachedStore::builder().servers([server.clone()]);
    assert!(ok().build().is_ok());
    assert!(MemcachedStore::builder().build().is_err());
    assert!(MemcachedStore::connect(Vec::<String>::new()).is_err());
    assert!(ok().prefix("~".repeat(64)).build().is_ok());
    for prefix in [
        "~".repeat(65),
        "a b".into(),
        "tab\t".into(),
        "nl\n".into(),
        "é:".into(),
        "\u{7f}".into(),
    ] {
        let error = ok().prefix(prefix.clone()).build().unwrap_err();
        assert!(error.to_string().contains("prefix"), "{prefix:?}: {error}");
    }
    // Unresolvable addresses (no DNS involved).
    for bad in ["127.0.0.1", "127.0.0.1:notaport", "", "127.0.0.1:99999"] {
        let error = MemcachedStore::connect([bad]).unwrap_err();
        assert!(error.to_string().contains("resolve"), "{bad:?}: {error}");
    }
    assert!(ok().io_timeout(Duration::ZERO).build().is_err());
    assert!(ok().connect_timeout(Duration::ZERO).build().is_err());
    assert!(ok().max_connections(0).build().is_err());
    assert!(ok().max_connections(4).max_idle(0).build().is_ok());
    assert!(MemcachedStore::connect([server.clone(), server.clone()]).is_err());

    let store = ok().max_value_size(1234).build().unwrap();
    assert_eq!(store.max_value_size(), 1234);
    assert_eq!(store.name(), "memcached");
    assert_eq!(ok().build().unwrap().max_value_size(), 1024 * 1024 - 1024);
    assert!(format!("{store:?}").contains(&server));
}

#[test]
fn generation_parsing() {
    assert_eq!(parse_generation(b"123"), Some(123));
    assert_eq!(parse_generation(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_generation(b"7  "), Some(7));
    assert_eq!(parse_generation(b"007"), Some(7));
    for bad in [
        &b""[..],
        b"0",
        b"000",
        b" ",
        b"abc",
        b"12a",
        b"+5",
        b"-1",
        b" 5",
        b"1 2",
        b"18446744073709551616",
    ] {
        assert_eq!(
            parse_generation(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn ttl_rounding() {
    assert_eq!(entry_ttl_secs(Duration::ZERO), 1);
    assert_eq!(entry_ttl_secs(Duration::from_millis(1)), 1);
    assert_eq!(entry_ttl_secs(Duration::from_millis(1500)), 2);
    assert_eq!(entry_ttl_secs(Duration::from_secs(300)), 300);
    assert_eq!(
        entry_ttl_secs(Duration::from_secs(40 * 24 * 3600)),
        MAX_ENTRY_TTL_SECS
    );
    assert_eq!(entry_ttl_secs(Duration::MAX), MAX_ENTRY_TTL_SECS);
}

#[test]
fn vivify_wire_format_puts_never_expire_last() {
    // The server applies N then T in wire order; T0 must come after N1
    // for a created generation to never expire.
    let command = memcache::exp::Operation::prepare(&vivify_op("cb:gk", 42)).unwrap();
    assert_eq!(
        command.encode().unwrap(),
        b"ma cb:gk v D0 N1 J42 T0\r\n".to_vec()
    );
}

#[test]
fn error_kinds() {
    let io = |kind| ClientError::Io(io::Error::from(kind));
    assert_eq!(
        error_kind(&ClientError::Timeout { key: b"k".to_vec() }),
        StoreErrorKind::Timeout
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::TimedOut)),
        StoreErrorKind::Timeout
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::ConnectionRefused)),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::UnexpectedEof)),
        StoreErrorKind::Unavailable
    );
    let ambiguous = ClientError::Ambiguous {
        key: b"k".to_vec(),
        source: Box::new(ClientError::Timeout { key: b"k".to_vec() }),
    };
    assert_eq!(error_kind(&ambiguous), StoreErrorKind::Timeout);
    assert_eq!(
        error_kind(&ClientError::Protocol("x".into())),
        StoreErrorKind::Protocol
    );
    assert_eq!(
        error_kind(&ClientError::Server("out of memory".into())),
        StoreErrorKind::Protocol
    );
    assert_eq!(
        error_kind(&ClientError::Server("object too large for cache".into())),
        StoreErrorKind::Rejected
    );
    assert_eq!(
        error_kind(&ClientError::Rejected("bad".into())),
        StoreErrorKind::Rejected
    );
    assert_eq!(
        error_kind(&ClientError::Usage("key too long")),
        StoreErrorKind::Rejected
    );
    let rejected = ClientError::Ambiguous {
        key: b"k".to_vec(),
        source: Box::new(ClientError::Rejected("non-numeric".into())),
    };
    assert!(is_client_error(&rejected));
    assert!(!is_client_error(&ambiguous));
}

// ----- against a real memcached -----------------------------------------

#[test]
fn fetch_miss_then_hit() {
    let server = memcached_or_skip!();
    let store = server.store();
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
    let server = memcached_or_skip!();
    let store = server.store();
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
            server_ttl(&store, *key),
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
    let server = memcached_or_skip!();
    let store = server.store();
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
    let server = memcached_or_skip!();
    let store = server.store();
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
    assert!(parse_generation(&raw).is_some());
    assert_eq!(server_ttl(&store, fresh), Some(-1));
    store.bump(&[]).unwrap();
}

#[test]
fn entry_ttl_is_rounded_up_and_expires() {
    let server = memcached_or_skip!();
    let store = server.store();
    let long = Key::entry(unique_hash());
    store
        .put_entry(long, b"x", Duration::from_millis(1500))
        .unwrap();
    assert_eq!(server_ttl(&store, long), Some(2));
    let capped = Key::entry(unique_hash());
    store
        .put_entry(capped, b"x", Duration::from_secs(40 * 24 * 3600))
        .unwrap();
    let ttl = server_ttl(&store, capped).unwrap();
    assert!((i64::from(MAX_ENTRY_TTL_SECS) - 5..=i64::from(MAX_ENTRY_TTL_SECS)).contains(&ttl));

    // 10 ms becomes 1 s: present now, gone within memcached's
    // one-second clock granularity.
    let short = Key::entry(unique_hash());
    store
        .put_entry(short, b"x", Duration::from_millis(10))
        .unwrap();
    assert!(matches!(server_ttl(&store, short), Some(0..=1)));
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
    let server = memcached_or_skip!();
    let store = server.store();
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
        assert_eq!(server_ttl(&store, *key), Some(-1));
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
    let server = memcached_or_skip!();
    let store = server.store();
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
    let first = memcached_or_skip!();
    let second = memcached_or_skip!();
    let both = MemcachedStore::connect([first.addr(), second.addr()]).unwrap();
    let only_first = first.store();
    let only_second = second.store();

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
    let mut server = memcached_or_skip!();
    let store = server.store();
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
    let mut server = memcached_or_skip!();
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
