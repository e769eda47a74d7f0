//! The write API (`cachebot::aio::write`), explicit invalidation and
//! `CachedModelAsync` on diesel-async connections, against real PostgreSQL,
//! on the in-process store and on memcached: transactions (bumps wait for
//! COMMIT, a rollback serves nothing stale, reads inside bypass), the
//! uninstrumented-connection error, raw statements on an instrumented
//! connection, and the model methods, each checked against the database.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cachebot::aio::prelude::*;
use cachebot::aio::write;
use cachebot_tests::models::{NewPhoto, Photo};
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::{caches, seed, since, Seed};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::Error as DieselError;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// A fresh database seeded on a blocking connection, and an instrumented
/// async connection to it.
async fn setup(cache: &Cache) -> (TestDb, AsyncPgConnection, Seed) {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    cache.instrument_async(&mut conn).await.unwrap();
    (db, conn, seed)
}

/// Ann's published photos (`user_id = ann AND status = 2`), through the
/// cache: checked against the database; `true` on a hit.
async fn published(cache: &Cache, conn: &mut AsyncPgConnection, ann: i32) -> bool {
    let q = || {
        photos::table
            .filter(photos::user_id.eq(ann))
            .filter(photos::status.eq(2))
            .order(photos::id)
    };
    let b = cache.stats();
    let cached: Vec<Photo> = q().cache(cache).load(conn).await.unwrap();
    let d = since(cache, b);
    let truth: Vec<Photo> = q().load(conn).await.unwrap();
    assert_eq!(cached, truth, "stale");
    d.hits == 1
}

/// Rows sorted by id (`get_by` has no `ORDER BY`).
fn by_id(mut rows: Vec<Photo>) -> Vec<Photo> {
    rows.sort_by_key(|p| p.id);
    rows
}

/// Ann's published photos, from the database.
async fn oracle(conn: &mut AsyncPgConnection, ann: i32) -> diesel::QueryResult<Vec<Photo>> {
    photos::table
        .filter(photos::user_id.eq(ann))
        .filter(photos::status.eq(2))
        .order(photos::id)
        .load::<Photo>(conn)
        .await
}

fn new_photo(user_id: i32, status: i32, title: &str) -> NewPhoto {
    NewPhoto {
        user_id,
        status,
        title: title.into(),
        score: 1.0,
        deleted_at: None,
    }
}

