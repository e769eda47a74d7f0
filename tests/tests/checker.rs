//! The stale-read checker: several threads in two processes share one
//! PostgreSQL schema and one memcached, making random cached reads and
//! random writes of every kind (plain Diesel, `sql_query`, `batch_execute`,
//! the write API, inside and outside transactions, some rolled back; raw
//! BEGIN/COMMIT/SAVEPOINT/COMMIT AND CHAIN mixed with writes in batches,
//! batches that fail midway, EXPLAIN ANALYZE with options, and a TRUNCATE
//! ... CASCADE through a NO ACTION foreign key).
//! A second tenant has its own `photos` in another schema, reached through
//! its connections' `search_path` (and written schema-qualified from the
//! first tenant's); a table with a `CHAR(n)` column and a column under a
//! nondeterministic collation is read by those columns and written through
//! the write API.
//!
//! A read is checked when no write was in flight from before it started
//! until after its uncached twin finished (a shared write clock in the
//! database tells): then the cached result must equal the database's.
//! Reads that overlap a write are allowed the state from just before it,
//! so they are counted but not judged. Any stale read fails the test with
//! the query, both results and the recent writes.
//!
//! `CACHEBOT_CHECKER_OPS` sets the operations per process (default 12,000,
//! so CI checks at least 20,000 across both processes).

mod common;

use std::collections::VecDeque;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot_tests::models::{Photo, User};
use cachebot_tests::schema::{photos, users};
use cachebot_tests::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! {
    checker_tags (id) {
        id -> Int4,
        code -> Bpchar,
        name -> Text,
    }
}

/// A row of `checker_tags`: `code` is `CHAR(4)` (read back blank-padded),
/// `name` has a case-insensitive, nondeterministic collation.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    Serialize,
    Deserialize,
    cachebot::CacheBot,
)]
#[diesel(table_name = checker_tags)]
struct Tag {
    id: i32,
    code: String,
    name: String,
}

const THREADS: usize = 4;

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    reads: AtomicU64,
    checked: AtomicU64,
    checked_hits: AtomicU64,
    writes: AtomicU64,
    stale: AtomicU64,
}

struct Shared {
    url: String,
    /// The second tenant: `search_path` = its schema, then the first's.
    tenant_url: String,
    /// The second tenant's schema.
    tenant_schema: String,
    cache: Cache,
    users: Vec<i32>,
    tally: Tally,
    log: Mutex<VecDeque<String>>,
    failures: Mutex<Vec<String>>,
}

#[derive(QueryableByName)]
struct Clock {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    started: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    completed: i64,
}

fn clock(conn: &mut PgConnection) -> Clock {
    diesel::sql_query("SELECT started, completed FROM checker_clock")
        .get_result(conn)
        .unwrap()
}

fn tick(conn: &mut PgConnection, column: &str) {
    conn.batch_execute(&format!("UPDATE checker_clock SET {column} = {column} + 1"))
        .unwrap();
}

