use cachebot_derive::CacheBot;

#[derive(CacheBot)]
union Thing {
    id: i32,
    other: u32,
}

fn main() {}
