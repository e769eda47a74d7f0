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
//! `batch_execute` is followed too, and every statement of a batch counts,
//! in order: `UPDATE a; BEGIN; UPDATE b; COMMIT; UPDATE c` bumps `a` and `b`
//! after the batch (PostgreSQL runs a multi-statement batch as one implicit
//! transaction, which a BEGIN inside it turns into the explicit one), and
//! `c` too (the implicit transaction after the COMMIT ends with the batch).
//!
//! A batch that fails stops at a statement the instrumentation is not told.
//! Every failure point is considered: whatever the batch may have written
//! before it is bumped at once, whatever may still commit later stays
//! deferred, and when the failure may have left the server either idle or in
//! an aborted transaction, the tracker says "in a transaction" (reads
//! bypass the cache) until the next statement that succeeds tells which: an
//! aborted transaction accepts nothing but COMMIT, ROLLBACK, ROLLBACK TO and
//! PREPARE TRANSACTION.

use std::collections::HashSet;

use crate::extract::{leading_tokens, Lead};
use crate::store::Key;

/// A transaction-control statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// `BEGIN`, `START TRANSACTION` (any modes, `WORK`, `TRANSACTION`).
    Begin,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
    /// `COMMIT`/`END` [`AND [NO] CHAIN`]; with `chain` a new transaction opens at once.
    Commit {
        chain: bool,
    },
    /// `ROLLBACK`/`ABORT` [`AND [NO] CHAIN`].
    Rollback {
        chain: bool,
    },
    /// `PREPARE TRANSACTION 'id'`: the transaction leaves the session uncommitted (a later
    /// `COMMIT PREPARED`, maybe on another connection, commits it).
    Prepare,
    /// `COMMIT PREPARED 'id'`: commits writes this connection may never have seen.
    CommitPrepared,
    /// `ROLLBACK PREPARED 'id'`.
    RollbackPrepared,
}

impl Control {
    /// Whether PostgreSQL runs it in an aborted transaction (`IsTransactionExitStmt`).
    fn runs_when_aborted(&self) -> bool {
        matches!(
            self,
            Control::Commit { .. }
                | Control::Rollback { .. }
                | Control::RollbackTo(_)
                | Control::Prepare
        )
    }

    /// Whether it fails outside a transaction block.
    fn needs_a_block(&self) -> bool {
        matches!(
            self,
            Control::Savepoint(_)
                | Control::Release(_)
                | Control::RollbackTo(_)
                | Control::Commit { chain: true }
                | Control::Rollback { chain: true }
        )
    }
}

/// Recognise a transaction-control statement from its text (one statement;
/// comments, case and the noise words `WORK`/`TRANSACTION` are ignored).
pub(crate) fn control(sql: &str) -> Option<Control> {
    let t = leading_tokens(sql, 8);
    let word = |i: usize| match t.get(i) {
        Some(Lead::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    // Savepoint names fold like identifiers: unquoted lowercased, quoted as written.
    let name = |i: usize| match t.get(i) {
        Some(Lead::Word(w)) => Some(w.clone()),
        Some(Lead::Quoted(q)) => Some(q.clone()),
        _ => None,
    };
    // `SAVEPOINT` is optional before the name (and could be the name itself).
    let savepoint_name = |i: usize| {
        if word(i) == Some("savepoint") {
            name(i + 1).or_else(|| name(i))
        } else {
            name(i)
        }
    };
    let noise = |i: usize| {
        if matches!(word(i), Some("work" | "transaction")) {
            i + 1
        } else {
            i
        }
    };
    let chain = |i: usize| word(i) == Some("and") && word(i + 1) == Some("chain");
    match word(0)? {
        "begin" => Some(Control::Begin),
        "start" if word(1) == Some("transaction") => Some(Control::Begin),
        "savepoint" => Some(Control::Savepoint(name(1)?)),
        "release" => Some(Control::Release(savepoint_name(1)?)),
        "commit" if word(1) == Some("prepared") => Some(Control::CommitPrepared),
        "rollback" if word(1) == Some("prepared") => Some(Control::RollbackPrepared),
        "prepare" if word(1) == Some("transaction") => Some(Control::Prepare),
        "commit" | "end" => Some(Control::Commit {
            chain: chain(noise(1)),
        }),
        "rollback" | "abort" => {
            let i = noise(1);
            if word(i) == Some("to") {
                Some(Control::RollbackTo(savepoint_name(i + 1)?))
            } else {
                Some(Control::Rollback { chain: chain(i) })
            }
        }
        _ => None,
    }
}

/// One statement of a batch, as the tracker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Control(Control),
    /// A statement and the keys its writes bump (none for a read).
    Write(Vec<Key>),
}

#[derive(Clone, Debug, Default)]
struct Level {
    savepoint: Option<String>,
    keys: HashSet<Key>,
}

/// Pending invalidations of one connection.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    levels: Vec<Level>,
    /// After a failed batch: the server may be idle as well as in the
    /// (aborted) transaction `levels` describes. Reads bypass the cache
    /// until a statement that succeeds tells which.
    maybe_idle: bool,
}

