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

// The result is unused and nothing names the model: rustc must say so at
// once (it used to be able to search Diesel's impls for a long time).
fn run(cache: &Cache, c: &mut PgConnection) {
    cachebot::write::update(cache, c, tags::table.find(1), tags::name.eq("x")).unwrap();
}

fn main() {
    let _ = run;
}
