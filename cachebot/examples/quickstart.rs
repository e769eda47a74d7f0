//! The quickstart: cached reads, exact writes, a write that bypasses the
//! crate, and the statistics that show what happened.
//!
//! Run it with `scripts/quickstart.sh` (starts PostgreSQL when `DATABASE_URL`
//! does not answer) or `DATABASE_URL=postgres://... cargo run -p cachebot --example quickstart`.
//! It uses the in-process store: no cache server is needed.

use cachebot::prelude::*;
use cachebot::CacheBot;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! {
    quickstart_photos (id) {
        id -> Int4,
        user_id -> Int4,
        status -> Int4,
        title -> Text,
    }
}

use quickstart_photos::dsl::{quickstart_photos as photos, status, user_id};

#[derive(
    Debug, Clone, PartialEq, Queryable, Selectable, AsChangeset, Serialize, Deserialize, CacheBot,
)]
#[diesel(table_name = quickstart_photos)]
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
    cache.instrument(&mut conn)?; // every write on `conn` now invalidates what it can change
    let published = || {
        photos
            .filter(user_id.eq(7))
            .filter(status.eq(2))
            .order(quickstart_photos::id)
    };

    let first: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // miss: PostgreSQL
    let second: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // hit: the cache
    assert_eq!(first, second);
    println!(
        "user 7 has {} published photos: {:?}",
        first.len(),
        titles(&first)
    );

    // Another user's photo changes through the derive's exact write:
    // user 7's query stays cached.
    let mut city = Photo::get(&cache, &mut conn, 4)?.ok_or("photo 4 is missing")?;
    city.title = "town".into();
    city.save(&cache, &mut conn)?;
    let _: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // still a hit

    // The draft is published: its old and new images invalidate user 7's query.
    let mut draft = Photo::get(&cache, &mut conn, 3)?.ok_or("photo 3 is missing")?;
    draft.status = 2;
    draft.save(&cache, &mut conn)?;
    let third: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // miss: fresh rows
    assert_eq!(third, published().load::<Photo>(&mut conn)?);
    println!("after publishing the draft: {:?}", titles(&third));

    // A write that bypasses the crate is seen by the instrumentation.
    diesel::update(photos.filter(user_id.eq(7)))
        .set(status.eq(1))
        .execute(&mut conn)?;
    let fourth: Vec<Photo> = published().cache(&cache).load(&mut conn)?; // miss: empty now
    assert!(fourth.is_empty());
    println!(
        "after unpublishing everything with plain Diesel: {:?}",
        titles(&fourth)
    );

    let stats = cache.stats();
    println!(
        "hits: {}, misses: {}, stores: {}, invalidations: {}",
        stats.hits, stats.misses, stats.stores, stats.invalidations
    );
    assert_eq!((stats.hits, stats.misses), (2, 5)); // the two gets were misses too
    conn.batch_execute("DROP TABLE quickstart_photos")?;
    Ok(())
}

fn titles(rows: &[Photo]) -> Vec<&str> {
    rows.iter().map(|p| p.title.as_str()).collect()
}
