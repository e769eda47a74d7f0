use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot(cache_get = "yes")]
struct Thing {
    id: i32,
}

fn main() {}
