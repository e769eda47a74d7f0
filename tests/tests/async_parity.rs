//! The parity suite (`parity.rs`) on diesel-async connections: every shape
//! and step of django-cachebot's template, read with `aio::prelude`'s
//! awaited `load` and written through `cachebot::aio::write`, against real
//! PostgreSQL, on the in-process store and on memcached.
//!
//! For a query Q the template reads Q twice (a miss, then a hit), makes a
//! write through the async write API, and reads again; after every write
//! the cached read must equal Q run through diesel-async without the cache
//! (the database is the oracle), and the hit/miss counters are asserted.

mod common;

use std::future::Future;
use std::pin::Pin;

use cachebot::aio::prelude::*;
use cachebot::aio::write;
use cachebot_tests::models::*;
use cachebot_tests::schema::*;
use cachebot_tests::{Fixture, TestDb};
use common::{caches, expect, since};
use diesel::dsl::not;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

type Rendered<'a> = Pin<Box<dyn Future<Output = String> + 'a>>;

/// Reads a query through `cache` (or straight from the database with
/// `None`) and renders the result for comparison.
type Read = Box<dyn for<'a> Fn(&'a mut AsyncPgConnection, Option<&'a Cache>) -> Rendered<'a>>;

/// Pins down the higher-ranked signature of a read closure.
fn read_fn<F>(f: F) -> Read
where
    F: for<'a> Fn(&'a mut AsyncPgConnection, Option<&'a Cache>) -> Rendered<'a> + 'static,
{
    Box::new(f)
}

macro_rules! read {
    ($q:expr, $ty:ty) => {
        read_fn(move |conn: &mut AsyncPgConnection, cache: Option<&Cache>| {
            let q = $q;
            Box::pin(async move {
                let rows: $ty = match cache {
                    Some(c) => q.cache(c).load(conn).await.unwrap(),
                    None => RunQueryDsl::load(q, conn).await.unwrap(),
                };
                format!("{rows:?}")
            })
        })
    };
    ($q:expr, $ty:ty, keyed_on $cols:expr) => {
        read_fn(move |conn: &mut AsyncPgConnection, cache: Option<&Cache>| {
            let q = $q;
            Box::pin(async move {
                let rows: $ty = match cache {
                    Some(c) => q.cache(c).keyed_on($cols).load(conn).await.unwrap(),
                    None => RunQueryDsl::load(q, conn).await.unwrap(),
                };
                format!("{rows:?}")
            })
        })
    };
}

/// A cached read that must equal the database, counted as a hit or a miss.
async fn check(
    cache: &Cache,
    conn: &mut AsyncPgConnection,
    q: &Read,
    hit: Option<bool>,
    what: &str,
) {
    let b = cache.stats();
    let cached = q(conn, Some(cache)).await;
    let d = since(cache, b);
    assert_eq!(
        cached,
        q(conn, None).await,
        "{what}: stale (cached != database)"
    );
    match hit {
        Some(true) => assert_eq!((d.hits, d.misses), (1, 0), "{what}: expected a hit, {d:?}"),
        Some(false) => assert_eq!((d.hits, d.misses), (0, 1), "{what}: expected a miss, {d:?}"),
        None => assert_eq!(d.hits + d.misses, 1, "{what}: {d:?}"),
    }
}

/// Read twice: a miss then a hit, both equal to the database.
async fn warm(cache: &Cache, conn: &mut AsyncPgConnection, q: &Read, what: &str) {
    check(cache, conn, q, Some(false), &format!("{what}: first read")).await;
    check(cache, conn, q, Some(true), &format!("{what}: second read")).await;
}

/// A fresh database with the fixture (seeded on a blocking connection),
/// and an instrumented async connection to it.
async fn setup(cache: &Cache) -> (TestDb, AsyncPgConnection, Fixture) {
    let db = TestDb::new();
    let fx = Fixture::create(&mut db.conn());
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    cache.instrument_async(&mut conn).await.unwrap();
    (db, conn, fx)
}

