//! What a connection's table names mean: the database, the schema each
//! name resolves to, and which columns can be keyed by value.
//!
//! The same SQL text reads different rows on two connections whose
//! `search_path` differs (two tenants, each with a table `b` in its own
//! schema), and on two databases (staging and production sharing a
//! memcached). So the crate never keys on a name as written: every table a
//! query reads or a write changes is resolved, per connection, to the
//! schema-qualified table the database itself resolves it to, and every key
//! is scoped to the database's identity (`current_database()` and the
//! cluster's system identifier). A value is keyed only where SQL equality is
//! byte equality, decided from the catalog (the column's type, a domain's
//! base type, its collation), never from the bind's type: Diesel sends a
//! `CHAR(n)` value with `VARCHAR`'s type, and a nondeterministic collation
//! makes `'Rust' = 'rust'` with any type.
//!
//! These facts are learned with two catalog queries per connection, kept in
//! the connection's instrumentation, and learned again when the connection
//! runs something that can change them (`SET`, `RESET`, `DISCARD`, DDL, a
//! statement naming `search_path`), when a query names a table the scope
//! does not know, and at the latest after [`MAX_AGE`] (DDL made by other
//! connections).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Key;

/// How long a connection trusts what it learned before asking again.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// One column's facts from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ColumnFacts {
    /// `pg_attribute.attname`.
    pub name: String,
    /// The column's type after unwrapping domains.
    pub base_type: u32,
    /// Whether its collation (if any) is deterministic.
    pub deterministic: bool,
}

/// One table (or view) from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableFacts {
    pub schema: String,
    pub name: String,
    /// Found by the search path (the name alone refers to it).
    pub visible: bool,
    /// A temporary table (private to one session): never cached.
    pub temporary: bool,
    pub columns: Vec<ColumnFacts>,
}

/// What a backend learns about a connection's names (see
/// [`CacheBackend::catalog`](crate::backend::CacheBackend::catalog)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Identifies the database: same value on every connection to it (and
    /// its physical replicas), different across databases and clusters.
    pub(crate) database: u128,
    /// The effective search path, as the server reports it.
    pub(crate) search_path: String,
    /// Tables visible without a schema (resolution by `search_path`),
    /// plus any qualified tables asked for.
    pub(crate) tables: Vec<TableFacts>,
}

/// A table as the cache names it.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// `schema.table` (a part holding `.` or `"` is quoted).
    pub name: String,
    pub temporary: bool,
    /// Columns whose values may be keyed.
    keyable: HashSet<String>,
}

impl Resolved {
    /// Whether a value of `column` may be keyed (equality is byte equality).
    pub(crate) fn keyable(&self, column: &str) -> bool {
        self.keyable.contains(column)
    }
}

/// The resolved names of one connection.
#[derive(Debug)]
pub(crate) struct Scope {
    /// See [`Catalog::database`].
    pub database: u128,
    /// Distinguishes this scope's resolutions from every other's, for the
    /// plan memo: database, search path and what was learned.
    pub id: u128,
    /// By name as the SQL analysis writes it: unqualified names resolved
    /// through the search path, qualified ones as themselves.
    by_written: HashMap<String, Arc<Resolved>>,
    /// Qualified names outside the search path that reads asked for: asked
    /// again whenever the scope is learned again.
    pub asked: Vec<String>,
    learned_at: Instant,
}

/// `schema.table`, quoting a part that holds `.` or `"`, so that two tables
/// never share a name.
pub(crate) fn qualify(schema: &str, table: &str) -> String {
    let part = |p: &str| {
        if p.contains(['.', '"']) || p.is_empty() {
            format!("\"{}\"", p.replace('"', "\"\""))
        } else {
            p.to_owned()
        }
    };
    format!("{}.{}", part(schema), part(table))
}

/// The name the SQL analysis writes for a qualified table (see
/// `extract::TableDeps::table`): parts joined by `.`.
fn written_qualified(schema: &str, table: &str) -> String {
    format!("{schema}.{table}")
}

