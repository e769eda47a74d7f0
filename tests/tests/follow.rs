//! The change-stream follower (`cachebot-follow`) against a real PostgreSQL with
//! `wal_level=logical` (`LOGICAL_DATABASE_URL`) and real memcached: writes that never pass
//! through the crate (psql, an uninstrumented connection, a trigger, a rule, a function called
//! from SELECT, TRUNCATE, COPY, a long transaction) reach a cached read of another cache
//! sharing the store; a rolled-back one bumps nothing; nothing is lost across a follower
//! restart or a memcached outage.
//!
//! Freshness is asserted against the uncached query (the oracle) after waiting, with a bounded
//! poll, until the follower confirmed a position past the write; hits and misses through
//! `cache.stats()`. No timing is asserted.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot_follow::{Config, Follower, FollowerHandle};
use cachebot_tests::{memcached_servers, LogicalDb, MemcachedProcess};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

diesel::table! {
    items (id) {
        id -> Int4,
        owner -> Int4,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    audit (id) {
        id -> Int4,
        item -> Int4,
        what -> Text,
    }
}

/// `(id, note)` of the items of one owner.
type Rows = Vec<(i32, Option<String>)>;

const SETUP: &str = "
CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, note text);
CREATE TABLE audit (id serial PRIMARY KEY, item int NOT NULL, what text NOT NULL);
CREATE FUNCTION log_item() RETURNS trigger LANGUAGE plpgsql SET search_path = {schema} AS $$
  BEGIN INSERT INTO audit (item, what) VALUES (NEW.id, 'trigger'); RETURN NEW; END $$;
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION log_item();
CREATE TABLE ruled (id int PRIMARY KEY);
CREATE RULE ruled_audit AS ON INSERT TO ruled DO ALSO INSERT INTO {schema}.audit (item, what) VALUES (NEW.id, 'rule');
CREATE FUNCTION renote(i int, n text) RETURNS int LANGUAGE plpgsql SET search_path = {schema} AS $$
  BEGIN UPDATE items SET note = n WHERE id = i; RETURN i; END $$;
INSERT INTO items VALUES (1, 7, 'a'), (2, 7, 'b'), (3, 8, 'c');
";

fn store(servers: &[String], prefix: &str) -> MemcachedStore {
    MemcachedStore::builder()
        .servers(servers.iter().cloned())
        .prefix(prefix.to_owned())
        .io_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .expect("memcached store")
}

fn cache(servers: &[String], prefix: &str) -> Cache {
    Cache::builder()
        .store(store(servers, prefix))
        .write_behind(false)
        .build()
        .expect("cache")
}

/// A database, a reader (its own cache and connection, as another process would have) and a
/// follower applying the stream to a second cache on the same memcached.
struct Fx {
    follower: Option<FollowerHandle>,
    reader: Cache,
    conn: PgConnection,
    servers: Vec<String>,
    prefix: String,
    db: LogicalDb,
}

impl Fx {
    fn new(servers: Vec<String>) -> Fx {
        let db = LogicalDb::new(SETUP);
        let prefix = format!("f{:016x}:", fastrand::u64(..));
        let reader = cache(&servers, &prefix);
        let mut conn = db.conn();
        reader.instrument(&mut conn).expect("instrument the reader");
        let mut fx = Fx {
            follower: None,
            reader,
            conn,
            servers,
            prefix,
            db,
        };
        fx.start();
        fx
    }

    fn start(&mut self) {
        let config = Config::new(self.db.url(), &self.db.schema, &self.db.schema)
            .bound(Duration::from_secs(2));
        let follower = Follower::new(cache(&self.servers, &self.prefix), config)
            .spawn()
            .expect("spawn the follower");
        self.follower = Some(follower);
    }

    fn stop(&mut self) {
        if let Some(f) = self.follower.take() {
            f.stop();
        }
    }

    /// Wait until the follower applied everything committed so far.
    fn wait(&mut self) {
        let Some(f) = &self.follower else {
            panic!("no follower running")
        };
        self.db
            .wait_applied(&mut self.conn, || f.status().confirmed_lsn);
    }

    fn owned_by(&mut self, owner: i32) -> (Rows, Rows) {
        let q = || {
            items::table
                .filter(items::owner.eq(owner))
                .select((items::id, items::note))
                .order(items::id)
        };
        let cached = q()
            .cache(&self.reader)
            .load(&mut self.conn)
            .expect("cached read");
        let oracle = q().load(&mut self.conn).expect("oracle");
        (cached, oracle)
    }

