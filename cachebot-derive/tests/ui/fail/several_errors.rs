use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4, a -> Int4 } }

// Every error is reported, not only the first.
#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot(key(a, a), key(b))]
#[cachebot(cache_get = 1)]
struct Thing {
    id: i32,
    a: i32,
}

fn main() {}