/// The simulated state of a connection while a batch runs.
#[derive(Clone, Debug, Default)]
struct Sim {
    levels: Vec<Level>,
    /// Writes of the batch's implicit transaction (outside any explicit one).
    implicit: HashSet<Key>,
    /// Keys committed so far.
    bumps: HashSet<Key>,
}

impl Sim {
    fn drain(&mut self) {
        for level in self.levels.drain(..) {
            self.bumps.extend(level.keys);
        }
    }

    /// Run one statement that succeeded.
    fn step(&mut self, step: &Step) {
        let in_tx = !self.levels.is_empty();
        match step {
            Step::Write(keys) => match self.levels.last_mut() {
                Some(level) => level.keys.extend(keys.iter().copied()),
                None => self.implicit.extend(keys.iter().copied()),
            },
            Step::Control(ctl) => match ctl {
                // PostgreSQL ignores a BEGIN inside a transaction (with a warning).
                Control::Begin if in_tx => {}
                // The batch's implicit transaction becomes the explicit one.
                Control::Begin => self.levels.push(Level {
                    savepoint: None,
                    keys: std::mem::take(&mut self.implicit),
                }),
                Control::Savepoint(name) if in_tx => self.levels.push(Level {
                    savepoint: Some(name.clone()),
                    keys: HashSet::new(),
                }),
                Control::Savepoint(_) => {}
                Control::Release(name) => {
                    // Releasing a savepoint also releases every savepoint opened after it.
                    if let Some(at) = position(&self.levels, name) {
                        let merged: Vec<Key> =
                            self.levels.drain(at..).flat_map(|l| l.keys).collect();
                        if let Some(parent) = self.levels.last_mut() {
                            parent.keys.extend(merged);
                        }
                    }
                }
                Control::RollbackTo(name) => {
                    // The savepoint stays open, emptied; later ones are gone.
                    if let Some(at) = position(&self.levels, name) {
                        self.levels.truncate(at + 1);
                        if let Some(level) = self.levels.last_mut() {
                            level.keys.clear();
                        }
                    }
                }
                Control::Commit { chain } => {
                    if in_tx {
                        self.drain();
                    } else {
                        // A COMMIT in the batch's implicit transaction commits it.
                        self.bumps.extend(self.implicit.drain());
                    }
                    if *chain && in_tx {
                        self.levels.push(Level::default());
                    }
                }
                Control::Rollback { chain } => {
                    self.levels.clear();
                    self.implicit.clear();
                    if *chain && in_tx {
                        self.levels.push(Level::default());
                    }
                }
                // The transaction leaves the session; its fate is decided by a
                // COMMIT PREPARED that bumps everything. Bumping its keys now as
                // well costs little.
                Control::Prepare => self.drain(),
                // Handled as writes by the caller.
                Control::CommitPrepared | Control::RollbackPrepared => {}
            },
        }
    }

    /// The state if the statement `step` failed here: the transaction is
    /// aborted (still open), or the implicit one rolled back. A failed COMMIT,
    /// ROLLBACK or PREPARE ends the transaction with its outcome in doubt:
    /// bump what it wrote.
    fn fail(&self, step: &Step) -> Sim {
        let mut s = self.clone();
        let ends = matches!(
            step,
            Step::Control(Control::Commit { .. } | Control::Rollback { .. } | Control::Prepare)
        );
        if ends {
            s.drain();
            s.bumps.extend(s.implicit.drain());
        }
        if s.levels.is_empty() {
            s.implicit.clear();
        }
        s
    }
}

fn position(levels: &[Level], savepoint: &str) -> Option<usize> {
    levels
        .iter()
        .rposition(|l| l.savepoint.as_deref() == Some(savepoint))
}

/// The possible end states of a batch, merged.
#[derive(Default)]
struct Outcome {
    bumps: HashSet<Key>,
    idle: bool,
    /// The open transaction's levels, merged over the possible end states
    /// (keys united per level, savepoint names of the deepest).
    open: Option<Vec<Level>>,
}

