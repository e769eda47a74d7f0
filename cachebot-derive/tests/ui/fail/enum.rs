use cachebot_derive::CacheBot;

#[derive(CacheBot)]
enum Thing {
    A { id: i32 },
    B { id: i32 },
}

fn main() {}
