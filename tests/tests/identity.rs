//! What a table name means: tenants on `search_path`, other databases, and
//! columns whose SQL equality is not byte equality (`CHAR(n)`,
//! nondeterministic collations, domains over them). Each of these once let
//! one connection read another's rows or a write leave a read stale.
//!
//! Every read is checked against the same query run without the cache (the
//! database is the oracle); hits and misses through `cache.stats()`.

mod common;

use cachebot::prelude::*;
use cachebot::{Cache, CacheBot};
use cachebot_tests::{database_url, memcached_servers};
use common::{caches, since, unique_prefix};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! {
    b (id) {
        id -> Int4,
        v -> Text,
    }
}

diesel::table! {
    codes (id) {
        id -> Int4,
        code -> Bpchar,
    }
}

diesel::table! {
    names (id) {
        id -> Int4,
        name -> Text,
    }
}

#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    Insertable,
    Serialize,
    Deserialize,
    CacheBot,
)]
#[diesel(table_name = b)]
struct B {
    id: i32,
    v: String,
}

#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    Insertable,
    Serialize,
    Deserialize,
    CacheBot,
)]
#[diesel(table_name = codes)]
struct Code {
    id: i32,
    code: String,
}

#[derive(
    Debug,
    Clone,
    PartialEq,
    Queryable,
    Selectable,
    Identifiable,
    AsChangeset,
    Insertable,
    Serialize,
    Deserialize,
    CacheBot,
)]
#[diesel(table_name = names)]
struct Name {
    id: i32,
    name: String,
}

/// Schemas made for one test, dropped with it.
struct Schemas {
    admin: PgConnection,
    names: Vec<String>,
}

impl Schemas {
    /// `n` fresh schemas, each with its own table `b` holding one row `(1, '<schema>')`.
    fn with_b(n: usize) -> Schemas {
        let mut admin = PgConnection::establish(&database_url()).unwrap();
        let base = format!("cbid_{}_{:08x}", std::process::id(), fastrand::u32(..));
        let names: Vec<String> = (0..n).map(|i| format!("{base}_{i}")).collect();
        for s in &names {
            admin
                .batch_execute(&format!(
                    "CREATE SCHEMA {s}; \
                     CREATE TABLE {s}.b (id int PRIMARY KEY, v text NOT NULL); \
                     INSERT INTO {s}.b VALUES (1, '{s}');"
                ))
                .unwrap();
        }
        Schemas { admin, names }
    }

    /// Every `b` back to its one row `(1, '<schema>')`.
    fn reset(&mut self) {
        for s in &self.names {
            self.admin
                .batch_execute(&format!("UPDATE {s}.b SET v = '{s}' WHERE id = 1"))
                .unwrap();
        }
    }

    /// A connection whose `search_path` is `schema` (set in the startup packet).
    fn conn(&self, schema: &str) -> PgConnection {
        let url = database_url();
        let sep = if url.contains('?') { '&' } else { '?' };
        PgConnection::establish(&format!("{url}{sep}options=-csearch_path%3D{schema}")).unwrap()
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        for s in &self.names {
            let _ = self
                .admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"));
        }
    }
}

/// Read `q` through the cache and without it; they must agree. Returns the
/// rows and whether the cached read was a hit.
macro_rules! read {
    ($cache:expr, $conn:expr, $q:expr, $ty:ty) => {{
        let before = $cache.stats();
        let cached: Vec<$ty> = $q.cache(&$cache).load($conn).unwrap();
        let d = since(&$cache, before);
        let truth: Vec<$ty> = $q.load($conn).unwrap();
        assert_eq!(cached, truth, "stale or foreign rows: {}", stringify!($q));
        (cached, d.hits == 1)
    }};
}

