//! django-cachebot's test suite, ported: one template applied to many query
//! shapes (shared/acceptance/cachebot-parity.md), against real PostgreSQL,
//! on the in-process store and on memcached.
//!
//! For a query Q the template reads Q twice (a miss, then a hit), makes a
//! write through the crate's write API, and reads again; after every write
//! the cached read must equal Q run without the cache (the database is the
//! oracle), and the hit/miss counters are asserted. Every shape also gets a
//! write that cannot change Q's result, after which Q must still be a hit.
//! Unlike the original, every step asserts something, and no step reads an
//! empty result by accident (the fixture guarantees rows).

mod common;

use cachebot::prelude::*;
use cachebot::write;
use cachebot_tests::models::*;
use cachebot_tests::schema::*;
use cachebot_tests::{Fixture, TestDb};
use common::{caches, expect, since};
use diesel::dsl::not;
use diesel::prelude::*;

/// Reads a query through `cache` (or straight from the database with
/// `None`) and renders the result for comparison.
type Read = Box<dyn Fn(&mut PgConnection, Option<&Cache>) -> String>;

macro_rules! read {
    ($q:expr, $ty:ty) => {
        Box::new(move |conn: &mut PgConnection, cache: Option<&Cache>| {
            let rows: $ty = match cache {
                Some(c) => $q.cache(c).load(conn).unwrap(),
                None => $q.load(conn).unwrap(),
            };
            format!("{rows:?}")
        }) as Read
    };
    ($q:expr, $ty:ty, keyed_on $cols:expr) => {
        Box::new(move |conn: &mut PgConnection, cache: Option<&Cache>| {
            let rows: $ty = match cache {
                Some(c) => $q.cache(c).keyed_on($cols).load(conn).unwrap(),
                None => $q.load(conn).unwrap(),
            };
            format!("{rows:?}")
        }) as Read
    };
}

/// A cached read that must equal the database, counted as a hit or a miss.
#[track_caller]
fn check(cache: &Cache, conn: &mut PgConnection, q: &Read, hit: Option<bool>, what: &str) {
    let b = cache.stats();
    let cached = q(conn, Some(cache));
    let d = since(cache, b);
    assert_eq!(cached, q(conn, None), "{what}: stale (cached != database)");
    match hit {
        Some(true) => assert_eq!((d.hits, d.misses), (1, 0), "{what}: expected a hit, {d:?}"),
        Some(false) => assert_eq!((d.hits, d.misses), (0, 1), "{what}: expected a miss, {d:?}"),
        None => assert_eq!(d.hits + d.misses, 1, "{what}: {d:?}"),
    }
}

/// Read twice: a miss then a hit, both equal to the database.
#[track_caller]
fn warm(cache: &Cache, conn: &mut PgConnection, q: &Read, what: &str) {
    check(cache, conn, q, Some(false), &format!("{what}: first read"));
    check(cache, conn, q, Some(true), &format!("{what}: second read"));
}

/// One step of the template on a fresh database: warm Q, write, read again.
/// `changes` says whether the write changes Q's result (then the read must
/// be a miss; otherwise either is correct and only the oracle is asserted,
/// unless `precise` demands a hit).
fn step(
    shape: &str,
    step: &str,
    q: impl Fn(&Fixture) -> Read,
    write: impl Fn(&Cache, &mut PgConnection, &Fixture),
    expect_hit: Option<bool>,
) {
    for (store, cache) in caches() {
        let db = TestDb::new();
        let mut conn = db.conn();
        cache.instrument(&mut conn).unwrap();
        let fx = Fixture::create(&mut conn);
        let read = q(&fx);
        let what = format!("{shape}/{step} on {store}");
        warm(&cache, &mut conn, &read, &what);
        write(&cache, &mut conn, &fx);
        check(
            &cache,
            &mut conn,
            &read,
            expect_hit,
            &format!("{what}: after the write"),
        );
    }
}

// The writes of the template, all through the crate's write API.

fn save_t(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::update(
        cache,
        conn,
        third_models::table.find(fx.t.id),
        third_models::text.eq("jedi"),
    )
    .unwrap();
}

fn delete_t(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::delete(cache, conn, third_models::table.find(fx.t.id)).unwrap();
}

fn new_t(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: fx.t.text.clone(),
            second_model_id: fx.s.id,
        },
    )
    .unwrap();
}

