//! A write whose future is dropped after it was sent (an async query cancelled by a timeout)
//! may still commit on the server. The connection's instrumentation never sees it finish;
//! it counts it as orphaned and invalidates what it may have written as soon as a later
//! statement on the same connection finishes (the server runs a connection's statements in
//! order), or when the connection is closed.

mod common;

use std::time::Duration;

use cachebot::aio::prelude::*;
use cachebot_tests::models::*;
use cachebot_tests::schema::*;
use cachebot_tests::{Fixture, TestDb};
use common::{caches, since};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _};

/// A write that takes `secs` on the server, then commits.
fn slow_rename(id: i32, secs: f64) -> diesel::query_builder::SqlQuery {
    diesel::sql_query(format!(
        "UPDATE third_models SET text = 'renamed' WHERE id = {id} AND pg_sleep({secs}) IS NOT NULL"
    ))
}

async fn read(cache: &Cache, conn: &mut AsyncPgConnection, s: i32) -> Vec<ThirdModel> {
    third_models::table
        .filter(third_models::second_model_id.eq(s))
        .order(third_models::id)
        .cache(cache)
        .load(conn)
        .await
        .unwrap()
}

async fn oracle(conn: &mut AsyncPgConnection, s: i32) -> Vec<ThirdModel> {
    use diesel_async::RunQueryDsl;
    third_models::table
        .filter(third_models::second_model_id.eq(s))
        .order(third_models::id)
        .load(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_is_invalidated_when_the_connection_runs_its_next_statement() {
    for (store, cache) in caches() {
        let db = TestDb::new();
        let fx = Fixture::create(&mut db.conn());
        let mut writer = AsyncPgConnection::establish(&db.url()).await.unwrap();
        let mut reader = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut writer).await.unwrap();
        cache.instrument_async(&mut reader).await.unwrap();
        let before = read(&cache, &mut reader, fx.s.id).await;
        assert_eq!(before, read(&cache, &mut reader, fx.s.id).await);

        // Cancelled while the server runs it; it commits 300 ms later.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            slow_rename(fx.t.id, 0.3).execute(&mut writer),
        )
        .await;
        assert!(cancelled.is_err(), "{store}: the write was cancelled");
        // The writer's next statement finishes after the cancelled one (same connection).
        diesel::sql_query("SELECT 1")
            .execute(&mut writer)
            .await
            .unwrap();
        let truth = oracle(&mut reader, fx.s.id).await;
        assert!(
            truth.iter().any(|t| t.text == "renamed"),
            "{store}: the cancelled write committed"
        );
        let b = cache.stats();
        let after = read(&cache, &mut reader, fx.s.id).await;
        assert_eq!(
            after, truth,
            "{store}: stale after a cancelled write committed"
        );
        assert_eq!(since(&cache, b).misses, 1, "{store}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_is_invalidated_when_its_connection_is_dropped() {
    for (store, cache) in caches() {
        let db = TestDb::new();
        let fx = Fixture::create(&mut db.conn());
        let mut writer = AsyncPgConnection::establish(&db.url()).await.unwrap();
        let mut reader = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut writer).await.unwrap();
        cache.instrument_async(&mut reader).await.unwrap();
        read(&cache, &mut reader, fx.s.id).await;
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            slow_rename(fx.t.id, 0.1).execute(&mut writer),
        )
        .await;
        assert!(cancelled.is_err(), "{store}: the write was cancelled");
        // Let it commit, then close the connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(writer);
        let truth = oracle(&mut reader, fx.s.id).await;
        assert!(truth.iter().any(|t| t.text == "renamed"), "{store}");
        assert_eq!(
            read(&cache, &mut reader, fx.s.id).await,
            truth,
            "{store}: stale"
        );
    }
}
