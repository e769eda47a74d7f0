//! Transaction control anywhere in a batch, reads inside raw transactions,
//! and write shapes the analysis must not miss (issue 11, items 4 and 5).
//!
//! Every test runs on both stores against the real PostgreSQL, and checks
//! the oracle (a cached read equals the same query uncached) and, where it
//! tells something, hits and misses through `cache.stats()`.

mod common;

use cachebot::prelude::*;
use cachebot_tests::models::{Photo, User};
use cachebot_tests::schema::{photos, users};
use cachebot_tests::TestDb;
use common::{caches, expect, seed, since, Seed};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

diesel::table! {
    tags (id) {
        id -> Int4,
        photo_id -> Nullable<Int4>,
        label -> Text,
    }
}

diesel::table! {
    events (id) {
        id -> Int4,
        kind -> Int4,
        note -> Text,
    }
}

diesel::table! {
    events_1 (id) {
        id -> Int4,
        kind -> Int4,
        note -> Text,
    }
}

diesel::table! {
    audit (id) {
        id -> Int4,
        note -> Text,
    }
}

fn instrumented(db: &TestDb, cache: &Cache) -> PgConnection {
    let mut conn = db.conn();
    cache.instrument(&mut conn).unwrap();
    conn
}

fn photos_q(user: i32) -> photos::BoxedQuery<'static, diesel::pg::Pg> {
    photos::table
        .filter(photos::user_id.eq(user))
        .order(photos::id)
        .into_boxed()
}

/// The cached read of a user's photos, asserted equal to the database's.
#[track_caller]
fn fresh_photos(cache: &Cache, conn: &mut PgConnection, user: i32, what: &str) -> Vec<Photo> {
    let cached: Vec<Photo> = photos_q(user).cache(cache).load(conn).unwrap();
    let truth: Vec<Photo> = photos_q(user).load(conn).unwrap();
    assert_eq!(cached, truth, "stale: {what}");
    cached
}

#[track_caller]
fn fresh_users(cache: &Cache, conn: &mut PgConnection, what: &str) -> Vec<User> {
    let q = || users::table.order(users::id);
    let cached: Vec<User> = q().cache(cache).load(conn).unwrap();
    let truth: Vec<User> = q().load(conn).unwrap();
    assert_eq!(cached, truth, "stale: {what}");
    cached
}

fn setup() -> (TestDb, Seed) {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    (db, seed)
}

#[test]
fn begin_and_set_local_in_one_batch_defer_to_the_commit() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '5s'")
            .unwrap();
        diesel::update(photos::table.filter(photos::user_id.eq(ann)))
            .set(photos::title.eq(format!("in tx {store}")))
            .execute(&mut writer)
            .unwrap();
        // Not committed: the cached rows are still the database's.
        let b = cache.stats();
        fresh_photos(&cache, &mut reader, ann, "during");
        let b = expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: nothing bumped before COMMIT"),
        );
        writer.batch_execute("COMMIT").unwrap();
        let after = fresh_photos(&cache, &mut reader, ann, "after COMMIT");
        expect(&cache, b, 0, 1, &format!("{store}: bumped at COMMIT"));
        assert!(after.iter().all(|p| p.title == format!("in tx {store}")));
    }
}

#[test]
fn a_whole_transaction_in_one_batch_commits_and_leaves_no_transaction_open() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; \
                 UPDATE photos SET title = 'one batch {store}' WHERE user_id = {ann}; COMMIT"
            ))
            .unwrap();
        fresh_photos(&cache, &mut reader, ann, "after the batch");
        // The connection is not left "in a transaction": later writes bump at once.
        diesel::update(photos::table.filter(photos::user_id.eq(ann)))
            .set(photos::status.eq(7))
            .execute(&mut writer)
            .unwrap();
        let b = cache.stats();
        let rows = fresh_photos(&cache, &mut reader, ann, "after a later write");
        expect(&cache, b, 0, 1, &format!("{store}: the later write bumped"));
        assert!(rows.iter().all(|p| p.status == 7));
        // And reads on the writer are cached again.
        let b = cache.stats();
        fresh_photos(&cache, &mut writer, ann, "writer reads");
        fresh_photos(&cache, &mut writer, ann, "writer reads again");
        assert_eq!(since(&cache, b).bypasses, 0, "{store}");
    }
}

