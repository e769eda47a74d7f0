//! What writes bump besides their rows' content keys (issue 15): the
//! membership generation of a value only when a row enters or leaves it,
//! the inserts generation on inserts, a column's generation only when an
//! update changes it. Observed in the store, around real writes through
//! `cachebot::write` (and `aio::write`), `Cache::invalidate_changes` and
//! `Cache::invalidate_object`: each generation read before and after.

mod common;

use cachebot::changes::{Change, Column, Image, TableName, Transaction, Value};
use cachebot::store::Key;
use cachebot::test_keys::{column_key, inserts_key, member_composite_key, member_key, stored};
use cachebot::{write, Cache, Dependency};
use cachebot_tests::models::{NewPhoto, Photo};
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::seed;
use diesel::prelude::*;

/// One generation, named for failure messages, and whether the write must
/// bump it.
struct Expect {
    what: String,
    key: Key,
    bumped: bool,
}

/// The generations of `expect`, read (created if missing) before `write`
/// runs and again after: each must have changed exactly when expected.
fn check(cache: &Cache, expect: &[Expect], write: impl FnOnce()) {
    let keys: Vec<Key> = expect
        .iter()
        .map(|e| stored(cache, e.key).expect("the cache knows its database"))
        .collect();
    let before = cache.store().ensure_generations(&keys).unwrap();
    write();
    let after = cache.store().fetch_many(&[], &keys).unwrap().generations;
    let wrong: Vec<String> = expect
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(e, (b, a))| (Some(**b) != **a) != e.bumped)
        .map(|(e, _)| {
            let how = if e.bumped { "not bumped" } else { "bumped" };
            format!("{} {how}", e.what)
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Names the keys of one table in one test schema.
struct Keys {
    table: String,
}

impl Keys {
    fn new(db: &TestDb) -> Keys {
        Keys {
            table: format!("{}.photos", db.schema()),
        }
    }

    fn member(&self, column: &str, value: Option<&[u8]>, bumped: bool) -> Expect {
        Expect {
            what: format!("member {column}={value:?}"),
            key: member_key(&self.table, column, value),
            bumped,
        }
    }

    fn member_int(&self, column: &str, value: i32, bumped: bool) -> Expect {
        let mut e = self.member(column, Some(&value.to_be_bytes()), bumped);
        e.what = format!("member {column}={value}");
        e
    }

    fn member_text(&self, column: &str, value: &str, bumped: bool) -> Expect {
        let mut e = self.member(column, Some(value.as_bytes()), bumped);
        e.what = format!("member {column}={value:?}");
        e
    }

    /// Photo's declared composite `(user_id, status)`.
    fn combo(&self, user: i32, status: i32, bumped: bool) -> Expect {
        Expect {
            what: format!("member (user_id, status)=({user}, {status})"),
            key: member_composite_key(
                &self.table,
                &[
                    ("user_id", Some(&user.to_be_bytes()[..])),
                    ("status", Some(&status.to_be_bytes()[..])),
                ],
            ),
            bumped,
        }
    }

    fn column(&self, column: &str, bumped: bool) -> Expect {
        Expect {
            what: format!("column {column}"),
            key: column_key(&self.table, column),
            bumped,
        }
    }

    fn inserts(&self, bumped: bool) -> Expect {
        Expect {
            what: "inserts".into(),
            key: inserts_key(&self.table),
            bumped,
        }
    }

    fn table(&self, bumped: bool) -> Expect {
        Expect {
            what: "table (all)".into(),
            key: Dependency::Table(self.table.clone()).key(),
            bumped,
        }
    }

    fn value_int(&self, column: &str, value: i32, bumped: bool) -> Expect {
        Expect {
            what: format!("content {column}={value}"),
            key: Dependency::Value {
                table: self.table.clone(),
                column: column.into(),
                value: Some(value.to_be_bytes().to_vec()),
            }
            .key(),
            bumped,
        }
    }

    fn rows(&self, bumped: bool) -> Expect {
        Expect {
            what: "rows".into(),
            key: Dependency::Rows(self.table.clone()).key(),
            bumped,
        }
    }
}

/// A fresh schema, seeded, and an in-process cache bound to its database.
fn setup() -> (TestDb, PgConnection, Cache, common::Seed) {
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let cache = Cache::builder().model::<Photo>().build().unwrap();
    cache.instrument(&mut conn).unwrap();
    (db, conn, cache, seed)
}

#[test]
fn title_edit_bumps_title_memberships_and_column_not_the_user() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[0];
    let (ann, status) = (seed.ann.id, p.status);
    check(
        &cache,
        &[
            k.member_text("title", &p.title, true),
            k.member_text("title", "renamed", true),
            k.column("title", true),
            // Content keys stay: a read of ann's photos shows titles.
            k.value_int("user_id", ann, true),
            k.rows(true),
            k.member_int("user_id", ann, false),
            k.member_int("status", status, false),
            k.member_int("id", p.id, false),
            k.combo(ann, status, false),
            k.column("user_id", false),
            k.column("status", false),
            k.column("score", false),
            k.inserts(false),
            k.table(false),
        ],
        || {
            let rows: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.find(p.id),
                photos::title.eq("renamed"),
            )
            .unwrap();
            assert_eq!(rows.len(), 1);
        },
    );
}

