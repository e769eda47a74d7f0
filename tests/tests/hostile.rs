//! Hostile store content (issue 11): whatever bytes the store holds, a read
//! neither crashes nor serves anything but the database's rows, and with a
//! secret nobody without it can choose the rows served.
//!
//! The entries here are crafted as an attacker with write access to the
//! store would: a real entry's header, a payload of their choice, and the
//! checksum recomputed (it is plain xxh3).

mod common;

use std::time::Duration;

use cachebot::codec::{Bincode, Codec};
use cachebot::prelude::*;
use cachebot::store::{InProcessStore, Key, MemcachedStore};
use cachebot::Stats;
use cachebot_tests::memcached_servers;
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::{caches_without_local, expect, seed, since, unique_prefix};
use diesel::prelude::*;

const SECRET: &[u8] = b"hostile-test secret: 32+ bytes long";

type Row = (i32, i32, String);

/// Caches on both stores with `secret` (or none), without the local tier
/// of decoded rows, so every hit decodes the store's bytes; for memcached,
/// also a second handle on the same servers and prefix, for the attacker's
/// raw writes.
fn caches(
    secret: Option<&[u8]>,
    ttl: Duration,
) -> Vec<(&'static str, Cache, Option<MemcachedStore>)> {
    let prefix = unique_prefix();
    let mc = || {
        MemcachedStore::builder()
            .servers(memcached_servers())
            .prefix(prefix.clone())
            .build()
            .unwrap()
    };
    let build = |b: cachebot::CacheBuilder<Bincode>| {
        let b = b.local_tier(0).write_behind(false).ttl(ttl);
        match secret {
            Some(s) => b.secret(s),
            None => b,
        }
        .build()
        .unwrap()
    };
    vec![
        (
            "in-process",
            build(Cache::builder().store(InProcessStore::new())),
            None,
        ),
        ("memcached", build(Cache::builder().store(mc())), Some(mc())),
    ]
}

/// The entry's generation count and the length of its header (everything
/// before the payload).
fn header_len(entry: &[u8]) -> usize {
    let n = usize::from(u16::from_le_bytes([entry[2], entry[3]]));
    let sealed = entry[1] == 0x02;
    4 + 8 * n + 8 + if sealed { 32 } else { 0 }
}

/// A checksummed entry with the generations of `real` and `payload`, its
/// checksum recomputed.
fn forge(real: &[u8], payload: &[u8]) -> Vec<u8> {
    let n = usize::from(u16::from_le_bytes([real[2], real[3]]));
    let mut out = vec![0xCB, 0x01];
    out.extend_from_slice(&real[2..4 + 8 * n]);
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload: one `(i32, i32, String)` row whose string claims
/// `len` bytes.
fn crafted_payload(len: u64) -> Vec<u8> {
    let mut payload = vec![0x01, 0x02, 0x02, 0xFD];
    payload.extend_from_slice(&len.to_le_bytes());
    payload
}

/// Ann's or Bob's photos as `(id, user_id, title)`.
type Photos = diesel::helper_types::Order<
    diesel::helper_types::Filter<
        diesel::helper_types::Select<photos::table, (photos::id, photos::user_id, photos::title)>,
        diesel::helper_types::Eq<photos::user_id, i32>,
    >,
    photos::id,
>;

fn query(user: i32) -> impl Fn() -> Photos {
    move || {
        photos::table
            .select((photos::id, photos::user_id, photos::title))
            .filter(photos::user_id.eq(user))
            .order(photos::id)
    }
}

fn entry_key<U: 'static>(cache: &Cache, conn: &mut PgConnection, user: i32) -> Key {
    query(user)()
        .cache(cache)
        .explain_on::<_, U>(conn)
        .unwrap()
        .entry
        .unwrap()
}

/// Plant `bytes` as the entry, read, and return the rows and what the
/// counters saw.
fn read_planted(
    cache: &Cache,
    conn: &mut PgConnection,
    user: i32,
    bytes: &[u8],
) -> (Vec<Row>, Stats) {
    let key = entry_key::<Row>(cache, conn, user);
    cache
        .store()
        .put_entry(key, bytes, Duration::from_secs(60))
        .unwrap();
    let before = cache.stats();
    let rows: Vec<Row> = query(user)().cache(cache).load(conn).unwrap();
    (rows, since(cache, before))
}

