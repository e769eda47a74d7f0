//! Diesel's process-wide default instrumentation (a logger set with
//! `set_default_instrumentation`) and the crate's: the pool customizer and
//! `Cache::instrument` chain the default instead of dropping it, and a
//! connection that carries only the default (not the crate's) is never
//! served from a cache that cannot see its writes.
//!
//! The default is global to the process: this file is its own test binary
//! and holds one test.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use cachebot::prelude::*;
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::{caches, seed, since};
use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use diesel::prelude::*;

static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn logger() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if matches!(event, InstrumentationEvent::FinishQuery { .. }) {
            FINISHED.fetch_add(1, Ordering::SeqCst);
        }
    }))
}

#[test]
fn the_default_instrumentation_is_chained_not_dropped() {
    set_default_instrumentation(logger).unwrap();
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let q = || {
        photos::table
            .filter(photos::user_id.eq(seed.ann.id))
            .order(photos::id)
    };
    for (store, cache) in caches() {
        // Pooled connections: instrumented by the customizer, logged by the default.
        let pool = diesel::r2d2::Pool::builder()
            .max_size(1)
            .connection_customizer(Box::new(cache.pool_customizer()))
            .build(diesel::r2d2::ConnectionManager::<PgConnection>::new(
                db.url(),
            ))
            .unwrap();
        let mut conn = pool.get().unwrap();
        let logged = FINISHED.load(Ordering::SeqCst);
        let first: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        let before = cache.stats();
        let again: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(first, again, "{store}");
        assert_eq!(since(&cache, before).hits, 1, "{store}");
        diesel::update(photos::table.find(seed.photos[0].id))
            .set(photos::title.eq(format!("pooled {store}")))
            .execute(&mut conn)
            .unwrap();
        assert!(
            FINISHED.load(Ordering::SeqCst) > logged,
            "{store}: the user's default logger saw no event"
        );
        let before = cache.stats();
        let fresh: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        assert_eq!(fresh, q().load::<Photo>(&mut conn).unwrap(), "{store}");
        assert_eq!(
            since(&cache, before).misses,
            1,
            "{store}: the write invalidated"
        );

        // Cache::instrument chains it too.
        let mut conn = db.conn();
        cache.instrument(&mut conn).unwrap();
        let logged = FINISHED.load(Ordering::SeqCst);
        let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
        let _: Vec<Photo> = q().load(&mut conn).unwrap();
        assert!(FINISHED.load(Ordering::SeqCst) > logged, "{store}");

        // A connection that carries only the default logger: the crate cannot
        // see its writes, so its reads go to the database, counted.
        let mut logged_only = db.conn();
        for _ in 0..2 {
            let before = cache.stats();
            let rows: Vec<Photo> = q().cache(&cache).load(&mut logged_only).unwrap();
            assert_eq!(rows, q().load::<Photo>(&mut logged_only).unwrap());
            let d = since(&cache, before);
            assert_eq!((d.hits, d.uninstrumented), (0, 1), "{store}: {d:?}");
        }
    }
}