/// One step of the template on a fresh database: warm Q, write, read again.
/// `expect_hit` says what the read after the write must be (`None`: either
/// is correct, only the oracle is asserted).
async fn step(
    shape: &str,
    step: &str,
    q: impl Fn(&Fixture) -> Read,
    write: impl AsyncFn(&Cache, &mut AsyncPgConnection, &Fixture),
    expect_hit: Option<bool>,
) {
    for (store, cache) in caches() {
        let (_db, mut conn, fx) = setup(&cache).await;
        let read = q(&fx);
        let what = format!("{shape}/{step} on {store}");
        warm(&cache, &mut conn, &read, &what).await;
        write(&cache, &mut conn, &fx).await;
        check(
            &cache,
            &mut conn,
            &read,
            expect_hit,
            &format!("{what}: after the write"),
        )
        .await;
    }
}

// The writes of the template, all through the crate's write API.

async fn save_t(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::update(
        cache,
        conn,
        third_models::table.find(fx.t.id),
        third_models::text.eq("jedi"),
    )
    .await
    .unwrap();
}

async fn delete_t(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::delete(cache, conn, third_models::table.find(fx.t.id))
        .await
        .unwrap();
}

async fn new_t(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: fx.t.text.clone(),
            second_model_id: fx.s.id,
        },
    )
    .await
    .unwrap();
}

async fn save_s(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<SecondModel> = write::update(
        cache,
        conn,
        second_models::table.find(fx.s.id),
        second_models::text.eq("jedi"),
    )
    .await
    .unwrap();
}

async fn delete_s(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<SecondModel> = write::delete(cache, conn, second_models::table.find(fx.s.id))
        .await
        .unwrap();
}

/// A new S with s's text under f, then a T under it.
async fn new_s(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: fx.s.text.clone(),
            first_model_id: fx.f.id,
        },
    )
    .await
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "under the new s".into(),
            second_model_id: s[0].id,
        },
    )
    .await
    .unwrap();
}

async fn save_f(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<FirstModel> = write::update(
        cache,
        conn,
        first_models::table.find(fx.f.id),
        first_models::text.eq("jedi"),
    )
    .await
    .unwrap();
}

async fn delete_f(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<FirstModel> = write::delete(cache, conn, first_models::table.find(fx.f.id))
        .await
        .unwrap();
}

/// A new F with f's text, then an S and a T under it.
async fn new_f(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: fx.f.text.clone(),
        },
    )
    .await
    .unwrap();
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "under the new f".into(),
            first_model_id: f[0].id,
        },
    )
    .await
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: fx.t.text.clone(),
            second_model_id: s[0].id,
        },
    )
    .await
    .unwrap();
}

/// A T under a brand-new S under a brand-new F: unrelated to the fixture's rows.
async fn unrelated_t(cache: &Cache, conn: &mut AsyncPgConnection, _fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .await
    .unwrap();
    let s: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "elsewhere".into(),
            first_model_id: f[0].id,
        },
    )
    .await
    .unwrap();
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "elsewhere".into(),
            second_model_id: s[0].id,
        },
    )
    .await
    .unwrap();
}

/// A new F: touches no row of the fixture.
async fn other_f(cache: &Cache, conn: &mut AsyncPgConnection, _fx: &Fixture) {
    let _: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .await
    .unwrap();
}

/// A new S under a new F.
async fn other_s(cache: &Cache, conn: &mut AsyncPgConnection, _fx: &Fixture) {
    let f: Vec<FirstModel> = write::insert_values(
        cache,
        conn,
        NewFirstModel {
            text: "elsewhere".into(),
        },
    )
    .await
    .unwrap();
    let _: Vec<SecondModel> = write::insert_values(
        cache,
        conn,
        NewSecondModel {
            text: "elsewhere".into(),
            first_model_id: f[0].id,
        },
    )
    .await
    .unwrap();
}

