use cachebot_derive::CacheBot;

diesel::table! { photos (id) { id -> Int4, user_id -> Int4 } }

#[derive(CacheBot)]
#[diesel(table_name = photos)]
#[cachebot(key())]
struct Photo {
    id: i32,
    user_id: i32,
}

fn main() {}
