//! The derive's output compiles for the model shapes it supports, and its
//! `CacheModel` impl computes the right keys (no database needed: keys are
//! computed from values).

use cachebot::model::__private::{column_name, Key};
use cachebot::prelude::*;
use cachebot::{CacheModel, Dependency};
use cachebot_derive::CacheBot;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

mod schema {
    diesel::table! {
        photos (id) {
            id -> Int4,
            user_id -> Int4,
            status -> Int4,
            title -> Text,
            score -> Float8,
            #[sql_name = "taken_on"]
            taken -> Nullable<Text>,
        }
    }

    diesel::table! {
        memberships (group_id, member) {
            group_id -> Int4,
            member -> Int8,
            role -> Text,
        }
    }

    diesel::table! {
        #[sql_name = "widget_rows"]
        widgets (code) {
            code -> Text,
            #[sql_name = "kind_name"]
            kind -> Text,
            size -> Int4,
        }
    }

    diesel::table! {
        odds (id) {
            id -> Int4,
            cache -> Int4,
            conn -> Int4,
            out -> Int4,
            names -> Int4,
            rows -> Nullable<Int4>,
            #[sql_name = "type"]
            type_ -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(photos, memberships, widgets, odds);
}

use schema::{memberships, odds, photos, widgets};

/// Every attribute at once, and a renamed field.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    Insertable,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = photos, check_for_backend(diesel::pg::Pg))]
#[cachebot(key(user_id, status))]
#[cachebot(key(name))]
pub struct Photo {
    pub id: i32,
    pub user_id: i32,
    pub status: i32,
    #[diesel(column_name = title)]
    pub name: String,
    pub score: f64,
    pub taken: Option<String>,
}

/// Only some columns: writes of it widen to the table.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
#[cachebot(cache_get = false)]
pub struct PhotoStatus {
    pub id: i32,
    pub status: i32,
}

/// A composite primary key, named by column.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = memberships, primary_key(group_id, member))]
pub struct Membership {
    pub group_id: i32,
    #[diesel(column_name = member)]
    pub user_id: i64,
    pub role: String,
}

/// Renamed table and columns (`sql_name`), a text primary key.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = widgets, primary_key(code))]
#[cachebot(key(kind, size))]
pub struct Widget {
    pub code: String,
    pub kind: String,
    pub size: i32,
}

/// An embedded struct: not keyed.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = photos)]
pub struct Owner {
    pub user_id: i32,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
pub struct PhotoWithOwner {
    pub id: i32,
    #[diesel(embed)]
    pub owner: Owner,
    #[diesel(select_expression = photos::status + 1, select_expression_type = diesel::dsl::Add<photos::status, i32>)]
    pub next_status: i32,
    pub title: String,
    pub score: f64,
    pub taken: Option<String>,
    pub status: i32,
}

/// Fields named like the generated code's locals and parameters, and a
/// keyword column.
#[derive(
    Debug, Clone, PartialEq, Queryable, Selectable, AsChangeset, CacheBot, Serialize, Deserialize,
)]
#[diesel(table_name = odds)]
#[cachebot(key(cache, conn), key(out, names, rows), key(kind))]
pub struct Odd {
    pub id: i32,
    pub cache: i32,
    pub conn: i32,
    pub out: i32,
    pub names: i32,
    pub rows: Option<i32>,
    #[diesel(column_name = type_)]
    pub kind: String,
}

#[allow(dead_code)]
fn methods_type_check(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
    let photo: Option<Photo> = Photo::get(cache, conn, 1)?;
    let photos: Vec<Photo> = Photo::get_many(cache, conn, &[1, 2])?;
    let _: Vec<Photo> = Photo::get_by(cache, conn, (photos::user_id, photos::status), (1, 2))?;
    let _: Vec<Photo> = Photo::get_by(cache, conn, photos::title, "x".to_owned())?;
    let _: Vec<Photo> = Photo::insert(cache, conn, photos.clone())?;
    let _: Vec<Photo> = Photo::insert(
        cache,
        conn,
        (
            photos::user_id.eq(1),
            photos::status.eq(2),
            photos::title.eq("t"),
        ),
    )?;
    if let Some(p) = photo {
        let _: Photo = p.save(cache, conn)?;
        let _: usize = p.delete(cache, conn)?;
    }
    let _: Option<PhotoStatus> = PhotoStatus::get(cache, conn, 1)?;
    let _: Vec<PhotoStatus> = PhotoStatus::get_many(cache, conn, &[1])?;
    let m: Option<Membership> = Membership::get(cache, conn, (1, 2))?;
    let _: Vec<Membership> = Membership::get_many(cache, conn, &[(1, 2), (3, 4)])?;
    if let Some(m) = m {
        let _: Membership = m.save(cache, conn)?;
        let _: usize = m.delete(cache, conn)?;
    }
    let w: Option<Widget> = Widget::get(cache, conn, "a".to_owned())?;
    let _: Vec<Widget> = Widget::get_by(
        cache,
        conn,
        (widgets::kind, widgets::size),
        ("k".to_owned(), 3),
    )?;
    if let Some(w) = w {
        let _: usize = w.delete(cache, conn)?;
    }
    let _: Option<PhotoWithOwner> = PhotoWithOwner::get(cache, conn, 1)?;
    let _: Vec<Odd> = Odd::get_by(cache, conn, (odds::cache, odds::conn), (1, 2))?;
    let odd: Vec<Odd> = Odd::get_by(
        cache,
        conn,
        (odds::out, odds::names, odds::rows),
        (1, 2, None),
    )?;
    let _: Vec<Odd> = Odd::get_by(cache, conn, odds::type_, "k".into())?;
    if let Some(o) = odd.first() {
        let _: Odd = o.save(cache, conn)?;
    }
    // Other codecs.
    let postcard_free = Cache::builder()
        .codec(cachebot::codec::Bincode)
        .build()
        .unwrap();
    let _: Option<Photo> = Photo::get(&postcard_free, conn, 1)?;
    Ok(())
}

fn photo() -> Photo {
    Photo {
        id: 7,
        user_id: 3,
        status: 2,
        name: "sunset".into(),
        score: 0.5,
        taken: None,
    }
}

fn keys_of<M: CacheModel>(row: &M) -> Vec<Key> {
    let mut out = cachebot::model::RowKeys::as_written();
    row.row_keys(&mut out);
    out.keys().to_vec()
}

fn value(table: &str, column: &str, bytes: Option<&[u8]>) -> Key {
    Dependency::Value {
        table: table.into(),
        column: column.into(),
        value: bytes.map(<[u8]>::to_vec),
    }
    .key()
}

#[test]
fn metadata() {
    assert_eq!(Photo::table_name(), "photos");
    const { assert!(Photo::CACHE_GET) };
    const { assert!(!PhotoStatus::CACHE_GET) };
    assert_eq!(
        Photo::composite_keys(),
        &[&["user_id", "status"][..], &["title"][..]]
    );
    assert!(Membership::composite_keys().is_empty());
    // `sql_name` renames are read from the rendered columns.
    assert_eq!(Widget::table_name(), "widget_rows");
    assert_eq!(Widget::composite_keys(), &[&["kind_name", "size"][..]]);
}

#[test]
fn photo_keys() {
    let keys = keys_of(&photo());
    let be = |v: i32| v.to_be_bytes().to_vec();
    // One key per keyable value (not the float), NULL included.
    for k in [
        value("photos", "id", Some(&be(7))),
        value("photos", "user_id", Some(&be(3))),
        value("photos", "status", Some(&be(2))),
        value("photos", "title", Some(b"sunset")),
        value("photos", "taken_on", None),
        Dependency::Rows("photos".into()).key(),
    ] {
        assert!(keys.contains(&k), "missing {k:?} in {keys:?}");
    }
    // Covering model: no table-wide key; composites for both keys.
    assert!(!keys.contains(&Dependency::Table("photos".into()).key()));
    assert_eq!(keys.len(), 5 + 2 + 1, "{keys:?}");
    // The identity is the encoded primary key.
    assert_eq!(
        photo().identity(),
        cachebot::model::__private::identity(&[Some(be(7))])
    );
}

#[test]
fn partial_models_widen_to_the_table() {
    let keys = keys_of(&PhotoStatus { id: 1, status: 2 });
    assert!(keys.contains(&Dependency::Table("photos".into()).key()));
    let keys = keys_of(&PhotoWithOwner {
        id: 1,
        owner: Owner { user_id: 3 },
        next_status: 3,
        title: "t".into(),
        score: 1.0,
        taken: None,
        status: 2,
    });
    assert!(keys.contains(&Dependency::Table("photos".into()).key()));
    // The embedded and computed values are not keyed as columns.
    assert!(!keys.contains(&value("photos", "user_id", Some(&3i32.to_be_bytes()))));
    assert!(!keys.contains(&value("photos", "status", Some(&3i32.to_be_bytes()))));
    assert!(keys.contains(&value("photos", "status", Some(&2i32.to_be_bytes()))));
}

#[test]
fn composite_primary_key() {
    let m = Membership {
        group_id: 1,
        user_id: 2,
        role: "admin".into(),
    };
    let keys = keys_of(&m);
    assert!(keys.contains(&value("memberships", "member", Some(&2i64.to_be_bytes()))));
    // Values, the composite primary key, rows.
    assert_eq!(keys.len(), 3 + 1 + 1, "{keys:?}");
    assert_eq!(
        m.identity(),
        cachebot::model::__private::identity(&[
            Some(1i32.to_be_bytes().to_vec()),
            Some(2i64.to_be_bytes().to_vec())
        ])
    );
    assert_eq!(
        column_name(&memberships::member),
        Some(("memberships".into(), "member".into()))
    );
}

#[test]
fn hygiene_and_sql_names() {
    assert_eq!(
        Odd::composite_keys(),
        &[
            &["cache", "conn"][..],
            &["out", "names", "rows"][..],
            &["type"][..]
        ]
    );
    let keys = keys_of(&Odd {
        id: 1,
        cache: 2,
        conn: 3,
        out: 4,
        names: 5,
        rows: None,
        kind: "k".into(),
    });
    assert!(keys.contains(&value("odds", "type", Some(b"k"))));
    assert!(keys.contains(&value("odds", "rows", None)));
    // 7 values, 3 composites, rows.
    assert_eq!(keys.len(), 7 + 3 + 1, "{keys:?}");
    let _ = odds::table;
}

#[test]
fn two_models_of_one_table_do_not_share_coverage() {
    // One covers the table, the other does not: in either order, only the
    // partial one widens to the table.
    let table = Dependency::Table("photos".into()).key();
    for _ in 0..2 {
        assert!(keys_of(&PhotoStatus { id: 1, status: 2 }).contains(&table));
        assert!(!keys_of(&photo()).contains(&table));
    }
}

#[test]
fn renamed_table_keys() {
    let keys = keys_of(&Widget {
        code: "a".into(),
        kind: "k".into(),
        size: 3,
    });
    assert!(keys.contains(&value("widget_rows", "kind_name", Some(b"k"))));
    assert!(keys.contains(&Dependency::Rows("widget_rows".into()).key()));
    let _ = widgets::table;
}
