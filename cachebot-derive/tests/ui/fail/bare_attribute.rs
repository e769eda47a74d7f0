use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot]
struct Thing {
    id: i32,
}

#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot = "key(id)"]
struct Other {
    id: i32,
}

fn main() {}