    fn audited(&mut self, item: i32) -> (Vec<String>, Vec<String>) {
        let q = || {
            audit::table
                .filter(audit::item.eq(item))
                .select(audit::what)
                .order(audit::id)
        };
        let cached = q()
            .cache(&self.reader)
            .load(&mut self.conn)
            .expect("cached read");
        let oracle = q().load(&mut self.conn).expect("oracle");
        (cached, oracle)
    }

    /// `read` is cached (a hit on the second read), `write` changes its result, and once the
    /// follower caught up the cached read equals the oracle again.
    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        read: impl Fn(&mut Fx) -> (T, T),
        write: impl FnOnce(&mut Fx),
    ) {
        let (before, oracle) = read(self);
        assert_eq!(before, oracle, "{what}: before the write");
        let hits = self.reader.stats().hits;
        let (again, _) = read(self);
        assert_eq!(again, before);
        assert_eq!(
            self.reader.stats().hits,
            hits + 1,
            "{what}: the read is cached"
        );
        write(self);
        self.wait();
        let (after, oracle) = read(self);
        assert_ne!(oracle, before, "{what}: the write must change the result");
        assert_eq!(
            after, oracle,
            "{what}: stale after the follower applied the write"
        );
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn psql(url: &str, sql: &str, stdin: &str) {
    let mut child = Command::new("psql")
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run psql");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("psql stdin");
    }
    assert!(child.wait().expect("psql").success(), "psql failed: {sql}");
}

#[test]
fn writes_from_outside_the_crate_reach_cached_reads() {
    let mut fx = Fx::new(memcached_servers());
    let url = fx.db.schema_url();

    fx.check(
        "psql",
        |f| f.owned_by(7),
        |_| psql(&url, "UPDATE items SET note = 'psql' WHERE id = 1", ""),
    );
    fx.check(
        "an uninstrumented connection",
        |f| f.owned_by(7),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("INSERT INTO items VALUES (4, 7, 'other')")
                .execute(&mut other)
                .unwrap();
        },
    );
    fx.check(
        "a trigger writing another table",
        |f| f.audited(5),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("INSERT INTO items VALUES (5, 9, 'x')")
                .execute(&mut other)
                .unwrap();
        },
    );
    fx.check(
        "a function called in SELECT",
        |f| f.owned_by(7),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("SELECT renote(2, 'from a function')")
                .execute(&mut other)
                .unwrap();
        },
    );
    fx.check(
        "COPY",
        |f| f.owned_by(7),
        |_| {
            psql(
                &url,
                "COPY items (id, owner, note) FROM STDIN",
                "10\t7\tcopied\n11\t7\tcopied\n",
            )
        },
    );
    fx.check(
        "a long transaction",
        |f| f.owned_by(7),
        |f| {
            let mut other = f.db.conn();
            other
                .batch_execute("BEGIN; UPDATE items SET owner = 8 WHERE id = 10")
                .unwrap();
            // Open: nothing to see yet, and the cached read still serves the committed state.
            std::thread::sleep(Duration::from_millis(300));
            let (cached, oracle) = f.owned_by(7);
            assert_eq!(cached, oracle);
            other.batch_execute("COMMIT").unwrap();
        },
    );

    // A rolled-back transaction bumps nothing: the entry is still served.
    let (before, _) = fx.owned_by(7);
    let (hits, misses) = (fx.reader.stats().hits, fx.reader.stats().misses);
    let mut other = fx.db.conn();
    other
        .batch_execute("BEGIN; UPDATE items SET note = 'never' WHERE owner = 7; ROLLBACK")
        .unwrap();
    fx.wait();
    let (after, oracle) = fx.owned_by(7);
    assert_eq!(after, before);
    assert_eq!(after, oracle);
    let s = fx.reader.stats();
    assert_eq!(
        (s.hits, s.misses),
        (hits + 1, misses),
        "a rollback must bump nothing"
    );

    fx.check(
        "TRUNCATE",
        |f| f.owned_by(7),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("TRUNCATE items, audit")
                .execute(&mut other)
                .unwrap();
        },
    );
    // Last: a table with a rule invalidates everything (like the crate's own writes).
    fx.check(
        "a RULE writing another table",
        |f| f.audited(20),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("INSERT INTO ruled VALUES (20)")
                .execute(&mut other)
                .unwrap();
        },
    );
    if let Some(f) = &fx.follower {
        let status = f.status();
        eprintln!(
            "follower: {} transactions applied, last commit-to-bump lag {:?}",
            status.applied, status.last_lag
        );
    }
}

