//! diesel-async pools built with the crate's deadpool hook and bb8
//! customizer: every pooled connection is instrumented (a raw write on any
//! of them invalidates what another one cached), Diesel's default
//! instrumentation is chained, not dropped, and 64 tasks reading and
//! writing through a pool on a multi-threaded runtime never read stale.

mod common;

use std::ops::DerefMut;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use cachebot::aio::prelude::*;
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::TestDb;
use common::{caches, seed, since, Seed};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::pooled_connection::{bb8, deadpool, AsyncDieselConnectionManager};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection};

/// A deadpool or a bb8 pool of instrumented connections.
#[derive(Clone)]
enum Pool {
    Deadpool(deadpool::Pool<AsyncPgConnection>),
    Bb8(bb8::Pool<AsyncPgConnection>),
}

enum Pooled {
    Deadpool(deadpool::Object<AsyncPgConnection>),
    Bb8(bb8::PooledConnection<'static, AsyncPgConnection>),
}

impl std::ops::Deref for Pooled {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        match self {
            Pooled::Deadpool(c) => c,
            Pooled::Bb8(c) => c,
        }
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        match self {
            Pooled::Deadpool(c) => c,
            Pooled::Bb8(c) => c,
        }
    }
}

impl Pool {
    async fn build(kind: &str, db: &TestDb, cache: &Cache, size: usize) -> Pool {
        let manager = || AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
        match kind {
            "deadpool" => Pool::Deadpool(
                deadpool::Pool::builder(manager())
                    .max_size(size)
                    .post_create(cache.deadpool_hook())
                    .build()
                    .unwrap(),
            ),
            _ => Pool::Bb8(
                bb8::Pool::builder()
                    .max_size(size as u32)
                    .min_idle(Some(0))
                    .connection_customizer(Box::new(cache.bb8_customizer()))
                    .build(manager())
                    .await
                    .unwrap(),
            ),
        }
    }

    async fn get(&self) -> Pooled {
        match self {
            Pool::Deadpool(p) => Pooled::Deadpool(p.get().await.unwrap()),
            Pool::Bb8(p) => Pooled::Bb8(p.get_owned().await.unwrap()),
        }
    }
}

const POOLS: [&str; 2] = ["deadpool", "bb8"];

macro_rules! by_user {
    ($u:expr) => {
        photos::table
            .filter(photos::user_id.eq($u))
            .order(photos::id)
    };
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .await
        .unwrap()
        .pid
}

/// A raw write (no crate API) of kind `k` on `conn`.
async fn raw_write(conn: &mut AsyncPgConnection, seed: &Seed, k: usize, title: &str) {
    let id = seed.photos[0].id;
    match k % 4 {
        0 => {
            diesel::update(photos::table.find(id))
                .set(photos::title.eq(title))
                .execute(conn)
                .await
                .unwrap();
        }
        1 => {
            diesel::sql_query(format!(
                "UPDATE photos SET title = '{title}' WHERE id = {id}"
            ))
            .execute(conn)
            .await
            .unwrap();
        }
        2 => conn
            .batch_execute(&format!(
                "BEGIN; UPDATE photos SET title = '{title}' WHERE id = {id}; COMMIT"
            ))
            .await
            .unwrap(),
        _ => {
            let title = title.to_owned();
            conn.transaction::<_, diesel::result::Error, _>(async move |c| {
                diesel::update(photos::table.find(id))
                    .set(photos::title.eq(title))
                    .execute(c)
                    .await
            })
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_pooled_connection_invalidates_what_another_cached() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut plain = AsyncPgConnection::establish(&db.url()).await.unwrap();
    for (store, cache) in caches() {
        for kind in POOLS {
            let what = format!("{store} {kind}");
            let pool = Pool::build(kind, &db, &cache, 4).await;
            // Four connections at once: four different ones.
            let mut conns = Vec::new();
            for _ in 0..4 {
                conns.push(pool.get().await);
            }
            let mut pids = Vec::new();
            for c in &mut conns {
                pids.push(backend_pid(c).await);
            }
            pids.sort();
            pids.dedup();
            assert_eq!(pids.len(), 4, "{what}: four distinct connections");
            // Reads through the first connection; the others write, having
            // run nothing through the cache (a cached read would instrument
            // a bare connection itself): only the hook or the customizer
            // can have instrumented them.
            let _: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut *conns[0])
                .await
                .unwrap();
            let b = cache.stats();
            for w in 1..conns.len() {
                for _ in 0..2 {
                    let _: Vec<Photo> = by_user!(seed.ann.id)
                        .cache(&cache)
                        .load(&mut *conns[0])
                        .await
                        .unwrap();
                }
                let title = format!("{what} via connection {w}");
                raw_write(&mut conns[w], &seed, w, &title).await;
                let before = cache.stats();
                let rows: Vec<Photo> = by_user!(seed.ann.id)
                    .cache(&cache)
                    .load(&mut *conns[0])
                    .await
                    .unwrap();
                let d = since(&cache, before);
                let truth: Vec<Photo> = by_user!(seed.ann.id).load(&mut plain).await.unwrap();
                assert_eq!(rows, truth, "{what}: STALE after a write on connection {w}");
                assert_eq!(rows[0].title, title, "{what}");
                assert_eq!((d.hits, d.misses), (0, 1), "{what}: connection {w}: {d:?}");
                // And what the reader cached serves the writer's connection.
                let there: Vec<Photo> = by_user!(seed.ann.id)
                    .cache(&cache)
                    .load(&mut *conns[w])
                    .await
                    .unwrap();
                assert_eq!(there, truth, "{what}");
            }
            let d = since(&cache, b);
            // Per writer: two hits before its write, a miss after, a hit on
            // its own connection.
            assert_eq!((d.hits, d.misses), (9, 3), "{what}: {d:?}");
            assert_eq!(d.uninstrumented, 0, "{what}: {d:?}");
            // Connections handed back and out again stay instrumented.
            drop(conns);
            let mut again = pool.get().await;
            raw_write(&mut again, &seed, 0, &format!("{what} recycled")).await;
            let rows: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut *pool.get().await)
                .await
                .unwrap();
            assert_eq!(rows[0].title, format!("{what} recycled"), "{what}");
        }
    }
}

