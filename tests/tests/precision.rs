//! Precision (issue 15): the three query shapes that used to depend on their whole table now
//! depend on less, against real PostgreSQL, on the in-process store and on memcached. For each
//! shape, a write that can change the result must still invalidate it (every read is compared
//! with the database), and a write that cannot must leave it a hit.

mod common;

use cachebot::prelude::*;
use cachebot::write;
use cachebot::Dependency;
use cachebot_tests::models::{NewPhoto, Photo};
use cachebot_tests::schema::{photo_tags, photos};
use cachebot_tests::TestDb;
use common::{caches, seed, since};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// A cached read compared with the database; asserts whether it was a hit.
#[track_caller]
fn check<T: PartialEq + std::fmt::Debug>(
    cache: &Cache,
    hit: bool,
    what: &str,
    cached: impl FnOnce() -> T,
    truth: impl FnOnce() -> T,
) {
    let before = cache.stats();
    let got = cached();
    let d = since(cache, before);
    assert_eq!(got, truth(), "{what}: stale read");
    assert_eq!(
        (d.hits, d.misses),
        (u64::from(hit), u64::from(!hit)),
        "{what}: expected a {}; {d:?}",
        if hit { "hit" } else { "miss" }
    );
}

fn new_photo(user_id: i32, title: &str) -> NewPhoto {
    NewPhoto {
        user_id,
        status: 1,
        title: title.into(),
        score: 0.5,
        deleted_at: None,
    }
}

fn title(cache: &Cache, conn: &mut PgConnection, id: i32, to: &str) {
    let _: Vec<Photo> = write::update(cache, conn, photos::table.find(id), photos::title.eq(to))
        .expect("update title");
}

#[test]
fn counts_ignore_edits_of_columns_they_do_not_read() {
    let db = TestDb::new();
    for (store, cache) in caches() {
        let conn = &mut db.conn();
        cache.instrument(conn).unwrap();
        let s = seed(conn);
        let (ann, bob) = (s.ann.id, s.bob.id);
        let _ = store;
        let count = |conn: &mut PgConnection| -> i64 {
            photos::table
                .filter(photos::user_id.eq(ann))
                .count()
                .cache(&cache)
                .get_result(conn)
                .unwrap()
        };
        let truth = |conn: &mut PgConnection| -> i64 {
            photos::table
                .filter(photos::user_id.eq(ann))
                .count()
                .get_result(conn)
                .unwrap()
        };
        let explain = photos::table
            .filter(photos::user_id.eq(ann))
            .count()
            .cache(&cache)
            .explain_on::<_, i64>(conn)
            .unwrap();
        assert!(
            explain
                .dependencies
                .iter()
                .any(|d| matches!(d, Dependency::Member { column, .. } if column == "user_id")),
            "{store}: {explain:?}"
        );
        check(&cache, false, "first read", || count(conn), || 3);
        check(&cache, true, "second read", || count(conn), || 3);
        // A title edit of one of ann's photos cannot change the count.
        title(&cache, conn, s.photos[0].id, "renamed");
        let want = truth(conn);
        check(&cache, true, "after a title edit", || count(conn), || want);
        // A status change neither.
        let _: Vec<Photo> = write::update(
            &cache,
            conn,
            photos::table.find(s.photos[1].id),
            photos::status.eq(9),
        )
        .unwrap();
        let want = truth(conn);
        check(
            &cache,
            true,
            "after a status change",
            || count(conn),
            || want,
        );
        // Moving a photo to bob does; so does an insert, and a delete.
        let _: Vec<Photo> = write::update(
            &cache,
            conn,
            photos::table.find(s.photos[0].id),
            photos::user_id.eq(bob),
        )
        .unwrap();
        let want = truth(conn);
        assert_eq!(want, 2);
        check(&cache, false, "after a move away", || count(conn), || want);
        let _: Vec<Photo> = write::insert(
            &cache,
            conn,
            diesel::insert_into(photos::table).values(new_photo(ann, "new")),
        )
        .unwrap();
        let want = truth(conn);
        check(&cache, false, "after an insert", || count(conn), || want);
        let _: Vec<Photo> =
            write::delete(&cache, conn, photos::table.filter(photos::title.eq("new"))).unwrap();
        let want = truth(conn);
        check(&cache, false, "after a delete", || count(conn), || want);
        // A raw statement the crate cannot see rows of widens to the table.
        conn.batch_execute(&format!(
            "UPDATE photos SET status = 4 WHERE user_id = {bob}"
        ))
        .unwrap();
        let want = truth(conn);
        check(&cache, false, "after a raw update", || count(conn), || want);
        // A read of another column of the same rows depends on their content.
        let titles = |conn: &mut PgConnection| -> Vec<String> {
            photos::table
                .filter(photos::user_id.eq(ann))
                .select(photos::title)
                .order(photos::id)
                .cache(&cache)
                .load(conn)
                .unwrap()
        };
        let truth_titles = |conn: &mut PgConnection| -> Vec<String> {
            photos::table
                .filter(photos::user_id.eq(ann))
                .select(photos::title)
                .order(photos::id)
                .load(conn)
                .unwrap()
        };
        let want = truth_titles(conn);
        check(&cache, false, "titles", || titles(conn), || want.clone());
        title(&cache, conn, s.photos[1].id, "edited");
        let want = truth_titles(conn);
        check(
            &cache,
            false,
            "titles after an edit",
            || titles(conn),
            || want,
        );
        drop(cache);
        diesel::delete(photos::table).execute(conn).unwrap();
        conn.batch_execute("DELETE FROM users").unwrap();
    }
}

