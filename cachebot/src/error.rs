//! Typed errors.
//!
//! Reads never return these: a cache failure during a read becomes a
//! database read (see the crate docs). They surface where the caller can
//! act on them: building a cache with bad settings, and the explicit
//! invalidation API.

use std::fmt;

/// The underlying cause of a [`StoreError`] or [`CodecError`].
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error talking to a [`Store`](crate::store::Store).
///
/// It says which store failed, how ([`kind`](Self::kind)) and what the
/// store was doing; the error that caused it (an I/O error, the memcached
/// client's error) is its [`source`](std::error::Error::source).
///
/// A [`Store`](crate::store::Store) implemented outside the crate builds
/// its errors with [`new`](Self::new) and [`with_source`](Self::with_source):
///
/// ```
/// use cachebot::{StoreError, StoreErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let error = StoreError::new("redis", StoreErrorKind::Unavailable, "fetch from 10.0.0.7:6379")
///     .with_source(io);
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// assert_eq!(error.to_string(), "redis store: unavailable: fetch from 10.0.0.7:6379");
/// assert!(std::error::Error::source(&error).is_some());
/// ```
#[derive(Debug)]
pub struct StoreError {
    store: &'static str,
    kind: StoreErrorKind,
    message: String,
    source: Option<Source>,
}

impl StoreError {
    /// An error of `store` ("memcached", "in-process") of the given kind;
    /// `message` says what the store was doing and, where it can, what to
    /// check.
    pub fn new(
        store: &'static str,
        kind: StoreErrorKind,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            store,
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> StoreError {
        self.source = Some(source.into());
        self
    }

    /// Which store ("memcached", "in-process").
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// What went wrong, broadly.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// What the store was doing, without the source's own message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} store: {}: {}", self.store, self.kind, self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
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
///
/// Reads never surface it: an entry that does not decode is a miss, and a
/// result that does not encode is served and not cached (both traced). The
/// codec's own error is the [`source`](std::error::Error::source).
///
/// A [`Codec`](crate::codec::Codec) implemented outside the crate builds
/// its errors with [`new`](Self::new) and [`with_source`](Self::with_source).
#[derive(Debug)]
pub struct CodecError {
    codec: &'static str,
    message: String,
    source: Option<Source>,
}

impl CodecError {
    /// An error of the codec named `codec`; `message` says what failed.
    pub fn new(codec: &'static str, message: impl Into<String>) -> CodecError {
        CodecError {
            codec,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (the serializer's own error).
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> CodecError {
        self.source = Some(source.into());
        self
    }

    /// Which codec (its [`Codec::NAME`](crate::codec::Codec::NAME)).
    pub fn codec(&self) -> &'static str {
        self.codec
    }

    /// What failed, without the source's own message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} codec: {}", self.codec, self.message)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
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

/// An error and its sources on one line (`a: b: c`), for traces: the
/// errors' own `Display` leaves the cause to `source()`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}