impl Outcome {
    fn add(&mut self, end: Sim) {
        self.bumps.extend(end.bumps);
        // Whatever an implicit transaction still holds commits with the batch.
        self.bumps.extend(end.implicit);
        if end.levels.is_empty() {
            self.idle = true;
            return;
        }
        let merged = self.open.get_or_insert_with(Vec::new);
        for (i, level) in end.levels.into_iter().enumerate() {
            match merged.get_mut(i) {
                Some(m) => {
                    m.keys.extend(level.keys);
                    if level.savepoint.is_some() {
                        m.savepoint = level.savepoint;
                    }
                }
                None => merged.push(level),
            }
        }
    }
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

    /// A statement that is neither control nor a write succeeded (or the
    /// crate's own write did, whose keys it hands to [`Tracker::defer`]):
    /// after a failed batch, that proves the server idle.
    pub(crate) fn succeeded(&mut self) {
        if std::mem::take(&mut self.maybe_idle) {
            self.levels.clear();
        }
    }

    /// Apply one control statement that finished (`ok`) or failed. Returns
    /// the keys to bump now.
    #[cfg(test)]
    pub(crate) fn apply(&mut self, ctl: Control, ok: bool) -> Vec<Key> {
        self.batch(&[Step::Control(ctl)], ok)
    }

    /// Apply the statements of one batch (or one statement), in order, that
    /// all finished (`ok`), or of which one failed (which, the caller does
    /// not know). Returns the keys to bump now.
    pub(crate) fn batch(&mut self, steps: &[Step], ok: bool) -> Vec<Key> {
        if steps.is_empty() {
            return Vec::new();
        }
        let levels = std::mem::take(&mut self.levels);
        let mut starts: Vec<Vec<Level>> = Vec::with_capacity(2);
        if self.maybe_idle {
            // Idle, or in the aborted transaction `levels`. A batch that
            // succeeded rules out the states its first statement fails in.
            let first = match &steps[0] {
                Step::Control(c) => Some(c),
                Step::Write(_) => None,
            };
            let idle_ok = !ok || !first.is_some_and(Control::needs_a_block);
            let aborted_ok = !ok || first.is_some_and(Control::runs_when_aborted);
            if idle_ok || !aborted_ok {
                starts.push(Vec::new());
            }
            if aborted_ok || !idle_ok {
                starts.push(levels);
            }
        } else {
            starts.push(levels);
        }
        let mut out = Outcome::default();
        for levels in starts {
            let mut sim = Sim {
                levels,
                ..Sim::default()
            };
            if ok {
                for step in steps {
                    sim.step(step);
                }
                out.add(sim);
                continue;
            }
            // Nothing ran (a syntax error anywhere stops the whole batch), or
            // statement k failed after the ones before it ran.
            out.add(sim.clone());
            for step in steps {
                out.add(sim.fail(step));
                sim.step(step);
            }
        }
        if !ok {
            // Every statement but the last may have run: bump whatever they
            // could have written, in case the model above is wrong.
            for step in &steps[..steps.len() - 1] {
                if let Step::Write(keys) = step {
                    out.bumps.extend(keys.iter().copied());
                }
            }
        }
        self.maybe_idle = out.idle && out.open.is_some();
        self.levels = out.open.unwrap_or_default();
        out.bumps.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u128) -> Key {
        Key::generation(n)
    }