#[test]
fn a_savepoint_and_a_write_in_one_batch_inside_a_diesel_transaction() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer
            .transaction::<_, diesel::result::Error, _>(|c| {
                c.batch_execute(&format!(
                    "SAVEPOINT s1; UPDATE photos SET title = 'sp {store}' WHERE user_id = {ann}"
                ))?;
                c.batch_execute("RELEASE SAVEPOINT s1")
            })
            .unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after COMMIT");
        assert!(rows.iter().all(|p| p.title == format!("sp {store}")));
        // Rolled back to the savepoint inside the batch: nothing to bump, and
        // the write after it still counts.
        writer
            .transaction::<_, diesel::result::Error, _>(|c| {
                c.batch_execute(&format!(
                    "SAVEPOINT s2; UPDATE users SET name = 'gone'; ROLLBACK TO SAVEPOINT s2; \
                     UPDATE photos SET status = 5 WHERE user_id = {ann}"
                ))
            })
            .unwrap();
        fresh_photos(&cache, &mut reader, ann, "write after ROLLBACK TO");
        fresh_users(&cache, &mut reader, "rolled back users");
    }
}

#[test]
fn reads_inside_a_raw_transaction_bypass_the_cache() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        writer.batch_execute("BEGIN").unwrap();
        writer
            .batch_execute(&format!(
                "UPDATE photos SET title = 'uncommitted' WHERE user_id = {ann}"
            ))
            .unwrap();
        // On the writer's connection: its own uncommitted rows, never stored.
        let b = cache.stats();
        let mine: Vec<Photo> = photos_q(ann).cache(&cache).load(&mut writer).unwrap();
        assert!(mine.iter().all(|p| p.title == "uncommitted"));
        let d = since(&cache, b);
        assert_eq!(
            (d.hits, d.misses, d.stores, d.bypasses),
            (0, 0, 0, 1),
            "{store}: a read in a raw transaction bypasses"
        );
        writer.batch_execute("ROLLBACK").unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after ROLLBACK");
        assert!(rows.iter().all(|p| p.title != "uncommitted"));
        // Same with START TRANSACTION and an uncommitted insert.
        writer
            .batch_execute(&format!(
                "START TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
                 INSERT INTO photos (user_id, status, title) VALUES ({ann}, 2, 'ghost')"
            ))
            .unwrap();
        let mine: Vec<Photo> = photos_q(ann).cache(&cache).load(&mut writer).unwrap();
        assert!(mine.iter().any(|p| p.title == "ghost"));
        writer.batch_execute("ABORT").unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after ABORT");
        assert!(rows.iter().all(|p| p.title != "ghost"));
        // Outside the transaction the writer's reads are cached again.
        let b = cache.stats();
        fresh_photos(&cache, &mut writer, ann, "writer after ABORT");
        assert_eq!(since(&cache, b).bypasses, 0, "{store}");
    }
}

