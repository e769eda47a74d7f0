//! `#[derive(CacheBot)]` end to end, against real PostgreSQL (and memcached):
//! the generated gets hit after a miss, the generated writes invalidate
//! exactly the gets they change, and every result equals the database's.

mod common;

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot::CacheModel;
use cachebot_tests::models::{
    FirstModel, NewFirstModel, NewNoCacheModel, NewPhoto, NoCacheModel, Photo,
};
use cachebot_tests::schema::{first_models, photos};
use cachebot_tests::{memcached_servers, TestDb};
use common::{expect, seed, since, unique_prefix};
use diesel::prelude::*;

fn firsts(conn: &mut PgConnection, texts: &[&str]) -> Vec<FirstModel> {
    texts
        .iter()
        .map(|t| {
            diesel::insert_into(first_models::table)
                .values(NewFirstModel { text: (*t).into() })
                .get_result(conn)
                .expect("insert first_models row")
        })
        .collect()
}

/// The database's answer for one `first_models` id.
fn truth(conn: &mut PgConnection, id: i32) -> Option<FirstModel> {
    first_models::table
        .find(id)
        .select(FirstModel::as_select())
        .first(conn)
        .optional()
        .unwrap()
}

fn memcached() -> Cache {
    let store = MemcachedStore::builder()
        .servers(memcached_servers())
        .prefix(unique_prefix())
        .build()
        .expect("memcached store");
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .expect("cache")
}

/// Get, save, delete and get-or-create on one cache.
fn get_save_delete(cache: &Cache, conn: &mut PgConnection, store: &str) {
    let rows = firsts(conn, &["one", "two"]);
    let (one, two) = (&rows[0], &rows[1]);

    // A miss, then a hit, both equal to the database.
    let mut b = cache.stats();
    let got = FirstModel::get(cache, conn, one.id).unwrap();
    b = expect(cache, b, 0, 1, store);
    assert_eq!(got, truth(conn, one.id), "{store}");
    let again = FirstModel::get(cache, conn, one.id).unwrap();
    b = expect(cache, b, 1, 0, store);
    assert_eq!(again.as_ref(), Some(one), "{store}");

    // Saving another row leaves this get a hit.
    let mut other = two.clone();
    other.text = "two, edited".into();
    assert_eq!(other.save(cache, conn).unwrap(), other, "{store}");
    assert_eq!(
        FirstModel::get(cache, conn, one.id).unwrap().as_ref(),
        Some(one),
        "{store}"
    );
    b = expect(cache, b, 1, 0, store);

    // Saving this row: the next get is a miss and returns the new value.
    let mut edited = one.clone();
    edited.text = "one, edited".into();
    assert_eq!(edited.save(cache, conn).unwrap(), edited, "{store}");
    let got = FirstModel::get(cache, conn, one.id).unwrap();
    b = expect(cache, b, 0, 1, store);
    assert_eq!(got, Some(edited.clone()), "{store}");
    assert_eq!(got, truth(conn, one.id), "{store}");
    assert_eq!(
        FirstModel::get(cache, conn, one.id).unwrap(),
        got,
        "{store}"
    );
    b = expect(cache, b, 1, 0, store);

    // Deleting it: the next get is a miss and finds nothing; "nothing" is then a hit.
    assert_eq!(edited.delete(cache, conn).unwrap(), 1, "{store}");
    assert_eq!(edited.delete(cache, conn).unwrap(), 0, "{store}");
    assert_eq!(
        FirstModel::get(cache, conn, one.id).unwrap(),
        None,
        "{store}"
    );
    b = expect(cache, b, 0, 1, store);
    assert_eq!(
        FirstModel::get(cache, conn, one.id).unwrap(),
        None,
        "{store}"
    );
    b = expect(cache, b, 1, 0, store);
    assert_eq!(truth(conn, one.id), None, "{store}");

    // Saving a row that is gone is NotFound.
    assert!(
        matches!(
            edited.save(cache, conn),
            Err(diesel::result::Error::NotFound)
        ),
        "{store}"
    );

    // Get-or-create: inserting the missing row invalidates the cached "not found".
    let created = FirstModel::insert(
        cache,
        conn,
        (
            first_models::id.eq(one.id),
            first_models::text.eq("one, again"),
        ),
    )
    .unwrap();
    assert_eq!(created.len(), 1, "{store}");
    let got = FirstModel::get(cache, conn, one.id).unwrap();
    expect(cache, b, 0, 1, store);
    assert_eq!(got.as_ref(), created.first(), "{store}");
    assert_eq!(got, truth(conn, one.id), "{store}");
}

#[test]
fn get_save_delete_in_process() {
    let db = TestDb::new();
    let mut conn = db.conn();
    get_save_delete(&Cache::in_process(), &mut conn, "in-process");
}

#[test]
fn get_save_delete_memcached() {
    let db = TestDb::new();
    let mut conn = db.conn();
    get_save_delete(&memcached(), &mut conn, "memcached");
}

