//! The quickstart: cached reads, a write, the invalidated read, statistics.
//!
//! Run it with `scripts/quickstart.sh` (starts PostgreSQL when `DATABASE_URL`
//! does not answer) or `DATABASE_URL=postgres://... cargo run -p cachebot --example quickstart`.
//! It uses the in-process store: no cache server is needed.

use cachebot::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use quickstart_photos::dsl::{id, quickstart_photos as photos, status, title, user_id};
use serde::{Deserialize, Serialize};

diesel::table! {
    quickstart_photos (id) {
        id -> Int4,
        user_id -> Int4,
        status -> Int4,
        title -> Text,
    }
}

#[derive(Debug, Queryable, Serialize, Deserialize, PartialEq)]
struct Photo {
    id: i32,
    user_id: i32,
    status: i32,
    title: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set: run scripts/quickstart.sh")?;
    let mut conn = PgConnection::establish(&url)?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS quickstart_photos;
         CREATE TABLE quickstart_photos (
             id SERIAL PRIMARY KEY, user_id INT NOT NULL, status INT NOT NULL, title TEXT NOT NULL);
         INSERT INTO quickstart_photos (user_id, status, title)
             VALUES (7, 2, 'beach'), (7, 2, 'dune'), (7, 1, 'draft'), (8, 2, 'city');",
    )?;

    let cache = Cache::in_process();
    let published = || photos.filter(user_id.eq(7)).filter(status.eq(2)).order(id);

    let first: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // miss: PostgreSQL
    let second: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // hit: the cache
    assert_eq!(first, second);
    println!(
        "user 7 has {} published photos: {:?}",
        first.len(),
        titles(&first)
    );

    // Another user's photo changes: the query keyed on user_id = 7 stays cached.
    diesel::update(photos.filter(user_id.eq(8)))
        .set(title.eq("town"))
        .execute(&mut conn)?;
    cache.invalidate_value(user_id, 8)?;
    let _: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // still a hit

    // The draft is published: its old and new values are invalidated.
    diesel::update(photos.filter(title.eq("draft")))
        .set(status.eq(2))
        .execute(&mut conn)?;
    cache.invalidate_value(user_id, 7)?;
    let third: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // miss: fresh rows
    let truth: Vec<Photo> = published().load(&mut conn)?;
    assert_eq!(third, truth);
    println!("after publishing the draft: {:?}", titles(&third));

    let stats = cache.stats();
    println!(
        "hits: {}, misses: {}, stores: {}, invalidations: {}",
        stats.hits, stats.misses, stats.stores, stats.invalidations
    );
    assert_eq!((stats.hits, stats.misses), (2, 2));
    conn.batch_execute("DROP TABLE quickstart_photos")?;
    Ok(())
}

fn titles(rows: &[Photo]) -> Vec<&str> {
    rows.iter().map(|p| p.title.as_str()).collect()
}
