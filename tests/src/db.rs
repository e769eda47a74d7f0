//! Per-test PostgreSQL schemas with the migrations applied.

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::RUN_THROUGH_SCRIPTS;

/// Every migration under the workspace's `migrations/` directory.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The value of `DATABASE_URL`; panics with instructions when it is not set.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("DATABASE_URL is not set: {RUN_THROUGH_SCRIPTS}"),
    }
}

/// `url` with `options=-csearch_path=<schema>` added, so that every connection made from it
/// (pooled ones included) resolves unqualified table names in `schema`.
fn url_with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// A private PostgreSQL schema holding the whole test schema (all of `migrations/`), in the
/// database at `DATABASE_URL`.
///
/// Each `TestDb` is isolated from every other one (tests run on parallel threads, and in
/// parallel processes): it gets its own schema `t_<pid>_<counter>_<random>`, its own tables,
/// sequences and `__diesel_schema_migrations`. The schema is dropped (`CASCADE`) on drop.
pub struct TestDb {
    admin_url: String,
    schema: String,
    url: String,
}

impl TestDb {
    /// Creates a fresh schema and runs every migration inside it.
    ///
    /// Panics when `DATABASE_URL` is unset, the database does not answer or a migration fails.
    pub fn new() -> TestDb {
        let admin_url = database_url();
        let schema = format!(
            "t_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let url = url_with_search_path(&admin_url, &schema);

        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL={admin_url}: {e}"));
        diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
        // From here on, Drop removes the schema even if a migration panics.
        let db = TestDb {
            admin_url,
            schema,
            url,
        };

        let mut conn = db.conn();
        conn.run_pending_migrations(MIGRATIONS)
            .unwrap_or_else(|e| panic!("migrations failed in schema {}: {e}", db.schema));
        db
    }

    /// A new connection whose `search_path` is this schema only.
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// The connection URL of this schema (`DATABASE_URL` plus `options=-csearch_path=...`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// An r2d2 pool of at most `size` connections, each with this schema as `search_path`.
    pub fn pool(&self, size: u32) -> Pool<ConnectionManager<PgConnection>> {
        Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .build(ConnectionManager::new(self.url.clone()))
            .unwrap_or_else(|e| panic!("cannot build a pool for {}: {e}", self.url))
    }

    /// The schema's name (unquoted; it needs no quoting).
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
    }
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("schema", &self.schema)
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for TestDb {
    /// Drops the schema, best effort: failures are reported on stderr, never panicked on.
    fn drop(&mut self) {
        let result = PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                // Don't hang a test run on a connection left inside a transaction.
                diesel::sql_query("SET lock_timeout = '10s'")
                    .execute(&mut admin)
                    .and_then(|_| {
                        diesel::sql_query(format!(
                            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                            self.schema
                        ))
                        .execute(&mut admin)
                    })
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            eprintln!("warning: could not drop test schema {}: {e}", self.schema);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{FirstModel, NewFirstModel};
    use crate::schema::first_models;
    use diesel::sql_types::{BigInt, Text};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    fn schema_exists(name: &str) -> bool {
        let mut admin = PgConnection::establish(&database_url()).unwrap();
        let c: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_namespace WHERE nspname = '{name}'"
        ))
        .get_result(&mut admin)
        .unwrap();
        c.n == 1
    }

    #[test]
    fn url_gets_search_path_option() {
        assert_eq!(
            url_with_search_path("postgres://u@h:1/d", "s"),
            "postgres://u@h:1/d?options=-csearch_path%3Ds"
        );
        assert_eq!(
            url_with_search_path("postgres://u@h:1/d?sslmode=disable", "s"),
            "postgres://u@h:1/d?sslmode=disable&options=-csearch_path%3Ds"
        );
    }

    #[test]
    fn creates_schema_with_migrations_and_drops_it() {
        let db = TestDb::new();
        let name = db.schema().to_owned();
        assert!(schema_exists(&name));

        let mut conn = db.conn();
        let current: Name = diesel::sql_query("SELECT current_schema()::text AS name")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(current.name, name);

        let tables: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{name}' \
             AND table_name IN ('first_models', 'second_models', 'third_models', 'many_models', \
             'many_models_first_models', 'many_models_third_models', 'generic_models', \
             'no_cache_models', 'users', 'photos', 'kinds', '__diesel_schema_migrations')"
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(tables.n, 12);
        assert!(!conn.has_pending_migration(MIGRATIONS).unwrap());
        drop(conn);

        drop(db);
        assert!(!schema_exists(&name));
    }

    #[test]
    fn two_test_dbs_are_isolated() {
        let a = TestDb::new();
        let b = TestDb::new();
        assert_ne!(a.schema(), b.schema());
        let mut ca = a.conn();
        let mut cb = b.conn();
        let fa: FirstModel = diesel::insert_into(first_models::table)
            .values(&NewFirstModel { text: "a".into() })
            .get_result(&mut ca)
            .unwrap();
        assert_eq!(fa.id, 1);
        let in_b: Vec<FirstModel> = first_models::table.load(&mut cb).unwrap();
        assert!(in_b.is_empty());
        // Sequences are per schema too.
        let fb: FirstModel = diesel::insert_into(first_models::table)
            .values(&NewFirstModel { text: "b".into() })
            .get_result(&mut cb)
            .unwrap();
        assert_eq!(fb.id, 1);
        assert_eq!(
            first_models::table
                .count()
                .get_result::<i64>(&mut ca)
                .unwrap(),
            1
        );
    }

    #[test]
    fn pool_connections_use_the_schema() {
        let db = TestDb::new();
        let pool = db.pool(3);
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    diesel::insert_into(first_models::table)
                        .values(&NewFirstModel {
                            text: format!("p{i}"),
                        })
                        .execute(&mut conn)
                        .unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut conn = pool.get().unwrap();
        assert_eq!(
            first_models::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
            3
        );
    }

    #[test]
    fn many_test_dbs_in_parallel() {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(|| {
                    let db = TestDb::new();
                    let mut conn = db.conn();
                    assert!(!conn.has_pending_migration(MIGRATIONS).unwrap());
                    db.schema().to_owned()
                })
            })
            .collect();
        let mut names: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 6);
    }
}