#[test]
fn two_tenants_on_search_path_never_share_an_entry() {
    let s = Schemas::with_b(2);
    for (store, cache) in caches() {
        let mut t1 = s.conn(&s.names[0]);
        let mut t2 = s.conn(&s.names[1]);
        cache.instrument(&mut t1).unwrap();
        cache.instrument(&mut t2).unwrap();
        let q = || b::table.filter(b::id.eq(1));
        let (rows, _) = read!(cache, &mut t1, q(), (i32, String));
        assert_eq!(rows[0].1, s.names[0], "{store}");
        let (rows, _) = read!(cache, &mut t1, q(), (i32, String));
        assert_eq!(rows[0].1, s.names[0], "{store}");
        // The same SQL on the other tenant reads the other table.
        let (rows, hit) = read!(cache, &mut t2, q(), (i32, String));
        assert_eq!(
            rows[0].1, s.names[1],
            "{store}: tenant 2 read tenant 1's rows"
        );
        assert!(!hit, "{store}");
        let (_, hit) = read!(cache, &mut t2, q(), (i32, String));
        assert!(hit, "{store}: each tenant has its own entry");
        let (_, hit) = read!(cache, &mut t1, q(), (i32, String));
        assert!(
            hit,
            "{store}: tenant 2's read did not evict tenant 1's entry"
        );
    }
}

#[test]
fn a_schema_qualified_write_reaches_reads_of_the_bare_name() {
    let s = Schemas::with_b(2);
    let t1_schema = &s.names[0];
    for (store, cache) in caches() {
        let mut t1 = s.conn(t1_schema);
        cache.instrument(&mut t1).unwrap();
        let q = || b::table.filter(b::id.eq(1));
        read!(cache, &mut t1, q(), (i32, String));
        let (_, hit) = read!(cache, &mut t1, q(), (i32, String));
        assert!(hit, "{store}");
        diesel::sql_query(format!(
            "UPDATE {t1_schema}.b SET v = 'qualified' WHERE id = 1"
        ))
        .execute(&mut t1)
        .unwrap();
        let (rows, hit) = read!(cache, &mut t1, q(), (i32, String));
        assert_eq!(rows[0].1, "qualified", "{store}");
        assert!(!hit, "{store}");
        // A write to the other tenant's table of the same name changes nothing here.
        read!(cache, &mut t1, q(), (i32, String));
        diesel::sql_query(format!(
            "UPDATE {}.b SET v = 'other' WHERE id = 1",
            s.names[1]
        ))
        .execute(&mut t1)
        .unwrap();
        let (rows, hit) = read!(cache, &mut t1, q(), (i32, String));
        assert_eq!(rows[0].1, "qualified", "{store}");
        assert!(
            hit,
            "{store}: a write to another schema's `b` is not a write to this one"
        );
    }
}

#[test]
fn set_search_path_re_resolves_names() {
    let mut s = Schemas::with_b(2);
    for (store, cache) in caches() {
        s.reset();
        let mut conn = s.conn(&s.names[0]);
        cache.instrument(&mut conn).unwrap();
        let q = || b::table.filter(b::id.eq(1));
        read!(cache, &mut conn, q(), (i32, String));
        read!(cache, &mut conn, q(), (i32, String));
        for (how, sql) in [
            ("SET", format!("SET search_path = {}", s.names[1])),
            (
                "set_config",
                format!("SELECT set_config('search_path', '{}', false)", s.names[0]),
            ),
            (
                "SET in a batch",
                format!("SELECT 1; SET search_path TO {}", s.names[1]),
            ),
        ] {
            conn.batch_execute(&sql).unwrap();
            let current: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "current_schemas(false)::text",
            ))
            .get_result(&mut conn)
            .unwrap();
            let (rows, _) = read!(cache, &mut conn, q(), (i32, String));
            assert!(
                current.contains(&rows[0].1),
                "{store} {how}: read {} under {current}",
                rows[0].1
            );
        }
        // A write right after a change of search path, before any read: it
        // must reach the table the new path names.
        conn.batch_execute(&format!("SET search_path = {}", s.names[0]))
            .unwrap();
        diesel::sql_query("UPDATE b SET v = 'after set' WHERE id = 1")
            .execute(&mut conn)
            .unwrap();
        let (rows, _) = read!(cache, &mut conn, q(), (i32, String));
        assert_eq!(rows[0].1, "after set", "{store}");
        // SET LOCAL ends with its transaction.
        conn.batch_execute(&format!(
            "BEGIN; SET LOCAL search_path = {}; COMMIT",
            s.names[1]
        ))
        .unwrap();
        let (rows, _) = read!(cache, &mut conn, q(), (i32, String));
        assert_eq!(rows[0].1, "after set", "{store}: SET LOCAL outlived COMMIT");
    }
}

