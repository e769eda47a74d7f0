//! Bad input: huge binds, very long IN lists, SQL the parser does not
//! understand, wide rows, binary values. Clear behaviour, no panic, nothing
//! stale.

mod common;

use cachebot::prelude::*;
use cachebot::Dependency;
use cachebot_tests::models::{Kind, Photo, User};
use cachebot_tests::schema::{kinds, photos, users};
use cachebot_tests::TestDb;
use common::{caches, expect, seed};
use diesel::pg::Pg;
use diesel::prelude::*;

#[test]
fn huge_binds_give_short_keys_and_are_cached() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let long = "x".repeat(100_000);
    diesel::insert_into(users::table)
        .values(users::name.eq(&long))
        .execute(&mut conn)
        .unwrap();
    for (store, cache) in caches() {
        let q = || users::table.filter(users::name.eq(long.clone()));
        let b = cache.stats();
        let a: Vec<User> = q().cache(&cache).load(&mut conn).unwrap();
        let c: Vec<User> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 1, 1, store);
        assert_eq!(a, c);
        assert_eq!(a[0].name.len(), 100_000);
    }
    // memcached's 250-byte key limit is never reached: keys are hashes.
    let store = cachebot::store::MemcachedStore::builder()
        .servers(cachebot_tests::memcached_servers())
        .prefix("p".repeat(64))
        .build()
        .unwrap();
    let cache = Cache::in_process();
    let explain = users::table
        .filter(users::name.eq(long))
        .cache(&cache)
        .explain::<Pg, User>()
        .unwrap();
    assert!(store.render_key(explain.entry.unwrap()).len() <= 250);
}

#[test]
fn very_long_in_lists_depend_on_the_whole_table() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let cache = Cache::in_process();
    let ids: Vec<i32> = (0..20_000)
        .chain(seed.photos.iter().map(|p| p.id))
        .collect();
    let q = || {
        photos::table
            .filter(photos::id.eq_any(ids.clone()))
            .order(photos::id)
    };
    let e = q().cache(&cache).explain::<Pg, Photo>().unwrap();
    assert!(
        e.dependencies.contains(&Dependency::Rows("photos".into())),
        "too many values: whole table"
    );
    let b = cache.stats();
    let a: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let c: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 1, "long IN list");
    assert_eq!(a, c);
    assert_eq!(a.len(), 4);
    // Any photo write reaches it.
    cache.invalidate_value(photos::id, 999_999).unwrap();
    let b = cache.stats();
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 1, "a write to any photo");
}

#[test]
fn sql_the_parser_does_not_understand_is_never_cached_wrongly() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let cache = Cache::in_process();
    // A fragment sqlparser rejects (a PostgreSQL operator it does not know),
    // around a table the fallback scan still finds.
    let q = || {
        photos::table
            .select(photos::id)
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "photos.title OPERATOR(pg_catalog.~~) 'b%'",
            ))
            .order(photos::id)
    };
    let e = q().cache(&cache).explain::<Pg, i32>().unwrap();
    // Either refused, or depending on the table it reads.
    assert!(
        e.uncacheable.is_some() || e.dependencies.contains(&Dependency::Table("photos".into())),
        "{e:?}"
    );
    let a: Vec<i32> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(a, q().load::<i32>(&mut conn).unwrap());
    let mut writer = db.conn();
    cache.instrument(&mut writer).unwrap();
    diesel::update(photos::table)
        .set(photos::title.eq("beach again"))
        .execute(&mut writer)
        .unwrap();
    let after: Vec<i32> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(after, q().load::<i32>(&mut conn).unwrap(), "never stale");
}

#[test]
fn wide_rows_and_binary_values_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let blob: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    diesel::insert_into(kinds::table)
        .values((
            kinds::blob.eq(&blob),
            kinds::label.eq("é\u{0}x".replace('\u{0}', "")),
            kinds::maybe.eq(None::<String>),
        ))
        .execute(&mut conn)
        .unwrap();
    for (store, cache) in caches() {
        let q = || kinds::table.filter(kinds::maybe.is_null());
        let b = cache.stats();
        let a: Vec<Kind> = q().cache(&cache).load(&mut conn).unwrap();
        let c: Vec<Kind> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 1, 1, store);
        assert_eq!(a, c);
        assert_eq!(a[0].blob.as_deref(), Some(&blob[..]));
        // Keyed on the binary value itself.
        let by_blob = || kinds::table.filter(kinds::blob.eq(blob.clone()));
        let x: Vec<Kind> = by_blob().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(x, by_blob().load::<Kind>(&mut conn).unwrap());
    }
}
