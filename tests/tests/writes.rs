//! What exact writes invalidate: django-cachebot's README conditions for
//! `Photo.cache().filter(user=user, status=2)`, rows moving into and out of
//! a filter, inserts reaching queries without equality filters, joined
//! tables, and the writes that must leave a query a hit.

mod common;

use cachebot::prelude::*;
use cachebot::write;
use cachebot::CacheModel;
use cachebot_tests::models::{NewPhoto, Photo, User};
use cachebot_tests::schema::{photos, users};
use cachebot_tests::TestDb;
use common::{caches, seed, since, Seed};
use diesel::dsl::not;
use diesel::prelude::*;

/// Reads `q` through the cache, asserts it equals the database, returns whether it hit.
macro_rules! hit {
    ($cache:expr, $conn:expr, $q:expr, $ty:ty) => {{
        let b = $cache.stats();
        let cached: $ty = $q.cache(&$cache).load($conn).unwrap();
        let d = since(&$cache, b);
        let truth: $ty = $q.load($conn).unwrap();
        assert_eq!(cached, truth, "stale: {}", stringify!($q));
        d.hits == 1
    }};
}

/// Ann's published photos: `user_id = ann AND status = 2`.
type Published = diesel::dsl::Order<
    diesel::dsl::Filter<
        diesel::dsl::Filter<photos::table, diesel::dsl::Eq<photos::user_id, i32>>,
        diesel::dsl::Eq<photos::status, i32>,
    >,
    photos::id,
>;

fn published(seed: &Seed) -> impl Fn() -> Published {
    let ann = seed.ann.id;
    move || {
        photos::table
            .filter(photos::user_id.eq(ann))
            .filter(photos::status.eq(2))
            .order(photos::id)
    }
}

fn set_status(cache: &Cache, conn: &mut PgConnection, id: i32, status: i32) {
    let _: Vec<Photo> = write::update(
        cache,
        conn,
        photos::table.find(id),
        photos::status.eq(status),
    )
    .unwrap();
}

#[test]
fn django_cachebot_readme_conditions() {
    // Photo's composite key is registered on the caches' builders (common.rs).
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        cache.instrument(&mut conn).unwrap();
        let q = published(&seed);
        let joined = || {
            photos::table
                .inner_join(users::table)
                .filter(photos::user_id.eq(seed.ann.id))
                .filter(photos::status.eq(2))
                .order(photos::id)
        };
        let warm = |conn: &mut PgConnection| {
            let _ = hit!(cache, conn, q(), Vec<Photo>);
            let _ = hit!(cache, conn, joined(), Vec<(Photo, User)>);
            assert!(hit!(cache, conn, q(), Vec<Photo>), "{store}: warm");
        };
        // A returned photo changes.
        warm(&mut conn);
        let mut p = Photo::get(&cache, &mut conn, seed.photos[0].id)
            .unwrap()
            .unwrap();
        p.title = format!("retitled on {store}");
        p.save(&cache, &mut conn).unwrap();
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: a returned photo changed"
        );
        // The joined user changes: the join reads users, the plain query does not.
        warm(&mut conn);
        let _: Vec<User> = write::update(
            &cache,
            &mut conn,
            users::table.find(seed.ann.id),
            users::email.eq("ann@x"),
        )
        .unwrap();
        assert!(
            !hit!(cache, &mut conn, joined(), Vec<(Photo, User)>),
            "{store}: the joined user changed"
        );
        assert!(
            hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: users is not read by the plain query"
        );
        // A photo of this user with status 2 is inserted, updated, deleted.
        warm(&mut conn);
        let new = Photo::insert(
            &cache,
            &mut conn,
            NewPhoto {
                user_id: seed.ann.id,
                status: 2,
                title: "new".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!hit!(cache, &mut conn, q(), Vec<Photo>), "{store}: insert");
        warm(&mut conn);
        set_status(&cache, &mut conn, new[0].id, 2);
        assert!(!hit!(cache, &mut conn, q(), Vec<Photo>), "{store}: update");
        warm(&mut conn);
        new[0].delete(&cache, &mut conn).unwrap();
        assert!(!hit!(cache, &mut conn, q(), Vec<Photo>), "{store}: delete");
        // Another user's status-2 photo cannot change ann's: it stays a hit.
        warm(&mut conn);
        set_status(&cache, &mut conn, seed.photos[3].id, 2);
        Photo::insert(
            &cache,
            &mut conn,
            NewPhoto {
                user_id: seed.bob.id,
                status: 2,
                title: "b".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: another user's photos"
        );
    }
}