#[test]
fn move_to_another_user_bumps_both_users() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[0];
    let (ann, bob, status) = (seed.ann.id, seed.bob.id, p.status);
    check(
        &cache,
        &[
            k.member_int("user_id", ann, true),
            k.member_int("user_id", bob, true),
            k.column("user_id", true),
            k.combo(ann, status, true),
            k.combo(bob, status, true),
            k.member_int("status", status, false),
            k.member_text("title", &p.title, false),
            k.member_int("id", p.id, false),
            k.column("title", false),
            k.column("status", false),
            k.inserts(false),
            k.table(false),
        ],
        || {
            let _: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.find(p.id),
                photos::user_id.eq(bob),
            )
            .unwrap();
        },
    );
}

#[test]
fn float_and_null_changes_bump_their_columns() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[1];
    check(
        &cache,
        &[
            k.column("score", true),
            k.column("deleted_at", true),
            // NULL left the column; the new timestamp's membership too.
            k.member("deleted_at", None, true),
            k.column("title", false),
            k.member_int("user_id", p.user_id, false),
            k.combo(p.user_id, p.status, false),
            k.inserts(false),
            k.table(false),
        ],
        || {
            let _: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.find(p.id),
                (
                    photos::score.eq(9.25),
                    photos::deleted_at.eq(Some(chrono::Utc::now())),
                ),
            )
            .unwrap();
        },
    );
}

#[test]
fn no_op_update_bumps_content_only() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[2];
    check(
        &cache,
        &[
            k.value_int("id", p.id, true),
            k.rows(true),
            k.member_text("title", &p.title, false),
            k.member_int("id", p.id, false),
            k.column("title", false),
            k.inserts(false),
        ],
        || {
            let _: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.find(p.id),
                photos::title.eq(p.title.clone()),
            )
            .unwrap();
        },
    );
}

#[test]
fn inserts_and_deletes_bump_memberships() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let ann = seed.ann.id;
    let next_id: i32 = seed.photos.iter().map(|p| p.id).max().unwrap_or(0) + 1;
    check(
        &cache,
        &[
            k.inserts(true),
            k.member_int("id", next_id, true),
            k.member_int("user_id", ann, true),
            k.member_int("status", 5, true),
            k.member_text("title", "new", true),
            k.member("deleted_at", None, true),
            k.combo(ann, 5, true),
            k.column("title", false),
            k.column("user_id", false),
            k.table(false),
        ],
        || {
            let rows: Vec<Photo> = write::insert_values(
                &cache,
                &mut conn,
                NewPhoto {
                    user_id: ann,
                    status: 5,
                    title: "new".into(),
                    score: 0.0,
                    deleted_at: None,
                },
            )
            .unwrap();
            assert_eq!(rows[0].id, next_id, "ids come from a fresh sequence");
        },
    );
    let gone = &seed.photos[3];
    check(
        &cache,
        &[
            k.member_int("id", gone.id, true),
            k.member_int("user_id", gone.user_id, true),
            k.member_text("title", &gone.title, true),
            k.combo(gone.user_id, gone.status, true),
            k.inserts(false),
            k.column("title", false),
            k.table(false),
        ],
        || {
            let rows: Vec<Photo> =
                write::delete(&cache, &mut conn, photos::table.find(gone.id)).unwrap();
            assert_eq!(rows.len(), 1);
        },
    );
}

#[test]
fn primary_key_change_is_a_delete_and_an_insert() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[0];
    check(
        &cache,
        &[
            k.inserts(true),
            k.member_int("id", p.id, true),
            k.member_int("id", 9999, true),
            // The row left its user and a row entered it.
            k.member_int("user_id", p.user_id, true),
            k.combo(p.user_id, p.status, true),
            k.table(false),
        ],
        || {
            let _: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.find(p.id),
                photos::id.eq(9999),
            )
            .unwrap();
        },
    );
}

