use cachebot_derive::CacheBot;

diesel::table! { things (code) { code -> Int4, size -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = things)]
struct Thing {
    code: i32,
    size: i32,
}

#[derive(CacheBot)]
#[diesel(table_name = things, primary_key(kode))]
struct Other {
    code: i32,
    size: i32,
}

fn main() {}