    const COMMIT: Control = Control::Commit { chain: false };
    const ROLLBACK: Control = Control::Rollback { chain: false };

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
        assert_eq!(control("ROLLBACK"), Some(ROLLBACK));
        assert_eq!(control("COMMIT"), Some(COMMIT));
        assert_eq!(control("end;"), Some(COMMIT));
        for other in [
            "",
            "SELECT 1",
            "UPDATE begin SET x = 1",
            "savepoint",
            "release",
            "PREPARE s AS SELECT 1",
        ] {
            assert_eq!(control(other), None, "{other}");
        }
    }

    #[test]
    fn recognises_every_spelling() {
        let chain = Control::Commit { chain: true };
        for (sql, want) in [
            ("BEGIN WORK", Control::Begin),
            (
                "begin transaction isolation level read committed",
                Control::Begin,
            ),
            (
                "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
                Control::Begin,
            ),
            ("/* c */ -- line\n BEGIN", Control::Begin),
            ("COMMIT WORK", COMMIT),
            ("COMMIT TRANSACTION AND NO CHAIN", COMMIT),
            ("COMMIT AND CHAIN", chain.clone()),
            ("end transaction and chain", chain),
            ("ABORT", ROLLBACK),
            ("ROLLBACK AND CHAIN", Control::Rollback { chain: true }),
            ("ABORT WORK AND CHAIN", Control::Rollback { chain: true }),
            (
                "ROLLBACK WORK TO SAVEPOINT s",
                Control::RollbackTo("s".into()),
            ),
            ("ROLLBACK TRANSACTION TO s", Control::RollbackTo("s".into())),
            (
                "SAVEPOINT \"Mixed Case\"",
                Control::Savepoint("Mixed Case".into()),
            ),
            ("SAVEPOINT Folded", Control::Savepoint("folded".into())),
            (
                "RELEASE SAVEPOINT \"Mixed Case\"",
                Control::Release("Mixed Case".into()),
            ),
            ("RELEASE savepoint", Control::Release("savepoint".into())),
            ("PREPARE TRANSACTION 'gid'", Control::Prepare),
            ("COMMIT PREPARED 'gid'", Control::CommitPrepared),
            ("ROLLBACK PREPARED 'gid'", Control::RollbackPrepared),
        ] {
            assert_eq!(control(sql), Some(want), "{sql}");
        }
    }

    fn w(keys: &[u128]) -> Step {
        Step::Write(keys.iter().map(|&n| k(n)).collect())
    }

    fn c(ctl: Control) -> Step {
        Step::Control(ctl)
    }

    #[test]
    fn a_batch_changes_the_state_as_it_goes() {
        // Before BEGIN: part of the transaction BEGIN opens (PostgreSQL folds the
        // batch's implicit transaction into it); nothing bumps before COMMIT.
        let mut t = Tracker::default();
        assert_eq!(
            t.batch(&[w(&[1]), c(Control::Begin), w(&[2])], true),
            vec![]
        );
        assert!(t.in_transaction());
        assert_eq!(sorted(t.batch(&[c(COMMIT)], true)), vec![k(1), k(2)]);
        assert!(!t.in_transaction());

        // BEGIN; ...; COMMIT in one batch: bumped after it, nothing left open.
        let b = [c(Control::Begin), w(&[1]), c(COMMIT), w(&[2])];
        assert_eq!(sorted(t.batch(&b, true)), vec![k(1), k(2)]);
        assert!(!t.in_transaction());

        // A batch that opens a transaction and leaves it open.
        let b = [c(Control::Begin), w(&[3])];
        assert_eq!(t.batch(&b, true), vec![]);
        assert!(t.in_transaction());
        // COMMIT AND CHAIN ends it and opens the next.
        assert_eq!(
            t.batch(&[c(Control::Commit { chain: true }), w(&[4])], true),
            vec![k(3)]
        );
        assert!(t.in_transaction());
        assert_eq!(
            t.batch(&[c(Control::Rollback { chain: true })], true),
            vec![]
        );
        assert!(t.in_transaction());
        assert_eq!(t.batch(&[w(&[5]), c(COMMIT)], true), vec![k(5)]);
        assert!(!t.in_transaction());

        // A COMMIT in an implicit transaction commits it; a ROLLBACK drops it.
        assert_eq!(t.batch(&[w(&[6]), c(ROLLBACK), w(&[7])], true), vec![k(7)]);
        assert!(!t.in_transaction());
    }

    #[test]
    fn savepoints_inside_a_batch() {
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin)], true);
        let b = [
            c(Control::Savepoint("s1".into())),
            w(&[1]),
            c(Control::RollbackTo("s1".into())),
            w(&[2]),
            c(Control::Release("s1".into())),
        ];
        assert_eq!(t.batch(&b, true), vec![]);
        assert_eq!(t.batch(&[c(COMMIT)], true), vec![k(2)]);
    }

    #[test]
    fn a_failed_batch_outside_a_transaction() {
        // Single statement: it changed nothing.
        let mut t = Tracker::default();
        assert_eq!(t.batch(&[w(&[1])], false), vec![]);
        assert!(!t.in_transaction());
        // Several: what ran before the failure may have committed.
        assert_eq!(sorted(t.batch(&[w(&[1]), w(&[2])], false)), vec![k(1)]);
        assert!(!t.in_transaction());
        let b = [w(&[1]), c(COMMIT), w(&[2]), w(&[3])];
        assert_eq!(sorted(t.batch(&b, false)), vec![k(1), k(2)]);
        assert!(!t.in_transaction());
    }

    #[test]
    fn a_failed_batch_inside_a_transaction_stays_in_it() {
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin), w(&[1])], true);
        assert_eq!(sorted(t.batch(&[w(&[2]), w(&[3])], false)), vec![k(2)]);
        assert!(t.in_transaction());
        // The writes may still commit (after a ROLLBACK TO): still deferred.
        assert_eq!(sorted(t.batch(&[c(COMMIT)], true)), vec![k(1), k(2)]);
    }

    #[test]
    fn a_failed_batch_that_opened_a_transaction_is_in_doubt_until_the_next_statement() {
        for (next, ok, in_tx) in [
            (w(&[]), true, false),           // a read succeeded: the server is idle
            (w(&[9]), false, true),          // failed again: still unknown
            (c(ROLLBACK), true, false),      // idle either way
            (c(Control::Begin), true, true), // it was idle; now in a transaction
            (c(Control::RollbackTo("s".into())), true, true), // it was in one
        ] {
            let mut t = Tracker::default();
            let b = [
                c(Control::Begin),
                c(Control::Savepoint("s".into())),
                w(&[1]),
                w(&[2]),
            ];
            // Failed before BEGIN (idle) or after it (an aborted transaction).
            assert_eq!(sorted(t.batch(&b, false)), vec![k(1)]);
            assert!(t.in_transaction(), "reads bypass while in doubt");
            t.batch(std::slice::from_ref(&next), ok);
            assert_eq!(t.in_transaction(), in_tx, "{next:?} {ok}");
        }
        // A successful write proves the server idle: bumped at once.
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin), w(&[1]), w(&[2])], false);
        assert_eq!(t.batch(&[w(&[3])], true), vec![k(3)]);
        assert!(!t.in_transaction());
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin), w(&[1]), w(&[2])], false);
        t.succeeded();
        assert!(!t.in_transaction());
    }

    #[test]
    fn prepare_transaction_ends_the_transaction() {
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin), w(&[1])], true);
        // Its writes are bumped (COMMIT PREPARED, a write of everything to
        // the instrumentation, bumps again when it commits them).
        assert_eq!(t.batch(&[c(Control::Prepare)], true), vec![k(1)]);
        assert!(!t.in_transaction());
        // Failed: it became a ROLLBACK; or it never ran: in doubt.
        t.batch(&[c(Control::Begin), w(&[2])], true);
        assert_eq!(t.batch(&[c(Control::Prepare)], false), vec![k(2)]);
        assert!(t.in_transaction());
        assert_eq!(t.batch(&[w(&[3])], true), vec![k(3)]);
        assert!(!t.in_transaction());
    }

    #[test]
    fn commit_inside_a_failed_batch_may_have_committed() {
        let mut t = Tracker::default();
        t.batch(&[c(Control::Begin)], true);
        let b = [w(&[1]), c(COMMIT), c(Control::Begin), w(&[2]), w(&[3])];
        let bumped = sorted(t.batch(&b, false));
        assert_eq!(bumped, vec![k(1), k(2)]);
        // Still in the first transaction (failed before COMMIT) or in the second.
        assert!(t.in_transaction());
    }

    #[test]
    fn outside_a_transaction_nothing_is_deferred() {
        let mut t = Tracker::default();
        assert!(!t.defer([k(1)]));
        assert_eq!(t.apply(COMMIT, true), vec![]);
    }

    #[test]
    fn commit_bumps_everything_once_rollback_nothing() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        assert!(t.defer([k(1), k(2)]));
        t.defer([k(2)]);
        assert_eq!(sorted(t.apply(COMMIT, true)), vec![k(1), k(2)]);
        assert!(!t.in_transaction());
        t.apply(Control::Begin, true);
        t.defer([k(3)]);
        assert_eq!(t.apply(ROLLBACK, true), vec![]);
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
        assert_eq!(sorted(t.apply(COMMIT, true)), vec![k(1), k(2), k(4)]);
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
        assert_eq!(t.apply(COMMIT, true), vec![]);
    }

    #[test]
    fn a_failed_commit_still_bumps() {
        let mut t = Tracker::default();
        t.apply(Control::Begin, true);
        t.defer([k(1)]);
        assert_eq!(t.apply(COMMIT, false), vec![k(1)]);
        // Failed (the transaction is over) or never ran (a syntax error: the
        // transaction is aborted): in doubt until the next statement.
        assert!(t.in_transaction());
        t.succeeded();
        assert!(!t.in_transaction());
        assert_eq!(t.apply(Control::Begin, false), vec![]);
        assert!(!t.in_transaction());
    }
}
