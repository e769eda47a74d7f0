//! The stale-read checker under tokio's multi-threaded runtime: reader
//! tasks on a deadpool and a bb8 pool (built with the crate's hook and
//! customizer) read through one memcached cache while writer tasks of this
//! process write through the pools (raw diesel-async writes: `execute`,
//! `sql_query`, `batch_execute` with BEGIN/COMMIT, transactions, some
//! rolled back) and writer threads of ANOTHER PROCESS (this test binary,
//! re-executed) write through the blocking API (the write API, plain
//! Diesel, raw batches) with their own cache on the same memcached keys.
//!
//! Every cached read is judged as the blocking checker does
//! (`cachebot_tests::checker`): when no write was in flight from before it
//! started until after its uncached twin finished, the two must be equal.
//!
//! `CACHEBOT_ASYNC_CHECKER_SECS` sets how long both processes run (default
//! 3; a soak: 60 or more).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachebot::aio::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot_tests::checker::{self, Judge, Tick};
use cachebot_tests::models::{Photo, User};
use cachebot_tests::schema::{photos, users};
use cachebot_tests::TestDb;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
use diesel_async::pooled_connection::{bb8, deadpool, AsyncDieselConnectionManager};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection};

const CHILD: &str = "CACHEBOT_ASYNC_CHECKER_CHILD";
const READERS_PER_POOL: usize = 3;
const CHILD_WRITERS: usize = 1;

fn seconds() -> Duration {
    Duration::from_secs_f64(
        std::env::var("CACHEBOT_ASYNC_CHECKER_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3.0),
    )
}

fn memcached_cache(prefix: &str, write_behind: bool) -> Cache {
    let store = MemcachedStore::builder()
        .servers(cachebot_tests::memcached_servers())
        .prefix(prefix)
        .build()
        .unwrap();
    Cache::builder()
        .store(store)
        .write_behind(write_behind)
        .build()
        .unwrap()
}

/// A pooled connection of either pool.
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

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        match self {
            Pooled::Deadpool(c) => c,
            Pooled::Bb8(c) => c,
        }
    }
}

#[derive(Clone)]
enum Pool {
    Deadpool(deadpool::Pool<AsyncPgConnection>),
    Bb8(bb8::Pool<AsyncPgConnection>),
}

impl Pool {
    async fn get(&self) -> Pooled {
        match self {
            Pool::Deadpool(p) => Pooled::Deadpool(p.get().await.unwrap()),
            Pool::Bb8(p) => Pooled::Bb8(p.get_owned().await.unwrap()),
        }
    }
}

