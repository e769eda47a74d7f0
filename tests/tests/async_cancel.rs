//! Cancellation safety of async reads (and writes): a future dropped at any
//! of its await points, or a task aborted mid-read, leaves the connection
//! usable, counts at most one read, and never leaves behind an entry that
//! could be served after a write made right after the drop.
//!
//! Every await point is reached by polling the read with a budget of
//! `Pending`s (0, 1, 2, ...) and dropping it when the budget is spent,
//! until a budget is large enough for the read to complete. Tasks are
//! aborted at the crate's test hook points.

mod common;

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use cachebot::aio::prelude::*;
use cachebot::hooks::{self, Point};
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::{caches, seed, since, Seed};
use diesel::{ExpressionMethods, IntoSql, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection};

/// Poll `fut` until it completes or has returned `Pending` `budget` times;
/// then drop it (with a budget of 0, unpolled). `None` when dropped.
async fn poll_at_most<F: Future>(fut: F, budget: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if budget == 0 {
        return None;
    }
    let mut pendings = 0;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => {
            pendings += 1;
            if pendings >= budget {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        }
    })
    .await
}

macro_rules! by_user {
    ($u:expr) => {
        photos::table
            .filter(photos::user_id.eq($u))
            .order(photos::id)
    };
}

async fn connect(db: &TestDb) -> AsyncPgConnection {
    AsyncPgConnection::establish(&db.url()).await.unwrap()
}

async fn instrumented(db: &TestDb, cache: &Cache) -> AsyncPgConnection {
    let mut conn = connect(db).await;
    cache.instrument_async(&mut conn).await.unwrap();
    conn
}

/// The database's rows for `user`, read on a connection of their own.
async fn truth(conn: &mut AsyncPgConnection, user: i32) -> Vec<Photo> {
    by_user!(user).load(conn).await.unwrap()
}

