//! Cached reads end to end, against real PostgreSQL and real memcached (and
//! the in-process store): hits after misses, invalidation by generation,
//! the database as the oracle after every change, and every result shape.

mod common;

use cachebot::prelude::*;
use cachebot::Dependency;
use cachebot_tests::models::{Kind, Photo, User};
use cachebot_tests::schema::{kinds, photos, users};
use cachebot_tests::TestDb;
use common::{caches, expect, seed, since};
use diesel::dsl::{count_star, exists, max};
use diesel::prelude::*;

#[test]
fn a_second_read_is_a_hit_and_equals_the_database() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let b = cache.stats();
        let first: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        let b = expect(&cache, b, 0, 1, store);
        let second: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 1, 0, store);
        let truth: Vec<Photo> = q().load(&mut conn).unwrap();
        assert_eq!(first, truth, "{store}");
        assert_eq!(second, truth, "{store}");
        assert_eq!(truth.len(), 3);
        assert_eq!(cache.stats().stores, 1, "{store}");
    }
}

#[test]
fn in_process_results_are_kept_decoded_once_and_large_ones_as_bytes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    // A local tier of 64 KiB: one shard, so a result above ~64 KiB does not fit.
    let cache = Cache::builder()
        .store(cachebot::store::InProcessStore::new())
        .local_tier(64 * 1024)
        .build()
        .unwrap();
    let q = |user: i32| {
        photos::table
            .filter(photos::user_id.eq(user))
            .order(photos::id)
    };
    let entry = |conn: &mut PgConnection, user: i32| {
        q(user)
            .cache(&cache)
            .explain_on::<_, Photo>(conn)
            .unwrap()
            .entry
            .unwrap()
    };

    // Small: stored decoded in the local tier, no bytes in the store.
    let b = cache.stats();
    let first: Vec<Photo> = q(seed.ann.id).cache(&cache).load(&mut conn).unwrap();
    assert_eq!(since(&cache, b).stores, 1);
    assert_eq!(
        cache
            .store()
            .fetch(entry(&mut conn, seed.ann.id), &[])
            .unwrap()
            .entry,
        None
    );
    let b = expect(&cache, b, 0, 1, "small, first read");
    let again: Vec<Photo> = q(seed.ann.id).cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 0, "small, second read");
    assert_eq!(again, first);
    assert_eq!(again, q(seed.ann.id).load::<Photo>(&mut conn).unwrap());

    // Large: over the local tier's shard, so encoded into the store, and still a hit.
    let big = "z".repeat(100_000);
    for p in seed.photos.iter().filter(|p| p.user_id == seed.bob.id) {
        diesel::update(photos::table.find(p.id))
            .set(photos::title.eq(&big))
            .execute(&mut conn)
            .unwrap();
    }
    let b = cache.stats();
    let first: Vec<Photo> = q(seed.bob.id).cache(&cache).load(&mut conn).unwrap();
    assert!(first.iter().all(|p| p.title == big));
    assert_eq!(since(&cache, b).stores, 1);
    assert!(cache
        .store()
        .fetch(entry(&mut conn, seed.bob.id), &[])
        .unwrap()
        .entry
        .is_some());
    let b = expect(&cache, b, 0, 1, "large, first read");
    let again: Vec<Photo> = q(seed.bob.id).cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 0, "large, second read");
    assert_eq!(again, q(seed.bob.id).load::<Photo>(&mut conn).unwrap());

    // Both are invalidated as before.
    cache.invalidate_table("photos").unwrap();
    let b = cache.stats();
    let _: Vec<Photo> = q(seed.ann.id).cache(&cache).load(&mut conn).unwrap();
    let _: Vec<Photo> = q(seed.bob.id).cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 2, "after invalidation");
}

#[test]
fn bumping_a_value_invalidates_and_the_fresh_read_equals_the_database() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        // A write the cache is not told about yet: the next read may still be the old entry...
        diesel::update(photos::table.filter(photos::id.eq(seed.photos[0].id)))
            .set(photos::title.eq(format!("renamed-{store}")))
            .execute(&mut conn)
            .unwrap();
        // ...until the write's invalidation is delivered, after which it must be fresh.
        cache
            .invalidate_value(photos::user_id, seed.ann.id)
            .unwrap();
        let b = cache.stats();
        let fresh: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        let b = expect(&cache, b, 0, 1, store);
        assert_eq!(fresh, q().load::<Photo>(&mut conn).unwrap(), "{store}");
        assert_eq!(fresh[0].title, format!("renamed-{store}"));
        let again: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 1, 0, store);
        assert_eq!(again, fresh);
    }
}