/// One cached read and its uncached twin, as comparable text.
fn read(
    conn: &mut PgConnection,
    cache: Option<&Cache>,
    users: &[i32],
    pick: u32,
    v: i32,
) -> (String, String) {
    let u = users[(v.unsigned_abs() as usize) % users.len()];
    macro_rules! both {
        ($name:expr, $q:expr, $ty:ty, $m:ident) => {{
            let got: $ty = match cache {
                Some(c) => $q.cache(c).$m(conn).unwrap(),
                None => $q.$m(conn).unwrap(),
            };
            (format!("{} u={u} v={v}", $name), format!("{got:?}"))
        }};
    }
    match pick % 12 {
        9 => both!(
            "tenant: by user",
            photos::table
                .filter(photos::user_id.eq(u))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
        10 => both!(
            "tags by CHAR(4) code",
            checker_tags::table
                .filter(checker_tags::code.eq(format!("c{}", v % 5)))
                .order(checker_tags::id),
            Vec<Tag>,
            load
        ),
        11 => both!(
            "tags by case-insensitive name",
            checker_tags::table
                .filter(checker_tags::name.eq(format!("N{}", v % 5)))
                .order(checker_tags::id),
            Vec<Tag>,
            load
        ),
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
                .filter(photos::user_id.eq(u))
                .filter(photos::status.eq(v % 3))
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
        7 => both!(
            "first page",
            photos::table.order(photos::id).limit(5),
            Vec<Photo>,
            load
        ),
        _ => both!(
            "not status",
            photos::table
                .filter(photos::user_id.eq(u))
                .filter(photos::status.ne(v % 3))
                .order(photos::id),
            Vec<Photo>,
            load
        ),
    }
}

/// Writes to the second tenant's table (through its `search_path`, and
/// schema-qualified from the first tenant's connection) and to the table
/// whose columns compare other than by bytes.
fn identity_write(
    conn: &mut PgConnection,
    tenant: &mut PgConnection,
    tenant_schema: &str,
    cache: &Cache,
    u: i32,
    kind: u32,
    v: i32,
) -> QueryResult<String> {
    let id = v % 60 + 1;
    let tag = v % 20 + 1;
    match kind {
        0 => {
            diesel::sql_query(format!("UPDATE photos SET user_id = {u} WHERE id = {id}"))
                .execute(tenant)?;
            Ok(format!("tenant: sql_query move id={id} to user {u}"))
        }
        1 => {
            diesel::sql_query(format!(
                "UPDATE {tenant_schema}.photos SET user_id = {u}, status = {} WHERE id = {id}",
                v % 3
            ))
            .execute(conn)?;
            Ok(format!(
                "qualified from tenant 1: move tenant 2's id={id} to user {u}"
            ))
        }
        2 => {
            let moved: Vec<Photo> = cachebot::write::update(
                cache,
                tenant,
                photos::table.find(id),
                photos::user_id.eq(u),
            )?;
            Ok(format!(
                "tenant: write::update id={id} ({} rows)",
                moved.len()
            ))
        }
        3 => {
            // Written `c1`, read back `c1  `: the read filtering on `c1` must
            // not be keyed on its bind.
            let moved: Vec<Tag> = cachebot::write::update(
                cache,
                conn,
                checker_tags::table.find(tag),
                checker_tags::code.eq(format!("c{}", v % 5)),
            )?;
            Ok(format!(
                "tag {tag} code -> c{} ({} rows)",
                v % 5,
                moved.len()
            ))
        }
        _ => {
            // Another spelling of a name the collation calls equal.
            let name = if v % 2 == 0 {
                format!("n{}", v % 5)
            } else {
                format!("N{}", v % 5)
            };
            let moved: Vec<Tag> = cachebot::write::update(
                cache,
                conn,
                checker_tags::table.find(tag),
                checker_tags::name.eq(&name),
            )?;
            Ok(format!("tag {tag} name -> {name} ({} rows)", moved.len()))
        }
    }
}

/// One random write, by one of the ways an application writes.
fn write(
    conn: &mut PgConnection,
    tenant: &mut PgConnection,
    tenant_schema: &str,
    cache: &Cache,
    users: &[i32],
    kind: u32,
    v: i32,
) -> QueryResult<String> {
    let u = users[(v.unsigned_abs() as usize) % users.len()];
    let id = v % 60 + 1;
    if kind % 4 == 0 {
        // A quarter of the writes: tenants, CHAR(n) and collations.
        return identity_write(conn, tenant, tenant_schema, cache, u, (kind / 4) % 5, v);
    }
    match kind % 18 {
        8 => {
            // The write API: exact old and new images of every row it moves.
            let moved: Vec<Photo> = cachebot::write::update(
                cache,
                conn,
                photos::table.filter(photos::id.eq(id)),
                (photos::user_id.eq(u), photos::status.eq(v % 3)),
            )?;
            Ok(format!(
                "write::update id={id} -> user {u} ({} rows)",
                moved.len()
            ))
        }
        9 => {
            // The derive: load, change, save.
            match Photo::get(cache, conn, id)? {
                Some(mut p) => {
                    p.status = (p.status + 1) % 3;
                    p.title = format!("saved {v}");
                    p.save(cache, conn)?;
                    Ok(format!("derive save id={id}"))
                }
                None => Ok(format!("derive save: id={id} absent")),
            }
        }
        10 => {
            let rows = Photo::insert(
                cache,
                conn,
                (
                    photos::user_id.eq(u),
                    photos::status.eq(v % 3),
                    photos::title.eq("derived"),
                ),
            )?;
            Ok(format!("derive insert id={} for user {u}", rows[0].id))
        }
        11 => {
            let gone: Vec<Photo> = cachebot::write::delete(
                cache,
                conn,
                photos::table
                    .filter(photos::id.gt(60))
                    .filter(photos::user_id.eq(u)),
            )?;
            Ok(format!(
                "write::delete {} inserted photos of user {u}",
                gone.len()
            ))
        }
        12 => {
            // The write API inside a transaction: invalidation waits for COMMIT.
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
            Ok(format!(
                "write::update in a transaction id={id}, rolled back: {}",
                v % 2 == 0
            ))
        }
        0 => {
            diesel::update(photos::table.find(id))
                .set(photos::status.eq(v % 3))
                .execute(conn)?;
            Ok(format!("update status id={id}"))
        }
        1 => {
            diesel::sql_query(format!("UPDATE photos SET user_id = {u} WHERE id = {id}"))
                .execute(conn)?;
            Ok(format!("sql_query move id={id} to user {u}"))
        }
        2 => {
            diesel::insert_into(photos::table)
                .values((
                    photos::user_id.eq(u),
                    photos::status.eq(v % 3),
                    photos::title.eq("new"),
                ))
                .execute(conn)?;
            Ok(format!("insert for user {u}"))
        }
        3 => {
            diesel::delete(
                photos::table
                    .filter(photos::id.eq(id))
                    .filter(photos::id.gt(40)),
            )
            .execute(conn)
            .unwrap();
            Ok(format!("delete id={id} if > 40"))
        }
        4 => {
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                diesel::update(photos::table.find(id))
                    .set(photos::user_id.eq(u))
                    .execute(c)?;
                diesel::update(photos::table.find((id + 1) % 60 + 1))
                    .set(photos::status.eq(v % 3))
                    .execute(c)
            })?;
            Ok(format!("transaction: move id={id}, status of the next"))
        }
        5 => {
            let _ = conn.transaction::<(), _, _>(|c| {
                diesel::update(photos::table)
                    .set(photos::status.eq(99))
                    .execute(c)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            Ok("rolled back: statuses of a user = 99".into())
        }
        6 => {
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                let _ = c.transaction::<(), _, _>(|c| {
                    diesel::update(photos::table)
                        .set(photos::title.eq("gone"))
                        .execute(c)?;
                    Err(diesel::result::Error::RollbackTransaction)
                });
                c.transaction(|c| {
                    diesel::update(photos::table.find(id))
                        .set(photos::title.eq(format!("t{v}")))
                        .execute(c)
                })
            })?;
            Ok(format!(
                "savepoints: rolled back one title, kept another of id={id}"
            ))
        }
        13..=17 => batch_write(conn, cache, u, id, kind % 18, v),
        _ => {
            conn.batch_execute(&format!(
                "UPDATE users SET name = 'user{}' WHERE id = {u}",
                v % 6
            ))
            .unwrap();
            Ok(format!("batch_execute rename user {u}"))
        }
    }
}