impl Scope {
    /// Build from what the catalog said. `keyable_type` tells which base
    /// types compare by bytes.
    pub(crate) fn new(
        catalog: &Catalog,
        asked: Vec<String>,
        keyable_type: impl Fn(u32) -> bool,
    ) -> Scope {
        let mut by_written = HashMap::new();
        let mut ids = xxhash_rust::xxh3::Xxh3::new();
        ids.update(&catalog.database.to_le_bytes());
        ids.update(catalog.search_path.as_bytes());
        for t in &catalog.tables {
            let keyable: HashSet<String> = t
                .columns
                .iter()
                .filter(|c| c.deterministic && keyable_type(c.base_type))
                .map(|c| c.name.clone())
                .collect();
            let resolved = Arc::new(Resolved {
                name: qualify(&t.schema, &t.name),
                temporary: t.temporary,
                keyable,
            });
            ids.update(&[0]);
            ids.update(resolved.name.as_bytes());
            let mut cols: Vec<&String> = resolved.keyable.iter().collect();
            cols.sort();
            for c in cols {
                ids.update(&[1]);
                ids.update(c.as_bytes());
            }
            if t.visible {
                by_written.insert(t.name.clone(), resolved.clone());
            }
            by_written.insert(written_qualified(&t.schema, &t.name), resolved);
        }
        Scope {
            database: catalog.database,
            id: ids.digest128(),
            by_written,
            asked,
            learned_at: Instant::now(),
        }
    }

    /// The table a name written in SQL refers to on this connection.
    pub(crate) fn resolve(&self, written: &str) -> Option<&Arc<Resolved>> {
        self.by_written.get(written)
    }

    /// Whether this scope is too old to trust.
    pub(crate) fn expired(&self) -> bool {
        self.learned_at.elapsed() > MAX_AGE
    }

    /// Unqualified name -> qualified names this scope resolves it to (for
    /// the cache's registry of names, see `Invalidator::adopt`).
    pub(crate) fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_written
            .iter()
            .filter(|(w, _)| !w.contains('.'))
            .map(|(w, r)| (w.as_str(), r.name.as_str()))
    }
}

/// Resolves the table names of a write to the keys it must bump. A name it
/// cannot resolve widens the write to everything (`None`).
pub(crate) trait Tables {
    /// The qualified names `written` stands for; `None` when unknown.
    fn qualified(&self, written: &str) -> Option<Vec<String>>;
}

impl Tables for Scope {
    fn qualified(&self, written: &str) -> Option<Vec<String>> {
        match self.resolve(written) {
            Some(r) => Some(vec![r.name.clone()]),
            // A schema written out names its table whatever the search path.
            None => {
                let (schema, table) = written.split_once('.')?;
                Some(vec![qualify(schema, table)])
            }
        }
    }
}