#[test]
fn invalidation_is_precise_per_value() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        // Bob's photos, another table, other columns: none can change ann's photos.
        cache
            .invalidate_value(photos::user_id, seed.bob.id)
            .unwrap();
        cache.invalidate_value(users::id, seed.ann.id).unwrap();
        cache.invalidate_table("users").unwrap();
        let b = cache.stats();
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: unrelated invalidations keep the hit"),
        );
    }
}

#[test]
fn table_and_global_invalidation_reach_every_query() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let by_user = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let all = || photos::table.order(photos::id);
        let load = |cache: &Cache, conn: &mut PgConnection| {
            let _: Vec<Photo> = by_user().cache(cache).load(conn).unwrap();
            let _: Vec<Photo> = all().cache(cache).load(conn).unwrap();
        };
        load(&cache, &mut conn);
        let b = cache.stats();
        load(&cache, &mut conn);
        let b = expect(&cache, b, 2, 0, store);
        cache.invalidate_table("photos").unwrap();
        load(&cache, &mut conn);
        let b = expect(&cache, b, 0, 2, &format!("{store}: after invalidate_table"));
        cache.invalidate_all().unwrap();
        load(&cache, &mut conn);
        let b = expect(&cache, b, 0, 2, &format!("{store}: after invalidate_all"));
        // A value bump reaches queries that depend on the whole table, too.
        cache.invalidate_value(photos::status, 99).unwrap();
        load(&cache, &mut conn);
        expect(
            &cache,
            b,
            1,
            1,
            &format!("{store}: a value bump misses only the whole-table query"),
        );
    }
}

#[test]
fn every_result_shape_is_cached() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let ann = seed.ann.id;
    for (store, cache) in caches() {
        // Read each twice: a miss then a hit, both equal to the database.
        macro_rules! twice {
            ($what:expr, $q:expr, $method:ident, $ty:ty) => {{
                let b = cache.stats();
                let a: $ty = $q.cache(&cache).$method(&mut conn).unwrap();
                let b = expect(&cache, b, 0, 1, &format!("{store}: {} (first)", $what));
                let c: $ty = $q.cache(&cache).$method(&mut conn).unwrap();
                expect(&cache, b, 1, 0, &format!("{store}: {} (second)", $what));
                let truth: $ty = $q.$method(&mut conn).unwrap();
                assert_eq!(a, truth, "{store}: {}", $what);
                assert_eq!(c, truth, "{store}: {}", $what);
                c
            }};
        }
        let n = twice!(
            "count",
            photos::table.filter(photos::user_id.eq(ann)).count(),
            get_result,
            i64
        );
        assert_eq!(n, 3);
        twice!(
            "count_star",
            photos::table.select(count_star()),
            get_result,
            i64
        );
        twice!(
            "exists",
            diesel::select(exists(photos::table.filter(photos::status.eq(1)))),
            get_result,
            bool
        );
        twice!(
            "aggregate",
            photos::table.select(max(photos::status)),
            get_result,
            Option<i32>
        );
        twice!(
            "projection",
            photos::table
                .select((photos::id, photos::title))
                .filter(photos::user_id.eq(ann))
                .order(photos::id),
            load,
            Vec<(i32, String)>
        );
        twice!(
            "join",
            photos::table
                .inner_join(users::table)
                .filter(users::name.eq("ann"))
                .order(photos::id),
            load,
            Vec<(Photo, User)>
        );
        twice!(
            "left join",
            users::table
                .left_join(photos::table)
                .filter(users::id.eq(ann))
                .order(photos::id),
            load,
            Vec<(User, Option<Photo>)>
        );
        twice!(
            "first",
            photos::table
                .filter(photos::user_id.eq(ann))
                .order(photos::id.desc()),
            first,
            Photo
        );
        twice!(
            "empty",
            photos::table.filter(photos::user_id.eq(-1)),
            load,
            Vec<Photo>
        );
        twice!(
            "boxed",
            photos::table
                .filter(photos::status.eq(2))
                .order(photos::id)
                .into_boxed(),
            load,
            Vec<Photo>
        );
        twice!(
            "eq_any",
            photos::table
                .filter(photos::id.eq_any(vec![seed.photos[0].id, seed.photos[3].id]))
                .order(photos::id),
            load,
            Vec<Photo>
        );
        twice!(
            "limit offset",
            photos::table.order(photos::id).limit(2).offset(1),
            load,
            Vec<Photo>
        );
        // "Not found" is cached like any result.
        let b = cache.stats();
        let missing = photos::table
            .find(-5)
            .cache(&cache)
            .get_result::<Photo>(&mut conn);
        assert!(
            matches!(missing, Err(diesel::result::Error::NotFound)),
            "{store}"
        );
        let missing = photos::table
            .find(-5)
            .cache(&cache)
            .get_result::<Photo>(&mut conn);
        assert!(
            matches!(missing, Err(diesel::result::Error::NotFound)),
            "{store}"
        );
        expect(&cache, b, 1, 1, &format!("{store}: not found"));
    }
}

