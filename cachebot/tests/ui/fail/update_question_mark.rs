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


fn run(cache: &Cache, c: &mut PgConnection) -> Result<(), Box<dyn std::error::Error>> {
    cachebot::write::update(&cache, c, tags::table.find(1), tags::name.eq("x"))?;
    Ok(())
}

fn main() {
    let _ = run;
}