fn save_s(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<SecondModel> = write::update(
        cache,
        conn,
        second_models::table.find(fx.s.id),
        second_models::text.eq("jedi"),
    )
    .unwrap();
}

fn delete_s(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<SecondModel> =
        write::delete(cache, conn, second_models::table.find(fx.s.id)).unwrap();
}

/// A new S with s's text under f, then a T under it.
fn new_s(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: fx.s.text.clone(),
            first_model_id: fx.f.id,
        },
    )
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "under the new s".into(),
            second_model_id: s[0].id,
        },
    )
    .unwrap();
}

fn save_f(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<FirstModel> = write::update(
        cache,
        conn,
        first_models::table.find(fx.f.id),
        first_models::text.eq("jedi"),
    )
    .unwrap();
}

fn delete_f(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<FirstModel> = write::delete(cache, conn, first_models::table.find(fx.f.id)).unwrap();
}

/// A new F with f's text, then an S and a T under it.
fn new_f(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: fx.f.text.clone(),
        },
    )
    .unwrap();
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "under the new f".into(),
            first_model_id: f[0].id,
        },
    )
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: fx.t.text.clone(),
            second_model_id: s[0].id,
        },
    )
    .unwrap();
}

/// A T under a brand-new S under a brand-new F: unrelated to the fixture's rows.
fn unrelated_t(cache: &Cache, conn: &mut PgConnection, _fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .unwrap();
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "elsewhere".into(),
            first_model_id: f[0].id,
        },
    )
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "elsewhere".into(),
            second_model_id: s[0].id,
        },
    )
    .unwrap();
}

/// A new F: touches no row of the fixture.
fn other_f(cache: &Cache, conn: &mut PgConnection, _fx: &Fixture) {
    let _: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .unwrap();
}

/// A new S under a new F.
fn other_s(cache: &Cache, conn: &mut PgConnection, _fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .unwrap();
    let _: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "elsewhere".into(),
            first_model_id: f[0].id,
        },
    )
    .unwrap();
}

/// A new T beside t, under the fixture's s.
fn sibling_t(cache: &Cache, conn: &mut PgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "sibling".into(),
            second_model_id: fx.s.id,
        },
    )
    .unwrap();
}

/// The precision step: a write the shape's dependencies say cannot change it.
type Precise = fn(&Cache, &mut PgConnection, &Fixture);

/// The whole template for a shape whose result includes t (through s and f),
/// plus `precise`, a write that must leave it a hit.
fn template(shape: &str, q: impl Fn(&Fixture) -> Read + Copy, precise: Precise) {
    step(shape, "lookup", q, |_, _, _| {}, Some(true));
    step(shape, "save", q, save_t, None);
    step(shape, "delete", q, delete_t, Some(false));
    step(shape, "related_save", q, save_s, None);
    step(shape, "related_delete", q, delete_s, Some(false));
    step(shape, "extra_related_save", q, save_f, None);
    step(shape, "extra_related_delete", q, delete_f, Some(false));
    step(
        shape,
        "a write that cannot change it stays a hit",
        q,
        precise,
        Some(true),
    );
}

/// The template's new_obj steps: Q' filters T by t's text, directly, through
/// S and through S and F.
#[test]
fn new_obj_steps() {
    let by_text = |fx: &Fixture| {
        let text = fx.t.text.clone();
        read!(
            third_models::table
                .filter(third_models::text.eq(text.clone()))
                .order(third_models::id),
            Vec<ThirdModel>
        )
    };
    step("new_obj", "insert a copy of t", by_text, new_t, Some(false));
    let through_s = |fx: &Fixture| {
        let text = fx.s.text.clone();
        read!(
            third_models::table
                .inner_join(second_models::table)
                .filter(second_models::text.eq(text.clone()))
                .select(ThirdModel::as_select())
                .order(third_models::id),
            Vec<ThirdModel>
        )
    };
    step(
        "related_new_obj",
        "insert a new s and a t under it",
        through_s,
        new_s,
        Some(false),
    );
    let through_f = |fx: &Fixture| {
        let text = fx.f.text.clone();
        read!(
            third_models::table
                .inner_join(second_models::table.inner_join(first_models::table))
                .filter(first_models::text.eq(text.clone()))
                .select(ThirdModel::as_select())
                .order(third_models::id),
            Vec<ThirdModel>
        )
    };
    step(
        "extra_related_new_obj",
        "insert a new f, s and t",
        through_f,
        new_f,
        Some(false),
    );
}

