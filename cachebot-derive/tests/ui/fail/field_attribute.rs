use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4, code -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = things)]
struct Thing {
    id: i32,
    #[cachebot(key(code))]
    code: i32,
}

fn main() {}
