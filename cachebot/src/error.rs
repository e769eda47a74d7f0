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
///
/// ```
/// use std::time::Duration;
///
/// let err = cachebot::Cache::builder().ttl(Duration::ZERO).build().unwrap_err();
/// assert!(err.to_string().contains("ttl"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("invalid cachebot setting `{setting}`: {problem}")]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConfigError {
    /// `setting` (as the builder method is named) is wrong: `problem` says
    /// how, and what would be accepted.
    pub fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            problem: problem.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ConfigError {
        self.source = Some(Box::new(source));
        self
    }

    /// The setting that is wrong, named like the builder method that sets it.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

/// An error encoding or decoding a cached value.
#[derive(Debug, thiserror::Error)]
#[error("{codec} codec: {message}")]
pub struct CodecError {
    /// Which codec.
    pub codec: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Errors from cachebot's own API: building a cache, instrumenting a
/// connection, explicit invalidation and the write API (never from a cached
/// read, which falls back to the database instead).
///
/// Inside Diesel's `QueryResult` (the write API, `keyed_on`), the crate's
/// own errors arrive as `diesel::result::Error::QueryBuilderError` holding
/// this type: downcast it to tell them apart.
///
/// ```
/// fn setup() -> Result<cachebot::Cache, cachebot::Error> {
///     let cache = cachebot::Cache::builder().build()?;
///     Ok(cache)
/// }
/// # setup().unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Diesel could not render the query or a value, or the database failed.
    #[error("diesel: {0}")]
    Database(#[from] diesel::result::Error),
    /// An argument is not what the call expects.
    #[error("cachebot: {0}")]
    Usage(#[from] UsageError),
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
    /// The connection reaches another database than the one this cache
    /// was bound to by its first connection.
    #[error(
        "this connection reaches another database than the one this cache caches: use one \
         Cache per database"
    )]
    OtherDatabase,
    /// A write through the crate on a connection whose instrumentation is
    /// not the crate's: its writes would not invalidate.
    #[error(
        "the connection's instrumentation is not cachebot's (was `set_instrumentation` called \
         after `Cache::instrument`?): chain your instrumentation with \
         `cache.instrumentation().chain(yours)` and install that instead"
    )]
    NotInstrumented,
    /// A write inside a transaction on a connection this cache did not
    /// instrument: its invalidation could not wait for COMMIT.
    #[error(
        "a write inside a transaction needs the connection instrumented by this cache \
         (`cache.instrument(&mut conn)` before the transaction) so that invalidation waits \
         for COMMIT"
    )]
    NotInstrumentedInTransaction,
}

/// A call whose arguments the crate cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// `keyed_on` or `invalidate_value` was given something that is not a
    /// column (or a tuple of columns).
    #[error("{call} expects columns (a column or a tuple of columns), got `{got}`")]
    NotAColumn {
        /// The method called.
        call: &'static str,
        /// What the argument rendered to.
        got: String,
    },
    /// `invalidate_value` was given a value that is not one bind parameter.
    #[error("expected one value, got an expression that renders {0} bind parameters")]
    NotOneValue(usize),
}

impl Error {
    /// This error inside Diesel's error type, for APIs that return
    /// `QueryResult` (downcast `QueryBuilderError`'s box to get it back).
    pub(crate) fn into_diesel(self) -> diesel::result::Error {
        match self {
            Error::Database(e) => e,
            other => diesel::result::Error::QueryBuilderError(Box::new(other)),
        }
    }
}
