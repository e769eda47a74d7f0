//! Running the shared (async) pipeline from the blocking API.
//!
//! The read path is written once, as `async` code over a connection and a
//! store that may wait. The blocking API hands it a connection and a store
//! whose futures are ready as soon as they are created (their I/O is a
//! blocking call), so one poll runs it to the end: no runtime, no thread.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Run `future` to completion on this thread. Meant for futures that never
/// wait (see the module docs): they finish in one poll. One that does wait
/// is polled again until it finishes, yielding the thread in between.
pub(crate) fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::run_ready;

    #[test]
    fn runs_ready_futures_and_waiting_ones() {
        assert_eq!(run_ready(async { 1 + 1 }), 2);
        // A future that waits once (wakes itself) still finishes.
        let mut waited = false;
        let once = std::future::poll_fn(move |cx| {
            if waited {
                std::task::Poll::Ready(7)
            } else {
                waited = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        });
        assert_eq!(run_ready(once), 7);
    }
}