#[test]
fn shape_01_basic() {
    template(
        "basic",
        |fx| {
            let id = fx.t.id;
            read!(third_models::table.find(id), Vec<ThirdModel>)
        },
        unrelated_t,
    );
}

#[test]
fn shape_02_related() {
    template(
        "related",
        |fx| {
            let s = fx.s.id;
            read!(
                third_models::table.filter(third_models::second_model_id.eq(s)),
                Vec<ThirdModel>
            )
        },
        unrelated_t,
    );
}

#[test]
fn shape_03_related_through_the_join() {
    template(
        "related join",
        |fx| {
            let s = fx.s.id;
            read!(
                third_models::table
                    .inner_join(second_models::table)
                    .filter(second_models::id.eq(s))
                    .select(ThirdModel::as_select()),
                Vec<ThirdModel>
            )
        },
        unrelated_t,
    );
}

fn extra_related(fx: &Fixture) -> Read {
    let f = fx.f.id;
    read!(
        third_models::table
            .inner_join(second_models::table)
            .filter(second_models::first_model_id.eq(f))
            .select(ThirdModel::as_select()),
        Vec<ThirdModel>
    )
}

#[test]
fn shape_04_extra_related() {
    template("extra related", extra_related, other_s);
}

#[test]
fn shape_05_complex_or_across_tables() {
    template(
        "complex",
        |fx| {
            let f = fx.f.id;
            read!(
                third_models::table
                    .inner_join(second_models::table.inner_join(first_models::table))
                    .filter(
                        second_models::first_model_id
                            .eq(f)
                            .or(first_models::text.eq("blah"))
                    )
                    .select(ThirdModel::as_select()),
                Vec<ThirdModel>
            )
        },
        other_f,
    );
}

#[test]
fn shape_06_selective() {
    let narrowed = |fx: &Fixture| {
        let f = fx.f.id;
        read!(
            third_models::table
                .inner_join(second_models::table)
                .filter(second_models::first_model_id.eq(f))
                .select(ThirdModel::as_select()),
            Vec<ThirdModel>,
            keyed_on second_models::first_model_id
        )
    };
    template("selective", narrowed, other_s);
    // Narrowed to a column the query does not filter on: never drops the dependency.
    let off_filter = |fx: &Fixture| {
        let f = fx.f.id;
        read!(
            third_models::table
                .inner_join(second_models::table)
                .filter(second_models::first_model_id.eq(f))
                .select(ThirdModel::as_select()),
            Vec<ThirdModel>,
            keyed_on second_models::text
        )
    };
    step(
        "selective off-filter",
        "related_save",
        off_filter,
        save_s,
        None,
    );
    step(
        "selective off-filter",
        "related_delete",
        off_filter,
        delete_s,
        Some(false),
    );
    step(
        "selective off-filter",
        "new s and t",
        off_filter,
        new_s,
        Some(false),
    );
}

#[test]
fn shape_07_range() {
    template(
        "range",
        |fx| {
            let f = fx.f.id;
            read!(
                third_models::table
                    .inner_join(second_models::table)
                    .filter(second_models::first_model_id.eq_any(vec![f]))
                    .select(ThirdModel::as_select()),
                Vec<ThirdModel>
            )
        },
        other_s,
    );
}

#[test]
fn shape_08_nested_query() {
    let nested = |_: &Fixture| {
        read!(
            third_models::table
                .inner_join(second_models::table)
                .filter(
                    second_models::first_model_id
                        .eq_any(first_models::table.select(first_models::id))
                )
                .select(ThirdModel::as_select())
                .order(third_models::id),
            Vec<ThirdModel>
        )
    };
    step("nested", "lookup", nested, |_, _, _| {}, Some(true));
    step("nested", "save", nested, save_t, None);
    step("nested", "delete", nested, delete_t, Some(false));
    step("nested", "related_delete", nested, delete_s, Some(false));
    step(
        "nested",
        "extra_related_delete",
        nested,
        delete_f,
        Some(false),
    );
    step(
        "nested",
        "extra_related_new_obj",
        nested,
        new_f,
        Some(false),
    );
    // Every table of a sub-select is depended on whole: only other tables stay hits.
    step(
        "nested",
        "a write to another table stays a hit",
        nested,
        |cache, conn, _fx| {
            let _: Vec<ManyModel> =
                write::insert_values(cache, conn, NewManyModel { text: "x".into() }).unwrap();
        },
        Some(true),
    );
}