#[test]
fn crafted_lengths_are_misses_not_aborts() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let user = seed.ann.id;
    let truth: Vec<Row> = query(user)().load(&mut conn).unwrap();
    for (store, cache) in caches_without_local() {
        let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
        let key = entry_key::<Row>(&cache, &mut conn, user);
        let good = cache.store().fetch(key, &[]).unwrap().entry.unwrap();
        for len in [1u64 << 40, 1 << 60, u64::MAX] {
            let (rows, d) = read_planted(
                &cache,
                &mut conn,
                user,
                &forge(&good, &crafted_payload(len)),
            );
            assert_eq!(rows, truth, "{store} {len}");
            assert_eq!(
                (d.hits, d.misses, d.decode_errors),
                (0, 1, 1),
                "{store} {len}: {d:?}"
            );
            // The miss stored a good entry again.
            let b = cache.stats();
            let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
            expect(&cache, b, 1, 0, store);
        }
    }
}

#[test]
fn without_a_secret_the_store_is_trusted_like_the_database() {
    // The threat model, stated as a test: whoever writes to the store
    // chooses the rows of a cache without a secret.
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let user = seed.ann.id;
    for (store, cache, _) in caches(None, Duration::from_secs(60)) {
        let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
        let good = cache
            .store()
            .fetch(entry_key::<Row>(&cache, &mut conn, user), &[])
            .unwrap()
            .entry
            .unwrap();
        let evil = vec![(666, user, "chosen by the attacker".to_owned())];
        let forged = forge(&good, &Bincode.encode(&evil).unwrap());
        let (rows, d) = read_planted(&cache, &mut conn, user, &forged);
        assert_eq!(rows, evil, "{store}");
        assert_eq!((d.hits, d.forged), (1, 0), "{store}: {d:?}");
    }
}

#[test]
fn with_a_secret_forged_entries_are_misses() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let user = seed.ann.id;
    let truth: Vec<Row> = query(user)().load(&mut conn).unwrap();
    for (store, cache, _) in caches(Some(SECRET), Duration::from_secs(60)) {
        let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
        let key = entry_key::<Row>(&cache, &mut conn, user);
        let good = cache.store().fetch(key, &[]).unwrap().entry.unwrap();
        assert_eq!(good[..2], [0xCB, 0x02], "{store}: entries are sealed");
        let evil = vec![(666, user, "chosen by the attacker".to_owned())];
        let evil = Bincode.encode(&evil).unwrap();
        let sealed_header = &good[..header_len(&good)];
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            // A checksummed entry: what a cache without the secret writes.
            ("checksummed, attacker rows", forge(&good, &evil)),
            // The real sealed header (MAC included) on other rows.
            (
                "sealed header, attacker rows",
                [sealed_header, &evil].concat(),
            ),
            // The crafted lengths, under the real seal.
            (
                "sealed header, crafted length",
                [sealed_header, &crafted_payload(u64::MAX)].concat(),
            ),
        ];
        // The real entry with a later expiry written in.
        let mut later = good.clone();
        let at = header_len(&good) - 40;
        later[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        cases.push(("expiry moved", later));
        for (what, bytes) in cases {
            let (rows, d) = read_planted(&cache, &mut conn, user, &bytes);
            assert_eq!(rows, truth, "{store} {what}");
            assert_eq!(
                (d.hits, d.misses, d.forged, d.decode_errors),
                (0, 1, 1, 0),
                "{store} {what}: {d:?}"
            );
        }
        // The real entry is still served.
        let (rows, d) = read_planted(&cache, &mut conn, user, &good);
        assert_eq!(rows, truth, "{store}");
        assert_eq!((d.hits, d.forged), (1, 0), "{store}: {d:?}");
    }
}

#[derive(Debug, PartialEq, Queryable, serde::Serialize, serde::Deserialize, Clone)]
struct Other {
    id: i32,
    user_id: i32,
    title: String,
}

