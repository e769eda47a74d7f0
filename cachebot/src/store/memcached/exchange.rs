//! What the two pipelined transports (the blocking `pipeline` and the
//! tokio `aio`) share: socket pool limits, buffer sizes, and how an
//! exchange fails.

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::StoreErrorKind;

/// Idle sockets older than this are closed instead of reused (the `exp`
/// client's default too): middleboxes drop quiet connections silently,
/// and a dropped one would cost a timeout, not a fast retry.
pub(super) const MAX_IDLE_AGE: Duration = Duration::from_secs(90);

/// A socket's buffers are kept between batches up to this size; a batch
/// that needed more (a large entry, thousands of keys) frees them after.
pub(super) const KEEP_BUFFER: usize = 64 * 1024;

/// A new socket's answer buffer: a 10-row hit's answers fit many times.
pub(super) const ANSWER_BUFFER: usize = 4096;

/// Why a batch failed, and whether sending it again may help.
pub(super) struct Failure {
    pub(super) kind: StoreErrorKind,
    pub(super) message: String,
    /// The I/O error behind it, if any.
    pub(super) source: Option<io::Error>,
    /// A pooled socket was found closed before any answer: send again.
    pub(super) retry: bool,
}

/// Lock a pool's state (a stack of idle sockets, a count), poisoned or not:
/// it stays valid whatever a panicking holder was doing.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A failure for an exchange past the I/O timeout.
pub(super) fn timed_out(name: &str) -> Failure {
    Failure {
        kind: StoreErrorKind::Timeout,
        message: format!("{name}: no answer within the I/O timeout"),
        source: None,
        retry: false,
    }
}

/// An I/O error as a failure: a timeout, or the server out of reach. A
/// pooled socket the server reset is worth one more try on a new one.
pub(super) fn io_failure(name: &str, op: &str, error: io::Error, pooled: bool) -> Failure {
    use io::ErrorKind as K;
    let kind = match error.kind() {
        K::TimedOut | K::WouldBlock => StoreErrorKind::Timeout,
        _ => StoreErrorKind::Unavailable,
    };
    let closed = matches!(
        error.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
    );
    Failure {
        kind,
        message: format!("{op} on {name}"),
        source: Some(error),
        retry: pooled && closed,
    }
}