/// Raw transaction control mixed with writes in batches, EXPLAIN ANALYZE,
/// failing batches, TRUNCATE ... CASCADE (issue 11, items 4 and 5).
fn batch_write(
    conn: &mut PgConnection,
    cache: &Cache,
    u: i32,
    id: i32,
    kind: u32,
    v: i32,
) -> QueryResult<String> {
    let next = id % 60 + 1;
    let status = v % 3;
    // A failure inside a raw transaction leaves it aborted: end it.
    let in_raw_tx =
        |conn: &mut PgConnection, f: &mut dyn FnMut(&mut PgConnection) -> QueryResult<String>| {
            let r = f(conn);
            if r.is_err() {
                let _ = conn.batch_execute("ROLLBACK");
            }
            r
        };
    match kind {
        13 => {
            let sql = if v % 2 == 0 {
                format!(
                    "UPDATE users SET name = 'user{}' WHERE id = {u}; \
                     BEGIN ISOLATION LEVEL READ COMMITTED; \
                     UPDATE photos SET status = {status} WHERE id = {id}; COMMIT; \
                     UPDATE photos SET user_id = {u} WHERE id = {next}",
                    v % 6
                )
            } else {
                format!(
                    "BEGIN; SAVEPOINT a; UPDATE photos SET title = 'lost' WHERE id = {id}; \
                     ROLLBACK TO SAVEPOINT a; UPDATE photos SET user_id = {u} WHERE id = {id}; \
                     RELEASE a; COMMIT"
                )
            };
            in_raw_tx(conn, &mut |c| {
                c.batch_execute(&sql).map(|_| format!("batch: {sql}"))
            })
        }
        14 => in_raw_tx(conn, &mut |c| {
            c.batch_execute("BEGIN; SET LOCAL lock_timeout = '5s'")?;
            diesel::update(photos::table.find(id))
                .set(photos::user_id.eq(u))
                .execute(c)?;
            // A cached read inside the raw transaction: it must neither be
            // served from the cache nor store the uncommitted rows.
            let _: Vec<Photo> = photos::table
                .filter(photos::user_id.eq(u))
                .cache(cache)
                .load(c)?;
            if v % 3 == 0 {
                c.batch_execute("ROLLBACK")?;
                return Ok(format!("raw tx: move id={id} to user {u}, rolled back"));
            }
            c.batch_execute("COMMIT AND CHAIN")?;
            diesel::update(photos::table.find(next))
                .set(photos::status.eq(status))
                .execute(c)?;
            c.batch_execute(if v % 3 == 1 { "COMMIT" } else { "ABORT" })?;
            Ok(format!(
                "raw tx: move id={id} to user {u}; COMMIT AND CHAIN; status of {next}, committed: {}",
                v % 3 == 1
            ))
        }),
        15 => {
            let sql = if v % 2 == 0 {
                format!(
                    "EXPLAIN (ANALYZE, COSTS false, BUFFERS) UPDATE photos SET status = {status} WHERE id = {id}"
                )
            } else {
                format!("EXPLAIN ANALYZE VERBOSE UPDATE photos SET user_id = {u} WHERE id = {id}")
            };
            diesel::sql_query(&sql).execute(conn)?;
            Ok(sql)
        }
        16 => {
            // Fails at its last statement: what the COMMIT committed counts,
            // the rest is rolled back (or left aborted, then rolled back).
            let sql = if v % 2 == 0 {
                format!(
                    "UPDATE photos SET user_id = {u} WHERE id = {id}; COMMIT; \
                     UPDATE photos SET status = 99 WHERE id = {next}; SELECT 1 / 0"
                )
            } else {
                format!("BEGIN; UPDATE photos SET user_id = {u} WHERE id = {id}; SELECT 1 / 0")
            };
            let failed = conn.batch_execute(&sql).is_err();
            if v % 2 == 1 {
                // Still in the aborted transaction: a cached read must go to
                // the database (which refuses it).
                let read: QueryResult<Vec<Photo>> = photos::table
                    .filter(photos::user_id.eq(u))
                    .cache(cache)
                    .load(conn);
                assert!(read.is_err(), "a read in an aborted transaction was served");
                conn.batch_execute("ROLLBACK")?;
            }
            Ok(format!("failing batch (failed: {failed}): {sql}"))
        }
        _ => {
            // Empties photos through a NO ACTION foreign key and refills them
            // (same ids, users and statuses as at the start), in one batch.
            let sql = "TRUNCATE checker_statuses CASCADE; \
                 INSERT INTO checker_statuses SELECT generate_series(0, 100); \
                 INSERT INTO photos (id, user_id, status, title) \
                     SELECT g, (SELECT min(id) FROM users) + g % 12, g % 3, 'p' || g \
                     FROM generate_series(1, 60) g";
            conn.batch_execute(sql)?;
            Ok("TRUNCATE checker_statuses CASCADE (photos), refilled".into())
        }
    }
}