#[test]
fn the_write_api_resolves_the_model_table_per_connection() {
    let mut s = Schemas::with_b(2);
    for (store, cache) in caches() {
        s.reset();
        let mut t1 = s.conn(&s.names[0]);
        let mut t2 = s.conn(&s.names[1]);
        let q = || b::table.filter(b::v.eq("renamed"));
        read!(cache, &mut t1, q(), B);
        let (_, hit) = read!(cache, &mut t1, q(), B);
        assert!(hit, "{store}");
        // A save on tenant 2 changes tenant 2's table only...
        let mut row: B = b::table.find(1).first(&mut t2).unwrap();
        row.v = "renamed".into();
        row.save(&cache, &mut t2).unwrap();
        let (rows, hit) = read!(cache, &mut t1, q(), B);
        assert!(rows.is_empty(), "{store}");
        assert!(
            hit,
            "{store}: tenant 2's write is not a write to tenant 1's table"
        );
        // ...and a save on tenant 1 reaches tenant 1's reads.
        let mut row: B = b::table.find(1).first(&mut t1).unwrap();
        row.v = "renamed".into();
        row.save(&cache, &mut t1).unwrap();
        let (rows, hit) = read!(cache, &mut t1, q(), B);
        assert_eq!(rows.len(), 1, "{store}");
        assert!(!hit, "{store}");
    }
}

/// A database made for one test, dropped with it.
struct OtherDatabase {
    admin: PgConnection,
    name: String,
    url: String,
}

impl OtherDatabase {
    fn new() -> OtherDatabase {
        let url = database_url();
        let mut admin = PgConnection::establish(&url).unwrap();
        let name = format!("cbdb_{}_{:08x}", std::process::id(), fastrand::u32(..));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        // Replace the database in the URL: `scheme://who@host:port/db?options`.
        let (head, tail) = url.split_once("://").unwrap();
        let (authority, rest) = tail.split_once('/').unwrap_or((tail, ""));
        let query = rest
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        let other = format!("{head}://{authority}/{name}{query}");
        OtherDatabase {
            admin,
            name,
            url: other,
        }
    }
}