#[test]
fn a_missing_row_is_cached_until_it_is_inserted() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::in_process();
    let b = cache.stats();
    assert_eq!(FirstModel::get(&cache, &mut conn, 4242).unwrap(), None);
    let b = expect(&cache, b, 0, 1, "first get of a missing id");
    assert_eq!(FirstModel::get(&cache, &mut conn, 4242).unwrap(), None);
    let b = expect(&cache, b, 1, 0, "not found is cached");

    // An unrelated insert (of a Vec of structs) leaves the cached "not found" alone...
    let rows =
        FirstModel::insert(&cache, &mut conn, vec![NewFirstModel { text: "x".into() }]).unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id, 4242);
    assert_eq!(FirstModel::get(&cache, &mut conn, 4242).unwrap(), None);
    let b = expect(&cache, b, 1, 0, "unrelated insert");
    // ...the row's own insert does not.
    let made = FirstModel::insert(
        &cache,
        &mut conn,
        (first_models::id.eq(4242), first_models::text.eq("created")),
    )
    .unwrap();
    let got = FirstModel::get(&cache, &mut conn, 4242).unwrap();
    expect(&cache, b, 0, 1, "after the insert");
    assert_eq!(got.as_ref(), made.first());
    assert_eq!(got, truth(&mut conn, 4242));
}

#[test]
fn a_model_without_cached_gets_never_hits() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::in_process();
    const { assert!(!NoCacheModel::CACHE_GET) };
    let row: NoCacheModel = diesel::insert_into(cachebot_tests::schema::no_cache_models::table)
        .values(NewNoCacheModel { text: "n".into() })
        .get_result(&mut conn)
        .unwrap();
    let b = cache.stats();
    for _ in 0..3 {
        assert_eq!(
            NoCacheModel::get(&cache, &mut conn, row.id)
                .unwrap()
                .as_ref(),
            Some(&row)
        );
    }
    assert_eq!(
        NoCacheModel::get_many(&cache, &mut conn, &[row.id]).unwrap(),
        vec![row.clone()]
    );
    let d = since(&cache, b);
    // Three gets and a one-id batch: counted as bypasses.
    assert_eq!(
        (d.hits, d.misses, d.stores, d.bypasses),
        (0, 0, 0, 4),
        "{d:?}"
    );
    // Its writes still invalidate (other queries may read the table).
    let mut edited = row.clone();
    edited.text = "m".into();
    assert_eq!(edited.save(&cache, &mut conn).unwrap(), edited);
    assert_eq!(
        NoCacheModel::get(&cache, &mut conn, row.id).unwrap(),
        Some(edited)
    );
}

#[test]
fn cache_gets_false_turns_every_get_off() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::builder().cache_gets(false).build().unwrap();
    assert!(!cache.caches_gets());
    let rows = firsts(&mut conn, &["a", "b"]);
    let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
    let b = cache.stats();
    for _ in 0..2 {
        assert_eq!(
            FirstModel::get(&cache, &mut conn, ids[0]).unwrap().as_ref(),
            Some(&rows[0])
        );
        assert_eq!(FirstModel::get_many(&cache, &mut conn, &ids).unwrap(), rows);
    }
    let d = since(&cache, b);
    // Two gets and two batches of two ids: counted as bypasses.
    assert_eq!(
        (d.hits, d.misses, d.stores, d.bypasses),
        (0, 0, 0, 6),
        "{d:?}"
    );
    // Other cached reads are unaffected.
    let q = || first_models::table.filter(first_models::id.eq(ids[0]));
    let _: Vec<FirstModel> = q().cache(&cache).load(&mut conn).unwrap();
    let _: Vec<FirstModel> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 1, 1, "a plain cached query");
}

#[test]
fn get_many_is_in_id_order_and_one_round_trip() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::in_process();
    let rows = firsts(&mut conn, &["a", "b", "c", "d"]);
    // Out of order, with an id that has no row.
    let ids = [rows[2].id, rows[0].id, 9999, rows[3].id, rows[1].id];
    let want: Vec<FirstModel> = [2, 0, 3, 1].iter().map(|&i| rows[i].clone()).collect();

    let b = cache.stats();
    assert_eq!(FirstModel::get_many(&cache, &mut conn, &ids).unwrap(), want);
    let b = expect(&cache, b, 0, ids.len() as u64, "first get_many");
    // Every id, the missing one included, is a hit: one store round trip.
    assert_eq!(FirstModel::get_many(&cache, &mut conn, &ids).unwrap(), want);
    let b = expect(&cache, b, ids.len() as u64, 0, "second get_many");
    // The entries are the single gets'.
    assert_eq!(
        FirstModel::get(&cache, &mut conn, rows[3].id)
            .unwrap()
            .as_ref(),
        Some(&rows[3])
    );
    assert_eq!(FirstModel::get(&cache, &mut conn, 9999).unwrap(), None);
    let b = expect(&cache, b, 2, 0, "gets after get_many");

    // A saved row is the only miss of the next call, and comes back new.
    let mut edited = rows[0].clone();
    edited.text = "a, edited".into();
    edited.save(&cache, &mut conn).unwrap();
    let got = FirstModel::get_many(&cache, &mut conn, &ids).unwrap();
    expect(&cache, b, ids.len() as u64 - 1, 1, "get_many after a save");
    let truth: Vec<FirstModel> = ids.iter().filter_map(|&id| truth(&mut conn, id)).collect();
    assert_eq!(got, truth);
    assert_eq!(got[1], edited);

    // Empty input, empty output, nothing read.
    let b = cache.stats();
    assert!(FirstModel::get_many(&cache, &mut conn, &[])
        .unwrap()
        .is_empty());
    expect(&cache, b, 0, 0, "empty get_many");
}