fn worker(shared: &Shared, ops: u64, seed: u64, writer: bool) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut conn = PgConnection::establish(&shared.url).unwrap();
    shared.cache.instrument(&mut conn).unwrap();
    let mut plain = PgConnection::establish(&shared.url).unwrap();
    let mut tenant = PgConnection::establish(&shared.tenant_url).unwrap();
    shared.cache.instrument(&mut tenant).unwrap();
    let mut tenant_plain = PgConnection::establish(&shared.tenant_url).unwrap();
    for _ in 0..ops {
        shared.tally.ops.fetch_add(1, Ordering::Relaxed);
        let v = rng.i32(0..10_000);
        if writer {
            // A pause between writes leaves windows with no write in flight.
            std::thread::sleep(std::time::Duration::from_micros(rng.u64(1000..5000)));
            tick(&mut plain, "started");
            // Deadlocks and serialization failures are real outcomes of
            // concurrent writes: the write is rolled back, nothing to check.
            let what = match write(
                &mut conn,
                &mut tenant,
                &shared.tenant_schema,
                &shared.cache,
                &shared.users,
                rng.u32(..),
                v,
            ) {
                Ok(what) => what,
                Err(e) => format!("failed: {e}"),
            };
            tick(&mut plain, "completed");
            shared.tally.writes.fetch_add(1, Ordering::Relaxed);
            let mut log = shared.log.lock().unwrap();
            log.push_back(format!("{:?} {what}", Instant::now()));
            if log.len() > 40 {
                log.pop_front();
            }
            continue;
        }
        let pick = rng.u32(..);
        let before = clock(&mut plain);
        let stats = shared.cache.stats();
        // The tenant's read runs on the tenant's connections, the others on the first's.
        let (cached_on, truth_on) = if pick % 12 == 9 {
            (&mut tenant, &mut tenant_plain)
        } else {
            (&mut conn, &mut plain)
        };
        let (query, cached) = read(cached_on, Some(&shared.cache), &shared.users, pick, v);
        let hit = shared.cache.stats().hits > stats.hits;
        let (_, truth) = read(truth_on, None, &shared.users, pick, v);
        let after = clock(&mut plain);
        shared.tally.reads.fetch_add(1, Ordering::Relaxed);
        if after.started != before.completed {
            continue; // a write was in flight: the old state is allowed
        }
        shared.tally.checked.fetch_add(1, Ordering::Relaxed);
        if hit {
            shared.tally.checked_hits.fetch_add(1, Ordering::Relaxed);
        }
        if cached != truth {
            shared.tally.stale.fetch_add(1, Ordering::Relaxed);
            let log: Vec<String> = shared.log.lock().unwrap().iter().cloned().collect();
            shared.failures.lock().unwrap().push(format!(
                "STALE {query} (hit: {hit})\n  cached: {cached}\n  truth:  {truth}\n  recent writes of this process:\n    {}",
                log.join("\n    ")
            ));
        }
    }
}

