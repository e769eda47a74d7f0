//! A model's own inherent methods win over the derive's (trait) methods of
//! the same name, and the derive's stay reachable through the trait.

use cachebot::prelude::*;
use cachebot_derive::CacheBot;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! { photos (id) { id -> Int4, title -> Text } }

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
pub struct Photo {
    pub id: i32,
    pub title: String,
}

impl Photo {
    /// Not a database read at all: a different signature on purpose.
    pub fn get(id: i32) -> Photo {
        Photo {
            id,
            title: "mine".into(),
        }
    }

    /// An inherent method named like a provided one.
    pub fn delete(&self) -> &'static str {
        "kept"
    }
}

#[allow(dead_code)]
fn the_derives_still_reachable(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
    let _: Option<Photo> = <Photo as CachedModel>::get(cache, conn, 1)?;
    let _: Vec<Photo> = Photo::get_many(cache, conn, &[1])?;
    Ok(())
}

fn main() {
    let p = Photo::get(7);
    assert_eq!(p.title, "mine");
    assert_eq!(p.delete(), "kept");
}
