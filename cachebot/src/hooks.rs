//! Pause points for deterministic race tests (internal feature `__test-hooks`).
//!
//! Each classic cache race (a reader storing rows read before a write, an
//! invalidation racing a commit, a generation evicted mid-read) needs one
//! side stopped between two steps while the other runs. With the feature
//! on, the crate calls the installed hook at each [`Point`]; without it the
//! calls compile to nothing. Never enable it in production builds.

use std::sync::{Arc, RwLock};

/// Where a hook fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Point {
    /// A miss has its generation snapshot and is about to query the database.
    ReadSnapshotTaken,
    /// A miss has its rows and is about to store them.
    ReadBeforeStore,
    /// A write through the write API has run its statements (and committed,
    /// outside a transaction) and is about to invalidate.
    WriteBeforeInvalidate,
    /// An instrumented connection saw COMMIT finish and is about to bump.
    CommitBeforeInvalidate,
}

type Hook = Arc<dyn Fn(Point) + Send + Sync>;

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Install `hook` until the returned guard drops. One hook per process: tests
/// that install hooks must not run concurrently with each other.
pub fn install(hook: impl Fn(Point) + Send + Sync + 'static) -> HookGuard {
    if let Ok(mut h) = HOOK.write() {
        *h = Some(Arc::new(hook));
    }
    HookGuard(())
}

/// Removes the hook when dropped.
#[derive(Debug)]
pub struct HookGuard(());

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Ok(mut h) = HOOK.write() {
            *h = None;
        }
    }
}

pub(crate) fn fire(point: Point) {
    let hook = HOOK.read().ok().and_then(|h| h.clone());
    if let Some(hook) = hook {
        hook(point);
    }
}