fn run(
    url: String,
    tenant_schema: String,
    prefix: String,
    ops: u64,
    process: u64,
) -> (u64, u64, u64, u64, u64, Vec<String>) {
    let store = MemcachedStore::builder()
        .servers(cachebot_tests::memcached_servers())
        .prefix(prefix)
        .build()
        .unwrap();
    // One process stores its entries from the write-behind thread (the
    // default on memcached), the other inline: stale reads are looked for
    // under both.
    let cache = Cache::builder()
        .store(store)
        .write_behind(process == 0)
        .build()
        .unwrap();
    let mut conn = PgConnection::establish(&url).unwrap();
    let users: Vec<i32> = users::table
        .select(users::id)
        .order(users::id)
        .load(&mut conn)
        .unwrap();
    let tenant_url = tenant_url(&tenant_schema, &url);
    let shared = Arc::new(Shared {
        url,
        tenant_url,
        tenant_schema,
        cache,
        users,
        tally: Tally::default(),
        log: Mutex::new(VecDeque::new()),
        failures: Mutex::new(Vec::new()),
    });
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let shared = shared.clone();
            // One writer and THREADS - 1 readers per process.
            // The writer makes a tenth of the operations; the readers share the rest.
            let (writer, share) = if t == 0 {
                (true, ops / 10)
            } else {
                (false, (ops - ops / 10) / (THREADS as u64 - 1))
            };
            std::thread::spawn(move || worker(&shared, share, process * 1000 + t, writer))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let t = &shared.tally;
    println!(
        "CHECKER_STATS process {process}: {:?}",
        shared.cache.stats()
    );
    let failures = shared.failures.lock().unwrap().clone();
    (
        t.ops.load(Ordering::Relaxed),
        t.writes.load(Ordering::Relaxed),
        t.checked.load(Ordering::Relaxed),
        t.checked_hits.load(Ordering::Relaxed),
        t.stale.load(Ordering::Relaxed),
        failures,
    )
}