impl Drop for OtherDatabase {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

#[test]
fn two_databases_sharing_a_memcached_prefix_never_share_entries() {
    let staging = OtherDatabase::new();
    let production = OtherDatabase::new();
    let prefix = unique_prefix();
    let cache = |servers: &[String]| {
        Cache::builder()
            .store(
                cachebot::store::MemcachedStore::builder()
                    .servers(servers.iter().cloned())
                    .prefix(prefix.clone())
                    .build()
                    .unwrap(),
            )
            .write_behind(false)
            .build()
            .unwrap()
    };
    let servers = memcached_servers();
    // Two services, one per database, sharing a memcached and its prefix.
    let (stage_cache, prod_cache) = (cache(&servers), cache(&servers));
    let mut stage = PgConnection::establish(&staging.url).unwrap();
    let mut prod = PgConnection::establish(&production.url).unwrap();
    for (conn, v) in [(&mut stage, "staging"), (&mut prod, "production")] {
        conn.batch_execute(&format!(
            "CREATE TABLE b (id int PRIMARY KEY, v text NOT NULL); INSERT INTO b VALUES (1, '{v}')"
        ))
        .unwrap();
    }
    stage_cache.instrument(&mut stage).unwrap();
    prod_cache.instrument(&mut prod).unwrap();
    let q = || b::table.filter(b::id.eq(1));
    read!(stage_cache, &mut stage, q(), (i32, String));
    let (_, hit) = read!(stage_cache, &mut stage, q(), (i32, String));
    assert!(hit);
    let (rows, hit) = read!(prod_cache, &mut prod, q(), (i32, String));
    assert_eq!(rows[0].1, "production");
    assert!(!hit, "production read staging's entry");
    // One cache serves one database: a connection to another bypasses it.
    let before = stage_cache.stats();
    let (rows, _) = read!(stage_cache, &mut prod, q(), (i32, String));
    assert_eq!(rows[0].1, "production");
    let d = since(&stage_cache, before);
    assert_eq!((d.hits, d.uninstrumented), (0, 1), "{d:?}");
}

#[test]
fn char_n_values_are_never_keyed() {
    let s = Schemas::with_b(1);
    let schema = &s.names[0];
    let mut admin = s.conn(schema);
    admin
        .batch_execute(
            "CREATE DOMAIN code5 AS char(5); \
             CREATE TABLE codes (id int PRIMARY KEY, code char(5) NOT NULL); \
             INSERT INTO codes VALUES (1, 'ab'), (2, 'zz');",
        )
        .unwrap();
    for (store, cache) in caches() {
        let mut conn = s.conn(schema);
        cache.instrument(&mut conn).unwrap();
        let q = || codes::table.filter(codes::code.eq("ab")).order(codes::id);
        read!(cache, &mut conn, q(), Code);
        let (_, hit) = read!(cache, &mut conn, q(), Code);
        assert!(hit, "{store}");
        // The row reads back blank-padded: its old image is `ab   `, not `ab`.
        let mut row: Code = codes::table.find(1).first(&mut conn).unwrap();
        assert_eq!(row.code, "ab   ");
        row.code = "cd".into();
        row.save(&cache, &mut conn).unwrap();
        let (rows, hit) = read!(cache, &mut conn, q(), Code);
        assert!(rows.is_empty(), "{store}");
        assert!(!hit, "{store}");
        // And back: the new image `cd   ` -> `ab`.
        row.code = "ab".into();
        row.save(&cache, &mut conn).unwrap();
        let (rows, _) = read!(cache, &mut conn, q(), Code);
        assert_eq!(rows.len(), 1, "{store}");
    }
    // A domain over char(n) is not keyable either.
    admin
        .batch_execute("ALTER TABLE codes ALTER COLUMN code TYPE code5")
        .unwrap();
    for (store, cache) in caches() {
        let mut conn = s.conn(schema);
        cache.instrument(&mut conn).unwrap();
        let q = || codes::table.filter(codes::code.eq("ab")).order(codes::id);
        read!(cache, &mut conn, q(), Code);
        let mut row: Code = codes::table.find(1).first(&mut conn).unwrap();
        row.code = "ef".into();
        row.save(&cache, &mut conn).unwrap();
        let (rows, hit) = read!(cache, &mut conn, q(), Code);
        assert!(rows.is_empty() && !hit, "{store}");
    }
}

#[test]
fn nondeterministic_collations_are_never_keyed() {
    let s = Schemas::with_b(1);
    let schema = &s.names[0];
    let mut admin = s.conn(schema);
    admin
        .batch_execute(&format!(
            "CREATE COLLATION {schema}.ci (provider = icu, locale = 'und-u-ks-level2', \
             deterministic = false); \
             CREATE TABLE names (id int PRIMARY KEY, name text COLLATE {schema}.ci NOT NULL); \
             INSERT INTO names VALUES (1, 'rust'), (2, 'go');"
        ))
        .unwrap();
    for (store, cache) in caches() {
        let mut conn = s.conn(schema);
        cache.instrument(&mut conn).unwrap();
        let q = || names::table.filter(names::name.eq("Rust")).order(names::id);
        let (rows, _) = read!(cache, &mut conn, q(), Name);
        assert_eq!(
            rows.len(),
            1,
            "{store}: 'Rust' = 'rust' under the collation"
        );
        let (_, hit) = read!(cache, &mut conn, q(), Name);
        assert!(hit, "{store}");
        // An insert of another spelling joins the result.
        let id = 10 + i32::from(store == "memcached");
        Name::insert(
            &cache,
            &mut conn,
            Name {
                id,
                name: "RUST".into(),
            },
        )
        .unwrap();
        let (rows, hit) = read!(cache, &mut conn, q(), Name);
        assert_eq!(rows.len(), 2, "{store}");
        assert!(!hit, "{store}");
        // A rename of a member leaves it.
        let mut row: Name = names::table.find(1).first(&mut conn).unwrap();
        row.name = "rusty".into();
        row.save(&cache, &mut conn).unwrap();
        let (rows, _) = read!(cache, &mut conn, q(), Name);
        assert_eq!(rows.len(), 1, "{store}");
        row.name = "rust".into();
        row.save(&cache, &mut conn).unwrap();
        diesel::delete(names::table.find(id))
            .execute(&mut conn)
            .unwrap();
    }
}

#[test]
fn a_connection_whose_instrumentation_was_replaced_bypasses_and_its_writes_fail() {
    let s = Schemas::with_b(1);
    for (store, cache) in caches() {
        let mut conn = s.conn(&s.names[0]);
        cache.instrument(&mut conn).unwrap();
        // Replaced by the user's logger, without chaining.
        conn.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {});
        let q = || b::table.filter(b::id.eq(1));
        for _ in 0..2 {
            let before = cache.stats();
            read!(cache, &mut conn, q(), (i32, String));
            let d = since(&cache, before);
            assert_eq!(
                (d.hits, d.misses, d.bypasses, d.uninstrumented),
                (0, 0, 1, 1),
                "{store}: {d:?}"
            );
        }
        let mut row: B = b::table.find(1).first(&mut conn).unwrap();
        row.v = "lost".into();
        let err = row.save(&cache, &mut conn).unwrap_err();
        assert!(
            err.to_string()
                .contains("instrumentation is not cachebot's"),
            "{store}: {err}"
        );
        // Chained instead, it works.
        conn.set_instrumentation(
            cache
                .instrumentation()
                .chain(|_: diesel::connection::InstrumentationEvent<'_>| {}),
        );
        read!(cache, &mut conn, q(), (i32, String));
        let (_, hit) = read!(cache, &mut conn, q(), (i32, String));
        assert!(hit, "{store}");
    }
}

#[test]
fn a_bare_connection_is_instrumented_by_its_first_cached_read() {
    let s = Schemas::with_b(1);
    for (store, cache) in caches() {
        let mut conn = s.conn(&s.names[0]);
        let q = || b::table.filter(b::id.eq(1));
        read!(cache, &mut conn, q(), (i32, String));
        let (_, hit) = read!(cache, &mut conn, q(), (i32, String));
        assert!(hit, "{store}");
        // Its plain Diesel writes now invalidate.
        diesel::update(b::table.find(1))
            .set(b::v.eq(format!("bare {store}")))
            .execute(&mut conn)
            .unwrap();
        let (rows, hit) = read!(cache, &mut conn, q(), (i32, String));
        assert_eq!(rows[0].1, format!("bare {store}"));
        assert!(!hit, "{store}");
    }
}

#[test]
fn explicit_invalidation_needs_a_database_and_reaches_every_resolution() {
    let cache = Cache::in_process();
    assert!(matches!(
        cache.invalidate_table("b"),
        Err(cachebot::Error::NoDatabase)
    ));
    let s = Schemas::with_b(2);
    let mut t1 = s.conn(&s.names[0]);
    let mut t2 = s.conn(&s.names[1]);
    let q = || b::table.filter(b::id.eq(1));
    for conn in [&mut t1, &mut t2] {
        read!(cache, conn, q(), (i32, String));
        let (_, hit) = read!(cache, conn, q(), (i32, String));
        assert!(hit);
    }
    // The bare name reaches both tenants' tables; a qualified one only its own.
    cache
        .invalidate_table(&format!("{}.b", s.names[0]))
        .unwrap();
    let (_, hit) = read!(cache, &mut t1, q(), (i32, String));
    assert!(!hit);
    let (_, hit) = read!(cache, &mut t2, q(), (i32, String));
    assert!(hit);
    cache.invalidate_table("b").unwrap();
    for conn in [&mut t1, &mut t2] {
        let (_, hit) = read!(cache, conn, q(), (i32, String));
        assert!(!hit);
    }
    cache.invalidate_value(b::id, 1).unwrap();
    for conn in [&mut t1, &mut t2] {
        let (_, hit) = read!(cache, conn, q(), (i32, String));
        assert!(!hit);
    }
}

#[test]
fn a_write_in_the_batch_that_changes_search_path_reaches_the_new_path() {
    let mut s = Schemas::with_b(2);
    for (store, cache) in caches() {
        s.reset();
        // A reader on tenant 2 caches its row.
        let mut t2 = s.conn(&s.names[1]);
        cache.instrument(&mut t2).unwrap();
        let q = || b::table.filter(b::id.eq(1));
        read!(cache, &mut t2, q(), (i32, String));
        let (_, hit) = read!(cache, &mut t2, q(), (i32, String));
        assert!(hit, "{store}");
        // A writer on tenant 1 switches to tenant 2 and writes, in one batch.
        let mut writer = s.conn(&s.names[0]);
        cache.instrument(&mut writer).unwrap();
        writer
            .batch_execute(&format!(
                "SET search_path = {}; UPDATE b SET v = 'switched' WHERE id = 1",
                s.names[1]
            ))
            .unwrap();
        let (rows, hit) = read!(cache, &mut t2, q(), (i32, String));
        assert_eq!(rows[0].1, "switched", "{store}");
        assert!(!hit, "{store}");
    }
}

#[test]
fn a_temporary_table_shadowing_a_real_one_is_never_cached() {
    let mut s = Schemas::with_b(1);
    for (store, cache) in caches() {
        s.reset();
        let mut shadowed = s.conn(&s.names[0]);
        let mut plain = s.conn(&s.names[0]);
        cache.instrument(&mut shadowed).unwrap();
        cache.instrument(&mut plain).unwrap();
        let q = || b::table.filter(b::id.eq(1));
        // The real table's row cached on one connection...
        read!(cache, &mut plain, q(), (i32, String));
        let (_, hit) = read!(cache, &mut plain, q(), (i32, String));
        assert!(hit, "{store}");
        // ...and a session-private table of the same name on the other.
        shadowed
            .batch_execute("CREATE TEMP TABLE b (id int PRIMARY KEY, v text NOT NULL); INSERT INTO b VALUES (1, 'temporary')")
            .unwrap();
        for _ in 0..2 {
            let before = cache.stats();
            let (rows, _) = read!(cache, &mut shadowed, q(), (i32, String));
            assert_eq!(rows[0].1, "temporary", "{store}");
            let d = since(&cache, before);
            assert_eq!((d.hits, d.misses, d.bypasses), (0, 0, 1), "{store}: {d:?}");
        }
        // The real table's reads still get the real rows (the batch that made
        // the temporary table was DDL: its insert widened to everything).
        let (rows, _) = read!(cache, &mut plain, q(), (i32, String));
        assert_eq!(rows[0].1, s.names[0], "{store}");
        let (rows, hit) = read!(cache, &mut plain, q(), (i32, String));
        assert_eq!(rows[0].1, s.names[0], "{store}");
        assert!(
            hit,
            "{store}: reads of the temporary table stored nothing over it"
        );
    }
}
