//! Writes that bypass the crate's write API still invalidate, at the right
//! moment: plain Diesel, `sql_query` and `batch_execute` on an instrumented
//! connection; deferred to COMMIT inside transactions, dropped on rollback.

mod common;

use cachebot::prelude::*;
use cachebot_tests::models::{Photo, ThirdModel, User};
use cachebot_tests::schema::{photos, third_models, users};
use cachebot_tests::{Fixture, TestDb};
use common::{caches, expect, seed, since};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// A write made on a connection, by some path other than the crate's API.
type Write<'a> = Box<dyn Fn(&mut PgConnection) + 'a>;

fn instrumented(db: &TestDb, cache: &Cache) -> PgConnection {
    let mut conn = db.conn();
    cache.instrument(&mut conn).unwrap();
    conn
}

#[test]
fn plain_diesel_writes_invalidate_their_tables() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let users_q = || users::table.order(users::id);
        let read = |conn: &mut PgConnection| -> (Vec<Photo>, Vec<User>) {
            (
                q().cache(&cache).load(conn).unwrap(),
                users_q().cache(&cache).load(conn).unwrap(),
            )
        };
        let truth = |conn: &mut PgConnection| -> (Vec<Photo>, Vec<User>) {
            (q().load(conn).unwrap(), users_q().load(conn).unwrap())
        };
        read(&mut reader);
        let writes: Vec<(&str, Write)> = vec![
            (
                "diesel::update",
                Box::new(|c| {
                    diesel::update(photos::table.find(seed.photos[0].id))
                        .set(photos::title.eq("via update"))
                        .execute(c)
                        .unwrap();
                }),
            ),
            (
                "sql_query",
                Box::new(|c| {
                    diesel::sql_query("UPDATE photos SET title = 'via sql_query' WHERE status = 2")
                        .execute(c)
                        .unwrap();
                }),
            ),
            (
                "batch_execute",
                Box::new(|c| {
                    c.batch_execute("SELECT 1; DELETE FROM photos WHERE title = 'draft'")
                        .unwrap();
                }),
            ),
            (
                "insert",
                Box::new(|c| {
                    diesel::sql_query(format!(
                        "INSERT INTO photos (user_id, status, title) VALUES ({}, 5, 'new')",
                        seed.ann.id
                    ))
                    .execute(c)
                    .unwrap();
                }),
            ),
        ];
        for (what, write) in &writes {
            let b = cache.stats();
            write(&mut writer);
            let got = read(&mut reader);
            // Only the photos query is invalidated; users is untouched.
            expect(&cache, b, 1, 1, &format!("{store}: {what}"));
            assert_eq!(got, truth(&mut reader), "{store}: {what}");
        }
        // A write the crate cannot attribute to a table invalidates everything.
        writer
            .batch_execute("DO $$ BEGIN UPDATE users SET email = 'x'; END $$")
            .unwrap();
        let b = cache.stats();
        let got = read(&mut reader);
        expect(&cache, b, 0, 2, &format!("{store}: DO block"));
        assert_eq!(got, truth(&mut reader));
        // Reads on the instrumented connection do not invalidate anything.
        let _ = read(&mut writer);
        let b = cache.stats();
        let _ = read(&mut writer);
        expect(&cache, b, 2, 0, &format!("{store}: reads are not writes"));
    }
}

#[test]
fn transactions_invalidate_after_commit_and_never_on_rollback() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let q = || {
            photos::table
                .filter(photos::user_id.eq(seed.ann.id))
                .order(photos::id)
        };
        let _: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();

        // Rolled back: nothing invalidated.
        let b = cache.stats();
        let _ = writer.transaction::<(), _, _>(|c| {
            diesel::update(photos::table)
                .set(photos::title.eq("rolled back"))
                .execute(c)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        let _: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();
        expect(&cache, b, 1, 0, &format!("{store}: rollback"));

        // During the transaction another connection still hits (the commit has
        // not happened: the cached rows are the committed ones); after COMMIT it misses.
        let b = cache.stats();
        let title = format!("committed-{store}");
        writer
            .transaction::<(), diesel::result::Error, _>(|c| {
                diesel::update(photos::table)
                    .set(photos::title.eq(&title))
                    .execute(c)?;
                let during: Vec<Photo> = q().cache(&cache).load(&mut reader)?;
                assert!(during.iter().all(|p| p.title != title), "{store}");
                Ok(())
            })
            .unwrap();
        let b = expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: read during the transaction"),
        );
        let after: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();
        expect(&cache, b, 0, 1, &format!("{store}: read after COMMIT"));
        assert_eq!(after, q().load::<Photo>(&mut reader).unwrap());
        assert!(after.iter().all(|p| p.title == title));
    }
}