/// One cached read (when `cache` is given) or its uncached twin, as text.
async fn read(
    conn: &mut AsyncPgConnection,
    cache: Option<&Cache>,
    users: &[i32],
    pick: u32,
    v: i32,
) -> (String, String) {
    let u = users[(v.unsigned_abs() as usize) % users.len()];
    macro_rules! both {
        ($name:expr, $q:expr, $ty:ty, $m:ident) => {{
            let got: $ty = match cache {
                Some(c) => $q.cache(c).$m(conn).await.unwrap(),
                None => $q.$m(conn).await.unwrap(),
            };
            (format!("{} u={u} v={v}", $name), format!("{got:?}"))
        }};
    }
    match pick % 8 {
        0 => both!(
            "by user",
            photos::table
                .filter(photos::user_id.eq(u))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
        1 => both!(
            "by user and status",
            photos::table
                .filter(photos::user_id.eq(u).and(photos::status.eq(v % 3)))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
        2 => both!(
            "by status",
            photos::table
                .filter(photos::status.eq(v % 3))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
        3 => both!(
            "join on user name",
            photos::table
                .inner_join(users::table)
                .filter(users::name.eq(format!("user{}", v % 6)))
                .order(photos::id),
            Vec<(Photo, User)>,
            load
        ),
        4 => both!(
            "count by user",
            photos::table.filter(photos::user_id.eq(u)).count(),
            i64,
            get_result
        ),
        5 => both!(
            "find",
            photos::table.filter(photos::id.eq(v % 60 + 1)),
            Vec<Photo>,
            load
        ),
        6 => both!(
            "eq_any",
            photos::table
                .filter(photos::id.eq_any(vec![v % 60 + 1, (v + 7) % 60 + 1]))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
        _ => both!(
            "first page",
            photos::table.order(photos::id).limit(5),
            Vec<Photo>,
            load
        ),
    }
}

/// One raw diesel-async write of kind `kind` (no crate write API).
async fn write_async(
    conn: &mut AsyncPgConnection,
    users: &[i32],
    kind: u32,
    v: i32,
) -> diesel::QueryResult<String> {
    let u = users[(v.unsigned_abs() as usize) % users.len()];
    let id = v % 60 + 1;
    let next = id % 60 + 1;
    match kind % 8 {
        0 => {
            diesel::update(photos::table.find(id))
                .set(photos::status.eq(v % 3))
                .execute(conn)
                .await?;
            Ok(format!("update status id={id}"))
        }
        1 => {
            diesel::sql_query(format!("UPDATE photos SET user_id = {u} WHERE id = {id}"))
                .execute(conn)
                .await?;
            Ok(format!("sql_query move id={id} to user {u}"))
        }
        2 => {
            diesel::insert_into(photos::table)
                .values((
                    photos::user_id.eq(u),
                    photos::status.eq(v % 3),
                    photos::title.eq("new"),
                ))
                .execute(conn)
                .await?;
            Ok(format!("insert for user {u}"))
        }
        3 => {
            diesel::delete(photos::table.filter(photos::id.gt(60).and(photos::user_id.eq(u))))
                .execute(conn)
                .await?;
            Ok(format!("delete inserted photos of user {u}"))
        }
        4 => {
            conn.transaction::<_, diesel::result::Error, _>(async move |c| {
                diesel::update(photos::table.find(id))
                    .set(photos::user_id.eq(u))
                    .execute(c)
                    .await?;
                diesel::update(photos::table.find(next))
                    .set(photos::status.eq(v % 3))
                    .execute(c)
                    .await
            })
            .await?;
            Ok(format!("transaction: move id={id}, status of {next}"))
        }
        5 => {
            let r = conn
                .transaction::<(), diesel::result::Error, _>(async move |c| {
                    diesel::update(photos::table)
                        .set(photos::status.eq(99))
                        .execute(c)
                        .await?;
                    Err(diesel::result::Error::RollbackTransaction)
                })
                .await;
            match r {
                Err(diesel::result::Error::RollbackTransaction) => {}
                other => other?,
            }
            Ok("rolled back: every status = 99".into())
        }
        6 => {
            let sql = format!(
                "BEGIN; UPDATE photos SET user_id = {u} WHERE id = {id}; \
                 UPDATE photos SET status = {} WHERE id = {next}; COMMIT",
                v % 3
            );
            if let Err(e) = conn.batch_execute(&sql).await {
                let _ = conn.batch_execute("ROLLBACK").await;
                return Err(e);
            }
            Ok(format!("batch: {sql}"))
        }
        _ => {
            conn.batch_execute(&format!(
                "UPDATE users SET name = 'user{}' WHERE id = {u}",
                v % 6
            ))
            .await?;
            Ok(format!("batch_execute rename user {u}"))
        }
    }
}

/// The child process (blocking Diesel: diesel-async's `RunQueryDsl` is
/// not in scope here).
mod blocking {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use cachebot::Cache;
    use cachebot_tests::checker::{self, Judge, Tick};
    use cachebot_tests::models::Photo;
    use cachebot_tests::schema::{photos, users};
    use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, RunQueryDsl};

    use super::{memcached_cache, seconds, CHILD_WRITERS};

    /// One blocking write of the child process, through its cache.
    fn write_blocking(
        conn: &mut diesel::PgConnection,
        cache: &Cache,
        users: &[i32],
        kind: u32,
        v: i32,
    ) -> diesel::QueryResult<String> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let u = users[(v.unsigned_abs() as usize) % users.len()];
        let id = v % 60 + 1;
        match kind % 6 {
            0 => {
                let moved: Vec<Photo> = cachebot::write::update(
                    cache,
                    conn,
                    photos::table.filter(photos::id.eq(id)),
                    (photos::user_id.eq(u), photos::status.eq(v % 3)),
                )?;
                Ok(format!("write::update id={id} ({} rows)", moved.len()))
            }
            1 => {
                let gone: Vec<Photo> = cachebot::write::delete(
                    cache,
                    conn,
                    photos::table.filter(photos::id.gt(60).and(photos::user_id.eq(u))),
                )?;
                Ok(format!("write::delete {} of user {u}", gone.len()))
            }
            2 => {
                conn.transaction::<_, diesel::result::Error, _>(|c| {
                    let _: Vec<Photo> = cachebot::write::update(
                        cache,
                        c,
                        photos::table.find(id),
                        photos::status.eq(v % 3),
                    )?;
                    if v % 2 == 0 {
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                    Ok(())
                })
                .or_else(|e| match e {
                    diesel::result::Error::RollbackTransaction => Ok(()),
                    e => Err(e),
                })?;
                Ok(format!("write::update in a transaction id={id}"))
            }
            3 => {
                diesel::update(photos::table.find(id))
                    .set(photos::user_id.eq(u))
                    .execute(conn)?;
                Ok(format!("update move id={id} to user {u}"))
            }
            4 => {
                let sql = format!(
                    "BEGIN; UPDATE photos SET status = {} WHERE id = {id}; COMMIT",
                    v % 3
                );
                if let Err(e) = conn.batch_execute(&sql) {
                    let _ = conn.batch_execute("ROLLBACK");
                    return Err(e);
                }
                Ok(format!("batch: {sql}"))
            }
            _ => {
                diesel::insert_into(photos::table)
                    .values((
                        photos::user_id.eq(u),
                        photos::status.eq(v % 3),
                        photos::title.eq("child"),
                    ))
                    .execute(conn)?;
                Ok(format!("insert for user {u}"))
            }
        }
    }

    /// The child process: writer threads, blocking, until the time is up.
    pub(super) fn child(url: &str, prefix: &str) {
        use diesel::Connection;
        let cache = memcached_cache(prefix, false);
        let mut conn = diesel::PgConnection::establish(url).unwrap();
        let users: Vec<i32> = users::table
            .select(users::id)
            .order(users::id)
            .load(&mut conn)
            .unwrap();
        let judge = Arc::new(Judge::default());
        let deadline = Instant::now() + seconds();
        let threads: Vec<_> = (0..CHILD_WRITERS)
            .map(|t| {
                let (cache, users, judge, url) =
                    (cache.clone(), users.clone(), judge.clone(), url.to_owned());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(1000 + t as u64);
                    let mut conn = diesel::PgConnection::establish(&url).unwrap();
                    cache.instrument(&mut conn).unwrap();
                    let mut plain = diesel::PgConnection::establish(&url).unwrap();
                    while Instant::now() < deadline {
                        std::thread::sleep(Duration::from_micros(rng.u64(5_000..30_000)));
                        checker::tick(&mut plain, Tick::Started);
                        let what = write_blocking(
                            &mut conn,
                            &cache,
                            &users,
                            rng.u32(..),
                            rng.i32(0..10_000),
                        )
                        .unwrap_or_else(|e| format!("failed: {e}"));
                        checker::tick(&mut plain, Tick::Completed);
                        judge.wrote(what);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        println!("ASYNC_CHECKER_CHILD writes={}", judge.counts().writes);
    }
}

async fn reader(
    pool: Pool,
    cache: Arc<Cache>,
    url: String,
    users: Arc<Vec<i32>>,
    judge: Arc<Judge>,
    seed: u64,
    deadline: Instant,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut plain = AsyncPgConnection::establish(&url).await.unwrap();
    while Instant::now() < deadline {
        let (pick, v) = (rng.u32(..), rng.i32(0..10_000));
        let before = checker::clock_async(&mut plain).await;
        let mut conn = pool.get().await;
        let (query, cached) = read(&mut conn, Some(&cache), &users, pick, v).await;
        drop(conn);
        let (_, truth) = read(&mut plain, None, &users, pick, v).await;
        let after = checker::clock_async(&mut plain).await;
        judge.judge(before, after, &query, &cached, &truth);
    }
}

async fn writer(
    pool: Pool,
    url: String,
    users: Arc<Vec<i32>>,
    judge: Arc<Judge>,
    seed: u64,
    deadline: Instant,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut plain = AsyncPgConnection::establish(&url).await.unwrap();
    while Instant::now() < deadline {
        // A pause between writes leaves windows with no write in flight.
        tokio::time::sleep(Duration::from_micros(rng.u64(5_000..30_000))).await;
        checker::tick_async(&mut plain, Tick::Started).await;
        let mut conn = pool.get().await;
        // Deadlocks are real outcomes of concurrent writes: rolled back.
        let what = write_async(&mut conn, &users, rng.u32(..), rng.i32(0..10_000))
            .await
            .unwrap_or_else(|e| format!("failed: {e}"));
        drop(conn);
        checker::tick_async(&mut plain, Tick::Completed).await;
        judge.wrote(what);
    }
}

#[test]
fn async_stale_read_checker() {
    if let Ok(role) = std::env::var(CHILD) {
        let (url, prefix) = role.split_once('|').expect("child role");
        blocking::child(url, prefix);
        return;
    }
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!(
            "{}
             INSERT INTO users (name) SELECT 'user' || (g % 6) FROM generate_series(1, 12) g;
             INSERT INTO photos (user_id, status, title)
                 SELECT (SELECT min(id) FROM users) + g % 12, g % 3, 'p' || g
                 FROM generate_series(1, 60) g;",
            checker::CLOCK_DDL
        ),
    )
    .unwrap();
    let users: Vec<i32> =
        diesel::RunQueryDsl::load(users::table.select(users::id).order(users::id), &mut conn)
            .unwrap();
    let prefix = common::unique_prefix();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "async_stale_read_checker", "--nocapture"])
        .env(CHILD, format!("{}|{prefix}", db.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let cache = Arc::new(memcached_cache(&prefix, true));
    let judge = Arc::new(Judge::default());
    let url = db.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = runtime.block_on(async {
        let manager = || AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.clone());
        let pools = [
            Pool::Deadpool(
                deadpool::Pool::builder(manager())
                    .max_size(4)
                    .post_create(cache.deadpool_hook())
                    .build()
                    .unwrap(),
            ),
            Pool::Bb8(
                bb8::Pool::builder()
                    .max_size(4)
                    .connection_customizer(Box::new(cache.bb8_customizer()))
                    .build(manager())
                    .await
                    .unwrap(),
            ),
        ];
        let users = Arc::new(users);
        let deadline = Instant::now() + seconds();
        let b = cache.stats();
        let mut tasks = Vec::new();
        for (p, pool) in pools.iter().enumerate() {
            for r in 0..READERS_PER_POOL {
                tasks.push(tokio::spawn(reader(
                    pool.clone(),
                    cache.clone(),
                    url.clone(),
                    users.clone(),
                    judge.clone(),
                    (p * 100 + r) as u64,
                    deadline,
                )));
            }
            tasks.push(tokio::spawn(writer(
                pool.clone(),
                url.clone(),
                users.clone(),
                judge.clone(),
                (p * 100 + 99) as u64,
                deadline,
            )));
        }
        for t in tasks {
            t.await.unwrap();
        }
        cache.stats() - b
    });
    let out = child.wait_with_output().unwrap();
    let child_out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let child_line = child_out
        .lines()
        .find(|l| l.starts_with("ASYNC_CHECKER_CHILD"))
        .unwrap_or("no report")
        .to_owned();
    let c = judge.counts();
    println!(
        "ASYNC_CHECKER reads={} checked={} writes={} stale={} hits={} misses={}; {child_line}; {:.1?}",
        c.reads,
        c.checked,
        c.writes,
        c.stale,
        stats.hits,
        stats.misses,
        started.elapsed()
    );
    let failures = judge.failures();
    assert!(failures.is_empty(), "stale reads:\n{}", failures.join("\n"));
    assert!(
        out.status.success(),
        "the child process failed:\n{child_out}"
    );
    let child_writes: u64 = child_line
        .strip_prefix("ASYNC_CHECKER_CHILD writes=")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{child_line}\n{child_out}"));
    // Floors that keep the check meaningful whatever the machine's timing.
    assert!(
        child_writes >= 20,
        "too few writes in the child: {child_writes}"
    );
    assert!(
        c.writes >= 20,
        "too few writes in this process: {}",
        c.writes
    );
    assert!(
        c.checked >= 100,
        "too few reads were checked ({} of {}): the check would prove nothing",
        c.checked,
        c.reads
    );
    assert!(stats.hits > 0, "no read was a hit: {stats:?}");
    assert_eq!(stats.uninstrumented, 0, "{stats:?}");
}