#[test]
fn rows_moving_into_and_out_of_a_filter_invalidate() {
    // Photo's composite key is registered on the caches' builders (common.rs).
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let q = published(&seed);
        let draft = seed.photos[2].id; // ann's status-1 photo
        let _ = hit!(cache, &mut conn, q(), Vec<Photo>);
        set_status(&cache, &mut conn, draft, 2); // moves in
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: moved in"
        );
        assert!(hit!(cache, &mut conn, q(), Vec<Photo>));
        set_status(&cache, &mut conn, draft, 1); // moves out
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: moved out"
        );
        // Moving between users: bob's photo becomes ann's, then goes back.
        let bobs = seed.photos[3].id;
        assert!(hit!(cache, &mut conn, q(), Vec<Photo>));
        let _: Vec<Photo> = write::update(
            &cache,
            &mut conn,
            photos::table.find(bobs),
            photos::user_id.eq(seed.ann.id),
        )
        .unwrap();
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: moved to ann"
        );
        let _: Vec<Photo> = write::update(
            &cache,
            &mut conn,
            photos::table.find(bobs),
            photos::user_id.eq(seed.bob.id),
        )
        .unwrap();
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: moved back to bob"
        );
        // A bulk update is exact row by row.
        assert!(hit!(cache, &mut conn, q(), Vec<Photo>));
        let moved: Vec<Photo> = write::update(
            &cache,
            &mut conn,
            photos::table.filter(photos::user_id.eq(seed.ann.id)),
            photos::status.eq(1),
        )
        .unwrap();
        assert_eq!(moved.len(), 3);
        assert!(
            !hit!(cache, &mut conn, q(), Vec<Photo>),
            "{store}: bulk update"
        );
        let _: Vec<Photo> = write::update(
            &cache,
            &mut conn,
            photos::table.filter(photos::user_id.eq(seed.ann.id)),
            photos::status.eq(2),
        )
        .unwrap();
    }
}

#[test]
fn inserts_reach_queries_without_equality_filters() {
    // Photo's composite key is registered on the caches' builders (common.rs).
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        let all = || photos::table.order(photos::id);
        let page = || photos::table.order(photos::id.desc()).limit(2);
        let negated = || {
            photos::table
                .filter(not(photos::status.eq(2)))
                .order(photos::id)
        };
        let range = || {
            photos::table
                .filter(photos::id.gt(seed.photos[1].id))
                .order(photos::id)
        };
        let read_all = |conn: &mut PgConnection| {
            [
                hit!(cache, conn, all(), Vec<Photo>),
                hit!(cache, conn, page(), Vec<Photo>),
                hit!(cache, conn, negated(), Vec<Photo>),
                hit!(cache, conn, range(), Vec<Photo>),
            ]
        };
        read_all(&mut conn);
        assert_eq!(read_all(&mut conn), [true; 4], "{store}: warm");
        Photo::insert(
            &cache,
            &mut conn,
            NewPhoto {
                user_id: seed.bob.id,
                status: 7,
                title: "n".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            read_all(&mut conn),
            [false; 4],
            "{store}: an insert reaches them all"
        );
        // A write to another table reaches none of them.
        let _: Vec<User> = write::update(
            &cache,
            &mut conn,
            users::table.find(seed.bob.id),
            users::name.eq("robert"),
        )
        .unwrap();
        assert_eq!(read_all(&mut conn), [true; 4], "{store}: users is not read");
    }
}

