//! Shared by the integration tests: caches on every store, stat deltas, seed data.
#![allow(dead_code)]

use cachebot::store::{InProcessStore, MemcachedStore};
use cachebot::{Cache, Stats};
use cachebot_tests::memcached_servers;
use cachebot_tests::models::{NewPhoto, NewUser, Photo, User};
use cachebot_tests::schema::{photos, users};
use diesel::prelude::*;

/// A key prefix no other test uses, so tests sharing a memcached never see
/// each other's generations.
pub fn unique_prefix() -> String {
    format!("t{:016x}:", fastrand::u64(..))
}

pub fn memcached_cache(servers: &[String]) -> Cache {
    let store = MemcachedStore::builder()
        .servers(servers.iter().cloned())
        .prefix(unique_prefix())
        .build()
        .expect("memcached store");
    // Entries stored inline (write-behind is on by default for memcached):
    // the tests count hits and misses read by read.
    Cache::builder()
        .store(store)
        .model::<Photo>()
        .write_behind(false)
        .build()
        .expect("cache")
}

/// One cache per store kind: the in-process store and the shared memcached servers.
pub fn caches() -> Vec<(&'static str, Cache)> {
    vec![
        (
            "in-process",
            Cache::builder()
                .store(InProcessStore::new())
                .model::<Photo>()
                .build()
                .expect("cache"),
        ),
        ("memcached", memcached_cache(&memcached_servers())),
    ]
}

/// Like [`caches`], without the local tier of decoded results: for tests
/// of what the store itself holds (corrupt entries, sizes).
pub fn caches_without_local() -> Vec<(&'static str, Cache)> {
    let mc = MemcachedStore::builder()
        .servers(memcached_servers())
        .prefix(unique_prefix())
        .build()
        .expect("memcached store");
    vec![
        (
            "in-process",
            Cache::builder().local_tier(0).build().expect("cache"),
        ),
        (
            "memcached",
            Cache::builder()
                .store(mc)
                .local_tier(0)
                .write_behind(false)
                .build()
                .expect("cache"),
        ),
    ]
}

/// What changed in the counters since `before`.
pub fn since(cache: &Cache, before: Stats) -> Stats {
    cache.stats() - before
}

/// Asserts the hits and misses since `before`, and returns a new baseline.
#[track_caller]
pub fn expect(cache: &Cache, before: Stats, hits: u64, misses: u64, what: &str) -> Stats {
    let d = since(cache, before);
    assert_eq!(
        (d.hits, d.misses),
        (hits, misses),
        "{what}: hits/misses, full delta {d:?}"
    );
    cache.stats()
}

/// Wait (at most 10 s) until the background delivery has handed every
/// undelivered invalidation of `cache` to its store.
pub fn wait_delivered(cache: &Cache) {
    let start = std::time::Instant::now();
    while cache.pending_invalidations() > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "invalidations still undelivered after 10 s: {:?}",
            cache.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub struct Seed {
    pub ann: User,
    pub bob: User,
    pub photos: Vec<Photo>,
}

/// Two users; ann has photos with status 1 and 2, bob has one with status 2.
pub fn seed(conn: &mut PgConnection) -> Seed {
    let user = |conn: &mut PgConnection, name: &str| -> User {
        diesel::insert_into(users::table)
            .values(NewUser {
                name: name.into(),
                email: None,
            })
            .get_result(conn)
            .expect("insert user")
    };
    let ann = user(conn, "ann");
    let bob = user(conn, "bob");
    let rows = [
        (ann.id, 2, "beach"),
        (ann.id, 2, "dune"),
        (ann.id, 1, "draft"),
        (bob.id, 2, "city"),
    ];
    let photos = rows
        .iter()
        .map(|&(user_id, status, title)| {
            diesel::insert_into(photos::table)
                .values(NewPhoto {
                    user_id,
                    status,
                    title: title.into(),
                    score: 1.5,
                    deleted_at: None,
                })
                .get_result(conn)
                .expect("insert photo")
        })
        .collect();
    Seed { ann, bob, photos }
}
