use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot(ttl = 60)]
struct Thing {
    id: i32,
}

fn main() {}