#[test]
fn several_rows_pair_by_primary_key() {
    let (db, mut conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let ann = seed.ann.id;
    // Ann's three photos to status 7: two had 2, one had 1.
    check(
        &cache,
        &[
            k.member_int("status", 2, true),
            k.member_int("status", 1, true),
            k.member_int("status", 7, true),
            k.column("status", true),
            k.combo(ann, 2, true),
            k.combo(ann, 1, true),
            k.combo(ann, 7, true),
            k.member_int("user_id", ann, false),
            k.column("user_id", false),
            k.inserts(false),
        ],
        || {
            let rows: Vec<Photo> = write::update(
                &cache,
                &mut conn,
                photos::table.filter(photos::user_id.eq(ann)),
                photos::status.eq(7),
            )
            .unwrap();
            assert_eq!(rows.len(), 3);
        },
    );
}

#[test]
fn invalidate_object_bumps_every_finer_key_of_the_row() {
    let (db, _conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = &seed.photos[0];
    check(
        &cache,
        &[
            k.member_int("user_id", p.user_id, true),
            k.member_text("title", &p.title, true),
            k.combo(p.user_id, p.status, true),
            k.column("title", true),
            k.column("score", true),
            k.inserts(true),
            k.member_int("user_id", seed.bob.id, false),
        ],
        || cache.invalidate_object(p).unwrap(),
    );
}

fn int(name: &str, v: i32) -> Column {
    Column::new(name, Value::Bytes(v.to_be_bytes().to_vec())).with_type(23)
}

fn text(name: &str, v: &str) -> Column {
    Column::new(name, Value::Bytes(v.as_bytes().to_vec())).with_type(25)
}

fn float(name: &str, v: f64) -> Column {
    Column::new(name, Value::Bytes(v.to_be_bytes().to_vec())).with_type(701)
}

/// A full image of a photos row (as under `REPLICA IDENTITY FULL`).
fn image(id: i32, user: i32, status: i32, title: &str, score: f64) -> Image {
    Image::new(vec![
        int("id", id),
        int("user_id", user),
        int("status", status),
        text("title", title),
        float("score", score),
        Column::new("deleted_at", Value::Null).with_type(1184),
    ])
}

#[test]
fn change_stream_bumps_the_same_finer_keys() {
    let (db, _conn, cache, _seed) = setup();
    let k = Keys::new(&db);
    let table = TableName::new(db.schema(), "photos");
    let apply = |changes: Vec<Change>| {
        cache
            .invalidate_changes(&Transaction {
                changes,
                commit_time: None,
            })
            .unwrap()
    };
    // A move to another user and a title edit of another row.
    check(
        &cache,
        &[
            k.member_int("user_id", 7, true),
            k.member_int("user_id", 8, true),
            k.column("user_id", true),
            k.combo(7, 2, true),
            k.combo(8, 2, true),
            k.member_text("title", "a", true),
            k.member_text("title", "b", true),
            k.column("title", true),
            k.member_int("user_id", 9, false),
            k.member_int("status", 2, false),
            k.combo(9, 2, false),
            k.column("score", false),
            k.inserts(false),
            k.table(false),
        ],
        || {
            apply(vec![
                Change::Update {
                    table: table.clone(),
                    old: Some(image(1, 7, 2, "x", 0.5)),
                    new: image(1, 8, 2, "x", 0.5),
                },
                Change::Update {
                    table: table.clone(),
                    old: Some(image(2, 9, 2, "a", 0.5)),
                    new: image(2, 9, 2, "b", 0.5),
                },
            ])
        },
    );
    // A float: its column only.
    check(
        &cache,
        &[
            k.column("score", true),
            k.member_int("user_id", 9, false),
            k.column("title", false),
            k.table(false),
        ],
        || {
            apply(vec![Change::Update {
                table: table.clone(),
                old: Some(image(2, 9, 2, "b", 0.5)),
                new: image(2, 9, 2, "b", 0.75),
            }])
        },
    );
    // An insert and a delete.
    check(
        &cache,
        &[
            k.inserts(true),
            k.member_int("id", 3, true),
            k.member_int("id", 2, true),
            k.member_int("user_id", 9, true),
            k.combo(9, 2, true),
            k.column("title", false),
            k.table(false),
        ],
        || {
            apply(vec![
                Change::Insert {
                    table: table.clone(),
                    new: image(3, 9, 2, "c", 0.5),
                },
                Change::Delete {
                    table: table.clone(),
                    old: image(2, 9, 2, "b", 0.75),
                },
            ])
        },
    );
    // No old image: the table's "all" key.
    check(&cache, &[k.table(true)], || {
        apply(vec![Change::Update {
            table: table.clone(),
            old: None,
            new: image(3, 9, 2, "d", 0.5),
        }])
    });
}

#[test]
fn async_writes_bump_the_same_finer_keys() {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    let (db, _conn, cache, seed) = setup();
    let k = Keys::new(&db);
    let p = seed.photos[0].clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut conn = runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut conn).await.unwrap();
        conn
    });
    check(
        &cache,
        &[
            k.member_text("title", &p.title, true),
            k.member_text("title", "async", true),
            k.column("title", true),
            k.member_int("user_id", p.user_id, false),
            k.column("user_id", false),
            k.inserts(false),
        ],
        || {
            runtime.block_on(async {
                let _: Vec<Photo> = cachebot::aio::write::update(
                    &cache,
                    &mut conn,
                    photos::table.find(p.id),
                    photos::title.eq("async"),
                )
                .await
                .unwrap();
            })
        },
    );
}