#[test]
fn composite_keys_are_precise_and_upserts_widen() {
    // Photo's composite key is registered on the caches' builders (common.rs).
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    for (store, cache) in caches() {
        // The derive's get by the declared key (user_id, status) registers it.
        let b = cache.stats();
        let got = Photo::get_by(
            &cache,
            &mut conn,
            (photos::user_id, photos::status),
            (seed.ann.id, 2),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let _ = Photo::get_by(
            &cache,
            &mut conn,
            (photos::user_id, photos::status),
            (seed.ann.id, 2),
        )
        .unwrap();
        assert_eq!(since(&cache, b).hits, 1, "{store}");
        // Ann's status-1 photo changes title: not (ann, 2), so still a hit.
        let _: Vec<Photo> = write::update(
            &cache,
            &mut conn,
            photos::table.find(seed.photos[2].id),
            photos::title.eq("t"),
        )
        .unwrap();
        let b = cache.stats();
        let _ = Photo::get_by(
            &cache,
            &mut conn,
            (photos::user_id, photos::status),
            (seed.ann.id, 2),
        )
        .unwrap();
        assert_eq!(
            since(&cache, b).hits,
            1,
            "{store}: composite key keeps it precise"
        );
        // An upsert cannot return old images: it invalidates the table.
        let p = &seed.photos[3];
        let _: Vec<Photo> = write::insert(
            &cache,
            &mut conn,
            diesel::insert_into(photos::table)
                .values((
                    photos::id.eq(p.id),
                    photos::user_id.eq(p.user_id),
                    photos::status.eq(p.status),
                    photos::title.eq(p.title.clone()),
                ))
                .on_conflict(photos::id)
                .do_update()
                .set(photos::title.eq("upserted")),
        )
        .unwrap();
        let b = cache.stats();
        let rows = Photo::get_by(
            &cache,
            &mut conn,
            (photos::user_id, photos::status),
            (seed.ann.id, 2),
        )
        .unwrap();
        assert_eq!(since(&cache, b).misses, 1, "{store}: upsert widens");
        assert_eq!(
            rows,
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .filter(photos::status.eq(2))
                .load::<Photo>(&mut conn)
                .unwrap()
        );
    }
}

#[test]
fn invalidate_object_and_writes_in_transactions_need_instrumentation() {
    // Photo's composite key is registered on the caches' builders (common.rs).
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let cache = Cache::in_process();
    let q = published(&seed);
    let _ = hit!(cache, &mut conn, q(), Vec<Photo>);
    // A change made behind the crate's back, then signalled with the row.
    diesel::update(photos::table.find(seed.photos[0].id))
        .set(photos::title.eq("behind"))
        .execute(&mut conn)
        .unwrap();
    let row: Photo = photos::table
        .find(seed.photos[0].id)
        .first(&mut conn)
        .unwrap();
    let mut keys = cachebot::model::RowKeys::as_written();
    row.row_keys(&mut keys);
    let keys = keys.keys();
    assert!(
        keys.len() >= 6,
        "one key per keyable column, the composite and the rows: {}",
        keys.len()
    );
    cache.invalidate_object(&row).unwrap();
    assert!(!hit!(cache, &mut conn, q(), Vec<Photo>));
    // Inside a transaction, the write API refuses an uninstrumented connection
    // (it could not wait for COMMIT).
    // (A connection that never read through the cache: a cached read would
    // have instrumented it.)
    let err = db
        .conn()
        .transaction::<_, diesel::result::Error, _>(|c| {
            let _: Vec<Photo> = write::update(
                &cache,
                c,
                photos::table.find(seed.photos[0].id),
                photos::status.eq(2),
            )?;
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("instrumented"), "{err}");
}

#[test]
fn an_exact_update_is_one_statement() {
    use std::sync::{Arc, Mutex};
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let cache = Cache::builder().model::<Photo>().build().unwrap();
    let statements = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = statements.clone();
    conn.set_instrumentation(cache.instrumentation().chain(
        move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::FinishQuery { query, .. } = event {
                seen.lock().unwrap().push(query.to_string());
            }
        },
    ));
    let q = published(&seed);
    let _ = hit!(cache, &mut conn, q(), Vec<Photo>);
    statements.lock().unwrap().clear();
    let moved: Vec<Photo> = write::update(
        &cache,
        &mut conn,
        photos::table.filter(photos::user_id.eq(seed.ann.id)),
        photos::status.eq(1),
    )
    .unwrap();
    assert_eq!(moved.len(), 3);
    let run = statements.lock().unwrap().clone();
    assert_eq!(run.len(), 1, "{run:#?}");
    assert!(
        run[0].starts_with("WITH \"cachebot_old\" AS (SELECT"),
        "{}",
        run[0]
    );
    assert!(run[0].contains("FOR UPDATE) UPDATE"), "{}", run[0]);
    // Old images (status 2 and 1) and new ones (status 1) were both invalidated.
    assert!(!hit!(cache, &mut conn, q(), Vec<Photo>));
}