/// A new T beside t, under the fixture's s.
async fn sibling_t(cache: &Cache, conn: &mut AsyncPgConnection, fx: &Fixture) {
    let _: Vec<ThirdModel> = write::insert_values(
        cache,
        conn,
        NewThirdModel {
            text: "sibling".into(),
            second_model_id: fx.s.id,
        },
    )
    .await
    .unwrap();
}

/// The whole template for a shape whose result includes t (through s and f),
/// plus `precise`, a write that must leave it a hit.
async fn template(
    shape: &str,
    q: impl Fn(&Fixture) -> Read + Copy,
    precise: impl AsyncFn(&Cache, &mut AsyncPgConnection, &Fixture),
) {
    step(shape, "lookup", q, async |_, _, _| {}, Some(true)).await;
    step(shape, "save", q, save_t, None).await;
    step(shape, "delete", q, delete_t, Some(false)).await;
    step(shape, "related_save", q, save_s, None).await;
    step(shape, "related_delete", q, delete_s, Some(false)).await;
    step(shape, "extra_related_save", q, save_f, None).await;
    step(shape, "extra_related_delete", q, delete_f, Some(false)).await;
    step(
        shape,
        "a write that cannot change it stays a hit",
        q,
        precise,
        Some(true),
    )
    .await;
}