#[test]
fn with_a_secret_entries_of_another_query_or_type_are_misses() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let (ann, bob) = (seed.ann.id, seed.bob.id);
    let truth: Vec<Row> = query(ann)().load(&mut conn).unwrap();
    for (store, cache, _) in caches(Some(SECRET), Duration::from_secs(60)) {
        // The same query read as another result type: the same generations,
        // the same payload layout, another entry key.
        let _: Vec<Other> = query(ann)().cache(&cache).load(&mut conn).unwrap();
        let other_type = cache
            .store()
            .fetch(entry_key::<Other>(&cache, &mut conn, ann), &[])
            .unwrap()
            .entry
            .unwrap();
        // Another query's entry (bob's photos).
        let _: Vec<Row> = query(bob)().cache(&cache).load(&mut conn).unwrap();
        let other_query = cache
            .store()
            .fetch(entry_key::<Row>(&cache, &mut conn, bob), &[])
            .unwrap()
            .entry
            .unwrap();
        for (what, bytes) in [("another type", other_type), ("another query", other_query)] {
            let (rows, d) = read_planted(&cache, &mut conn, ann, &bytes);
            assert_eq!(rows, truth, "{store} {what}");
            // Bob's entry has other generations: stale before its MAC is
            // looked at; the other type's has the same ones: forged.
            let forged = u64::from(what == "another type");
            assert_eq!(
                (d.hits, d.misses, d.forged),
                (0, 1, forged),
                "{store} {what}: {d:?}"
            );
        }
    }
}

#[test]
fn with_a_secret_forged_generations_bring_in_no_forged_rows() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let user = seed.ann.id;
    let truth: Vec<Row> = query(user)().load(&mut conn).unwrap();
    for (store, cache, raw) in caches(Some(SECRET), Duration::from_secs(60)) {
        let Some(raw) = raw else { continue };
        let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
        let key = entry_key::<Row>(&cache, &mut conn, user);
        let good = cache.store().fetch(key, &[]).unwrap().entry.unwrap();
        // The attacker sets every generation of the query to a value of
        // their choice and plants entries for that snapshot: checksummed
        // with their rows, and the real sealed entry with the generations
        // rewritten.
        let explain = query(user)()
            .cache(&cache)
            .explain_on::<_, Row>(&mut conn)
            .unwrap();
        let chosen: u64 = 4242;
        for key in &explain.generations {
            raw.raw_set(*key, chosen.to_string().as_bytes()).unwrap();
        }
        let n = usize::from(u16::from_le_bytes([good[2], good[3]]));
        assert_eq!(n, explain.generations.len());
        let mut rewritten = good.clone();
        for i in 0..n {
            rewritten[4 + 8 * i..12 + 8 * i].copy_from_slice(&chosen.to_le_bytes());
        }
        let evil = Bincode
            .encode(&vec![(666, user, "chosen".to_owned())])
            .unwrap();
        for (what, bytes) in [
            ("checksummed", forge(&rewritten, &evil)),
            ("sealed, generations rewritten", rewritten.clone()),
        ] {
            let (rows, d) = read_planted(&cache, &mut conn, user, &bytes);
            assert_eq!(rows, truth, "{store} {what}");
            assert_eq!(
                (d.hits, d.misses, d.forged),
                (0, 1, 1),
                "{store} {what}: {d:?}"
            );
        }
    }
}

#[test]
fn with_a_secret_a_replayed_entry_is_not_served_past_its_ttl() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let user = seed.ann.id;
    for (store, cache, _) in caches(Some(SECRET), Duration::from_secs(1)) {
        let _: Vec<Row> = query(user)().cache(&cache).load(&mut conn).unwrap();
        let key = entry_key::<Row>(&cache, &mut conn, user);
        let recorded = cache.store().fetch(key, &[]).unwrap().entry.unwrap();
        // Expiry is in whole seconds: two of them pass.
        std::thread::sleep(Duration::from_millis(2100));
        let (rows, d) = read_planted(&cache, &mut conn, user, &recorded);
        assert_eq!(
            rows,
            query(user)().load::<Row>(&mut conn).unwrap(),
            "{store}"
        );
        assert_eq!(
            (d.hits, d.misses, d.forged),
            (0, 1, 0),
            "{store}: an expired entry is a plain miss: {d:?}"
        );
    }
}

#[test]
fn too_short_secrets_are_refused() {
    for short in [&b""[..], b"0123456789abcde"] {
        let error = Cache::builder().secret(short).build().err().unwrap();
        assert!(error.to_string().contains("at least 16 bytes"), "{error}");
    }
    assert!(Cache::builder().secret([7u8; 16]).build().is_ok());
}
