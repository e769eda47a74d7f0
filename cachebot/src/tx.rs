//! Deferring invalidations until the transaction that caused them commits.
//!
//! Bumping a generation before COMMIT would let a reader cache the old rows
//! after the bump and keep serving them once the commit lands. So, inside a
//! transaction, the keys to bump are kept per level (the transaction, then
//! one level per savepoint) and bumped only after the outermost COMMIT
//! statement has *finished* (Diesel's own commit event fires before COMMIT
//! runs). RELEASE merges a savepoint's keys into its parent, ROLLBACK TO
//! drops them, ROLLBACK drops everything.
//!
//! The tracker follows the statements themselves rather than Diesel's
//! transaction events, so a transaction opened with a raw `BEGIN` through
//! `batch_execute` is followed too.

use std::collections::HashSet;

use crate::store::Key;

/// A transaction-control statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Begin,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
    Commit,
    Rollback,
}

/// Recognise a transaction-control statement from its text.
pub(crate) fn control(sql: &str) -> Option<Control> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_lowercase)
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str);
    let name = |i: usize| {
        sql.split_whitespace()
            .nth(i)
            .map(|n| n.trim_end_matches(';').to_owned())
    };
    match (w(0)?, w(1), w(2)) {
        ("begin", _, _) | ("start", Some("transaction"), _) => Some(Control::Begin),
        ("savepoint", Some(_), _) => Some(Control::Savepoint(name(1)?)),
        ("release", Some("savepoint"), Some(_)) => Some(Control::Release(name(2)?)),
        ("release", Some(_), _) => Some(Control::Release(name(1)?)),
        ("rollback" | "abort", Some("to"), Some("savepoint")) => {
            Some(Control::RollbackTo(name(3)?))
        }
        ("rollback" | "abort", Some("to"), Some(_)) => Some(Control::RollbackTo(name(2)?)),
        ("rollback" | "abort", _, _) => Some(Control::Rollback),
        ("commit" | "end", _, _) => Some(Control::Commit),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Level {
    savepoint: Option<String>,
    keys: HashSet<Key>,
}

/// Pending invalidations of one connection.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    levels: Vec<Level>,
}

impl Tracker {
    pub(crate) fn in_transaction(&self) -> bool {
        !self.levels.is_empty()
    }

    /// Keys to bump when the current transaction commits; `false` when no
    /// transaction is open (the caller bumps at once).
    pub(crate) fn defer(&mut self, keys: impl IntoIterator<Item = Key>) -> bool {
        match self.levels.last_mut() {
            Some(level) => {
                level.keys.extend(keys);
                true
            }
            None => false,
        }
    }

    /// Apply a control statement that finished (`ok`) or failed. Returns the
    /// keys to bump now.
    pub(crate) fn apply(&mut self, ctl: Control, ok: bool) -> Vec<Key> {
        if !ok {
            // A failed COMMIT or ROLLBACK leaves the outcome of the
            // transaction in doubt: bump what it wrote (over-invalidation is
            // a cost, staleness a bug). A failed BEGIN or SAVEPOINT changed
            // nothing.
            return match ctl {
                Control::Commit
                | Control::Rollback
                | Control::Release(_)
                | Control::RollbackTo(_) => self.drain(),
                Control::Begin | Control::Savepoint(_) => Vec::new(),
            };
        }
        match ctl {
            // PostgreSQL ignores a BEGIN inside a transaction (with a warning).
            Control::Begin if self.in_transaction() => Vec::new(),
            Control::Begin => {
                self.levels.push(Level::default());
                Vec::new()
            }
            Control::Savepoint(name) if self.in_transaction() => {
                self.levels.push(Level {
                    savepoint: Some(name),
                    keys: HashSet::new(),
                });
                Vec::new()
            }
            Control::Savepoint(_) => Vec::new(),
            Control::Release(name) => {
                // Releasing a savepoint also releases every savepoint opened after it.
                if let Some(at) = self.position(&name) {
                    let merged: Vec<Key> = self.levels.drain(at..).flat_map(|l| l.keys).collect();
                    if let Some(parent) = self.levels.last_mut() {
                        parent.keys.extend(merged);
                    }
                }
                Vec::new()
            }
            Control::RollbackTo(name) => {
                // The savepoint stays open, emptied; later ones are gone.
                if let Some(at) = self.position(&name) {
                    self.levels.truncate(at + 1);
                    if let Some(level) = self.levels.last_mut() {
                        level.keys.clear();
                    }
                }
                Vec::new()
            }
            Control::Commit => self.drain(),
            Control::Rollback => {
                self.levels.clear();
                Vec::new()
            }
        }
    }

