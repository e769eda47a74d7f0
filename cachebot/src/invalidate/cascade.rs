//! Writes that reach tables no statement names: foreign-key actions,
//! inheritance and partitions, rules and views.
//!
//! A delete of a parent row with `ON DELETE CASCADE` deletes child rows the
//! statement never mentions; a write to a partition changes what a query of
//! its parent returns. The graph is read from the catalog (schema-qualified
//! names), again after DDL and at most [`MAX_AGE`] apart, and a write's
//! table keys are closed over it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use diesel::connection::LoadConnection;
use diesel::pg::Pg;

use crate::key;
use crate::scope::{qualify, MAX_AGE};
use crate::store::Key;

/// Which foreign-key actions a write can trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cascade {
    Delete,
    Update,
    /// `TRUNCATE ... CASCADE`: every referencing table, whatever its action.
    Truncate,
    /// An insert: no foreign-key action, only partitions and rules.
    Insert,
}

/// Parent table -> child tables, per foreign-key action that writes the child.
#[derive(Debug, Default)]
struct Cascades {
    on_delete: HashMap<String, Vec<String>>,
    on_update: HashMap<String, Vec<String>>,
    /// Every foreign key, whatever its actions (`TRUNCATE ... CASCADE`).
    on_truncate: HashMap<String, Vec<String>>,
    /// Inheritance and partitioning, both ways (parent -> children, child ->
    /// parents): a write to a parent changes its children's rows, and a
    /// write to a child changes what a query of the parent returns.
    inheritance: HashMap<String, Vec<String>>,
    /// Tables with a rule that is not a view's SELECT (`ON UPDATE ... DO ALSO
    /// INSERT INTO audit ...`), and views (an update through one writes the
    /// tables under it): a write to one of them may write tables no
    /// statement names, so it invalidates everything.
    ruled: HashSet<String>,
}

#[derive(diesel::QueryableByName)]
struct Inherits {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
}

#[derive(diesel::QueryableByName)]
struct Ruled {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_delete: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_update: bool,
}

/// The cascade graph and when it was learned.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    graph: RwLock<Cascades>,
    /// `None` until learned, and again after a connection ran DDL.
    at: Mutex<Option<Instant>>,
}

impl Learned {
    /// A connection ran DDL: learn the cascades again before the next read.
    pub(crate) fn forget(&self) {
        if let Ok(mut at) = self.at.lock() {
            *at = None;
        }
    }

    /// Read the foreign keys, rules, views and partitions, when not learned
    /// within the last [`MAX_AGE`] or when a connection ran DDL since.
    pub(crate) fn learn<Conn>(&self, conn: &mut Conn) -> diesel::QueryResult<()>
    where
        Conn: LoadConnection<Backend = Pg>,
    {
        let fresh = self
            .at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh {
            return Ok(());
        }
        let cascades = Cascades::read(conn)?;
        if let Ok(mut m) = self.graph.write() {
            *m = cascades;
        }
        if let Ok(mut at) = self.at.lock() {
            *at = Some(Instant::now());
        }
        Ok(())
    }

    /// The "all" keys of `tables` and of every table a cascade of the given
    /// kinds, or inheritance (partitions), can reach from them; the global
    /// key alone if any of them has rules (or is a view).
    pub(crate) fn table_keys(&self, tables: &[String], kinds: &[Cascade]) -> Vec<Key> {
        let mut seen: HashSet<String> = tables.iter().cloned().collect();
        let mut queue: Vec<String> = tables.to_vec();
        if let Ok(c) = self.graph.read() {
            while let Some(t) = queue.pop() {
                // Rules fire on the statements cascades run, too.
                if c.ruled.contains(&t) {
                    return vec![key::global_key()];
                }
                for child in c.reached(&t, kinds) {
                    if seen.insert(child.clone()) {
                        queue.push(child.clone());
                    }
                }
            }
        }
        let mut keys: Vec<Key> = seen.iter().map(|t| key::table_key(t)).collect();
        keys.sort();
        keys
    }

    /// Tables reached by cascades from `table`, not including it.
    pub(crate) fn children(&self, table: &str, kind: Cascade) -> Vec<Key> {
        let mut keys = self.table_keys(&[table.to_owned()], &[kind]);
        let own = key::table_key(table);
        keys.retain(|k| *k != own);
        keys
    }
}

impl Cascades {
    /// The tables one step from `table` by the given kinds or inheritance.
    fn reached<'a>(&'a self, table: &str, kinds: &[Cascade]) -> impl Iterator<Item = &'a String> {
        kinds
            .iter()
            .map(|k| match k {
                Cascade::Delete => self.on_delete.get(table),
                Cascade::Update => self.on_update.get(table),
                Cascade::Truncate => self.on_truncate.get(table),
                Cascade::Insert => None,
            })
            .chain([self.inheritance.get(table)])
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .flatten()
    }

    /// Everything, from the catalog.
    fn read<Conn>(conn: &mut Conn) -> diesel::QueryResult<Cascades>
    where
        Conn: LoadConnection<Backend = Pg>,
    {
        use diesel::RunQueryDsl;
        let fks: Vec<ForeignKey> = diesel::sql_query(
            "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
             pn.nspname::text AS parent_schema, p.relname::text AS parent, \
             confdeltype IN ('c', 'n', 'd') AS on_delete, \
             confupdtype IN ('c', 'n', 'd') AS on_update \
             FROM pg_catalog.pg_constraint k \
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_catalog.pg_class p ON p.oid = k.confrelid \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE contype = 'f'",
        )
        .load(conn)?;
        // Rules other than a view's `_RETURN`, and views themselves.
        let ruled: Vec<Ruled> = diesel::sql_query(
            "SELECT DISTINCT n.nspname::text AS schema, c.relname::text AS name \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.ev_type <> '1' \
             WHERE c.relkind = 'v' OR r.oid IS NOT NULL",
        )
        .load(conn)?;
        let inherits: Vec<Inherits> = diesel::sql_query(
            "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
             pn.nspname::text AS parent_schema, p.relname::text AS parent \
             FROM pg_catalog.pg_inherits i \
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace",
        )
        .load(conn)?;
        let mut cascades = Cascades {
            ruled: ruled.iter().map(|r| qualify(&r.schema, &r.name)).collect(),
            ..Cascades::default()
        };
        for i in inherits {
            let child = qualify(&i.child_schema, &i.child);
            let parent = qualify(&i.parent_schema, &i.parent);
            let edges = &mut cascades.inheritance;
            edges.entry(parent.clone()).or_default().push(child.clone());
            edges.entry(child).or_default().push(parent);
        }
        for fk in fks {
            let child = qualify(&fk.child_schema, &fk.child);
            let parent = qualify(&fk.parent_schema, &fk.parent);
            let edge = |m: &mut HashMap<String, Vec<String>>| {
                m.entry(parent.clone()).or_default().push(child.clone());
            };
            edge(&mut cascades.on_truncate);
            if fk.on_delete {
                edge(&mut cascades.on_delete);
            }
            if fk.on_update {
                edge(&mut cascades.on_update);
            }
        }
        Ok(cascades)
    }
}