/// `url` (whose `search_path` is the first tenant's schema) with the second
/// tenant's schema first on the path.
fn tenant_url(tenant_schema: &str, url: &str) -> String {
    url.replace(
        "search_path%3D",
        &format!("search_path%3D{tenant_schema}%2C"),
    )
}

#[test]
fn stale_read_checker() {
    let ops: u64 = std::env::var("CACHEBOT_CHECKER_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    if let Ok(role) = std::env::var("CACHEBOT_CHECKER_CHILD") {
        // The second process: same schema, same store, its own threads.
        let mut parts = role.splitn(3, '|');
        let (Some(url), Some(tenant), Some(prefix)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("child role: {role}");
        };
        let (o, w, c, h, s, failures) = run(url.into(), tenant.into(), prefix.into(), ops, 2);
        println!("CHECKER_CHILD ops={o} writes={w} checked={c} checked_hits={h} stale={s}");
        for f in &failures {
            println!("{f}");
        }
        assert_eq!(s, 0, "stale reads in the child process");
        return;
    }
    let db = TestDb::new();
    let mut conn = db.conn();
    conn.batch_execute(
        "CREATE TABLE checker_clock (started BIGINT NOT NULL, completed BIGINT NOT NULL);
         INSERT INTO checker_clock VALUES (0, 0);
         CREATE TABLE checker_statuses (id INTEGER PRIMARY KEY);
         INSERT INTO checker_statuses SELECT generate_series(0, 100);
         ALTER TABLE photos ADD FOREIGN KEY (status) REFERENCES checker_statuses (id);
         INSERT INTO users (name) SELECT 'user' || (g % 6) FROM generate_series(1, 12) g;
         INSERT INTO photos (user_id, status, title)
             SELECT (SELECT min(id) FROM users) + g % 12, g % 3, 'p' || g FROM generate_series(1, 60) g;",
    )
    .unwrap();
    let tenant_schema = format!("{}_t2", db.schema());
    conn.batch_execute(&format!(
        "CREATE SCHEMA {tenant_schema};
         CREATE TABLE {tenant_schema}.photos (LIKE photos INCLUDING DEFAULTS);
         INSERT INTO {tenant_schema}.photos SELECT * FROM photos;
         CREATE COLLATION checker_ci (provider = icu, locale = 'und-u-ks-level2',
             deterministic = false);
         CREATE TABLE checker_tags (id int PRIMARY KEY, code char(4) NOT NULL,
             name text COLLATE checker_ci NOT NULL);
         INSERT INTO checker_tags
             SELECT g, 'c' || (g % 5), CASE WHEN g % 2 = 0 THEN 'n' ELSE 'N' END || (g % 5)
             FROM generate_series(1, 20) g;"
    ))
    .unwrap();
    // The schema goes with the test's (dropped with it).
    struct DropTenant(String, String);
    impl Drop for DropTenant {
        fn drop(&mut self) {
            if let Ok(mut c) = PgConnection::establish(&self.0) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
            }
        }
    }
    let _drop_tenant = DropTenant(db.url(), tenant_schema.clone());
    let prefix = common::unique_prefix();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stale_read_checker",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            "CACHEBOT_CHECKER_CHILD",
            format!("{}|{}|{}", db.url(), tenant_schema, prefix),
        )
        .env("CACHEBOT_CHECKER_OPS", ops.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (o, w, c, h, s, failures) = run(db.url(), tenant_schema.clone(), prefix, ops, 1);
    let out = child.wait_with_output().unwrap();
    let child_out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let child_line = child_out
        .lines()
        .find(|l| l.starts_with("CHECKER_CHILD"))
        .unwrap_or("no report")
        .to_owned();
    println!(
        "CHECKER parent ops={o} writes={w} checked={c} checked_hits={h} stale={s}; {child_line}; {:.1?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "stale reads:\n{}", failures.join("\n"));
    assert!(
        out.status.success(),
        "the child process failed:\n{child_out}"
    );
    assert!(child_line.contains("stale=0"), "{child_line}\n{child_out}");
    // Floors that keep the check meaningful whatever the machine's timing.
    assert!(
        c >= 200,
        "too few reads were checked ({c} of {o}): the check would prove nothing"
    );
    assert!(h >= 20, "too few checked reads were hits ({h} of {c})");
}