/// The crate's error inside a Diesel error.
fn cachebot_error(e: &DieselError) -> Option<&cachebot::Error> {
    match e {
        DieselError::QueryBuilderError(b) => b.downcast_ref::<cachebot::Error>(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_a_transaction_invalidate_exactly() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let conn = &mut conn;
        let ann = s.ann.id;
        assert!(!published(&cache, conn, ann).await, "{store}");
        assert!(published(&cache, conn, ann).await, "{store}");
        // Bob's photo: another user's row, a hit.
        let _: Vec<Photo> = write::update(
            &cache,
            conn,
            photos::table.find(s.photos[3].id),
            photos::title.eq("elsewhere"),
        )
        .await
        .unwrap();
        assert!(published(&cache, conn, ann).await, "{store}: bob's write");
        // Ann's draft becomes published: a miss.
        let _: Vec<Photo> = write::update::<Photo, _, _, _>(
            &cache,
            conn,
            photos::table.find(s.photos[2].id),
            photos::status.eq(2),
        )
        .await
        .unwrap();
        assert!(
            !published(&cache, conn, ann).await,
            "{store}: into the filter"
        );
        assert!(published(&cache, conn, ann).await, "{store}");
        // Inserted, then deleted: a miss each time.
        let statement = diesel::insert_into(photos::table).values(new_photo(ann, 2, "new"));
        let new: Vec<Photo> = write::insert(&cache, conn, statement).await.unwrap();
        assert!(!published(&cache, conn, ann).await, "{store}: insert");
        let gone: Vec<Photo> = write::delete(&cache, conn, photos::table.find(new[0].id))
            .await
            .unwrap();
        assert_eq!(gone, new, "{store}");
        assert!(!published(&cache, conn, ann).await, "{store}: delete");
        // insert_values, as the blocking API names it.
        let more: Vec<Photo> = write::insert_values(&cache, conn, new_photo(ann, 1, "draft 2"))
            .await
            .unwrap();
        assert_eq!(more.len(), 1);
        // An empty changeset is refused, as Diesel refuses it.
        let none: Option<String> = None;
        let e = write::update::<Photo, _, _, _>(
            &cache,
            conn,
            photos::table.find(s.photos[0].id),
            none.map(|t| photos::title.eq(t)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, DieselError::QueryBuilderError(_)), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bumps_in_a_transaction_wait_for_commit() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let ann = s.ann.id;
        assert!(!published(&cache, &mut conn, ann).await);
        assert!(published(&cache, &mut conn, ann).await);
        let before = cache.stats();
        let draft = s.photos[2].id;
        let c = &cache;
        conn.transaction(async |conn| {
            let _: Vec<Photo> =
                write::update(c, conn, photos::table.find(draft), photos::status.eq(2)).await?;
            let _: Vec<Photo> = Photo::insert(c, conn, new_photo(ann, 2, "in tx")).await?;
            // Nothing bumped before the COMMIT.
            assert_eq!(
                since(c, before).invalidations,
                0,
                "{store}: bumped before COMMIT"
            );
            // A read inside the transaction bypasses the cache (and sees
            // the transaction's rows).
            let b = c.stats();
            let rows: Vec<Photo> = photos::table
                .filter(photos::user_id.eq(ann))
                .filter(photos::status.eq(2))
                .cache(c)
                .load(conn)
                .await?;
            let d = since(c, b);
            assert_eq!((d.hits, d.misses, d.bypasses), (0, 0, 1), "{store}: {d:?}");
            assert_eq!(rows.len(), 4, "{store}");
            Ok::<_, DieselError>(())
        })
        .await
        .unwrap();
        assert!(
            since(&cache, before).invalidations > 0,
            "{store}: nothing bumped at COMMIT"
        );
        assert!(
            !published(&cache, &mut conn, ann).await,
            "{store}: stale after COMMIT"
        );
        assert!(published(&cache, &mut conn, ann).await, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_write_serves_nothing_stale() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let ann = s.ann.id;
        assert!(!published(&cache, &mut conn, ann).await);
        assert!(published(&cache, &mut conn, ann).await);
        let first = s.photos[0].id;
        let c = &cache;
        let r = conn
            .transaction(async |conn| {
                let _: Vec<Photo> =
                    write::update(c, conn, photos::table.find(first), photos::status.eq(1)).await?;
                let _: Vec<Photo> =
                    write::delete(c, conn, photos::table.find(s.photos[1].id)).await?;
                Err::<(), _>(DieselError::RollbackTransaction)
            })
            .await;
        assert!(matches!(r, Err(DieselError::RollbackTransaction)), "{r:?}");
        // The rows did not change: the entry (hit or not) equals the database.
        published(&cache, &mut conn, ann).await;
        assert!(published(&cache, &mut conn, ann).await, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstrumented_connection_in_a_transaction_is_refused() {
    for (store, cache) in caches() {
        let (db, mut instrumented, s) = setup(&cache).await;
        let ann = s.ann.id;
        assert!(!published(&cache, &mut instrumented, ann).await);
        let mut bare = AsyncPgConnection::establish(&db.url()).await.unwrap();
        let c = &cache;
        let first = s.photos[0].id;
        let r = bare
            .transaction(async |conn| {
                let e = write::update::<Photo, _, _, _>(
                    c,
                    conn,
                    photos::table.find(first),
                    photos::status.eq(1),
                )
                .await
                .unwrap_err();
                assert!(
                    matches!(
                        cachebot_error(&e),
                        Some(cachebot::Error::NotInstrumentedInTransaction)
                    ),
                    "{store}: {e:?}"
                );
                let e = write::delete::<Photo, _, _>(c, conn, photos::table.find(first))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        cachebot_error(&e),
                        Some(cachebot::Error::NotInstrumentedInTransaction)
                    ),
                    "{store}: {e:?}"
                );
                let e = Photo::insert(c, conn, new_photo(ann, 2, "x"))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        cachebot_error(&e),
                        Some(cachebot::Error::NotInstrumentedInTransaction)
                    ),
                    "{store}: {e:?}"
                );
                Ok::<_, DieselError>(())
            })
            .await;
        r.unwrap();
        // The blocking API says the same.
        let mut sync = db.conn();
        let blocking = diesel::Connection::transaction(&mut sync, |conn| {
            Ok::<_, DieselError>(
                cachebot::write::update::<Photo, _, _, _>(
                    &cache,
                    conn,
                    photos::table.find(first),
                    photos::status.eq(1),
                )
                .unwrap_err(),
            )
        })
        .unwrap();
        assert_eq!(
            format!("{:?}", cachebot_error(&blocking)),
            format!("{:?}", Some(&cachebot::Error::NotInstrumentedInTransaction))
        );
        // Nothing was written: still a hit.
        assert!(published(&cache, &mut instrumented, ann).await, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_statements_on_an_instrumented_connection_invalidate() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let ann = s.ann.id;
        assert!(!published(&cache, &mut conn, ann).await);
        assert!(published(&cache, &mut conn, ann).await);
        diesel::update(photos::table.find(s.photos[0].id))
            .set(photos::status.eq(1))
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(!published(&cache, &mut conn, ann).await, "{store}: execute");
        assert!(published(&cache, &mut conn, ann).await, "{store}");
        // SQL the crate does not parse widens (to the table, or everything).
        conn.batch_execute(&format!(
            "UPDATE photos SET status = 2 WHERE id = {}",
            s.photos[2].id
        ))
        .await
        .unwrap();
        assert!(
            !published(&cache, &mut conn, ann).await,
            "{store}: batch_execute"
        );
        assert!(published(&cache, &mut conn, ann).await, "{store}");
        // Inside a transaction: at COMMIT.
        let bob = s.photos[3].id;
        conn.transaction(async |conn| {
            diesel::update(photos::table.find(bob))
                .set(photos::user_id.eq(ann))
                .execute(conn)
                .await
        })
        .await
        .unwrap();
        assert!(
            !published(&cache, &mut conn, ann).await,
            "{store}: after COMMIT"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_invalidation_awaited() {
    // Before any connection, the cache knows no database: the same error
    // as the blocking calls.
    let fresh = Cache::in_process();
    assert_eq!(
        format!("{:?}", fresh.invalidate_all_async().await),
        format!("{:?}", fresh.invalidate_all())
    );
    assert!(matches!(
        fresh.invalidate_all_async().await,
        Err(cachebot::Error::NoDatabase)
    ));
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let conn = &mut conn;
        let ann = s.ann.id;
        assert!(!published(&cache, conn, ann).await);
        assert!(published(&cache, conn, ann).await);
        // Another user's value: still a hit.
        let b = cache.stats();
        cache
            .invalidate_value_async(photos::user_id, s.bob.id)
            .await
            .unwrap();
        assert_eq!(since(&cache, b).invalidations, 4, "{store}");
        // (Keyed on the composite (user_id, status): the plain value's
        // key is not one it depends on; the table's rows are.)
        published(&cache, conn, ann).await;
        assert!(published(&cache, conn, ann).await);
        cache.invalidate_table_async("photos").await.unwrap();
        assert!(!published(&cache, conn, ann).await, "{store}: table");
        assert!(published(&cache, conn, ann).await);
        cache.invalidate_object_async(&s.photos[0]).await.unwrap();
        assert!(!published(&cache, conn, ann).await, "{store}: object");
        assert!(published(&cache, conn, ann).await);
        cache.invalidate_all_async().await.unwrap();
        assert!(!published(&cache, conn, ann).await, "{store}: all");
        // The same usage errors as the blocking calls.
        assert_eq!(
            format!("{:?}", cache.invalidate_table_async("").await),
            format!("{:?}", cache.invalidate_table(""))
        );
        assert!(cache.invalidate_table_async("").await.is_err());
    }
}

/// Counts the statements a connection starts.
#[derive(Clone, Default)]
struct Queries(Arc<AtomicUsize>);

impl Instrumentation for Queries {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Queries {
    fn count(&self) -> usize {
        AtomicUsize::load(&self.0, Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_model_async() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let queries = Queries::default();
        conn.set_instrumentation(cache.instrumentation().chain(queries.clone()));
        let conn = &mut conn;
        let ann = s.ann.id;
        let [p0, p1, p2, p3] = [0, 1, 2, 3].map(|i| s.photos[i].clone());
        // get: a miss, then a hit.
        let b = cache.stats();
        assert_eq!(
            Photo::get(&cache, conn, p0.id).await.unwrap(),
            Some(p0.clone())
        );
        assert_eq!(
            Photo::get(&cache, conn, p0.id).await.unwrap(),
            Some(p0.clone())
        );
        let d = since(&cache, b);
        assert_eq!((d.hits, d.misses), (1, 1), "{store}: get {d:?}");
        // get_many: p0 is held; p1, p2 and a missing id are loaded by ONE
        // query; in the order of the ids.
        let ids = [p2.id, p0.id, -1, p1.id];
        let b = cache.stats();
        let q = queries.count();
        let rows = Photo::get_many(&cache, conn, &ids).await.unwrap();
        let d = since(&cache, b);
        assert_eq!(
            queries.count() - q,
            1,
            "{store}: one query for the missing ids"
        );
        assert_eq!((d.hits, d.misses), (1, 3), "{store}: get_many {d:?}");
        assert_eq!(rows, vec![p2.clone(), p0.clone(), p1.clone()], "{store}");
        // Again: every id a hit, no query.
        let b = cache.stats();
        let q = queries.count();
        let again = Photo::get_many(&cache, conn, &ids).await.unwrap();
        let d = since(&cache, b);
        assert_eq!(queries.count() - q, 0, "{store}: all hits");
        assert_eq!((d.hits, d.misses), (4, 0), "{store}: {d:?}");
        assert_eq!(again, rows);
        // get_by on the declared key.
        let b = cache.stats();
        let published_rows =
            Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
                .await
                .unwrap();
        assert_eq!(
            by_id(published_rows.clone()),
            vec![p0.clone(), p1.clone()],
            "{store}"
        );
        let again = Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
            .await
            .unwrap();
        assert_eq!(again, published_rows);
        let d = since(&cache, b);
        assert_eq!((d.hits, d.misses), (1, 1), "{store}: get_by {d:?}");
        // insert: the key's result changes.
        let new = Photo::insert(&cache, conn, new_photo(ann, 2, "new"))
            .await
            .unwrap();
        let b = cache.stats();
        let rows = Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
            .await
            .unwrap();
        assert_eq!(since(&cache, b).misses, 1, "{store}: after insert");
        assert_eq!(
            by_id(rows.clone()),
            oracle(conn, ann).await.unwrap(),
            "{store}"
        );
        // save: the draft moves into the key, and its get sees it.
        let mut draft = p2.clone();
        draft.status = 2;
        let saved = draft.save(&cache, conn).await.unwrap();
        assert_eq!(saved, draft);
        assert_eq!(
            Photo::get(&cache, conn, p2.id).await.unwrap(),
            Some(draft.clone())
        );
        let rows = Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
            .await
            .unwrap();
        assert_eq!(
            by_id(rows.clone()),
            oracle(conn, ann).await.unwrap(),
            "{store}: after save"
        );
        assert!(rows.contains(&draft));
        // Bob's row moved: the key's result stays a hit.
        let mut city = p3.clone();
        city.title = "town".into();
        city.save(&cache, conn).await.unwrap();
        let b = cache.stats();
        Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
            .await
            .unwrap();
        assert_eq!(since(&cache, b).hits, 1, "{store}: another user's save");
        // delete: gone from every get.
        assert_eq!(new[0].delete(&cache, conn).await.unwrap(), 1);
        assert_eq!(new[0].delete(&cache, conn).await.unwrap(), 0);
        assert_eq!(Photo::get(&cache, conn, new[0].id).await.unwrap(), None);
        let rows = Photo::get_many(&cache, conn, &[new[0].id, p2.id])
            .await
            .unwrap();
        assert_eq!(rows, vec![draft.clone()], "{store}");
        let rows = Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2))
            .await
            .unwrap();
        assert_eq!(
            by_id(rows.clone()),
            oracle(conn, ann).await.unwrap(),
            "{store}: after delete"
        );
        // A saved row that is gone: NotFound.
        let e = new[0].save(&cache, conn).await.unwrap_err();
        assert!(matches!(e, DieselError::NotFound), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_model_async_inside_a_transaction() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let p0 = s.photos[0].clone();
        assert_eq!(
            Photo::get(&cache, &mut conn, p0.id).await.unwrap(),
            Some(p0.clone())
        );
        let c = &cache;
        let mut changed = p0.clone();
        changed.title = "in tx".into();
        let inner = changed.clone();
        conn.transaction(async |conn| {
            inner.save(c, conn).await?;
            // Reads inside bypass and see the transaction's row.
            let b = c.stats();
            assert_eq!(Photo::get(c, conn, p0.id).await?, Some(inner.clone()));
            let many = Photo::get_many(c, conn, &[p0.id]).await?;
            assert_eq!(many, vec![inner.clone()]);
            let d = since(c, b);
            assert_eq!((d.hits, d.misses, d.bypasses), (0, 0, 2), "{store}: {d:?}");
            Ok::<_, DieselError>(())
        })
        .await
        .unwrap();
        let b = cache.stats();
        assert_eq!(
            Photo::get(&cache, &mut conn, p0.id).await.unwrap(),
            Some(changed)
        );
        assert_eq!(since(&cache, b).misses, 1, "{store}: invalidated at COMMIT");
    }
}

/// A repeated id: its row once, and what the cache then holds for it must
/// still be its row (the second occurrence once stored its already-taken,
/// empty rows under the same entry: "not found" until a write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_with_a_repeated_id() {
    for (store, cache) in caches() {
        let (_db, mut conn, s) = setup(&cache).await;
        let p0 = s.photos[0].clone();
        let ids = [p0.id, p0.id];
        let rows = Photo::get_many(&cache, &mut conn, &ids).await.unwrap();
        assert_eq!(rows, vec![p0.clone()], "{store}");
        let rows = Photo::get_many(&cache, &mut conn, &ids).await.unwrap();
        assert_eq!(rows, vec![p0.clone()], "{store}: stale after a repeated id");
        assert_eq!(
            Photo::get(&cache, &mut conn, p0.id).await.unwrap(),
            Some(p0),
            "{store}"
        );
    }
}