/// Scope a logical key to one database: keys of two databases never meet
/// in a shared store.
pub(crate) fn in_database(database: u128, key: Key) -> Key {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&database.to_le_bytes());
    bytes[16..].copy_from_slice(&key.hash().to_le_bytes());
    Key::new(key.kind(), xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// Statements after which a connection's names may resolve differently or
/// its columns have other types: anything naming `search_path` (`SET`,
/// `set_config`), a change of role (`$user` in the path), `RESET ALL`,
/// `DISCARD`, DDL, and `DO`/`CALL` (whatever they run). Other settings
/// (`SET statement_timeout`) change nothing here.
///
/// Every `;`-separated piece of a batch is looked at (a `;` inside a string
/// only adds pieces: more statements treated as changes, never fewer).
pub(crate) fn may_change_scope(sql: &str) -> bool {
    contains_ignore_case(sql, "search_path")
        || contains_ignore_case(sql, "set_config")
        || may_change_catalog(sql)
        || statements(sql).any(|(head, statement)| match head.as_str() {
            "set" | "reset" => {
                contains_ignore_case(statement, "role")
                    || contains_ignore_case(statement, "authorization")
                    || contains_ignore_case(statement, " all")
            }
            "discard" => true,
            _ => false,
        })
}

/// Statements that may change the catalog itself (tables, columns, foreign
/// keys, rules, partitions): DDL, and `DO`/`CALL` (whatever they run).
pub(crate) fn may_change_catalog(sql: &str) -> bool {
    statements(sql).any(|(head, _)| {
        matches!(
            head.as_str(),
            "create" | "alter" | "drop" | "import" | "do" | "call"
        )
    })
}

/// Each `;`-separated piece with its first word, lowercased.
fn statements(sql: &str) -> impl Iterator<Item = (String, &str)> {
    sql.split(';').map(|statement| {
        let head = statement
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_lowercase();
        (head, statement)
    })
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, cols: &[(&str, u32, bool)]) -> TableFacts {
        TableFacts {
            schema: schema.into(),
            name: name.into(),
            visible: true,
            temporary: false,
            columns: cols
                .iter()
                .map(|(n, t, d)| ColumnFacts {
                    name: (*n).into(),
                    base_type: *t,
                    deterministic: *d,
                })
                .collect(),
        }
    }

    #[test]
    fn the_visible_table_wins_and_qualified_names_resolve_to_themselves() {
        let catalog = Catalog {
            database: 7,
            search_path: "{t1,public}".into(),
            tables: vec![
                table("t1", "b", &[("id", 23, true)]),
                TableFacts {
                    visible: false,
                    ..table("public", "b", &[("id", 23, true)])
                },
            ],
        };
        let s = Scope::new(&catalog, Vec::new(), |t| t == 23);
        assert_eq!(s.resolve("b").unwrap().name, "t1.b");
        assert_eq!(s.resolve("public.b").unwrap().name, "public.b");
        assert_eq!(s.resolve("t1.b").unwrap().name, "t1.b");
        assert!(s.resolve("t2.b").is_none());
    }

    #[test]
    fn keyability_comes_from_the_base_type_and_the_collation() {
        let catalog = Catalog {
            database: 1,
            search_path: "{public}".into(),
            tables: vec![table(
                "public",
                "t",
                &[("id", 23, true), ("code", 1042, true), ("name", 25, false)],
            )],
        };
        let s = Scope::new(&catalog, Vec::new(), |t| t == 23 || t == 25);
        let t = s.resolve("t").unwrap();
        assert!(t.keyable("id"));
        assert!(!t.keyable("code"), "bpchar is blank-padded");
        assert!(!t.keyable("name"), "nondeterministic collation");
        assert!(!t.keyable("absent"));
    }

    #[test]
    fn scope_ids_differ_by_database_path_and_facts() {
        let base = Catalog {
            database: 1,
            search_path: "{a}".into(),
            tables: vec![table("a", "t", &[("id", 23, true)])],
        };
        let id = |c: &Catalog| Scope::new(c, Vec::new(), |t| t == 23).id;
        let mut other_db = base.clone();
        other_db.database = 2;
        let mut other_path = base.clone();
        other_path.search_path = "{b}".into();
        let mut other_type = base.clone();
        other_type.tables[0].columns[0].base_type = 1042;
        assert_ne!(id(&base), id(&other_db));
        assert_ne!(id(&base), id(&other_path));
        assert_ne!(id(&base), id(&other_type));
        assert_eq!(id(&base), id(&base.clone()));
    }

    #[test]
    fn qualified_names_are_injective() {
        assert_eq!(qualify("public", "photos"), "public.photos");
        assert_ne!(qualify("a.b", "c"), qualify("a", "b.c"));
    }

    #[test]
    fn keys_are_scoped_per_database() {
        let k = Key::generation(42);
        assert_ne!(in_database(1, k), in_database(2, k));
        assert_eq!(in_database(1, k), in_database(1, k));
        assert_eq!(in_database(1, k).kind(), k.kind());
    }

    #[test]
    fn statements_that_change_resolution() {
        for sql in [
            "SET search_path = t2",
            "set local search_path to t1",
            "SET ROLE app",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('search_path', 't2', false)",
            "ALTER TABLE b ALTER COLUMN c TYPE text",
            "CREATE TABLE x (id int)",
            "SELECT 1; SET search_path = x",
        ] {
            assert!(may_change_scope(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "UPDATE b SET c = 1",
            "INSERT INTO b VALUES (1)",
            "SELECT 1; DELETE FROM b WHERE t = 'x'",
            "SET statement_timeout = '5s'",
            "SET LOCAL lock_timeout = '5s'",
        ] {
            assert!(!may_change_scope(sql), "{sql}");
        }
    }
}
