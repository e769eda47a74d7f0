//! Typed errors.
//!
//! Reads never return these: a cache failure during a read becomes a
//! database read (see the crate docs). They surface where the caller can
//! act on them: building a cache with bad settings, and the explicit
//! invalidation API.

use std::fmt;

/// An error talking to a [`Store`](crate::store::Store).
#[derive(Debug, thiserror::Error)]
#[error("{store} store: {kind}: {message}")]
pub struct StoreError {
    /// Which store ("memcached", "in-process").
    pub store: &'static str,
    /// What went wrong, broadly.
    pub kind: StoreErrorKind,
    /// Details from the store client.
    pub message: String,
}

impl StoreError {
    /// Build a store error.
    pub fn new(
        store: &'static str,
        kind: StoreErrorKind,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            store,
            kind,
            message: message.into(),
        }
    }
}

/// The broad class of a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The server could not be reached or the connection broke.
    Unavailable,
    /// The server did not answer within the configured timeout.
    Timeout,
    /// The server answered something the client did not expect.
    Protocol,
    /// The store refused the request (too large, bad key).
    Rejected,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Protocol => "protocol error",
            StoreErrorKind::Rejected => "rejected",
        })
    }
}

/// An invalid setting, reported when a cache or store is built.
#[derive(Debug, thiserror::Error)]
#[error("invalid cachebot configuration: {0}")]
pub struct ConfigError(pub String);

/// An error encoding or decoding a cached value.
#[derive(Debug, thiserror::Error)]
#[error("{codec} codec: {message}")]
pub struct CodecError {
    /// Which codec.
    pub codec: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Errors from cachebot's own API (never from a cached read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Diesel could not render the query or a value.
    #[error("could not render the query: {0}")]
    Render(#[from] diesel::result::Error),
    /// The query names no table the crate could find.
    #[error("the statement names no table: {0}")]
    NoTable(String),
    /// An explicit invalidation before the cache learned which database it
    /// caches: keys are scoped to a database, learned from a connection.
    #[error(
        "this cache has not seen a connection yet, so it does not know which database to \
         invalidate: instrument a connection first (`cache.instrument(&mut conn)` or the pool \
         customizer)"
    )]
    NoDatabase,
    /// A write through the crate on a connection whose instrumentation is
    /// not the crate's: its writes would not invalidate.
    #[error(
        "the connection's instrumentation is not cachebot's (was `set_instrumentation` called \
         after `Cache::instrument`?): chain your instrumentation with \
         `cache.instrumentation().chain(yours)` and install that instead"
    )]
    NotInstrumented,
}
