//! The `cachebot-follow` binary as operators run it (a child process), against a real
//! PostgreSQL with `wal_level=logical` (`LOGICAL_DATABASE_URL`) and real memcached: reads keyed
//! on a composite registered with `--composite` are kept fresh; SIGKILLed mid-stream and
//! restarted, it loses nothing and the slot's confirmed position advances.
//!
//! Freshness is asserted against the uncached query (the oracle) after waiting, with a bounded
//! poll, until the slot's `confirmed_flush_lsn` passed a mark committed after the writes; hits
//! through `cache.stats()`. No timing is asserted.

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot::Dependency;
use cachebot_tests::{memcached_servers, LogicalDb};
use diesel::prelude::*;

diesel::table! {
    items (id) {
        id -> Int4,
        owner -> Int4,
        kind -> Int4,
        note -> Nullable<Text>,
    }
}

/// The read of one composite `(owner, kind)`.
macro_rules! query {
    ($owner:expr, $kind:expr) => {
        items::table
            .filter(items::owner.eq($owner))
            .filter(items::kind.eq($kind))
            .select((items::id, items::note))
            .order(items::id)
    };
}

/// `(id, note)` rows.
type Rows = Vec<(i32, Option<String>)>;

/// Full old images: an UPDATE names the composite it leaves, not only the table.
const SETUP: &str = "
CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL, kind int NOT NULL, note text);
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO items SELECT g, g % 5, g % 2, 'n' || g FROM generate_series(1, 40) g;
";

/// A database with its slot, a reader (its own cache and connection, as another process would
/// have, with the composite `(owner, kind)` registered) and the binary applying the stream to
/// the same memcached under the same prefix.
struct Fx {
    child: Option<Child>,
    reader: Cache,
    conn: PgConnection,
    admin: RefCell<PgConnection>,
    servers: Vec<String>,
    prefix: String,
    /// `--composite` as given to the binary.
    composite: String,
    db: LogicalDb,
}