#[test]
fn commit_and_chain_commits_then_defers_the_next_transaction() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer.batch_execute("BEGIN").unwrap();
        writer
            .batch_execute(&format!(
                "UPDATE photos SET title = 'first' WHERE user_id = {ann}"
            ))
            .unwrap();
        writer.batch_execute("COMMIT AND CHAIN").unwrap();
        let b = cache.stats();
        fresh_photos(&cache, &mut reader, ann, "after COMMIT AND CHAIN");
        let b = expect(
            &cache,
            b,
            0,
            1,
            &format!("{store}: the first commit bumped"),
        );
        // The chained transaction: its write waits for its COMMIT.
        writer
            .batch_execute(&format!(
                "UPDATE photos SET title = 'second' WHERE user_id = {ann}"
            ))
            .unwrap();
        fresh_photos(&cache, &mut reader, ann, "during the chained transaction");
        let b = expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: not bumped before COMMIT"),
        );
        // ROLLBACK AND CHAIN drops it and opens a third.
        writer.batch_execute("ROLLBACK AND CHAIN").unwrap();
        writer
            .batch_execute(&format!(
                "UPDATE photos SET title = 'third' WHERE user_id = {ann}"
            ))
            .unwrap();
        fresh_photos(&cache, &mut reader, ann, "during the third");
        let b = expect(&cache, b, 1, 0, &format!("{store}: nothing committed yet"));
        writer.batch_execute("END").unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after END");
        expect(&cache, b, 0, 1, &format!("{store}: END committed"));
        assert!(rows.iter().all(|p| p.title == "third"));
    }
}

#[test]
fn a_batch_that_fails_midway_bumps_what_it_committed() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        fresh_users(&cache, &mut reader, "warm");
        // Outside a transaction: the COMMIT inside the batch commits the
        // photos update; the users update is rolled back with the failure.
        let err = writer.batch_execute(&format!(
            "UPDATE photos SET title = 'kept {store}' WHERE user_id = {ann}; COMMIT; \
             UPDATE users SET name = 'lost'; SELECT 1 / 0"
        ));
        assert!(err.is_err());
        let rows = fresh_photos(&cache, &mut reader, ann, "committed before the failure");
        assert!(rows.iter().all(|p| p.title == format!("kept {store}")));
        let users = fresh_users(&cache, &mut reader, "rolled back by the failure");
        assert!(users.iter().all(|u| u.name != "lost"));
        // Nothing left open: the next write bumps at once.
        diesel::update(photos::table.filter(photos::user_id.eq(ann)))
            .set(photos::status.eq(4))
            .execute(&mut writer)
            .unwrap();
        fresh_photos(&cache, &mut reader, ann, "a write after the failed batch");

        // A failure after BEGIN leaves the server in an aborted transaction:
        // reads on the writer go to the database (which refuses them), and
        // after the ROLLBACK all is as before.
        let err = writer.batch_execute(&format!(
            "BEGIN; UPDATE photos SET title = 'aborted' WHERE user_id = {ann}; SELECT 1 / 0"
        ));
        assert!(err.is_err());
        let b = cache.stats();
        let read: QueryResult<Vec<Photo>> = photos_q(ann).cache(&cache).load(&mut writer);
        assert!(
            read.is_err(),
            "{store}: the aborted transaction refuses reads"
        );
        assert_eq!(since(&cache, b).hits, 0, "{store}");
        writer.batch_execute("ROLLBACK").unwrap();
        let rows = fresh_photos(&cache, &mut writer, ann, "writer after ROLLBACK");
        assert!(rows.iter().all(|p| p.title != "aborted"));
        fresh_photos(&cache, &mut reader, ann, "reader after ROLLBACK");
        // The tracker is not stuck in a transaction.
        diesel::update(photos::table.filter(photos::user_id.eq(ann)))
            .set(photos::status.eq(6))
            .execute(&mut writer)
            .unwrap();
        let b = cache.stats();
        fresh_photos(&cache, &mut reader, ann, "a write after the ROLLBACK");
        expect(&cache, b, 0, 1, &format!("{store}: bumped at once"));
    }
}

#[test]
fn a_comment_marker_does_not_hide_the_rest_of_a_batch() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer
            .batch_execute(&format!(
                "SELECT 1 -- binds: x\n; UPDATE photos SET title = 'after a comment' WHERE user_id = {ann}"
            ))
            .unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after the batch");
        assert!(rows.iter().all(|p| p.title == "after a comment"), "{store}");
        // And in a string.
        writer
            .batch_execute(&format!(
                "SELECT ' -- binds: ['; UPDATE photos SET status = 8 WHERE user_id = {ann} AND ARRAY[1] = ARRAY[1]"
            ))
            .unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after the second batch");
        assert!(rows.iter().all(|p| p.status == 8), "{store}");
    }
}