#[test]
fn results_of_different_types_never_share_an_entry() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .select(photos::id)
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let _: Vec<i32> = q().cache(&cache).load(&mut conn).unwrap();
        // Same SQL and binds, another Rust type: its own entry, never the i32 one's bytes.
        let as_i32 = q().cache(&cache).explain::<diesel::pg::Pg, i32>().unwrap();
        let as_u32 = q().cache(&cache).explain::<diesel::pg::Pg, u32>().unwrap();
        assert_ne!(as_i32.entry, as_u32.entry, "{store}");
        assert_eq!(as_i32.dependencies, as_u32.dependencies, "{store}");
    }
}

#[test]
fn queries_with_similar_binds_get_distinct_keys() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn);
    diesel::insert_into(users::table)
        .values(&vec![users::name.eq("a, b"), users::name.eq("a")])
        .execute(&mut conn)
        .unwrap();
    for (store, cache) in caches() {
        let two: Vec<User> = users::table
            .filter(users::name.eq_any(vec!["a", "b"]))
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        let one: Vec<User> = users::table
            .filter(users::name.eq_any(vec!["a, b"]))
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            two.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["a"],
            "{store}"
        );
        assert_eq!(
            one.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
            ["a, b"],
            "{store}"
        );
        // Same SQL, bool vs int bind of the same byte pattern: distinct entries.
        let t: Vec<Kind> = kinds::table
            .filter(kinds::flag.eq(true))
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        let s: Vec<Kind> = kinds::table
            .filter(kinds::small.eq(1))
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        assert!(t.is_empty() && s.is_empty());
        assert_eq!(
            cache.stats().hits,
            0,
            "{store}: no read was served another query's entry"
        );
    }
}

#[test]
fn narrowing_keys_on_the_named_columns_only() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .filter(photos::status.eq(2))
                .order(photos::id)
        };
        let narrowed = |cache: &Cache, conn: &mut PgConnection| -> Vec<Photo> {
            q().cache(cache)
                .keyed_on(photos::user_id)
                .load(conn)
                .unwrap()
        };
        let _ = narrowed(&cache, &mut conn);
        // A status-2 photo of bob changes: the user-keyed query is untouched.
        cache.invalidate_value(photos::status, 2).unwrap();
        let b = cache.stats();
        let _ = narrowed(&cache, &mut conn);
        let b = expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: other user's status-2 photo"),
        );
        cache
            .invalidate_value(photos::user_id, seed.ann.id)
            .unwrap();
        let rows = narrowed(&cache, &mut conn);
        expect(&cache, b, 0, 1, &format!("{store}: ann's photo changed"));
        assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());

        // Narrowed to a column the query does not pin: the table is depended on whole.
        let explain = q()
            .cache(&cache)
            .keyed_on(photos::title)
            .explain::<diesel::pg::Pg, Photo>()
            .unwrap();
        assert!(
            explain
                .dependencies
                .contains(&Dependency::Rows("photos".into())),
            "{explain:?}"
        );
        let _: Vec<Photo> = q()
            .cache(&cache)
            .keyed_on(photos::title)
            .load(&mut conn)
            .unwrap();
        cache.invalidate_value(photos::id, 123_456).unwrap();
        let b = cache.stats();
        let _: Vec<Photo> = q()
            .cache(&cache)
            .keyed_on(photos::title)
            .load(&mut conn)
            .unwrap();
        expect(&cache, b, 0, 1, &format!("{store}: whole-table narrowing"));
    }
}

#[test]
fn keyed_on_rejects_things_that_are_not_columns() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::in_process();
    let err = photos::table
        .cache(&cache)
        .keyed_on(photos::id.eq(1))
        .load::<Photo>(&mut conn)
        .unwrap_err();
    assert!(
        err.to_string().contains("keyed_on expects columns"),
        "{err}"
    );
    // The crate's own error, typed, inside Diesel's.
    let diesel::result::Error::QueryBuilderError(inner) = &err else {
        panic!("not a QueryBuilderError: {err:?}");
    };
    assert!(
        matches!(
            inner.downcast_ref::<cachebot::Error>(),
            Some(cachebot::Error::Usage(
                cachebot::UsageError::NotAColumn { .. }
            ))
        ),
        "{inner:?}"
    );
}