    fn position(&self, savepoint: &str) -> Option<usize> {
        self.levels.iter().rposition(|l| {
            l.savepoint
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(savepoint))
        })
    }

    fn drain(&mut self) -> Vec<Key> {
        let mut all: HashSet<Key> = HashSet::new();
        for level in self.levels.drain(..) {
            all.extend(level.keys);
        }
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u128) -> Key {
        Key::generation(n)
    }

    fn sorted(mut v: Vec<Key>) -> Vec<Key> {
        v.sort();
        v
    }

    #[test]
    fn recognises_control_statements() {
        assert_eq!(control("BEGIN"), Some(Control::Begin));
        assert_eq!(
            control("  begin isolation level serializable;"),
            Some(Control::Begin)
        );
        assert_eq!(control("START TRANSACTION READ ONLY"), Some(Control::Begin));
        assert_eq!(
            control("SAVEPOINT diesel_savepoint_1"),
            Some(Control::Savepoint("diesel_savepoint_1".into()))
        );
        assert_eq!(
            control("RELEASE SAVEPOINT sp"),
            Some(Control::Release("sp".into()))
        );
        assert_eq!(control("release sp;"), Some(Control::Release("sp".into())));
        assert_eq!(
            control("ROLLBACK TO SAVEPOINT sp"),
            Some(Control::RollbackTo("sp".into()))
        );
        assert_eq!(
            control("rollback to sp"),
            Some(Control::RollbackTo("sp".into()))
        );
        assert_eq!(control("ROLLBACK"), Some(Control::Rollback));
        assert_eq!(control("COMMIT"), Some(Control::Commit));
        assert_eq!(control("end;"), Some(Control::Commit));
        for other in [
            "",
            "SELECT 1",
            "UPDATE begin SET x = 1",
            "savepoint",
            "release",
        ] {
            assert_eq!(control(other), None, "{other}");
        }
    }

    #[test]
    fn outside_a_transaction_nothing_is_deferred() {
        let mut t = Tracker::default();
        assert!(!t.defer([k(1)]));
        assert_eq!(t.apply(Control::Commit, true), vec![]);
    }

    #[test]
    fn commit_bumps_everything_once_rollback_nothing() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        assert!(t.defer([k(1), k(2)]));
        t.defer([k(2)]);
        assert_eq!(sorted(t.apply(Control::Commit, true)), vec![k(1), k(2)]);
        assert!(!t.in_transaction());
        t.apply(Control::Begin, true);
        t.defer([k(3)]);
        assert_eq!(t.apply(Control::Rollback, true), vec![]);
        assert!(!t.in_transaction());
    }

    #[test]
    fn savepoints_merge_on_release_and_drop_on_rollback() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        t.defer([k(1)]);
        t.apply(Control::Savepoint("a".into()), true);
        t.defer([k(2)]);
        t.apply(Control::Savepoint("b".into()), true);
        t.defer([k(3)]);
        t.apply(Control::RollbackTo("b".into()), true);
        t.defer([k(4)]);
        t.apply(Control::Release("a".into()), true); // releases b too
        assert_eq!(
            sorted(t.apply(Control::Commit, true)),
            vec![k(1), k(2), k(4)]
        );
    }

    #[test]
    fn rollback_to_an_outer_savepoint_drops_inner_ones() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        t.apply(Control::Savepoint("a".into()), true);
        t.defer([k(1)]);
        t.apply(Control::Savepoint("b".into()), true);
        t.defer([k(2)]);
        t.apply(Control::RollbackTo("a".into()), true);
        assert_eq!(t.apply(Control::Commit, true), vec![]);
    }

    #[test]
    fn a_failed_commit_still_bumps() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        t.defer([k(1)]);
        assert_eq!(t.apply(Control::Commit, false), vec![k(1)]);
        assert!(!t.in_transaction());
        assert_eq!(t.apply(Control::Begin, false), vec![]);
        assert!(!t.in_transaction());
    }
}
