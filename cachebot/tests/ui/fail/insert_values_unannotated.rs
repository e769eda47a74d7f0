use cachebot::{Cache, CacheBot};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! {
    tags (id) {
        id -> Int4,
        name -> Text,
    }
}

#[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset, Serialize, Deserialize, CacheBot)]
#[diesel(table_name = tags)]
pub struct Tag {
    pub id: i32,
    pub name: String,
}

fn run(cache: &Cache, c: &mut PgConnection) {
    cachebot::write::insert_values(cache, c, tags::name.eq("x")).unwrap();
}

fn main() {
    let _ = run;
}