/// The template's new_obj steps: Q' filters T by t's text, directly, through
/// S and through S and F.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_obj_steps() {
    let by_text = |fx: &Fixture| {
        let text = fx.t.text.clone();
        read!(
            third_models::table
                .filter(third_models::text.eq(text.clone()))
                .order(third_models::id),
            Vec<ThirdModel>
        )
    };
    step("new_obj", "insert a copy of t", by_text, new_t, Some(false)).await;
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
    )
    .await;
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_01_basic() {
    template(
        "basic",
        |fx| {
            let id = fx.t.id;
            read!(third_models::table.find(id), Vec<ThirdModel>)
        },
        unrelated_t,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_02_related() {
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_03_related_through_the_join() {
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
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_04_extra_related() {
    template("extra related", extra_related, other_s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_05_complex_or_across_tables() {
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_06_selective() {
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
    template("selective", narrowed, other_s).await;
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
    )
    .await;
    step(
        "selective off-filter",
        "related_delete",
        off_filter,
        delete_s,
        Some(false),
    )
    .await;
    step(
        "selective off-filter",
        "new s and t",
        off_filter,
        new_s,
        Some(false),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_07_range() {
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_08_nested_query() {
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
    step("nested", "lookup", nested, async |_, _, _| {}, Some(true)).await;
    step("nested", "save", nested, save_t, None).await;
    step("nested", "delete", nested, delete_t, Some(false)).await;
    step("nested", "related_delete", nested, delete_s, Some(false)).await;
    step(
        "nested",
        "extra_related_delete",
        nested,
        delete_f,
        Some(false),
    )
    .await;
    step(
        "nested",
        "extra_related_new_obj",
        nested,
        new_f,
        Some(false),
    )
    .await;
    // Every table of a sub-select is depended on whole: only other tables stay hits.
    step(
        "nested",
        "a write to another table stays a hit",
        nested,
        async |cache, conn, _fx| {
            let _: Vec<ManyModel> =
                write::insert_values(cache, conn, NewManyModel { text: "x".into() })
                    .await
                    .unwrap();
        },
        Some(true),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_09_exclude() {
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
    )
    .await;
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
    )
    .await;
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_10_select_related() {
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_11_count() {
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
    )
    .await;
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
    )
    .await;
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_13_projections() {
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
    )
    .await;
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
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_14_many_to_many() {
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
    step("m2m", "lookup", q, async |_, _, _| {}, Some(true)).await;
    step(
        "m2m",
        "add",
        q,
        async |cache, conn, fx| {
            let m: Vec<ManyModel> = write::insert_values(
                cache,
                conn,
                NewManyModel {
                    text: "added".into(),
                },
            )
            .await
            .unwrap();
            let _: Vec<ManyModelFirstModel> = write::insert_values(
                cache,
                conn,
                NewManyModelFirstModel {
                    many_model_id: m[0].id,
                    first_model_id: fx.f.id,
                },
            )
            .await
            .unwrap();
        },
        Some(false),
    )
    .await;
    step(
        "m2m",
        "remove",
        q,
        async |cache, conn, fx| {
            let _: Vec<ManyModelFirstModel> =
                write::delete(cache, conn, many_models_first_models::table.find(fx.m_f.id))
                    .await
                    .unwrap();
        },
        Some(false),
    )
    .await;
    step(
        "m2m",
        "save the related m",
        q,
        async |cache, conn, fx| {
            let _: Vec<ManyModel> = write::update(
                cache,
                conn,
                many_models::table.find(fx.m.id),
                many_models::text.eq("jedi"),
            )
            .await
            .unwrap();
        },
        Some(false),
    )
    .await;
    step(
        "m2m",
        "link another f: stays a hit",
        q,
        async |cache, conn, fx| {
            let f: Vec<FirstModel> = write::insert_values(
                cache,
                conn,
                NewFirstModel {
                    text: "other".into(),
                },
            )
            .await
            .unwrap();
            let _: Vec<ManyModelFirstModel> = write::insert_values(
                cache,
                conn,
                NewManyModelFirstModel {
                    many_model_id: fx.m.id,
                    first_model_id: f[0].id,
                },
            )
            .await
            .unwrap();
        },
        Some(true),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_15_reverse() {
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
    step(
        "reverse",
        "lookup",
        one_level,
        async |_, _, _| {},
        Some(true),
    )
    .await;
    step("reverse", "save the child", one_level, save_s, Some(false)).await;
    step("reverse", "save the parent", one_level, save_f, Some(false)).await;
    step(
        "reverse",
        "delete the child",
        one_level,
        delete_s,
        Some(false),
    )
    .await;
    step(
        "reverse",
        "a new child under another parent",
        one_level,
        async |cache, conn, fx| {
            let f: Vec<FirstModel> = write::insert_values(
                cache,
                conn,
                NewFirstModel {
                    text: "other".into(),
                },
            )
            .await
            .unwrap();
            let _: Vec<SecondModel> = write::insert_values(
                cache,
                conn,
                NewSecondModel {
                    text: fx.s.text.clone(),
                    first_model_id: f[0].id,
                },
            )
            .await
            .unwrap();
        },
        Some(false),
    )
    .await;
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
        async |_, _, _| {},
        Some(true),
    )
    .await;
    step(
        "reverse two levels",
        "save the grandchild",
        two_levels,
        save_t,
        Some(false),
    )
    .await;
    step(
        "reverse two levels",
        "delete the grandchild",
        two_levels,
        delete_t,
        Some(false),
    )
    .await;
    step(
        "reverse two levels",
        "a new grandchild",
        two_levels,
        new_t,
        None,
    )
    .await;
    step(
        "reverse two levels",
        "a grandchild with another text stays a hit",
        two_levels,
        async |cache, conn, fx| {
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
            .await
            .unwrap();
        },
        Some(true),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_16_generic() {
    let q = |fx: &Fixture| {
        let s = fx.s.id;
        read!(
            generic_models::table
                .filter(generic_models::content_type.eq("second_models"))
                .filter(generic_models::object_id.eq(s)),
            Vec<GenericModel>
        )
    };
    step("generic", "lookup", q, async |_, _, _| {}, Some(true)).await;
    step(
        "generic",
        "save",
        q,
        async |cache, conn, fx| {
            let _: Vec<GenericModel> = write::update(
                cache,
                conn,
                generic_models::table.find(fx.g.id),
                generic_models::text.eq("jedi"),
            )
            .await
            .unwrap();
        },
        Some(false),
    )
    .await;
    step(
        "generic",
        "new pointer to s",
        q,
        async |cache, conn, fx| {
            let _: Vec<GenericModel> = write::insert_values(
                cache,
                conn,
                NewGenericModel {
                    text: "new".into(),
                    content_type: "second_models".into(),
                    object_id: fx.s.id,
                },
            )
            .await
            .unwrap();
        },
        Some(false),
    )
    .await;
    step(
        "generic",
        "pointer to another object stays a hit",
        q,
        async |cache, conn, fx| {
            let _: Vec<GenericModel> = write::insert_values(
                cache,
                conn,
                NewGenericModel {
                    text: "other".into(),
                    content_type: "first_models".into(),
                    object_id: fx.s.id + 1000,
                },
            )
            .await
            .unwrap();
        },
        Some(true),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_12_get() {
    for (store, cache) in caches() {
        let (_db, mut conn, fx) = setup(&cache).await;
        let conn = &mut conn;
        // The derive's cached primary-key get.
        let b = cache.stats();
        assert_eq!(
            ThirdModel::get(&cache, conn, fx.t.id)
                .await
                .unwrap()
                .as_ref(),
            Some(&fx.t)
        );
        assert_eq!(
            ThirdModel::get(&cache, conn, fx.t.id)
                .await
                .unwrap()
                .as_ref(),
            Some(&fx.t)
        );
        let b = expect(&cache, b, 1, 1, &format!("{store}: get"));
        // A missing row is a cached "not found"...
        let missing = fx.t.id + 1000;
        assert_eq!(ThirdModel::get(&cache, conn, missing).await.unwrap(), None);
        assert_eq!(ThirdModel::get(&cache, conn, missing).await.unwrap(), None);
        let b = expect(&cache, b, 1, 1, &format!("{store}: not found is cached"));
        // ...that the insert of that row invalidates (get-or-create).
        diesel::sql_query(format!(
            "INSERT INTO third_models (id, text, second_model_id) VALUES ({missing}, 'created', {})",
            fx.s.id
        ))
        .execute(conn)
        .await
        .unwrap();
        let created = ThirdModel::get(&cache, conn, missing).await.unwrap();
        expect(&cache, b, 0, 1, &format!("{store}: after the insert"));
        assert_eq!(created.map(|t| t.text), Some("created".into()));
        // The opt-out model never reads through the cache.
        let nc: Vec<NoCacheModel> =
            write::insert_values(&cache, conn, NewNoCacheModel { text: "x".into() })
                .await
                .unwrap();
        let b = cache.stats();
        for _ in 0..2 {
            assert_eq!(
                NoCacheModel::get(&cache, conn, nc[0].id)
                    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shape_17_opt_out() {
    let db = TestDb::new();
    let fx = Fixture::create(&mut db.conn());
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    let conn = &mut conn;
    let cache = Cache::builder()
        .never_cache(["third_models"])
        .build()
        .unwrap();
    let b = cache.stats();
    for _ in 0..2 {
        let _: Vec<ThirdModel> = third_models::table
            .find(fx.t.id)
            .cache(&cache)
            .load(conn)
            .await
            .unwrap();
        let _: Vec<(ThirdModel, SecondModel)> = third_models::table
            .inner_join(second_models::table)
            .cache(&cache)
            .load(conn)
            .await
            .unwrap();
        assert_eq!(
            ThirdModel::get(&cache, conn, fx.t.id)
                .await
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
    for _ in 0..2 {
        let _: Vec<SecondModel> = second_models::table
            .find(fx.s.id)
            .cache(&cache)
            .load(conn)
            .await
            .unwrap();
    }
    assert_eq!(since(&cache, b).hits, 1);
    // Cached gets switched off for every model.
    let no_gets = Cache::builder().cache_gets(false).build().unwrap();
    let b = no_gets.stats();
    for _ in 0..2 {
        assert!(SecondModel::get(&no_gets, conn, fx.s.id)
            .await
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