#[test]
fn reads_inside_a_transaction_bypass_the_cache() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let b = cache.stats();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::update(photos::table.filter(photos::user_id.eq(seed.ann.id)))
                .set(photos::title.eq("uncommitted"))
                .execute(conn)?;
            let inside: Vec<Photo> = q().cache(&cache).load(conn)?;
            assert!(inside.iter().all(|p| p.title == "uncommitted"));
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        })
        .unwrap_err();
        let d = since(&cache, b);
        assert_eq!(
            (d.bypasses, d.hits, d.misses, d.stores),
            (1, 0, 0, 0),
            "{store}: {d:?}"
        );
        // Nothing uncommitted was stored: the next read is a miss with committed rows.
        let after: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(&cache, b, 0, 1, store);
        assert!(after.iter().all(|p| p.title != "uncommitted"));
    }
}

#[test]
fn queries_that_must_not_be_cached_go_to_the_database() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let cache = Cache::builder().never_cache(["users"]).build().unwrap();
    let b = cache.stats();
    // Volatile: the result changes without any write.
    let _: Vec<Photo> = photos::table
        .filter(photos::deleted_at.lt(diesel::dsl::now))
        .cache(&cache)
        .load(&mut conn)
        .unwrap();
    // No table at all.
    let _: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
        .cache(&cache)
        .get_result(&mut conn)
        .unwrap();
    // On the never-cache list, directly and through a join.
    let _: Vec<User> = users::table.cache(&cache).load(&mut conn).unwrap();
    let _: Vec<(Photo, User)> = photos::table
        .inner_join(users::table)
        .cache(&cache)
        .load(&mut conn)
        .unwrap();
    let d = since(&cache, b);
    assert_eq!(
        (d.bypasses, d.hits, d.misses, d.stores),
        (4, 0, 0, 0),
        "{d:?}"
    );
    for q in [
        photos::table
            .filter(photos::deleted_at.lt(diesel::dsl::now))
            .cache(&cache)
            .explain::<diesel::pg::Pg, Photo>()
            .unwrap(),
        users::table
            .select((users::id, users::name, users::email))
            .filter(users::id.eq(1))
            .cache(&cache)
            .explain::<diesel::pg::Pg, User>()
            .unwrap(),
    ] {
        assert!(q.uncacheable.is_some(), "{q:?}");
    }

    // The global switch.
    cache.set_enabled(false);
    let b = cache.stats();
    let _: Vec<Photo> = photos::table.cache(&cache).load(&mut conn).unwrap();
    assert_eq!(since(&cache, b).bypasses, 1);
    cache.set_enabled(true);
    let _: Vec<Photo> = photos::table.cache(&cache).load(&mut conn).unwrap();
    assert_eq!(since(&cache, b).misses, 1);
}

#[test]
fn bind_types_key_by_value_and_floats_depend_on_the_whole_table() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO kinds (small, big, flag, label, code, blob, day, at, at_tz, ratio, maybe) VALUES
         (1, 10000000000, true, 'é', 'c1', '\\x00ff', '2026-01-01', '2026-01-01 10:00', '2026-01-01 10:00+00', 0.5, NULL),
         (2, 20, false, '', 'c2', '\\x', '2026-01-02', '2026-01-02 10:00', '2026-01-02 10:00+00', 1.5, 'x')",
    )
    .execute(&mut conn)
    .unwrap();
    let cache = Cache::in_process();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let at = day.and_hms_opt(10, 0, 0).unwrap();
    macro_rules! keyed {
        ($col:expr, $filter:expr) => {{
            let e = kinds::table.filter($filter).cache(&cache).explain::<diesel::pg::Pg, Kind>().unwrap();
            assert!(
                e.dependencies.iter().any(|d| matches!(d, Dependency::Value { column, .. } if column == $col)),
                "{} should be keyed: {e:?}", $col
            );
            let b = cache.stats();
            let first: Vec<Kind> = kinds::table.filter($filter).cache(&cache).load(&mut conn).unwrap();
            let second: Vec<Kind> = kinds::table.filter($filter).cache(&cache).load(&mut conn).unwrap();
            expect(&cache, b, 1, 1, $col);
            assert_eq!(first, second);
            assert_eq!(first.len(), 1, "{}", $col);
        }};
    }
    keyed!("small", kinds::small.eq(1i16));
    keyed!("big", kinds::big.eq(10_000_000_000i64));
    keyed!("flag", kinds::flag.eq(true));
    keyed!("label", kinds::label.eq("é"));
    keyed!("code", kinds::code.eq("c1"));
    keyed!("blob", kinds::blob.eq(vec![0u8, 255]));
    keyed!("day", kinds::day.eq(day));
    keyed!("at", kinds::at.eq(at));
    keyed!("at_tz", kinds::at_tz.eq(at.and_utc()));
    keyed!("maybe", kinds::maybe.is_null());
    // Empty string and NULL are different values.
    let empty = kinds::table
        .filter(kinds::label.eq(""))
        .cache(&cache)
        .explain::<diesel::pg::Pg, Kind>()
        .unwrap();
    let null = kinds::table
        .filter(kinds::label.is_null())
        .cache(&cache)
        .explain::<diesel::pg::Pg, Kind>()
        .unwrap();
    assert_ne!(empty.dependencies, null.dependencies);
    assert_ne!(empty.entry, null.entry);
    // Floats compare by value, not by bytes: never keyed.
    let e = kinds::table
        .filter(kinds::ratio.eq(0.5))
        .cache(&cache)
        .explain::<diesel::pg::Pg, Kind>()
        .unwrap();
    assert!(
        e.dependencies.contains(&Dependency::Rows("kinds".into())),
        "{e:?}"
    );
    assert!(
        !e.dependencies
            .iter()
            .any(|d| matches!(d, Dependency::Value { .. })),
        "{e:?}"
    );
}

