//! Smoke test of the async API on a real AsyncPgConnection.

mod common;

use cachebot::aio::prelude::*;
use cachebot_tests::models::*;
use cachebot_tests::schema::*;
use cachebot_tests::{Fixture, TestDb};
use common::{caches, since};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_reads_hit_and_see_writes() {
    for (store, cache) in caches() {
        let db = TestDb::new();
        let mut sync = db.conn();
        let fx = Fixture::create(&mut sync);
        let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut conn).await.unwrap();
        let q = || {
            third_models::table
                .filter(third_models::second_model_id.eq(fx.s.id))
                .order(third_models::id)
        };
        let b = cache.stats();
        let first: Vec<ThirdModel> = q().cache(&cache).load(&mut conn).await.unwrap();
        let second: Vec<ThirdModel> = q().cache(&cache).load(&mut conn).await.unwrap();
        let d = since(&cache, b);
        assert_eq!(first, second, "{store}");
        assert_eq!((d.hits, d.misses), (1, 1), "{store}: {d:?}");
        diesel::update(third_models::table.filter(third_models::second_model_id.eq(fx.s.id)))
            .set(third_models::text.eq("changed"))
            .execute(&mut conn)
            .await
            .unwrap();
        let third: Vec<ThirdModel> = q().cache(&cache).load(&mut conn).await.unwrap();
        let db_rows: Vec<ThirdModel> = q().load(&mut conn).await.unwrap();
        assert_eq!(third, db_rows, "{store}: stale after an async write");
        let one: ThirdModel = q().cache(&cache).first(&mut conn).await.unwrap();
        assert_eq!(one, db_rows[0]);
    }
}