#[test]
fn nothing_is_lost_while_the_follower_is_down() {
    let mut fx = Fx::new(memcached_servers());
    fx.check(
        "a write while the follower was stopped",
        |f| f.owned_by(7),
        |f| {
            f.stop();
            let mut other = f.db.conn();
            diesel::sql_query("UPDATE items SET note = 'while down' WHERE id = 1")
                .execute(&mut other)
                .unwrap();
            diesel::sql_query("DELETE FROM items WHERE id = 2")
                .execute(&mut other)
                .unwrap();
            // Nobody applied them: the slot has not moved past them.
            let confirmed = f.db.slot_confirmed(&mut other);
            let mark = f.db.mark(&mut other);
            assert!(confirmed < mark);
            f.start();
        },
    );
    // The slot itself confirmed the position (what a restarted follower resumes from).
    let mut admin = fx.db.admin();
    let mark = fx.db.mark(&mut admin);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fx.db.slot_confirmed(&mut admin) < mark {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot did not advance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_memcached_outage_delays_bumps_and_loses_none() {
    let mut mc = MemcachedProcess::spawn();
    let mut fx = Fx::new(vec![mc.addr()]);
    // Paused (the follower's bumps time out and are retried), then resumed.
    fx.check(
        "a write while memcached was paused",
        |f| f.owned_by(7),
        |f| {
            mc.pause();
            let mut other = f.db.conn();
            diesel::sql_query("UPDATE items SET note = 'paused' WHERE id = 1")
                .execute(&mut other)
                .unwrap();
            let mark = f.db.mark(&mut other);
            std::thread::sleep(Duration::from_millis(500));
            let confirmed = f.follower.as_ref().map_or(0, |h| h.status().confirmed_lsn);
            assert!(
                confirmed < mark,
                "confirmed a transaction the store did not take"
            );
            mc.resume();
        },
    );
    // Restarted (everything in it lost: misses, never stale).
    mc.restart();
    let mut other = fx.db.conn();
    diesel::sql_query("UPDATE items SET note = 'restarted' WHERE id = 1")
        .execute(&mut other)
        .unwrap();
    fx.wait();
    let (cached, oracle) = fx.owned_by(7);
    assert_eq!(cached, oracle);
    fx.check(
        "a write after memcached restarted",
        |f| f.owned_by(7),
        |f| {
            let mut other = f.db.conn();
            diesel::sql_query("UPDATE items SET note = 'after' WHERE id = 2")
                .execute(&mut other)
                .unwrap();
        },
    );
}

#[test]
fn readers_with_a_staleness_bound_bypass_while_the_follower_is_silent() {
    let mut fx = Fx::new(memcached_servers());
    let bound = Duration::from_millis(600);
    let bounded = Cache::builder()
        .store(store(&fx.servers, &fx.prefix))
        .write_behind(false)
        .staleness_bound(bound)
        .build()
        .expect("cache");
    let mut conn = fx.db.conn();
    bounded.instrument(&mut conn).expect("instrument");
    let q = || {
        items::table
            .filter(items::owner.eq(7))
            .select((items::id, items::note))
            .order(items::id)
    };
    let read = |conn: &mut PgConnection| -> (Rows, Rows) {
        let cached = q().cache(&bounded).load(conn).expect("cached read");
        (cached, q().load(conn).expect("oracle"))
    };
    // The follower runs and its heartbeat is fresh: the second read is a hit.
    fx.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = bounded.stats();
        let _ = read(&mut conn);
        let _ = read(&mut conn);
        if (bounded.stats() - before).hits >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a fresh heartbeat never let a read hit: {:?}",
            bounded.stats() - before
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopped: nobody applies writes. A write outside the crate is not bumped, and once
    // the heartbeat is older than the bound, reads go to the database and are fresh.
    fx.stop();
    let mut other = fx.db.conn();
    diesel::sql_query("UPDATE items SET note = 'unseen by the cache' WHERE owner = 7")
        .execute(&mut other)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = bounded.stats();
        let (cached, oracle) = read(&mut conn);
        if (bounded.stats() - before).behind_follower == 1 {
            assert_eq!(cached, oracle, "a bypassed read is the database's");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bound was never enforced"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every read now bypasses, and none is stale.
    for _ in 0..3 {
        let before = bounded.stats();
        let (cached, oracle) = read(&mut conn);
        assert_eq!(cached, oracle);
        let d = bounded.stats() - before;
        assert_eq!((d.behind_follower, d.hits), (1, 0), "{d:?}");
    }
    // Restarted: it applies the write and its heartbeat; reads are cached and fresh again.
    fx.start();
    fx.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = bounded.stats();
        let (cached, oracle) = read(&mut conn);
        assert_eq!(cached, oracle, "fresh after the restart");
        let _ = read(&mut conn);
        if (bounded.stats() - before).hits >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reads never hit again after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