#[test]
fn explain_analyze_with_options_is_a_write() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        for (i, sql) in [
            "EXPLAIN (ANALYZE, BUFFERS) UPDATE photos SET status = 11 WHERE user_id = {ann}",
            "EXPLAIN (FORMAT JSON, ANALYZE true) UPDATE photos SET status = 12 WHERE user_id = {ann}",
            "EXPLAIN ANALYZE VERBOSE DELETE FROM photos WHERE user_id = {ann} AND status = 12",
        ]
        .iter()
        .enumerate()
        {
            fresh_photos(&cache, &mut reader, ann, "warm");
            let sql = sql.replace("{ann}", &ann.to_string());
            diesel::sql_query(&sql).execute(&mut writer).unwrap();
            fresh_photos(&cache, &mut reader, ann, &format!("{store}: {i}: {sql}"));
        }
    }
}

#[test]
fn truncate_cascade_empties_tables_with_no_action_keys() {
    let (db, seed) = setup();
    db.conn()
        .batch_execute(&format!(
            "CREATE TABLE tags (id SERIAL PRIMARY KEY, \
                 photo_id INTEGER REFERENCES photos (id), label TEXT NOT NULL); \
             INSERT INTO tags (photo_id, label) VALUES ({}, 'a'), ({}, 'b')",
            seed.photos[0].id, seed.photos[3].id
        ))
        .unwrap();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let q = || tags::table.select(tags::label).order(tags::id);
        let before: Vec<String> = q().cache(&cache).load(&mut reader).unwrap();
        assert_eq!(before.len(), 2, "{store}");
        // users -> photos is ON DELETE CASCADE, photos -> tags NO ACTION:
        // TRUNCATE ... CASCADE empties both, transitively.
        writer.batch_execute("TRUNCATE users CASCADE").unwrap();
        let b = cache.stats();
        let after: Vec<String> = q().cache(&cache).load(&mut reader).unwrap();
        expect(&cache, b, 0, 1, &format!("{store}: tags were emptied"));
        assert_eq!(after, q().load::<String>(&mut reader).unwrap());
        assert!(after.is_empty());
        // Refill for the next store.
        let seed = seed_again(&mut reader);
        reader
            .batch_execute(&format!(
                "INSERT INTO tags (photo_id, label) VALUES ({}, 'a'), ({}, 'b')",
                seed.photos[0].id, seed.photos[3].id
            ))
            .unwrap();
    }
}

fn seed_again(conn: &mut PgConnection) -> Seed {
    seed(conn)
}

#[test]
fn writes_to_tables_with_rules_and_to_views_reach_what_they_write() {
    let (db, seed) = setup();
    let ann = seed.ann.id;
    db.conn()
        .batch_execute(&format!(
            "CREATE TABLE audit (id SERIAL PRIMARY KEY, note TEXT NOT NULL); \
             CREATE RULE photos_audit AS ON UPDATE TO photos \
                 DO ALSO INSERT INTO audit (note) VALUES ('photo ' || NEW.id); \
             CREATE RULE photos_audit_insert AS ON INSERT TO photos \
                 DO ALSO INSERT INTO audit (note) VALUES ('new photo'); \
             CREATE VIEW ann_photos AS SELECT * FROM photos WHERE user_id = {ann}"
        ))
        .unwrap();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let q = || audit::table.select(audit::note).order(audit::id);
        let notes = |conn: &mut PgConnection| -> Vec<String> {
            let cached: Vec<String> = q().cache(&cache).load(conn).unwrap();
            assert_eq!(
                cached,
                q().load::<String>(conn).unwrap(),
                "{store}: stale audit"
            );
            cached
        };
        let n = notes(&mut reader).len();
        // The rule writes audit, which the UPDATE does not name.
        diesel::update(photos::table.find(seed.photos[0].id))
            .set(photos::status.eq(3))
            .execute(&mut writer)
            .unwrap();
        assert_eq!(notes(&mut reader).len(), n + 1);
        // Through the crate's write API (its UPDATE uses a WITH, which
        // PostgreSQL refuses on tables with rules; its INSERT works).
        let rows = Photo::insert(
            &cache,
            &mut writer,
            (
                photos::user_id.eq(ann),
                photos::status.eq(1),
                photos::title.eq("ruled"),
            ),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(notes(&mut reader).len(), n + 2);
        // An update through a view writes the table under it.
        fresh_photos(&cache, &mut reader, ann, "warm");
        writer
            .batch_execute(&format!("UPDATE ann_photos SET title = 'via view {store}'"))
            .unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after an update through a view");
        assert!(rows.iter().all(|p| p.title == format!("via view {store}")));
    }
}

