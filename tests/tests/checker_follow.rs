//! The stale-read checker with a writer the crate never sees: a second process writes
//! through an uninstrumented connection (raw SQL and Diesel, single statements and
//! transactions, some rolled back) while reader threads of this process read through a cache
//! that a change-stream follower keeps fresh, with a staleness bound.
//!
//! What is promised for such writes: stale for at most the bound. So a read is judged when
//! no outside write was in flight while it ran and the last one completed more than the bound
//! (plus a margin for the two clocks involved) before it started: then the cached result must
//! equal the database's. Reads closer to a write are counted, not judged. The writer pauses
//! between bursts so that judged windows exist whatever the machine's speed; floors on the
//! judged reads and judged hits keep the check meaningful.
//!
//! `CACHEBOT_FOLLOW_CHECKER_BURSTS` sets the writer's bursts (default 6).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot_follow::{Config, Follower};
use cachebot_tests::{memcached_servers, LogicalDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

diesel::table! {
    items (id) {
        id -> Int4,
        owner -> Int4,
        note -> Text,
    }
}

const SETUP: &str = "
CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, note text NOT NULL);
CREATE TABLE outside_clock (started bigint NOT NULL, completed bigint NOT NULL,
                            completed_at timestamptz NOT NULL);
ALTER TABLE outside_clock REPLICA IDENTITY FULL;
INSERT INTO outside_clock VALUES (0, 0, clock_timestamp());
INSERT INTO items SELECT g, g % 5, 'n' || g FROM generate_series(1, 40) g;
";

/// The staleness bound of the readers' cache.
const BOUND: Duration = Duration::from_millis(700);
/// Judged reads start this long after the last outside write (the bound, plus a margin for
/// the database's clock against this process's).
const JUDGE_AFTER_MS: f64 = 900.0;

#[derive(QueryableByName, Debug, Clone, Copy, PartialEq)]
struct Clock {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    started: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    completed: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    age_ms: f64,
}

fn clock(conn: &mut PgConnection) -> Clock {
    diesel::sql_query(
        "SELECT started, completed, \
         extract(epoch FROM clock_timestamp() - completed_at)::float8 * 1000 AS age_ms \
         FROM outside_clock",
    )
    .get_result(conn)
    .expect("the clock")
}

/// One random write through `conn` (no cachebot instrumentation), between clock ticks.
fn outside_write(conn: &mut PgConnection, rng: &mut fastrand::Rng) -> String {
    conn.batch_execute("UPDATE outside_clock SET started = started + 1")
        .expect("tick");
    let id = rng.i32(1..60);
    let owner = rng.i32(0..6);
    let what = match rng.u32(0..7) {
        0 => diesel::update(items::table.find(id))
            .set(items::note.eq(format!("u{}", rng.u32(..))))
            .execute(conn)
            .map(|_| ()),
        1 => diesel::sql_query(format!("UPDATE items SET owner = {owner} WHERE id = {id}"))
            .execute(conn)
            .map(|_| ()),
        2 => diesel::sql_query(format!(
            "INSERT INTO items VALUES ({id}, {owner}, 'i') ON CONFLICT (id) DO NOTHING"
        ))
        .execute(conn)
        .map(|_| ()),
        3 => diesel::delete(items::table.find(id))
            .execute(conn)
            .map(|_| ()),
        4 => conn.batch_execute(&format!(
            "BEGIN; UPDATE items SET note = note || 'x' WHERE owner = {owner}; \
             DELETE FROM items WHERE id = {id}; COMMIT"
        )),
        5 => conn.batch_execute(&format!(
            "BEGIN; UPDATE items SET owner = owner + 1 WHERE id = {id}; ROLLBACK"
        )),
        _ => diesel::sql_query(format!(
            "UPDATE items SET owner = {owner}, note = 'm' WHERE owner = {} AND id % 3 = 0",
            (owner + 1) % 6
        ))
        .execute(conn)
        .map(|_| ()),
    };
    conn.batch_execute(
        "UPDATE outside_clock SET completed = completed + 1, completed_at = clock_timestamp()",
    )
    .expect("tick");
    format!("{what:?}")
}

/// The writer process: bursts of writes with pauses longer than the judging threshold.
fn writer(url: &str, bursts: u32) {
    let mut conn = PgConnection::establish(url).expect("the writer's connection");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut writes = 0;
    for _ in 0..bursts {
        for _ in 0..rng.u32(10..30) {
            outside_write(&mut conn, &mut rng);
            writes += 1;
            std::thread::sleep(Duration::from_millis(rng.u64(1..8)));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(1600..2400)));
    }
    println!("FOLLOW_WRITER writes={writes}");
}

#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    judged: AtomicU64,
    judged_hits: AtomicU64,
}

