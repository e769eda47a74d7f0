use cachebot_derive::CacheBot;

diesel::table! { things (id) { id -> Int4, code -> Int4 } }

struct Code {
    code: i32,
}

#[derive(CacheBot)]
#[diesel(table_name = things)]
#[cachebot(key(inner))]
struct Thing {
    id: i32,
    #[diesel(embed)]
    inner: Code,
}

fn main() {}
