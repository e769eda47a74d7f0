use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4, a -> Int4 } }

// Every unknown key is reported, each with the list of valid ones, and the
// known keys around them are still read.
#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot(key(a), ttl = 60, cache_gets = false, key(b))]
struct Thing {
    id: i32,
    a: i32,
}

fn main() {}