/// Change a title of `user`'s first photo through an instrumented connection.
async fn write(writer: &mut AsyncPgConnection, seed: &Seed, title: String) {
    let n = diesel::update(photos::table.find(seed.photos[0].id))
        .set(photos::title.eq(title))
        .execute(writer)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// After a dropped read on `conn`: the connection answers correctly, a write
/// made right after is seen by the next cached read (a miss), and the read
/// after that is a hit.
async fn check_after_drop(
    cache: &Cache,
    conn: &mut AsyncPgConnection,
    writer: &mut AsyncPgConnection,
    plain: &mut AsyncPgConnection,
    seed: &Seed,
    what: &str,
) {
    // Another query, of another type, first: a reply left over from the
    // dropped read would be mistaken for it.
    let bob: i64 = photos::table
        .filter(photos::user_id.eq(seed.bob.id))
        .count()
        .get_result(conn)
        .await
        .unwrap_or_else(|e| panic!("{what}: the connection is unusable after the drop: {e}"));
    assert_eq!(bob, 1, "{what}: a wrong answer after the drop");
    let uncached: Vec<Photo> = by_user!(seed.ann.id).load(conn).await.unwrap();
    assert_eq!(uncached, truth(plain, seed.ann.id).await, "{what}");

    write(writer, seed, format!("after {what}")).await;
    let b = cache.stats();
    let rows: Vec<Photo> = by_user!(seed.ann.id).cache(cache).load(conn).await.unwrap();
    let d = since(cache, b);
    assert_eq!(
        rows,
        truth(plain, seed.ann.id).await,
        "{what}: STALE after a write made right after the drop"
    );
    assert_eq!(rows[0].title, format!("after {what}"), "{what}");
    assert_eq!((d.hits, d.misses), (0, 1), "{what}: {d:?}");
    let b = cache.stats();
    let again: Vec<Photo> = by_user!(seed.ann.id).cache(cache).load(conn).await.unwrap();
    let d = since(cache, b);
    assert_eq!(again, rows, "{what}");
    assert_eq!(
        (d.hits, d.misses),
        (1, 0),
        "{what}: caching works again: {d:?}"
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A new connection without instrumentation: the read installs it
    /// (catalog reads: more await points).
    Bare,
    /// A new connection, instrumented (`instrument_async`).
    Fresh,
    /// One instrumented connection, used for every attempt.
    Warm,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// The entry is stale (a write came after it): the read is a miss.
    Miss,
    /// The entry is current: the read is a hit.
    Hit,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_dropped_at_any_await_point_leaves_nothing_stale() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut plain = connect(&db).await;
    for (store, cache) in caches() {
        let mut writer = instrumented(&db, &cache).await;
        let mut warm = instrumented(&db, &cache).await;
        for kind in [Kind::Bare, Kind::Fresh, Kind::Warm] {
            for state in [State::Miss, State::Hit] {
                let mut dropped = 0;
                for budget in 0.. {
                    assert!(budget < 200, "{store} {kind:?} {state:?}: never completes");
                    let what = format!("{store} {kind:?} {state:?} budget {budget}");
                    match state {
                        State::Miss => write(&mut writer, &seed, format!("before {what}")).await,
                        State::Hit => {
                            let _: Vec<Photo> = by_user!(seed.ann.id)
                                .cache(&cache)
                                .load(&mut warm)
                                .await
                                .unwrap();
                        }
                    }
                    let mut fresh = match kind {
                        Kind::Bare => Some(connect(&db).await),
                        Kind::Fresh => Some(instrumented(&db, &cache).await),
                        Kind::Warm => None,
                    };
                    let conn = fresh.as_mut().unwrap_or(&mut warm);
                    let b = cache.stats();
                    let read = by_user!(seed.ann.id).cache(&cache).load::<_, Photo>(conn);
                    let outcome = poll_at_most(read, budget).await;
                    let d = since(&cache, b);
                    match outcome {
                        Some(rows) => {
                            let rows = rows.unwrap();
                            assert_eq!(rows, truth(&mut plain, seed.ann.id).await, "{what}");
                            let want = match state {
                                State::Miss => (0, 1),
                                State::Hit => (1, 0),
                            };
                            assert_eq!((d.hits, d.misses), want, "{what}: {d:?}");
                            println!("{store} {kind:?} {state:?}: dropped at {dropped} points");
                            if state == State::Miss {
                                // Unpolled, and at least once in the database query.
                                assert!(dropped >= 2, "{what}: the read never waited");
                            }
                            break;
                        }
                        None => {
                            dropped += 1;
                            assert!(d.hits + d.misses <= 1, "{what}: counted twice: {d:?}");
                            assert_eq!(d.stores, 0, "{what}: a dropped read stored: {d:?}");
                            if state == State::Miss {
                                assert_eq!(d.hits, 0, "{what}: a stale entry served: {d:?}");
                            }
                            let conn = fresh.as_mut().unwrap_or(&mut warm);
                            check_after_drop(&cache, conn, &mut writer, &mut plain, &seed, &what)
                                .await;
                        }
                    }
                }
            }
        }
    }
}

/// Stops the task whose id is set in `target` at `at` (the hook blocks its
/// worker thread) until the test lets it go.
struct TaskPause {
    target: Arc<Mutex<Option<tokio::task::Id>>>,
    arrived: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
    _guard: hooks::HookGuard,
}

impl TaskPause {
    fn at(at: Point) -> TaskPause {
        let target: Arc<Mutex<Option<tokio::task::Id>>> = Arc::new(Mutex::new(None));
        let (arrived_tx, arrived) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let (arrived_tx, go_rx) = (Mutex::new(arrived_tx), Mutex::new(go_rx));
        let t = target.clone();
        let guard = hooks::install(move |point| {
            let me = tokio::task::try_id();
            if point == at && me.is_some() && me == *t.lock().unwrap() {
                let _ = arrived_tx.lock().unwrap().send(());
                let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
            }
        });
        TaskPause {
            target,
            arrived,
            go,
            _guard: guard,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    wait_event_type: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// A task reading through the cache is aborted (`JoinHandle::abort`) with
/// its read stopped: at the snapshot, its database query then blocked on a
/// lock (so it is in flight when the task dies); and just before it stores
/// its rows. The connection it used (shared, behind a mutex) stays usable,
/// the read counted once, and a write made right after the abort is seen.
///
/// Hooks are per process: this is the one test of this binary that
/// installs one (it stops only its own task, by task id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_aborted_mid_read_leaves_nothing_stale() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut plain = connect(&db).await;
    for (store, cache) in caches() {
        let cache = Arc::new(cache);
        let mut writer = instrumented(&db, &cache).await;
        let shared = Arc::new(tokio::sync::Mutex::new(instrumented(&db, &cache).await));
        for at in [Point::ReadSnapshotTaken, Point::ReadBeforeStore] {
            let what = format!("{store}: aborted at {at:?}");
            write(&mut writer, &seed, format!("before {what}")).await;
            let pid: i32 = diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(&mut *shared.lock().await)
                .await
                .unwrap()
                .pid;
            // At the snapshot, the query is made to wait for a lock.
            let mut blocker = connect(&db).await;
            if at == Point::ReadSnapshotTaken {
                blocker
                    .batch_execute("BEGIN; LOCK TABLE photos IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
            }
            let pause = TaskPause::at(at);
            let (start_tx, start_rx) = tokio::sync::oneshot::channel::<()>();
            let (c, conn, ann) = (cache.clone(), shared.clone(), seed.ann.id);
            let b = cache.stats();
            let task = tokio::spawn(async move {
                start_rx.await.unwrap();
                let mut conn = conn.lock().await;
                let rows: Vec<Photo> = by_user!(ann).cache(&c).load(&mut *conn).await.unwrap();
                rows
            });
            *pause.target.lock().unwrap() = Some(task.id());
            start_tx.send(()).unwrap();
            tokio::task::spawn_blocking({
                let arrived = pause.arrived;
                move || arrived.recv_timeout(Duration::from_secs(20))
            })
            .await
            .unwrap()
            .expect("the reading task never reached the hook");
            pause.go.send(()).unwrap();
            if at == Point::ReadSnapshotTaken {
                // Wait until its query waits for the lock.
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let w: Vec<Waiting> = diesel::sql_query(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                    )
                    .bind::<diesel::sql_types::Integer, _>(pid)
                    .load(&mut plain)
                    .await
                    .unwrap();
                    if w.into_iter()
                        .next()
                        .and_then(|w| w.wait_event_type)
                        .as_deref()
                        == Some("Lock")
                    {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{what}: the query never waited");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            task.abort();
            let joined = task.await;
            if at == Point::ReadSnapshotTaken {
                assert!(
                    joined.as_ref().is_err_and(|e| e.is_cancelled()),
                    "{what}: the task was not cancelled in its query"
                );
                blocker.batch_execute("ROLLBACK").await.unwrap();
            } else if let Ok(rows) = &joined {
                // Nothing awaited after the hook: the task finished first.
                assert_eq!(rows, &truth(&mut plain, seed.ann.id).await, "{what}");
            }
            let d = since(&cache, b);
            assert_eq!((d.hits, d.misses), (0, 1), "{what}: {d:?}");
            if joined.is_err() {
                assert_eq!(d.stores, 0, "{what}: {d:?}");
            }
            let mut conn = shared.lock().await;
            check_after_drop(&cache, &mut conn, &mut writer, &mut plain, &seed, &what).await;
        }
    }
}

/// A raw write dropped at any await point: the statement may have reached
/// the database (and committed) without its future completing. Whatever
/// happened, once the connection has answered a later statement, a cached
/// read must equal the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_at_any_await_point_leaves_nothing_stale() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut plain = connect(&db).await;
    let mut stale = Vec::new();
    for (store, cache) in caches() {
        let mut reader = instrumented(&db, &cache).await;
        for batch in [false, true] {
            let mut writer = instrumented(&db, &cache).await;
            let mut landed_dropped = 0;
            for budget in 0.. {
                assert!(budget < 200, "{store}: the write never completes");
                let what = format!("{store} batch={batch} budget {budget}");
                // A current entry.
                for _ in 0..2 {
                    let _: Vec<Photo> = by_user!(seed.ann.id)
                        .cache(&cache)
                        .load(&mut reader)
                        .await
                        .unwrap();
                }
                let title = format!("dropped {what}");
                let done = if batch {
                    let sql = format!(
                        "UPDATE photos SET title = '{title}' WHERE id = {}",
                        seed.photos[0].id
                    );
                    poll_at_most(writer.batch_execute(&sql), budget)
                        .await
                        .map(|r| r.unwrap())
                        .is_some()
                } else {
                    let update = diesel::update(photos::table.find(seed.photos[0].id))
                        .set(photos::title.eq(&title))
                        .execute(&mut writer);
                    poll_at_most(update, budget)
                        .await
                        .map(|r| r.unwrap())
                        .is_some()
                };
                // The connection answers a later statement: whatever the
                // dropped one did is done.
                let one: i32 = diesel::select(1.into_sql::<diesel::sql_types::Integer>())
                    .get_result(&mut writer)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: the writer is unusable: {e}"));
                assert_eq!(one, 1);
                let db_rows = truth(&mut plain, seed.ann.id).await;
                let landed = db_rows[0].title == title;
                let cached: Vec<Photo> = by_user!(seed.ann.id)
                    .cache(&cache)
                    .load(&mut reader)
                    .await
                    .unwrap();
                if cached != db_rows {
                    stale.push(format!(
                        "{what}: STALE: the dropped write {} the database, and the cache \
                         still serves the rows from before it:\n  cached: {cached:?}\n  \
                         truth:  {db_rows:?}",
                        if landed { "reached" } else { "did not reach" }
                    ));
                }
                if done {
                    assert!(landed, "{what}");
                    println!("{store} batch={batch}: {landed_dropped} dropped writes landed");
                    break;
                }
                if landed {
                    landed_dropped += 1;
                }
            }
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}
