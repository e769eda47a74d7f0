//! A model using every attribute the derive reads, and every generated method.

use cachebot::prelude::*;
use cachebot::CacheModel;
use cachebot_derive::CacheBot;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

pub mod schema {
    diesel::table! {
        users (id) {
            id -> Int4,
            name -> Text,
        }
    }

    diesel::table! {
        photos (id) {
            id -> Int4,
            user_id -> Int4,
            status -> Int4,
            title -> Text,
            score -> Float8,
            taken -> Int8,
        }
    }

    diesel::joinable!(photos -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, photos);
}

use schema::{photos, users};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: i32,
    pub name: String,
}

#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    Associations,
    AsChangeset,
    CacheBot,
    Serialize,
    Deserialize,
)]
#[diesel(table_name = schema::photos, check_for_backend(diesel::pg::Pg))]
#[diesel(belongs_to(User, foreign_key = user_id), primary_key(id))]
#[diesel(treat_none_as_null = true)]
#[cachebot(key(user_id, status), cache_get = true)]
#[cachebot(key(name))]
pub struct Photo {
    pub id: i32,
    pub user_id: i32,
    pub status: i32,
    #[diesel(column_name = title)]
    pub name: String,
    #[diesel(column_name = "score")]
    pub score: f64,
    pub taken: i64,
}

/// Milliseconds, stored as `bigint`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Millis(pub i64);

impl From<i64> for Millis {
    fn from(v: i64) -> Self {
        Millis(v)
    }
}

impl From<Millis> for i64 {
    fn from(v: Millis) -> Self {
        v.0
    }
}

/// Converted fields (`serialize_as`, `deserialize_as`) are not keyed.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
pub struct PhotoTaken {
    pub id: i32,
    #[diesel(serialize_as = i64, deserialize_as = i64, column_name = taken)]
    pub when: Millis,
}

/// Only the columns a list needs; primary-key gets not cached.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
#[cachebot(cache_get = false)]
pub struct PhotoTitle {
    pub id: i32,
    #[diesel(select_expression = photos::title.concat("!"), select_expression_type = diesel::dsl::Concat<photos::title, &'static str>)]
    pub shout: String,
}

#[allow(dead_code)]
fn uses(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
    let p: Option<Photo> = Photo::get(cache, conn, 1)?;
    let _: Vec<Photo> = Photo::get_many(cache, conn, &[1, 2, 3])?;
    let _: Vec<Photo> = Photo::get_by(cache, conn, (photos::user_id, photos::status), (1, 2))?;
    let _: Vec<Photo> = Photo::get_by(cache, conn, photos::title, "sunset".into())?;
    let _: Vec<Photo> = Photo::insert(
        cache,
        conn,
        (
            photos::user_id.eq(1),
            photos::status.eq(2),
            photos::title.eq("t"),
            photos::score.eq(0.5),
            photos::taken.eq(0),
        ),
    )?;
    let t: Option<PhotoTaken> = PhotoTaken::get(cache, conn, 1)?;
    if let Some(t) = t {
        let _: Vec<PhotoTaken> = PhotoTaken::insert(cache, conn, t.clone())?;
        let _: usize = t.delete(cache, conn)?;
    }
    if let Some(p) = p {
        let _: Photo = p.save(cache, conn)?;
        let _: usize = p.delete(cache, conn)?;
    }
    let u: Option<User> = User::get(cache, conn, 1)?;
    if let Some(u) = u {
        let _: usize = u.delete(cache, conn)?;
    }
    let _: Option<PhotoTitle> = PhotoTitle::get(cache, conn, 1)?;
    let _: Vec<PhotoTitle> = PhotoTitle::get_many(cache, conn, &[1])?;
    let _ = users::table;
    Ok(())
}

fn main() {
    assert!(Photo::CACHE_GET);
    assert!(!PhotoTitle::CACHE_GET);
    assert_eq!(Photo::table_name(), "photos");
    assert_eq!(Photo::composite_keys(), &[&["user_id", "status"][..], &["title"][..]]);
}