/// `ORDER BY id DESC LIMIT 3` of the whole table, as the registered `Photo` model.
fn latest(cache: &Cache, conn: &mut PgConnection) -> Vec<Photo> {
    photos::table
        .select(Photo::as_select())
        .order(photos::id.desc())
        .limit(3)
        .cache(cache)
        .load(conn)
        .unwrap()
}

fn latest_truth(conn: &mut PgConnection) -> Vec<Photo> {
    photos::table
        .select(Photo::as_select())
        .order(photos::id.desc())
        .limit(3)
        .load(conn)
        .unwrap()
}

#[test]
fn order_and_limit_depend_on_inserts_order_columns_and_the_rows_returned() {
    let db = TestDb::new();
    for (store, cache) in caches() {
        let conn = &mut db.conn();
        cache.instrument(conn).unwrap();
        let s = seed(conn);
        let ann = s.ann.id;
        for i in 0..4 {
            let _: Vec<Photo> = write::insert(
                &cache,
                conn,
                diesel::insert_into(photos::table).values(new_photo(ann, &format!("p{i}"))),
            )
            .unwrap();
        }
        let explain = photos::table
            .select(Photo::as_select())
            .order(photos::id.desc())
            .limit(3)
            .cache(&cache)
            .explain_on::<_, Photo>(conn)
            .unwrap();
        assert_eq!(explain.returned_rows.as_deref(), Some("photos"), "{store}");
        assert!(explain.dependencies.contains(&Dependency::Inserts(
            explain
                .dependencies
                .iter()
                .find_map(|d| match d {
                    Dependency::Inserts(t) => Some(t.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        )));
        assert!(
            !explain
                .dependencies
                .iter()
                .any(|d| matches!(d, Dependency::Rows(_))),
            "{store}: {explain:?}"
        );
        let want = latest_truth(conn);
        // The first fill reads the returned rows' generations, then the database again.
        let before = cache.stats();
        check(
            &cache,
            false,
            "first",
            || latest(&cache, conn),
            || want.clone(),
        );
        assert_eq!(since(&cache, before).returned_reloads, 1, "{store}");
        check(
            &cache,
            true,
            "second",
            || latest(&cache, conn),
            || want.clone(),
        );
        // A write to a row it does not return leaves it a hit.
        let oldest = s.photos[0].id;
        title(&cache, conn, oldest, "old one");
        check(
            &cache,
            true,
            "edit elsewhere (1)",
            || latest(&cache, conn),
            || want.clone(),
        );
        title(&cache, conn, oldest, "old two");
        check(
            &cache,
            true,
            "edit elsewhere",
            || latest(&cache, conn),
            || want.clone(),
        );
        let _: Vec<Photo> =
            write::delete(&cache, conn, photos::table.find(s.photos[1].id)).unwrap();
        check(
            &cache,
            true,
            "delete elsewhere",
            || latest(&cache, conn),
            || want.clone(),
        );
        // An edit of a returned row does.
        title(&cache, conn, want[1].id, "top edit");
        let want = latest_truth(conn);
        check(
            &cache,
            false,
            "edit of a returned row",
            || latest(&cache, conn),
            || want.clone(),
        );
        check(
            &cache,
            true,
            "again",
            || latest(&cache, conn),
            || want.clone(),
        );
        // An insert does (the new row is the latest).
        let _: Vec<Photo> = write::insert(
            &cache,
            conn,
            diesel::insert_into(photos::table).values(new_photo(ann, "newest")),
        )
        .unwrap();
        let want = latest_truth(conn);
        check(
            &cache,
            false,
            "after an insert",
            || latest(&cache, conn),
            || want.clone(),
        );
        // A returned row deleted brings in one that was not returned.
        let _: Vec<Photo> = write::delete(&cache, conn, photos::table.find(want[0].id)).unwrap();
        let want = latest_truth(conn);
        check(
            &cache,
            false,
            "after deleting a returned row",
            || latest(&cache, conn),
            || want.clone(),
        );
        // A raw write the crate cannot see the rows of widens to the table.
        conn.batch_execute(&format!(
            "UPDATE photos SET title = 'raw' WHERE id = {}",
            want[2].id
        ))
        .unwrap();
        let want = latest_truth(conn);
        check(
            &cache,
            false,
            "after a raw update",
            || latest(&cache, conn),
            || want.clone(),
        );
        // A change of the order column of a row not returned can move it in.
        check(
            &cache,
            true,
            "settled",
            || latest(&cache, conn),
            || want.clone(),
        );
        let _: Vec<Photo> = write::update(
            &cache,
            conn,
            photos::table.find(oldest),
            photos::id.eq(1_000_000),
        )
        .unwrap();
        let want = latest_truth(conn);
        assert_eq!(want[0].id, 1_000_000);
        check(
            &cache,
            false,
            "after an order column change",
            || latest(&cache, conn),
            || want.clone(),
        );
        drop(cache);
        diesel::delete(photos::table).execute(conn).unwrap();
        conn.batch_execute("DELETE FROM users").unwrap();
    }
}

fn tagged(cache: &Cache, conn: &mut PgConnection, tag: i32) -> Vec<Photo> {
    photos::table
        .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
        .filter(photo_tags::tag_id.eq(tag))
        .select(Photo::as_select())
        .order(photos::id)
        .cache(cache)
        .load(conn)
        .unwrap()
}

fn tagged_truth(conn: &mut PgConnection, tag: i32) -> Vec<Photo> {
    photos::table
        .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
        .filter(photo_tags::tag_id.eq(tag))
        .select(Photo::as_select())
        .order(photos::id)
        .load(conn)
        .unwrap()
}

fn tag(conn: &mut PgConnection, photo: i32, tag: i32) {
    diesel::insert_into(photo_tags::table)
        .values((photo_tags::photo_id.eq(photo), photo_tags::tag_id.eq(tag)))
        .execute(conn)
        .unwrap();
}

#[test]
fn rows_reached_through_a_join_table_depend_on_the_join_table_and_themselves() {
    let db = TestDb::new();
    let conn = &mut db.conn();
    conn.batch_execute(
        "CREATE TABLE photo_tags (
             photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
             tag_id INTEGER NOT NULL,
             PRIMARY KEY (photo_id, tag_id)
         )",
    )
    .unwrap();
    for (store, cache) in caches() {
        let conn = &mut db.conn();
        cache.instrument(conn).unwrap();
        let s = seed(conn);
        let (a, b, c, d) = (
            s.photos[0].id,
            s.photos[1].id,
            s.photos[2].id,
            s.photos[3].id,
        );
        // Raw inserts through the instrumented connection widen to the table: fine here.
        tag(conn, a, 7);
        tag(conn, b, 7);
        tag(conn, c, 8);
        let explain = photos::table
            .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
            .filter(photo_tags::tag_id.eq(7))
            .select(Photo::as_select())
            .order(photos::id)
            .cache(&cache)
            .explain_on::<_, Photo>(conn)
            .unwrap();
        assert_eq!(
            explain.returned_rows.as_deref(),
            Some("photos"),
            "{store}: {explain:?}"
        );
        let want = tagged_truth(conn, 7);
        check(
            &cache,
            false,
            "first",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        check(
            &cache,
            true,
            "second",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        title(&cache, conn, d, "untagged edit");
        check(
            &cache,
            true,
            "untagged edit",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // Edits of photos without the tag, and inserts of photos, leave it a hit.
        title(&cache, conn, c, "other tag");
        check(
            &cache,
            true,
            "edit of another tag's photo",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        let _: Vec<Photo> = write::insert(
            &cache,
            conn,
            diesel::insert_into(photos::table).values(new_photo(s.bob.id, "fresh")),
        )
        .unwrap();
        check(
            &cache,
            true,
            "photo insert",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // Deleting a photo with another tag cascades into photo_tags, through the very key
        // the read joins by: it cannot change this tag's photos.
        let _: Vec<Photo> = write::delete(&cache, conn, photos::table.find(c)).unwrap();
        check(
            &cache,
            true,
            "cascade of another tag's photo",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // An edit of a tagged photo invalidates.
        title(&cache, conn, b, "tagged edit");
        let want = tagged_truth(conn, 7);
        check(
            &cache,
            false,
            "tagged edit",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // A tag added (raw insert through the instrumented connection) invalidates.
        tag(conn, d, 7);
        let want = tagged_truth(conn, 7);
        assert_eq!(want.len(), 3);
        check(
            &cache,
            false,
            "tag added",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // Deleting a tagged photo cascades to its tags.
        let _: Vec<Photo> = write::delete(&cache, conn, photos::table.find(a)).unwrap();
        let want = tagged_truth(conn, 7);
        check(
            &cache,
            false,
            "tagged photo deleted",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // A tag removed invalidates.
        diesel::delete(photo_tags::table.filter(photo_tags::photo_id.eq(b)))
            .execute(conn)
            .unwrap();
        let want = tagged_truth(conn, 7);
        check(
            &cache,
            false,
            "tag removed",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        drop(cache);
        conn.batch_execute("DELETE FROM photo_tags; DELETE FROM photos; DELETE FROM users")
            .unwrap();
    }
    // Without a validated foreign key nothing guarantees a new photo has no dangling tag row
    // waiting for it: the photos side depends on the whole table again.
    conn.batch_execute(
        "ALTER TABLE photo_tags DROP CONSTRAINT photo_tags_photo_id_fkey;
         INSERT INTO photo_tags VALUES (424242, 7);
         ALTER TABLE photo_tags ADD CONSTRAINT photo_tags_photo_id_fkey
           FOREIGN KEY (photo_id) REFERENCES photos (id) NOT VALID",
    )
    .unwrap();
    let cache = Cache::builder().model::<Photo>().build().unwrap();
    let conn = &mut db.conn();
    cache.instrument(conn).unwrap();
    let explain = photos::table
        .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
        .filter(photo_tags::tag_id.eq(7))
        .select(Photo::as_select())
        .cache(&cache)
        .explain_on::<_, Photo>(conn)
        .unwrap();
    assert_eq!(explain.returned_rows, None, "NOT VALID key: {explain:?}");
    assert!(explain
        .dependencies
        .iter()
        .any(|d| matches!(d, Dependency::Rows(t) if t.ends_with("photos"))));
    // A dangling tag row (older than the key), then the photo it names: the cached read must
    // see it.
    assert!(tagged(&cache, conn, 7).is_empty());
    let s = seed(conn);
    let _: Vec<Photo> = write::update(
        &cache,
        conn,
        photos::table.find(s.photos[0].id),
        photos::id.eq(424242),
    )
    .unwrap();
    assert_eq!(tagged(&cache, conn, 7), tagged_truth(conn, 7));
    assert_eq!(tagged_truth(conn, 7).len(), 1);
}

#[test]
fn unregistered_types_and_other_select_lists_keep_the_table_dependency() {
    let db = TestDb::new();
    let cache = Cache::builder().build().unwrap();
    let conn = &mut db.conn();
    cache.instrument(conn).unwrap();
    // Not registered: no way to read the rows' keys.
    let explain = photos::table
        .select(Photo::as_select())
        .order(photos::id.desc())
        .limit(3)
        .cache(&cache)
        .explain_on::<_, Photo>(conn)
        .unwrap();
    assert_eq!(explain.returned_rows, None);
    // Registered, but the select list is not the model's columns.
    let cache = Cache::builder().model::<Photo>().build().unwrap();
    cache.instrument(conn).unwrap();
    let explain = photos::table
        .select((photos::id, photos::title))
        .order(photos::id.desc())
        .limit(3)
        .cache(&cache)
        .explain_on::<_, (i32, String)>(conn)
        .unwrap();
    assert_eq!(explain.returned_rows, None);
    // OFFSET: a delete before the window shifts it.
    let explain = photos::table
        .select(Photo::as_select())
        .order(photos::id.desc())
        .limit(3)
        .offset(1)
        .cache(&cache)
        .explain_on::<_, Photo>(conn)
        .unwrap();
    assert_eq!(explain.returned_rows, None);
}

#[test]
fn another_key_writing_the_join_table_keeps_its_cascades_visible() {
    let db = TestDb::new();
    let conn = &mut db.conn();
    conn.batch_execute(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);
         INSERT INTO tags VALUES (7), (8);
         CREATE TABLE photo_tags (
             photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
             tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
             PRIMARY KEY (photo_id, tag_id)
         )",
    )
    .unwrap();
    for (_, cache) in caches() {
        let conn = &mut db.conn();
        cache.instrument(conn).unwrap();
        let s = seed(conn);
        tag(conn, s.photos[0].id, 7);
        tag(conn, s.photos[1].id, 8);
        let explain = photos::table
            .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
            .filter(photo_tags::tag_id.eq(7))
            .select(Photo::as_select())
            .order(photos::id)
            .cache(&cache)
            .explain_on::<_, Photo>(conn)
            .unwrap();
        // Still through the join by its returned rows, but not blind to cascades: deleting
        // a tag writes photo_tags through another key.
        assert_eq!(explain.returned_rows.as_deref(), Some("photos"));
        assert!(explain
            .dependencies
            .iter()
            .any(|d| matches!(d, Dependency::Cascaded(t) if t.ends_with("photo_tags"))));
        let want = tagged_truth(conn, 7);
        assert_eq!(want.len(), 1);
        check(
            &cache,
            false,
            "first",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        check(
            &cache,
            true,
            "second",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        // A raw delete of the tag; its cascade empties tag 7's photo_tags rows.
        conn.batch_execute("DELETE FROM tags WHERE id = 7").unwrap();
        let want = tagged_truth(conn, 7);
        assert!(want.is_empty());
        check(
            &cache,
            false,
            "tag deleted",
            || tagged(&cache, conn, 7),
            || want.clone(),
        );
        drop(cache);
        conn.batch_execute(
            "DELETE FROM photo_tags; DELETE FROM photos; DELETE FROM users;
             INSERT INTO tags VALUES (7) ON CONFLICT DO NOTHING",
        )
        .unwrap();
    }
}

/// A write the crate does not see (another connection, not instrumented), then
/// `invalidate_value` of the changed rows' value: reads keyed on the value's membership and
/// reads depending on their returned rows must both see it.
#[test]
fn invalidate_value_reaches_membership_and_returned_rows_reads() {
    let db = TestDb::new();
    for (_, cache) in caches() {
        let conn = &mut db.conn();
        cache.instrument(conn).unwrap();
        let s = seed(conn);
        let ann = s.ann.id;
        let count = |conn: &mut PgConnection| -> i64 {
            photos::table
                .filter(photos::user_id.eq(ann))
                .count()
                .cache(&cache)
                .get_result(conn)
                .unwrap()
        };
        let count_truth = |conn: &mut PgConnection| -> i64 {
            photos::table
                .filter(photos::user_id.eq(ann))
                .count()
                .get_result(conn)
                .unwrap()
        };
        let want = count_truth(conn);
        check(&cache, false, "count", || count(conn), || want);
        let want_latest = latest_truth(conn);
        check(
            &cache,
            false,
            "latest",
            || latest(&cache, conn),
            || want_latest.clone(),
        );
        check(
            &cache,
            true,
            "latest again",
            || latest(&cache, conn),
            || want_latest.clone(),
        );
        // Behind the crate's back: ann's newest photo changes hands and title.
        let mut other = db.conn();
        other
            .batch_execute(&format!(
                "UPDATE photos SET user_id = {}, title = 'moved' WHERE id = {}",
                s.bob.id, want_latest[0].id
            ))
            .unwrap();
        cache.invalidate_value(photos::user_id, ann).unwrap();
        cache.invalidate_value(photos::user_id, s.bob.id).unwrap();
        let want = count_truth(conn);
        check(
            &cache,
            false,
            "count after invalidate_value",
            || count(conn),
            || want,
        );
        let want_latest = latest_truth(conn);
        assert_eq!(want_latest[0].title, "moved");
        check(
            &cache,
            false,
            "latest after invalidate_value",
            || latest(&cache, conn),
            || want_latest.clone(),
        );
        drop(cache);
        diesel::delete(photos::table).execute(conn).unwrap();
        conn.batch_execute("DELETE FROM users").unwrap();
    }
}