impl Fx {
    /// `qualified`: give `--composite` as `schema.items` (else `items`, as the reader writes it).
    fn new(qualified: bool) -> Fx {
        let db = LogicalDb::new(SETUP);
        let servers = memcached_servers();
        let prefix = format!("b{:016x}:", fastrand::u64(..));
        let store = MemcachedStore::builder()
            .servers(servers.iter().cloned())
            .prefix(prefix.clone())
            .build()
            .expect("memcached store");
        let reader = Cache::builder()
            .store(store)
            .write_behind(false)
            .composite_key("items", &["owner", "kind"])
            .build()
            .expect("cache");
        let mut conn = db.conn();
        reader.instrument(&mut conn).expect("instrument the reader");
        let table = if qualified {
            format!("{}.items", db.schema)
        } else {
            "items".to_owned()
        };
        let mut fx = Fx {
            child: None,
            reader,
            conn,
            admin: RefCell::new(db.admin()),
            servers,
            prefix,
            composite: format!("{table}:owner,kind"),
            db,
        };
        fx.start();
        fx
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_cachebot-follow"))
            .args([
                "--slot",
                &self.db.schema,
                "--publication",
                &self.db.schema,
                "--memcached",
                &self.servers.join(","),
                "--prefix",
                &self.prefix,
                "--bound-ms",
                "2000",
                "--composite",
                &self.composite,
            ])
            .env("CACHEBOT_FOLLOW_DATABASE_URL", self.db.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn cachebot-follow");
        self.child = Some(child);
    }

    /// SIGKILL (no clean shutdown, no last confirmation).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL cachebot-follow");
            child.wait().expect("reap cachebot-follow");
        }
    }

    fn confirmed(&self) -> u64 {
        self.db.slot_confirmed(&mut self.admin.borrow_mut())
    }

    /// Wait (bounded) until the slot confirmed everything committed so far.
    fn wait(&mut self) {
        if let Some(child) = &mut self.child {
            assert!(
                child.try_wait().expect("cachebot-follow").is_none(),
                "cachebot-follow exited"
            );
        }
        let admin = &self.admin;
        let db = &self.db;
        db.wait_applied(&mut self.conn, || {
            db.slot_confirmed(&mut admin.borrow_mut())
        });
    }

    /// (cached, oracle) for one composite.
    fn read(&mut self, owner: i32, kind: i32) -> (Rows, Rows) {
        let cached = query!(owner, kind)
            .cache(&self.reader)
            .load(&mut self.conn)
            .expect("cached read");
        let oracle = query!(owner, kind).load(&mut self.conn).expect("oracle");
        (cached, oracle)
    }

    /// Cache `(owner, kind)`'s read and check it is served from the cache.
    fn cached(&mut self, owner: i32, kind: i32) -> Rows {
        let (first, oracle) = self.read(owner, kind);
        assert_eq!(first, oracle, "({owner}, {kind}) before the writes");
        let hits = self.reader.stats().hits;
        let (again, _) = self.read(owner, kind);
        assert_eq!(again, first);
        assert_eq!(
            self.reader.stats().hits,
            hits + 1,
            "({owner}, {kind}) is a hit before the writes"
        );
        first
    }

    /// Once applied, the cached read equals the oracle, which the write changed.
    fn fresh(&mut self, owner: i32, kind: i32, before: &Rows) {
        let (after, oracle) = self.read(owner, kind);
        assert_ne!(&oracle, before, "({owner}, {kind}): the write changes it");
        assert_eq!(
            after, oracle,
            "({owner}, {kind}): stale after the follower applied"
        );
    }

    /// A write from a connection the crate never saw.
    fn write(&self, sql: &str) {
        let mut other = self.db.conn();
        diesel::sql_query(sql)
            .execute(&mut other)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn composite_flag_keeps_composite_reads_fresh() {
    let mut fx = Fx::new(true);
    // The read depends on its composite alone (not on the table's rows), so only the
    // follower's composite bump can reach it.
    let explain = query!(1, 1)
        .cache(&fx.reader)
        .explain_on::<_, (i32, Option<String>)>(&mut fx.conn)
        .expect("explain");
    assert!(
        explain
            .dependencies
            .iter()
            .any(|d| matches!(d, Dependency::Composite { .. })),
        "{:?}",
        explain.dependencies
    );
    assert!(
        !explain
            .dependencies
            .iter()
            .any(|d| matches!(d, Dependency::Rows(_) | Dependency::Value { .. })),
        "{:?}",
        explain.dependencies
    );
    fx.wait();

    let inserted = fx.cached(1, 1);
    let moved_in = fx.cached(2, 0);
    let moved_out = fx.cached(3, 1);
    fx.write("INSERT INTO items VALUES (100, 1, 1, 'inserted')");
    // Row 7 moves from (2, 1) into (2, 0), row 3 out of (3, 1).
    fx.write("UPDATE items SET owner = 2, kind = 0 WHERE id = 7");
    fx.write("UPDATE items SET kind = 0 WHERE id = 3");
    fx.wait();
    fx.fresh(1, 1, &inserted);
    fx.fresh(2, 0, &moved_in);
    fx.fresh(3, 1, &moved_out);
}

#[test]
fn sigkill_mid_stream_loses_nothing() {
    let mut fx = Fx::new(false);
    fx.wait();
    let start = fx.confirmed();

    // Ten composites cached; five written while the follower runs (killed right after, before
    // it can be known to have applied or confirmed them), five while it is dead.
    let keys: Vec<(i32, i32)> = (0..5).flat_map(|o| [(o, 0), (o, 1)]).collect();
    let before: Vec<Rows> = keys.iter().map(|&(o, k)| fx.cached(o, k)).collect();
    for (i, &(o, k)) in keys.iter().enumerate().take(5) {
        fx.write(&format!(
            "INSERT INTO items VALUES ({}, {o}, {k}, 'live')",
            200 + i
        ));
    }
    fx.kill();
    let dead_at = fx.confirmed();
    for (i, &(o, k)) in keys.iter().enumerate().skip(5) {
        fx.write(&format!(
            "INSERT INTO items VALUES ({}, {o}, {k}, 'while dead')",
            200 + i
        ));
    }
    // Nothing applies them while it is dead: the cached reads still hit.
    let hits = fx.reader.stats().hits;
    let (stale, _) = fx.read(keys[9].0, keys[9].1);
    assert_eq!(stale, before[9], "no follower, no bump");
    assert_eq!(fx.reader.stats().hits, hits + 1);

    fx.start();
    fx.wait();
    for (&(o, k), before) in keys.iter().zip(&before) {
        fx.fresh(o, k, before);
    }
    let end = fx.confirmed();
    assert!(
        end > dead_at && dead_at >= start,
        "the slot advanced: {start} -> {dead_at} (killed) -> {end}"
    );
}
