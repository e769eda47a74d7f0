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

use crate::backend::CascadeFacts;
use crate::conn::DbConn;
use crate::key;
use crate::scope::MAX_AGE;
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
#[derive(Debug, Default, PartialEq, Eq)]
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
    /// Enforced single-column foreign keys, as (child, child column, parent,
    /// parent column): every child row's value has its parent row.
    references: HashSet<(String, String, String, String)>,
    /// Per child table, the foreign keys whose actions write it.
    writers: HashMap<String, Vec<WritingKey>>,
}

/// A foreign key whose action writes its child table.
#[derive(Debug, PartialEq, Eq)]
struct WritingKey {
    /// The child's column (`None` for a multi-column key).
    child_column: Option<String>,
    parent: String,
    /// The parent's column (`None` for a multi-column key).
    parent_column: Option<String>,
    /// Its only writing action is `ON DELETE CASCADE`: it deletes child rows
    /// of a deleted parent row, and never moves a child row to another
    /// value (as `ON UPDATE CASCADE`, `SET NULL` and `SET DEFAULT` do).
    deletes_only: bool,
}

/// The cascade graph and when it was learned.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    graph: RwLock<Cascades>,
    /// `None` until learned, and again after a connection ran DDL.
    at: Mutex<Option<Instant>>,
    /// Counts the graphs learned that differ from the one before: read
    /// plans that depend on the graph are remembered per version.
    version: std::sync::atomic::AtomicU64,
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
    pub(crate) async fn learn<Conn: DbConn>(&self, conn: &mut Conn) -> diesel::QueryResult<()> {
        let fresh = self
            .at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh {
            return Ok(());
        }
        let cascades = Cascades::from_facts(conn.cascades().await?);
        if let Ok(mut m) = self.graph.write() {
            if *m != cascades {
                self.version
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *m = cascades;
            }
        }
        if let Ok(mut at) = self.at.lock() {
            *at = Some(Instant::now());
        }
        Ok(())
    }

    /// The "all" keys of `tables` and of every table a cascade of the given
    /// kinds, or inheritance (partitions), can reach from them; the global
    /// key alone if any of them has rules (or is a view).
    ///
    /// A table reached through a foreign-key action gets its "cascaded"
    /// key ([`key::cascaded_key`]) rather than its "all" key: every read of
    /// it depends on that key, except a read that reaches it only through
    /// the very key whose action wrote it (see [`Learned::only_writer`]).
    pub(crate) fn table_keys(&self, tables: &[String], kinds: &[Cascade]) -> Vec<Key> {
        // (table, reached through a foreign-key action)
        let mut seen: HashMap<String, bool> = tables.iter().map(|t| (t.clone(), false)).collect();
        let mut queue: Vec<(String, bool)> = tables.iter().map(|t| (t.clone(), false)).collect();
        if let Ok(c) = self.graph.read() {
            while let Some((t, cascaded)) = queue.pop() {
                // Rules fire on the statements cascades run, too.
                if c.ruled.contains(&t) {
                    return vec![key::global_key()];
                }
                for (child, by_key) in c.reached(&t, kinds) {
                    let cascaded = cascaded || by_key;
                    let known = seen.get(child).copied();
                    // A table reached both ways gets the wider "all" key.
                    if known.is_none() || (known == Some(true) && !cascaded) {
                        seen.insert(child.clone(), cascaded);
                        queue.push((child.clone(), cascaded));
                    }
                }
            }
        }
        let mut keys: Vec<Key> = seen
            .iter()
            .map(|(t, cascaded)| {
                if *cascaded {
                    key::cascaded_key(t)
                } else {
                    key::table_key(t)
                }
            })
            .collect();
        keys.sort();
        keys
    }

    /// The version of the graph (see `version`).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the only foreign key whose actions write `child` is the
    /// single-column key `child.child_column -> parent.parent_column`, and
    /// its only action deletes (`ON DELETE CASCADE`): then those writes
    /// remove exactly the child rows of deleted parent rows. A read that
    /// reaches the parent's rows through that key depends on the rows it
    /// returned: a deleted parent it returned bumps its own key, one it did
    /// not return had no child row in its result. An action that moves child
    /// rows to another value (`ON UPDATE CASCADE`, `SET NULL`, `SET
    /// DEFAULT`) can bring rows into the result, so it does not qualify.
    pub(crate) fn only_writer(
        &self,
        child: &str,
        child_column: &str,
        parent: &str,
        parent_column: &str,
    ) -> bool {
        let Ok(c) = self.graph.read() else {
            return false;
        };
        match c.writers.get(child) {
            None => true,
            Some(edges) => edges.iter().all(|k| {
                k.deletes_only
                    && k.child_column.as_deref() == Some(child_column)
                    && k.parent == parent
                    && k.parent_column.as_deref() == Some(parent_column)
            }),
        }
    }

    /// Whether an enforced foreign key guarantees that every row of `child`
    /// whose `child_column` is not null has the row of `parent` whose
    /// `parent_column` holds the same value. False until learned.
    pub(crate) fn enforces(
        &self,
        child: &str,
        child_column: &str,
        parent: &str,
        parent_column: &str,
    ) -> bool {
        let Ok(c) = self.graph.read() else {
            return false;
        };
        let fresh = self
            .at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < MAX_AGE);
        fresh
            && c.references.contains(&(
                child.to_owned(),
                child_column.to_owned(),
                parent.to_owned(),
                parent_column.to_owned(),
            ))
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
    /// The tables one step from `table` by the given kinds or inheritance,
    /// each with whether a foreign-key action reached it.
    fn reached<'a>(&'a self, table: &str, kinds: &[Cascade]) -> Vec<(&'a String, bool)> {
        let mut out: Vec<(&String, bool)> = Vec::new();
        for k in kinds {
            // A truncate empties every referencing table, whatever its key's
            // action: those get their "all" key.
            let (children, by_action) = match k {
                Cascade::Delete => (self.on_delete.get(table), true),
                Cascade::Update => (self.on_update.get(table), true),
                Cascade::Truncate => (self.on_truncate.get(table), false),
                Cascade::Insert => (None, false),
            };
            out.extend(children.into_iter().flatten().map(|c| (c, by_action)));
        }
        out.extend(
            self.inheritance
                .get(table)
                .into_iter()
                .flatten()
                .map(|c| (c, false)),
        );
        out
    }

    /// The graph of what the catalog says.
    fn from_facts(facts: CascadeFacts) -> Cascades {
        let mut cascades = Cascades {
            ruled: facts.ruled.into_iter().collect(),
            ..Cascades::default()
        };
        for (child, parent) in facts.inherits {
            let edges = &mut cascades.inheritance;
            edges.entry(parent.clone()).or_default().push(child.clone());
            edges.entry(child).or_default().push(parent);
        }
        for fk in facts.foreign_keys {
            if let (true, Some((child_column, parent_column))) = (fk.enforced, &fk.columns) {
                cascades.references.insert((
                    fk.child.clone(),
                    child_column.clone(),
                    fk.parent.clone(),
                    parent_column.clone(),
                ));
            }
            if fk.on_delete || fk.on_update {
                let (cc, pc) = match &fk.columns {
                    Some((c, p)) => (Some(c.clone()), Some(p.clone())),
                    None => (None, None),
                };
                cascades
                    .writers
                    .entry(fk.child.clone())
                    .or_default()
                    .push(WritingKey {
                        child_column: cc,
                        parent: fk.parent.clone(),
                        parent_column: pc,
                        deletes_only: fk.delete_cascades && !fk.on_update,
                    });
            }
            let edge = |m: &mut HashMap<String, Vec<String>>| {
                m.entry(fk.parent.clone())
                    .or_default()
                    .push(fk.child.clone());
            };
            edge(&mut cascades.on_truncate);
            if fk.on_delete {
                edge(&mut cascades.on_delete);
            }
            if fk.on_update {
                edge(&mut cascades.on_update);
            }
        }
        cascades
    }
}