#[test]
fn get_by_a_composite_key_is_invalidated_by_matching_rows_only() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let cache = Cache::in_process();
    let seed = seed(&mut conn);
    let (ann, bob) = (seed.ann.id, seed.bob.id);
    let truth = |conn: &mut PgConnection| -> Vec<Photo> {
        photos::table
            .filter(photos::user_id.eq(ann))
            .filter(photos::status.eq(2))
            .select(Photo::as_select())
            .load(conn)
            .unwrap()
    };
    let by = |conn: &mut PgConnection| {
        Photo::get_by(&cache, conn, (photos::user_id, photos::status), (ann, 2)).unwrap()
    };
    assert_eq!(Photo::composite_keys(), &[&["user_id", "status"][..]]);

    let b = cache.stats();
    let first = by(&mut conn);
    let b = expect(&cache, b, 0, 1, "first get_by");
    assert_eq!(first, truth(&mut conn));
    assert_eq!(first.len(), 2);
    assert_eq!(by(&mut conn), first);
    let b = expect(&cache, b, 1, 0, "second get_by");

    // Another user's photos, whatever their status, leave it alone, even
    // one with the same status (the composite key, not `status = 2`).
    let mut bobs = seed
        .photos
        .iter()
        .find(|p| p.user_id == bob)
        .unwrap()
        .clone();
    assert_eq!(bobs.status, 2);
    bobs.title = "city, edited".into();
    bobs.save(&cache, &mut conn).unwrap();
    bobs.status = 3;
    bobs.save(&cache, &mut conn).unwrap();
    Photo::insert(
        &cache,
        &mut conn,
        NewPhoto {
            user_id: bob,
            status: 1,
            title: "new".into(),
            score: 0.0,
            deleted_at: None,
        },
    )
    .unwrap();
    assert_eq!(by(&mut conn), first);
    let b = expect(&cache, b, 1, 0, "after writes to bob's photos");

    // A matching photo saved: a miss, with the new value.
    let mut beach = first[0].clone();
    beach.title = "beach, edited".into();
    beach.save(&cache, &mut conn).unwrap();
    let got = by(&mut conn);
    let b = expect(&cache, b, 0, 1, "after a save of a matching photo");
    assert_eq!(got, truth(&mut conn));
    assert!(got.contains(&beach));

    // A photo of ann's moving into the key (status 1 -> 2).
    let mut draft = seed
        .photos
        .iter()
        .find(|p| p.user_id == ann && p.status == 1)
        .unwrap()
        .clone();
    assert_eq!(by(&mut conn), got);
    let b = expect(&cache, b, 1, 0, "before the move");
    draft.status = 2;
    draft.save(&cache, &mut conn).unwrap();
    let moved = by(&mut conn);
    let b = expect(&cache, b, 0, 1, "after a photo moved into the key");
    assert_eq!(moved, truth(&mut conn));
    assert_eq!(moved.len(), 3);

    // ...and out of it again, by delete.
    assert_eq!(draft.delete(&cache, &mut conn).unwrap(), 1);
    let gone = by(&mut conn);
    expect(&cache, b, 0, 1, "after a delete of a matching photo");
    assert_eq!(gone, truth(&mut conn));
    assert_eq!(gone.len(), 2);
}

/// A repeated id yields its row once, on a miss and on a hit, and leaves the row cached (its
/// second occurrence once stored its already-taken, empty rows under the same entry).
#[test]
fn get_many_with_a_repeated_id() {
    for cache in [Cache::in_process(), memcached()] {
        let db = TestDb::new();
        let mut conn = db.conn();
        cache.instrument(&mut conn).unwrap();
        let rows = firsts(&mut conn, &["a"]);
        let ids = [rows[0].id, rows[0].id];
        assert_eq!(FirstModel::get_many(&cache, &mut conn, &ids).unwrap(), rows);
        assert_eq!(FirstModel::get_many(&cache, &mut conn, &ids).unwrap(), rows);
        let b = cache.stats();
        assert_eq!(
            FirstModel::get(&cache, &mut conn, rows[0].id)
                .unwrap()
                .as_ref(),
            rows.first()
        );
        assert_eq!(since(&cache, b).hits, 1);
    }
}