#[test]
fn writes_reach_partitions_and_parents() {
    let db = TestDb::new();
    db.conn()
        .batch_execute(
            "CREATE TABLE events (id INTEGER NOT NULL, kind INTEGER NOT NULL, note TEXT NOT NULL) \
                 PARTITION BY LIST (kind); \
             CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1); \
             CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2); \
             INSERT INTO events VALUES (1, 1, 'a'), (2, 2, 'b')",
        )
        .unwrap();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let check = |conn: &mut PgConnection, what: &str| {
            let all = || events::table.select(events::note).order(events::id);
            let part = || events_1::table.select(events_1::note).order(events_1::id);
            let cached: Vec<String> = all().cache(&cache).load(conn).unwrap();
            assert_eq!(
                cached,
                all().load::<String>(conn).unwrap(),
                "{store}: {what}: parent"
            );
            let cached: Vec<String> = part().cache(&cache).load(conn).unwrap();
            assert_eq!(
                cached,
                part().load::<String>(conn).unwrap(),
                "{store}: {what}: partition"
            );
        };
        check(&mut reader, "warm");
        for sql in [
            // Through the parent: changes the partition's rows.
            "UPDATE events SET note = note || '+' WHERE kind = 1",
            // Into the partition: changes what the parent returns.
            "INSERT INTO events_1 VALUES (3, 1, 'c')",
            "DELETE FROM events_1 WHERE id = 3",
            "TRUNCATE events_2",
        ] {
            writer.batch_execute(sql).unwrap();
            check(&mut reader, sql);
        }
        writer
            .batch_execute("INSERT INTO events VALUES (2, 2, 'b')")
            .unwrap();
    }
}

#[test]
fn control_spelled_with_comments_and_noise_words() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        // A leading comment does not hide a BEGIN.
        writer
            .batch_execute("/* request 42 */ -- opened by the app\nBEGIN WORK")
            .unwrap();
        diesel::update(photos::table.filter(photos::user_id.eq(ann)))
            .set(photos::title.eq("commented"))
            .execute(&mut writer)
            .unwrap();
        let b = cache.stats();
        fresh_photos(&cache, &mut reader, ann, "during");
        let b = expect(&cache, b, 1, 0, &format!("{store}: deferred"));
        writer.batch_execute("COMMIT TRANSACTION").unwrap();
        fresh_photos(&cache, &mut reader, ann, "after COMMIT TRANSACTION");
        let b = expect(&cache, b, 0, 1, &format!("{store}: bumped at COMMIT"));
        // ROLLBACK WORK TO SAVEPOINT keeps the transaction open.
        writer
            .transaction::<_, diesel::result::Error, _>(|c| {
                c.batch_execute(
                    "SAVEPOINT s; UPDATE users SET name = 'gone'; ROLLBACK WORK TO SAVEPOINT s",
                )?;
                diesel::update(photos::table.filter(photos::user_id.eq(ann)))
                    .set(photos::title.eq("after rollback to"))
                    .execute(c)?;
                fresh_photos(&cache, &mut reader, ann, "inside");
                Ok(())
            })
            .unwrap();
        let b = expect(
            &cache,
            b,
            1,
            0,
            &format!("{store}: deferred past ROLLBACK TO"),
        );
        let rows = fresh_photos(&cache, &mut reader, ann, "after the transaction");
        expect(&cache, b, 0, 1, &format!("{store}: bumped at COMMIT"));
        assert!(rows.iter().all(|p| p.title == "after rollback to"));
        fresh_users(&cache, &mut reader, "users rolled back");
    }
}