#[test]
fn shape_09_exclude() {
    template(
        "exclude by id",
        |fx| {
            let other = fx.t.id + 1;
            read!(
                third_models::table
                    .filter(not(third_models::id.eq(other)))
                    .order(third_models::id),
                Vec<ThirdModel>
            )
        },
        other_f,
    );
    template(
        "exclude by text",
        |_| {
            read!(
                third_models::table
                    .filter(third_models::text.ne("nope"))
                    .order(third_models::id),
                Vec<ThirdModel>
            )
        },
        other_f,
    );
    template(
        "exclude with a filter",
        |fx| {
            let s = fx.s.id;
            read!(
                third_models::table
                    .filter(third_models::second_model_id.eq(s))
                    .filter(third_models::text.ne("nope")),
                Vec<ThirdModel>
            )
        },
        unrelated_t,
    );
}

#[test]
fn shape_10_select_related() {
    template(
        "select related",
        |fx| {
            let id = fx.t.id;
            read!(
                third_models::table
                    .inner_join(second_models::table.inner_join(first_models::table))
                    .filter(third_models::id.eq(id)),
                Vec<(ThirdModel, (SecondModel, FirstModel))>
            )
        },
        sibling_t,
    );
}

#[test]
fn shape_11_count() {
    template(
        "count basic",
        |fx| {
            let id = fx.t.id;
            read!(
                third_models::table.filter(third_models::id.eq(id)).count(),
                Vec<i64>
            )
        },
        unrelated_t,
    );
    template(
        "count related",
        |fx| {
            let s = fx.s.id;
            read!(
                third_models::table
                    .filter(third_models::second_model_id.eq(s))
                    .count(),
                Vec<i64>
            )
        },
        unrelated_t,
    );
    template(
        "count extra related",
        |fx| {
            let f = fx.f.id;
            read!(
                third_models::table
                    .inner_join(second_models::table)
                    .filter(second_models::first_model_id.eq(f))
                    .count(),
                Vec<i64>
            )
        },
        other_s,
    );
}

#[test]
fn shape_12_get() {
    for (store, cache) in caches() {
        let db = TestDb::new();
        let mut conn = db.conn();
        cache.instrument(&mut conn).unwrap();
        let fx = Fixture::create(&mut conn);
        // The derive's cached primary-key get.
        let b = cache.stats();
        assert_eq!(
            ThirdModel::get(&cache, &mut conn, fx.t.id)
                .unwrap()
                .as_ref(),
            Some(&fx.t)
        );
        assert_eq!(
            ThirdModel::get(&cache, &mut conn, fx.t.id)
                .unwrap()
                .as_ref(),
            Some(&fx.t)
        );
        let b = expect(&cache, b, 1, 1, &format!("{store}: get"));
        // A missing row is a cached "not found"...
        let missing = fx.t.id + 1000;
        assert_eq!(ThirdModel::get(&cache, &mut conn, missing).unwrap(), None);
        assert_eq!(ThirdModel::get(&cache, &mut conn, missing).unwrap(), None);
        let b = expect(&cache, b, 1, 1, &format!("{store}: not found is cached"));
        // ...that the insert of that row invalidates (get-or-create).
        diesel::sql_query(format!(
            "INSERT INTO third_models (id, text, second_model_id) VALUES ({missing}, 'created', {})",
            fx.s.id
        ))
        .execute(&mut conn)
        .unwrap();
        let created = ThirdModel::get(&cache, &mut conn, missing).unwrap();
        expect(&cache, b, 0, 1, &format!("{store}: after the insert"));
        assert_eq!(created.map(|t| t.text), Some("created".into()));
        // The opt-out model never reads through the cache.
        let nc: Vec<NoCacheModel> =
            write::insert_values(&cache, &mut conn, NewNoCacheModel { text: "x".into() }).unwrap();
        let b = cache.stats();
        for _ in 0..2 {
            assert_eq!(
                NoCacheModel::get(&cache, &mut conn, nc[0].id)
                    .unwrap()
                    .as_ref(),
                Some(&nc[0])
            );
        }
        let d = since(&cache, b);
        assert_eq!(
            (d.hits, d.misses, d.stores, d.bypasses),
            (0, 0, 0, 2),
            "{store}: no_cache_models: {d:?}"
        );
    }
}

