use cachebot::prelude::*;
use cachebot_derive::CacheBot;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! { photos (id) { id -> Int4, user_id -> Int4, status -> Int4 } }

#[derive(Debug, Clone, Queryable, Selectable, CacheBot, Serialize, Deserialize)]
#[diesel(table_name = photos)]
#[cachebot(key(user_id, status))]
pub struct Photo {
    pub id: i32,
    pub user_id: i32,
    pub status: i32,
}

fn reads(cache: &Cache, conn: &mut PgConnection) -> QueryResult<()> {
    // Not a declared key: the columns in another order.
    let _ = Photo::get_by(cache, conn, (photos::status, photos::user_id), (2, 1))?;
    // A declared key, with a value of the wrong type.
    let _ = Photo::get_by(cache, conn, (photos::user_id, photos::status), (1, "2"))?;
    Ok(())
}

fn main() {}
