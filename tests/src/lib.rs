//! Test support for `cachebot`'s integration tests.
//!
//! - [`TestDb`]: a fresh PostgreSQL schema per test, with `migrations/` applied, in the database
//!   at `DATABASE_URL`; connections and pools whose `search_path` is that schema.
//! - [`schema`] and [`models`]: Diesel tables and models for the parity scenarios
//!   (`first_models` ... `no_cache_models`), `users`/`photos` and the bind-type table `kinds`.
//! - [`Fixture`]: the parity fixture (f, s, t, g, m).
//! - [`memcached_servers`]: the shared memcached servers from `MEMCACHED_SERVERS`.
//! - [`MemcachedProcess`]: a private memcached a test can kill, restart, pause and resume.
//! - [`Proxy`]: a TCP forwarder a test can switch to swallowing traffic (a partition).
//!
//! The environment comes from `scripts/services.sh` (`scripts/test.sh` runs the whole suite
//! through it):
//!
//! ```no_run
//! use cachebot_tests::{Fixture, TestDb};
//!
//! let db = TestDb::new();
//! let mut conn = db.conn();
//! let fx = Fixture::create(&mut conn);
//! assert_eq!(fx.t.second_model_id, fx.s.id);
//! ```

pub mod checker;
pub mod db;
pub mod fixture;
pub mod logical;
pub mod memcached;
pub mod models;
pub mod proxy;
pub mod schema;

pub use db::{database_url, TestDb, MIGRATIONS};
pub use fixture::Fixture;
pub use logical::{logical_database_url, LogicalDb};
pub use memcached::{memcached_servers, MemcachedBuilder, MemcachedProcess};
pub use proxy::Proxy;

/// The panic message used when the services' environment variables are missing.
pub(crate) const RUN_THROUGH_SCRIPTS: &str =
    "run the tests through scripts/test.sh (or scripts/services.sh -- cargo test)";