/// Per task, in the database: its own user and photo.
struct Owned {
    user: i32,
    photo: i32,
}

#[derive(Default)]
struct Tally {
    cached_reads: AtomicU64,
    writes: AtomicU64,
    stale: AtomicU64,
}

const TASKS: usize = 64;
const ROUNDS: usize = 6;

/// One task: rounds of a cached read of its own rows (twice), and every
/// other round a raw write to them through whichever pooled connection it
/// gets, then a cached read on another checked against what it wrote and
/// against the database (the oracle). Only this task writes its rows, so
/// what it expects is exact.
async fn task(pool: Pool, cache: Arc<Cache>, owned: Owned, t: usize, tally: Arc<Tally>) {
    let mut title = format!("p{t}");
    for round in 0..ROUNDS {
        for _ in 0..2 {
            let mut conn = pool.get().await;
            let rows: Vec<Photo> = by_user!(owned.user)
                .cache(&cache)
                .load(&mut *conn)
                .await
                .unwrap();
            tally.cached_reads.fetch_add(1, Ordering::Relaxed);
            if rows.len() != 1 || rows[0].title != title {
                tally.stale.fetch_add(1, Ordering::Relaxed);
                eprintln!("STALE task {t} round {round}: {rows:?}, expected title {title}");
            }
        }
        if round % 2 == 1 {
            title = format!("t{t} r{round}");
            {
                let mut conn = pool.get().await;
                if round % 4 == 1 {
                    diesel::update(photos::table.find(owned.photo))
                        .set(photos::title.eq(&title))
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                } else {
                    conn.batch_execute(&format!(
                        "UPDATE photos SET title = '{title}' WHERE id = {}",
                        owned.photo
                    ))
                    .await
                    .unwrap();
                }
            }
            tally.writes.fetch_add(1, Ordering::Relaxed);
            let mut conn = pool.get().await;
            let cached: Vec<Photo> = by_user!(owned.user)
                .cache(&cache)
                .load(&mut *conn)
                .await
                .unwrap();
            tally.cached_reads.fetch_add(1, Ordering::Relaxed);
            let truth: Vec<Photo> = by_user!(owned.user).load(&mut *conn).await.unwrap();
            if cached != truth || truth[0].title != title {
                tally.stale.fetch_add(1, Ordering::Relaxed);
                eprintln!("STALE task {t} after its write: {cached:?} vs {truth:?} ({title})");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_read_and_write_through_a_pool_and_never_read_stale() {
    let db = TestDb::new();
    let mut sync = db.conn();
    diesel::connection::SimpleConnection::batch_execute(
        &mut sync,
        &format!(
            "INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, {TASKS}) g;
             INSERT INTO photos (user_id, status, title)
                 SELECT id, 1, 'p' || (id - (SELECT min(id) FROM users)) FROM users ORDER BY id;"
        ),
    )
    .unwrap();
    let owned: Vec<(i32, i32)> = diesel::RunQueryDsl::load(
        photos::table
            .select((photos::user_id, photos::id))
            .order(photos::user_id),
        &mut sync,
    )
    .unwrap();
    assert_eq!(owned.len(), TASKS);
    for (store, cache) in caches() {
        for kind in POOLS {
            let what = format!("{store} {kind}");
            let cache = Arc::new(cache.clone());
            let pool = Pool::build(kind, &db, &cache, 8).await;
            let tally = Arc::new(Tally::default());
            let b = cache.stats();
            let started = std::time::Instant::now();
            let handles: Vec<_> = owned
                .iter()
                .enumerate()
                .map(|(t, &(user, photo))| {
                    tokio::spawn(task(
                        pool.clone(),
                        cache.clone(),
                        Owned { user, photo },
                        t,
                        tally.clone(),
                    ))
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            let d = since(&cache, b);
            let reads = AtomicU64::load(&tally.cached_reads, Ordering::Relaxed);
            let writes = AtomicU64::load(&tally.writes, Ordering::Relaxed);
            let stale = AtomicU64::load(&tally.stale, Ordering::Relaxed);
            println!(
                "{what}: {TASKS} tasks, {reads} cached reads, {writes} writes, {stale} stale, \
                 {} hits, {} misses, {:.1?}",
                d.hits,
                d.misses,
                started.elapsed()
            );
            assert_eq!(stale, 0, "{what}: stale reads");
            assert_eq!(writes, (TASKS * ROUNDS / 2) as u64, "{what}");
            // Every cached read was counted once, on an instrumented connection.
            assert_eq!(d.uninstrumented, 0, "{what}: {d:?}");
            assert_eq!(d.hits + d.misses, reads, "{what}: {d:?}");
            assert!(d.hits > 0, "{what}: no hits: {d:?}");
            // Restore the titles for the next pool.
            diesel::connection::SimpleConnection::batch_execute(
                &mut sync,
                "UPDATE photos SET title = 'p' || (user_id - (SELECT min(id) FROM users))",
            )
            .unwrap();
            cache.invalidate_all().unwrap();
        }
    }
}

static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn logger() -> Option<Box<dyn diesel::connection::Instrumentation>> {
    Some(Box::new(
        |event: diesel::connection::InstrumentationEvent<'_>| {
            if matches!(
                event,
                diesel::connection::InstrumentationEvent::FinishQuery { .. }
            ) {
                FINISHED.fetch_add(1, Ordering::SeqCst);
            }
        },
    ))
}

const DEFAULT_CHILD: &str = "CACHEBOT_ASYNC_POOL_DEFAULT_INSTRUMENTATION";

/// Diesel's default instrumentation is global to the process: the test
/// runs in a child process (this binary, this test alone), which sets it.
#[test]
fn the_default_instrumentation_is_chained_by_the_hook_and_the_customizer() {
    if std::env::var_os(DEFAULT_CHILD).is_some() {
        diesel::connection::set_default_instrumentation(logger).unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(default_instrumentation_child());
        println!("{DEFAULT_CHILD}: ok");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_default_instrumentation_is_chained_by_the_hook_and_the_customizer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DEFAULT_CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("{DEFAULT_CHILD}: ok")),
        "the child failed:\n{text}"
    );
}

async fn default_instrumentation_child() {
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mut plain = AsyncPgConnection::establish(&db.url()).await.unwrap();
    for (store, cache) in caches() {
        for kind in POOLS {
            let what = format!("{store} {kind}");
            let pool = Pool::build(kind, &db, &cache, 1).await;
            let mut conn = pool.get().await;
            let logged = AtomicUsize::load(&FINISHED, Ordering::SeqCst);
            let first: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut *conn)
                .await
                .unwrap();
            let b = cache.stats();
            let again: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut *conn)
                .await
                .unwrap();
            assert_eq!(first, again, "{what}");
            assert_eq!(since(&cache, b).hits, 1, "{what}");
            raw_write(&mut conn, &seed, 0, &format!("pooled {what}")).await;
            assert!(
                AtomicUsize::load(&FINISHED, Ordering::SeqCst) > logged,
                "{what}: the default logger saw no event on a pooled connection"
            );
            let b = cache.stats();
            let fresh: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut *conn)
                .await
                .unwrap();
            let truth: Vec<Photo> = by_user!(seed.ann.id).load(&mut plain).await.unwrap();
            assert_eq!(fresh, truth, "{what}: STALE");
            assert_eq!(since(&cache, b).misses, 1, "{what}: the write invalidated");
        }

        // instrument_async chains it too.
        let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
        cache.instrument_async(&mut conn).await.unwrap();
        let logged = AtomicUsize::load(&FINISHED, Ordering::SeqCst);
        raw_write(&mut conn, &seed, 1, &format!("instrumented {store}")).await;
        assert!(
            AtomicUsize::load(&FINISHED, Ordering::SeqCst) > logged,
            "{store}"
        );
        let rows: Vec<Photo> = by_user!(seed.ann.id)
            .cache(&cache)
            .load(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows[0].title, format!("instrumented {store}"), "{store}");

        // A connection carrying only the default logger: its writes are
        // unseen, so its reads are never served from the cache.
        let mut logged_only = AsyncPgConnection::establish(&db.url()).await.unwrap();
        for _ in 0..2 {
            let b = cache.stats();
            let rows: Vec<Photo> = by_user!(seed.ann.id)
                .cache(&cache)
                .load(&mut logged_only)
                .await
                .unwrap();
            let truth: Vec<Photo> = by_user!(seed.ann.id).load(&mut plain).await.unwrap();
            assert_eq!(rows, truth, "{store}");
            let d = since(&cache, b);
            assert_eq!((d.hits, d.uninstrumented), (0, 1), "{store}: {d:?}");
        }
    }
}