#[test]
fn procedures_do_blocks_and_other_write_shapes() {
    let (db, seed) = setup();
    let ann = seed.ann.id;
    db.conn()
        .batch_execute(&format!(
            "CREATE PROCEDURE retitle() LANGUAGE plpgsql AS $$ BEGIN \
                 UPDATE photos SET title = 'proc 1' WHERE user_id = {ann}; COMMIT; \
                 UPDATE users SET name = 'proc' WHERE id = {ann}; END $$"
        ))
        .unwrap();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        for sql in [
            // A procedure that commits halfway.
            "CALL retitle()".to_owned(),
            format!("DO $$ BEGIN UPDATE photos SET status = 9 WHERE user_id = {ann}; END $$"),
            format!(
                "WITH moved AS (UPDATE photos SET status = 1 WHERE user_id = {ann} RETURNING id) \
                 SELECT count(*) FROM moved"
            ),
            format!(
                "MERGE INTO photos p USING (SELECT id FROM photos WHERE user_id = {ann}) s \
                 ON p.id = s.id WHEN MATCHED THEN UPDATE SET title = 'merged'"
            ),
            format!(
                "INSERT INTO photos (user_id, status, title) \
                 SELECT user_id, status, 'copy' FROM photos WHERE user_id = {ann} LIMIT 1"
            ),
            format!("SELECT * FROM photos WHERE user_id = {ann} FOR UPDATE"),
        ] {
            fresh_photos(&cache, &mut reader, ann, "warm");
            fresh_users(&cache, &mut reader, "warm");
            writer.batch_execute(&sql).unwrap();
            fresh_photos(&cache, &mut reader, ann, &format!("{store}: {sql}"));
            fresh_users(&cache, &mut reader, &format!("{store}: {sql}"));
        }
    }
}

#[test]
fn a_failed_batch_saved_by_rollback_to_still_commits_what_it_kept() {
    let (db, seed) = setup();
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache);
        let mut reader = db.conn();
        let ann = seed.ann.id;
        fresh_photos(&cache, &mut reader, ann, "warm");
        fresh_users(&cache, &mut reader, "warm");
        let err = writer.batch_execute(&format!(
            "BEGIN; SAVEPOINT a; UPDATE photos SET title = 'kept {store}' WHERE user_id = {ann}; \
             RELEASE a; SAVEPOINT b; UPDATE users SET name = 'undone'; SELECT 1 / 0"
        ));
        assert!(err.is_err());
        // The aborted transaction is saved: the photos update survives.
        writer.batch_execute("ROLLBACK TO SAVEPOINT b").unwrap();
        // A read inside the (live again) transaction bypasses the cache.
        let b = cache.stats();
        let mine: Vec<Photo> = photos_q(ann).cache(&cache).load(&mut writer).unwrap();
        assert!(mine.iter().all(|p| p.title == format!("kept {store}")));
        assert_eq!(since(&cache, b).bypasses, 1, "{store}");
        // Another connection still sees the committed state.
        fresh_photos(&cache, &mut reader, ann, "before COMMIT");
        writer.batch_execute("COMMIT").unwrap();
        let rows = fresh_photos(&cache, &mut reader, ann, "after COMMIT");
        assert!(rows.iter().all(|p| p.title == format!("kept {store}")));
        let users = fresh_users(&cache, &mut reader, "after COMMIT");
        assert!(users.iter().all(|u| u.name != "undone"));
    }
}