#[test]
fn shape_13_projections() {
    template(
        "projection",
        |fx| {
            let s = fx.s.id;
            read!(
                third_models::table
                    .select((third_models::text, third_models::second_model_id))
                    .filter(third_models::second_model_id.eq(s)),
                Vec<(String, i32)>
            )
        },
        unrelated_t,
    );
    template(
        "joined projection",
        |fx| {
            let id = fx.t.id;
            read!(
                third_models::table
                    .inner_join(second_models::table)
                    .select((third_models::text, second_models::text))
                    .filter(third_models::id.eq(id)),
                Vec<(String, String)>
            )
        },
        sibling_t,
    );
}

#[test]
fn shape_14_many_to_many() {
    let q = |fx: &Fixture| {
        let f = fx.f.id;
        read!(
            many_models::table
                .inner_join(many_models_first_models::table)
                .filter(many_models_first_models::first_model_id.eq(f))
                .select(ManyModel::as_select())
                .order(many_models::id),
            Vec<ManyModel>
        )
    };
    step("m2m", "lookup", q, |_, _, _| {}, Some(true));
    step(
        "m2m",
        "add",
        q,
        |cache, conn, fx| {
            let m: Vec<ManyModel> = write::insert_values(
                cache,
                conn,
                NewManyModel {
                    text: "added".into(),
                },
            )
            .unwrap();
            let _: Vec<ManyModelFirstModel> = write::insert_values(
                cache,
                conn,
                NewManyModelFirstModel {
                    many_model_id: m[0].id,
                    first_model_id: fx.f.id,
                },
            )
            .unwrap();
        },
        Some(false),
    );
    step(
        "m2m",
        "remove",
        q,
        |cache, conn, fx| {
            let _: Vec<ManyModelFirstModel> =
                write::delete(cache, conn, many_models_first_models::table.find(fx.m_f.id))
                    .unwrap();
        },
        Some(false),
    );
    step(
        "m2m",
        "save the related m",
        q,
        |cache, conn, fx| {
            let _: Vec<ManyModel> = write::update(
                cache,
                conn,
                many_models::table.find(fx.m.id),
                many_models::text.eq("jedi"),
            )
            .unwrap();
        },
        Some(false),
    );
    step(
        "m2m",
        "link another f: stays a hit",
        q,
        |cache, conn, fx| {
            let f: Vec<FirstModel> = write::insert_values(
                cache,
                conn,
                NewFirstModel {
                    text: "other".into(),
                },
            )
            .unwrap();
            let _: Vec<ManyModelFirstModel> = write::insert_values(
                cache,
                conn,
                NewManyModelFirstModel {
                    many_model_id: fx.m.id,
                    first_model_id: f[0].id,
                },
            )
            .unwrap();
        },
        Some(true),
    );
}

#[test]
fn shape_15_reverse() {
    let one_level = |fx: &Fixture| {
        let text = fx.s.text.clone();
        read!(
            first_models::table
                .inner_join(second_models::table)
                .filter(second_models::text.eq(text.clone()))
                .select(FirstModel::as_select())
                .order(first_models::id),
            Vec<FirstModel>
        )
    };
    step("reverse", "lookup", one_level, |_, _, _| {}, Some(true));
    step("reverse", "save the child", one_level, save_s, Some(false));
    step("reverse", "save the parent", one_level, save_f, Some(false));
    step(
        "reverse",
        "delete the child",
        one_level,
        delete_s,
        Some(false),
    );
    step(
        "reverse",
        "a new child under another parent",
        one_level,
        |cache, conn, fx| {
            let f: Vec<FirstModel> = write::insert_values(
                cache,
                conn,
                NewFirstModel {
                    text: "other".into(),
                },
            )
            .unwrap();
            let _: Vec<SecondModel> = write::insert_values(
                cache,
                conn,
                NewSecondModel {
                    text: fx.s.text.clone(),
                    first_model_id: f[0].id,
                },
            )
            .unwrap();
        },
        Some(false),
    );
    let two_levels = |fx: &Fixture| {
        let text = fx.t.text.clone();
        read!(
            first_models::table
                .inner_join(second_models::table.inner_join(third_models::table))
                .filter(third_models::text.eq(text.clone()))
                .select(FirstModel::as_select())
                .order(first_models::id),
            Vec<FirstModel>
        )
    };
    step(
        "reverse two levels",
        "lookup",
        two_levels,
        |_, _, _| {},
        Some(true),
    );
    step(
        "reverse two levels",
        "save the grandchild",
        two_levels,
        save_t,
        Some(false),
    );
    step(
        "reverse two levels",
        "delete the grandchild",
        two_levels,
        delete_t,
        Some(false),
    );
    step(
        "reverse two levels",
        "a new grandchild",
        two_levels,
        new_t,
        None,
    );
    step(
        "reverse two levels",
        "a grandchild with another text stays a hit",
        two_levels,
        |cache, conn, fx| {
            // S and F are depended on whole here (their join keys are not
            // pinned); T is keyed on its text.
            let _: Vec<ThirdModel> = write::insert_values(
                cache,
                conn,
                NewThirdModel {
                    text: "another text".into(),
                    second_model_id: fx.s.id,
                },
            )
            .unwrap();
        },
        Some(true),
    );
}