#[test]
fn pooled_connections_read_through_the_cache() {
    let db = TestDb::new();
    let pool = db.pool(2);
    let seed = seed(&mut pool.get().unwrap());
    let cache = Cache::in_process();
    let q = || photos::table.filter(photos::user_id.eq(seed.bob.id));
    let b = cache.stats();
    let a: Vec<Photo> = q().cache(&cache).load(&mut pool.get().unwrap()).unwrap();
    let c: Vec<Photo> = q().cache(&cache).load(&mut pool.get().unwrap()).unwrap();
    expect(&cache, b, 1, 1, "pool");
    assert_eq!(a, c);
}

#[test]
fn write_behind_stores_in_the_background_and_stays_correct() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let stores: Vec<(&str, Box<dyn cachebot::store::Store>)> = vec![
        (
            "in-process",
            Box::new(cachebot::store::InProcessStore::new()),
        ),
        (
            "memcached",
            Box::new(
                cachebot::store::MemcachedStore::builder()
                    .servers(cachebot_tests::memcached_servers())
                    .prefix(common::unique_prefix())
                    .build()
                    .unwrap(),
            ),
        ),
    ];
    for (store, backing) in stores {
        let cache = Cache::builder()
            .store(BoxedStore(backing))
            .write_behind(true)
            .build()
            .unwrap();
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let b = cache.stats();
        let first: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        cache.flush_write_behind();
        assert_eq!(since(&cache, b).stores, 1, "{store}: counted once written");
        let b = expect(&cache, b, 0, 1, store);
        let second: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: stored by the background thread"),
        );
        assert_eq!(first, second);
        // An entry written late after a write is still never served.
        cache
            .invalidate_value(photos::user_id, seed.ann.id)
            .unwrap();
        let third: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(third, q().load::<Photo>(&mut conn).unwrap());
    }
}

/// A boxed store is a store (to pick one at run time in tests).
struct BoxedStore(Box<dyn cachebot::store::Store>);

impl cachebot::store::Store for BoxedStore {
    fn fetch_many(
        &self,
        entries: &[cachebot::store::Key],
        generations: &[cachebot::store::Key],
    ) -> Result<cachebot::store::FetchedMany, cachebot::StoreError> {
        self.0.fetch_many(entries, generations)
    }
    fn ensure_generations(
        &self,
        keys: &[cachebot::store::Key],
    ) -> Result<Vec<u64>, cachebot::StoreError> {
        self.0.ensure_generations(keys)
    }
    fn put_entry(
        &self,
        key: cachebot::store::Key,
        value: &[u8],
        ttl: std::time::Duration,
    ) -> Result<(), cachebot::StoreError> {
        self.0.put_entry(key, value, ttl)
    }
    fn bump(&self, keys: &[cachebot::store::Key]) -> Result<(), cachebot::StoreError> {
        self.0.bump(keys)
    }
    fn max_value_size(&self) -> usize {
        self.0.max_value_size()
    }
    fn name(&self) -> &'static str {
        self.0.name()
    }
}
