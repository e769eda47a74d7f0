//! A private schema, publication and replication slot in the database at
//! `LOGICAL_DATABASE_URL` (a server with `wal_level=logical`), for the
//! change-stream follower's tests.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::RUN_THROUGH_SCRIPTS;

/// The value of `LOGICAL_DATABASE_URL`; panics with instructions when it is not set.
pub fn logical_database_url() -> String {
    match std::env::var("LOGICAL_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("LOGICAL_DATABASE_URL is not set: {RUN_THROUGH_SCRIPTS}"),
    }
}

#[derive(QueryableByName)]
struct Lsn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lsn: String,
}

/// A schema of its own (set up by the caller's SQL), a publication of every table in it, and a
/// logical replication slot (`pgoutput`) created before any write: dropped on drop.
pub struct LogicalDb {
    url: String,
    /// The schema (also the publication's and the slot's name).
    pub schema: String,
}

impl LogicalDb {
    /// Create the schema, run `setup` in it (its tables, triggers, rules, functions; `{schema}`
    /// stands for the schema's name), publish the schema's tables and create the slot.
    pub fn new(setup: &str) -> LogicalDb {
        let url = logical_database_url();
        let schema = format!("lf_{}_{:08x}", std::process::id(), fastrand::u32(..));
        let db = LogicalDb { url, schema };
        let mut admin = db.admin();
        let s = &db.schema;
        let setup = setup.replace("{schema}", s);
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA {s}; SET search_path = {s}; {setup}; \
                 CREATE PUBLICATION {s} FOR TABLES IN SCHEMA {s};"
            ))
            .unwrap_or_else(|e| panic!("cannot set up {s}: {e}"));
        // Not in a transaction that wrote (the batch above is one).
        admin
            .batch_execute(&format!(
                "SELECT pg_create_logical_replication_slot('{s}', 'pgoutput')"
            ))
            .unwrap_or_else(|e| panic!("cannot create the slot {s}: {e}"));
        db
    }

    /// The database URL (the follower's; no search path).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with `search_path` set to the schema.
    pub fn schema_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.url, self.schema)
    }

    /// A connection with no search path of its own.
    pub fn admin(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// A connection whose `search_path` is the schema (no instrumentation).
    pub fn conn(&self) -> PgConnection {
        let url = self.schema_url();
        PgConnection::establish(&url).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }

    /// The server's current WAL insert position (every commit record so far is below it: the
    /// write position is not, under `synchronous_commit = off`), then a committed logical
    /// message, so a follower has a commit past it to confirm.
    pub fn mark(&self, conn: &mut PgConnection) -> u64 {
        let l: Lsn =
            diesel::sql_query("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text AS lsn")
                .get_result(conn)
                .expect("pg_current_wal_lsn");
        diesel::sql_query("SELECT pg_logical_emit_message(true, 'cachebot.test', '')::text")
            .execute(conn)
            .expect("pg_logical_emit_message");
        l.lsn.parse().expect("an LSN")
    }

    /// Wait (bounded) until `confirmed()` reaches a mark taken now: every transaction committed
    /// before this call has been applied.
    pub fn wait_applied(&self, conn: &mut PgConnection, confirmed: impl Fn() -> u64) {
        let mark = self.mark(conn);
        let deadline = Instant::now() + Duration::from_secs(30);
        while confirmed() < mark {
            assert!(
                Instant::now() < deadline,
                "the follower did not reach {mark} within 30 s (at {})",
                confirmed()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The slot's `confirmed_flush_lsn`, as a number (0 when none).
    pub fn slot_confirmed(&self, conn: &mut PgConnection) -> u64 {
        let l: Lsn = diesel::sql_query(format!(
            "SELECT COALESCE((confirmed_flush_lsn - '0/0'::pg_lsn)::text, '0') AS lsn \
             FROM pg_replication_slots WHERE slot_name = '{}'",
            self.schema
        ))
        .get_result(conn)
        .expect("the slot");
        l.lsn.parse().expect("an LSN")
    }
}

impl Drop for LogicalDb {
    fn drop(&mut self) {
        let s = &self.schema;
        if let Ok(mut admin) = PgConnection::establish(&self.url) {
            // The slot may still be held by a follower that is shutting down.
            for _ in 0..100 {
                let dropped = diesel::sql_query(format!(
                    "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots \
                     WHERE slot_name = '{s}'"
                ))
                .execute(&mut admin);
                if dropped.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = admin.batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {s}; DROP SCHEMA IF EXISTS {s} CASCADE"
            ));
        }
    }
}