#[test]
fn savepoints_merge_on_release_and_drop_on_rollback() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let mut writer = instrumented(&db, &cache);
    let mut reader = db.conn();
    let photos_q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    let users_q = || users::table.order(users::id);
    let read = |conn: &mut PgConnection| {
        let _: Vec<Photo> = photos_q().cache(&cache).load(conn).unwrap();
        let _: Vec<User> = users_q().cache(&cache).load(conn).unwrap();
    };
    read(&mut reader);
    let b = cache.stats();
    writer
        .transaction::<(), diesel::result::Error, _>(|c| {
            // Rolled back savepoint: its users write invalidates nothing.
            let _ = c.transaction::<(), _, _>(|c| {
                diesel::update(users::table)
                    .set(users::email.eq("gone"))
                    .execute(c)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            // Released savepoint: its photos write waits for the outer COMMIT.
            c.transaction::<(), diesel::result::Error, _>(|c| {
                diesel::update(photos::table)
                    .set(photos::status.eq(9))
                    .execute(c)?;
                Ok(())
            })?;
            read(&mut reader);
            Ok(())
        })
        .unwrap();
    let b = expect(&cache, b, 2, 0, "inside: nothing invalidated before COMMIT");
    read(&mut reader);
    expect(
        &cache,
        b,
        1,
        1,
        "after COMMIT: photos (released savepoint) missed, users (rolled back) hit",
    );
}

#[test]
fn raw_begin_and_commit_are_followed_too() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let mut writer = instrumented(&db, &cache);
    let mut reader = db.conn();
    let q = || photos::table.filter(photos::user_id.eq(seed.bob.id));
    let _: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();
    writer.batch_execute("BEGIN").unwrap();
    writer
        .batch_execute("UPDATE photos SET title = 'raw'")
        .unwrap();
    let b = cache.stats();
    let during: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();
    let b = expect(&cache, b, 1, 0, "before the raw COMMIT");
    assert!(during.iter().all(|p| p.title != "raw"));
    writer.batch_execute("COMMIT").unwrap();
    let after: Vec<Photo> = q().cache(&cache).load(&mut reader).unwrap();
    expect(&cache, b, 0, 1, "after the raw COMMIT");
    assert!(after.iter().all(|p| p.title == "raw"));
}

#[test]
fn cascading_deletes_invalidate_the_child_tables() {
    let db = TestDb::new();
    let cache = Cache::in_process();
    let mut writer = instrumented(&db, &cache);
    let mut reader = db.conn();
    let fx = Fixture::create(&mut reader);
    let q = || third_models::table.find(fx.t.id);
    let _: Vec<ThirdModel> = q().cache(&cache).load(&mut reader).unwrap();
    // Deleting the grandparent deletes t through two ON DELETE CASCADE keys.
    diesel::delete(cachebot_tests::schema::first_models::table.find(fx.f.id))
        .execute(&mut writer)
        .unwrap();
    let b = cache.stats();
    let rows: Vec<ThirdModel> = q().cache(&cache).load(&mut reader).unwrap();
    expect(&cache, b, 0, 1, "t was deleted by the cascade");
    assert!(rows.is_empty());
}

#[test]
fn user_instrumentation_keeps_working_when_chained() {
    use std::sync::{Arc, Mutex};
    let db = TestDb::new();
    let cache = Cache::in_process();
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    let mut conn = db.conn();
    cache.instrument(&mut conn).unwrap();
    conn.set_instrumentation(cache.instrumentation().chain(
        move |event: diesel::connection::InstrumentationEvent<'_>| {
            if matches!(
                event,
                diesel::connection::InstrumentationEvent::FinishQuery { .. }
            ) {
                *counter.lock().unwrap() += 1;
            }
        },
    ));
    seed(&mut conn);
    assert!(
        *seen.lock().unwrap() >= 6,
        "the chained instrumentation saw the inserts"
    );
    assert!(since(&cache, cachebot::Stats::default()).invalidations > 0);
}

#[test]
fn a_pool_customizer_instruments_every_connection() {
    let db = TestDb::new();
    let cache = Cache::in_process();
    let pool = diesel::r2d2::Pool::builder()
        .max_size(2)
        .connection_customizer(Box::new(cache.pool_customizer()))
        .build(diesel::r2d2::ConnectionManager::<PgConnection>::new(
            db.url(),
        ))
        .unwrap();
    let seed = seed(&mut pool.get().unwrap());
    let q = || photos::table.filter(photos::user_id.eq(seed.bob.id));
    let _: Vec<Photo> = q().cache(&cache).load(&mut pool.get().unwrap()).unwrap();
    diesel::update(photos::table)
        .set(photos::status.eq(7))
        .execute(&mut pool.get().unwrap())
        .unwrap();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut pool.get().unwrap()).unwrap();
    expect(&cache, b, 0, 1, "pooled write invalidated");
    assert!(rows.iter().all(|p| p.status == 7));
}