/// One cached read of shape `pick`, and the same query uncached, both rendered as text.
fn read(
    cache: &Cache,
    conn: &mut PgConnection,
    plain: &mut PgConnection,
    pick: u32,
    v: i32,
) -> (String, String, String) {
    macro_rules! both {
        ($q:expr, $t:ty) => {{
            let cached: $t = $q.cache(cache).load(conn).expect("cached read");
            let truth: $t = $q.load(plain).expect("oracle");
            (format!("{cached:?}"), format!("{truth:?}"))
        }};
    }
    match pick % 4 {
        0 => {
            let (c, t) = both!(
                items::table
                    .filter(items::owner.eq(v % 6))
                    .order(items::id)
                    .select((items::id, items::note)),
                Vec<(i32, String)>
            );
            (format!("owner = {}", v % 6), c, t)
        }
        1 => {
            let (c, t) = both!(
                items::table
                    .filter(items::id.eq(v % 60))
                    .select((items::owner, items::note)),
                Vec<(i32, String)>
            );
            (format!("id = {}", v % 60), c, t)
        }
        2 => {
            let (c, t) = both!(
                items::table.filter(items::owner.eq(v % 6)).count(),
                Vec<i64>
            );
            (format!("count owner = {}", v % 6), c, t)
        }
        _ => {
            let (c, t) = both!(
                items::table
                    .order(items::id.desc())
                    .limit(5)
                    .select(items::id),
                Vec<i32>
            );
            ("latest 5".to_owned(), c, t)
        }
    }
}

fn reader(
    cache: &Cache,
    db: &LogicalDb,
    done: &AtomicBool,
    tally: &Tally,
    failures: &Mutex<Vec<String>>,
    seed: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut conn = db.conn();
    cache.instrument(&mut conn).expect("instrument");
    let mut plain = db.conn();
    while !done.load(Ordering::Relaxed) {
        let before = clock(&mut plain);
        let stats = cache.stats();
        let (query, cached, truth) =
            read(cache, &mut conn, &mut plain, rng.u32(..), rng.i32(0..1000));
        let hit = cache.stats().hits > stats.hits;
        let after = clock(&mut plain);
        tally.reads.fetch_add(1, Ordering::Relaxed);
        let quiet = before.started == before.completed
            && after.started == before.started
            && before.age_ms > JUDGE_AFTER_MS;
        if !quiet {
            continue;
        }
        tally.judged.fetch_add(1, Ordering::Relaxed);
        if hit {
            tally.judged_hits.fetch_add(1, Ordering::Relaxed);
        }
        if cached != truth {
            failures.lock().unwrap().push(format!(
                "STALE {query} (hit: {hit}, {:.0} ms after the last outside write)\n  cached: {cached}\n  truth:  {truth}",
                before.age_ms
            ));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..3)));
    }
}

#[test]
fn outside_writer_checker() {
    let bursts: u32 = std::env::var("CACHEBOT_FOLLOW_CHECKER_BURSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    if let Ok(url) = std::env::var("CACHEBOT_FOLLOW_WRITER") {
        writer(&url, bursts);
        return;
    }
    let db = LogicalDb::new(SETUP);
    let servers = memcached_servers();
    let prefix = format!("fc{:016x}:", fastrand::u64(..));
    let store = || {
        MemcachedStore::builder()
            .servers(servers.iter().cloned())
            .prefix(prefix.clone())
            .build()
            .expect("memcached store")
    };
    let follower = Follower::new(
        Cache::builder()
            .store(store())
            .write_behind(false)
            .build()
            .expect("the follower's cache"),
        Config::new(db.url(), &db.schema, &db.schema).bound(BOUND),
    )
    .spawn()
    .expect("spawn the follower");
    let cache = Cache::builder()
        .store(store())
        .write_behind(false)
        .staleness_bound(BOUND)
        .build()
        .expect("the readers' cache");
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let failures = Arc::new(Mutex::new(Vec::new()));
    let child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "outside_writer_checker",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CACHEBOT_FOLLOW_WRITER", db.schema_url())
        .env("CACHEBOT_FOLLOW_CHECKER_BURSTS", bursts.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the writer process");
    let db = Arc::new(db);
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (cache, db, done, tally, failures) = (
                cache.clone(),
                db.clone(),
                done.clone(),
                tally.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || reader(&cache, &db, &done, &tally, &failures, 100 + t))
        })
        .collect();
    let out = child.wait_with_output().expect("the writer's output");
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader panicked");
    }
    let status = follower.status();
    follower.stop();
    let writer_out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (reads, judged, hits) = (
        tally.reads.load(Ordering::Relaxed),
        tally.judged.load(Ordering::Relaxed),
        tally.judged_hits.load(Ordering::Relaxed),
    );
    let line = writer_out
        .lines()
        .find_map(|l| l.find("FOLLOW_WRITER").map(|i| &l[i..]))
        .unwrap_or("no report")
        .to_owned();
    println!(
        "FOLLOW_CHECKER reads={reads} judged={judged} judged_hits={hits} behind_follower={}; {line}; follower applied={}",
        cache.stats().behind_follower,
        status.applied
    );
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "stale reads:\n{}", failures.join("\n"));
    assert!(
        out.status.success(),
        "the writer failed:\n{writer_out}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        line.contains("writes="),
        "{line}\n{writer_out}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        judged >= 100,
        "too few reads were judged ({judged} of {reads})"
    );
    assert!(
        hits >= 20,
        "too few judged reads were hits ({hits} of {judged})"
    );
}
