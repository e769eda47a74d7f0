use cachebot_derive::CacheBot;

#[derive(CacheBot)]
struct Thing(i32, String);

fn main() {}