#[test]
fn shape_16_generic() {
    let q = |fx: &Fixture| {
        let s = fx.s.id;
        read!(
            generic_models::table
                .filter(generic_models::content_type.eq("second_models"))
                .filter(generic_models::object_id.eq(s)),
            Vec<GenericModel>
        )
    };
    step("generic", "lookup", q, |_, _, _| {}, Some(true));
    step(
        "generic",
        "save",
        q,
        |cache, conn, fx| {
            let _: Vec<GenericModel> = write::update(
                cache,
                conn,
                generic_models::table.find(fx.g.id),
                generic_models::text.eq("jedi"),
            )
            .unwrap();
        },
        Some(false),
    );
    step(
        "generic",
        "new pointer to s",
        q,
        |cache, conn, fx| {
            let _: Vec<GenericModel> = write::insert_values(
                cache,
                conn,
                NewGenericModel {
                    text: "new".into(),
                    content_type: "second_models".into(),
                    object_id: fx.s.id,
                },
            )
            .unwrap();
        },
        Some(false),
    );
    step(
        "generic",
        "pointer to another object stays a hit",
        q,
        |cache, conn, fx| {
            let _: Vec<GenericModel> = write::insert_values(
                cache,
                conn,
                NewGenericModel {
                    text: "other".into(),
                    content_type: "first_models".into(),
                    object_id: fx.s.id + 1000,
                },
            )
            .unwrap();
        },
        Some(true),
    );
}

#[test]
fn shape_17_opt_out() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let fx = Fixture::create(&mut conn);
    let cache = Cache::builder()
        .never_cache(["third_models"])
        .build()
        .unwrap();
    let b = cache.stats();
    for _ in 0..2 {
        let _: Vec<ThirdModel> = third_models::table
            .find(fx.t.id)
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        let _: Vec<(ThirdModel, SecondModel)> = third_models::table
            .inner_join(second_models::table)
            .cache(&cache)
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            ThirdModel::get(&cache, &mut conn, fx.t.id)
                .unwrap()
                .as_ref(),
            Some(&fx.t)
        );
    }
    let d = since(&cache, b);
    assert_eq!(
        (d.hits, d.misses, d.stores, d.bypasses),
        (0, 0, 0, 6),
        "{d:?}"
    );
    // Other tables still cache.
    let _: Vec<SecondModel> = second_models::table
        .find(fx.s.id)
        .cache(&cache)
        .load(&mut conn)
        .unwrap();
    let _: Vec<SecondModel> = second_models::table
        .find(fx.s.id)
        .cache(&cache)
        .load(&mut conn)
        .unwrap();
    assert_eq!(since(&cache, b).hits, 1);
    // Cached gets switched off for every model.
    let no_gets = Cache::builder().cache_gets(false).build().unwrap();
    let b = no_gets.stats();
    for _ in 0..2 {
        assert!(SecondModel::get(&no_gets, &mut conn, fx.s.id)
            .unwrap()
            .is_some());
    }
    let d = since(&no_gets, b);
    assert_eq!(
        (d.hits, d.misses, d.stores, d.bypasses),
        (0, 0, 0, 2),
        "{d:?}"
    );
}
