//! `cargo fuzz run analyze`: SQL text to dependencies and write targets never panic (nor
//! overflow the stack), are deterministic, and keep the documented invariants of their results
//! (`cachebot::fuzzing::sql` checks them).
//!
//! Seeds: `fuzz/corpus/analyze/` (Diesel-rendered reads from the extract tests, writes,
//! batches, garbage). Run with a separate working corpus so the seeds stay curated:
//!
//! ```text
//! cd fuzz && mkdir -p corpus-work
//! cargo +nightly fuzz run analyze corpus-work corpus/analyze -- \
//!     -dict=analyze.dict -max_total_time=600
//! ```
//!
//! libFuzzer grows inputs slowly (a few hundred bytes in ten minutes); to hunt deep nesting add
//! `-max_len=200000 -len_control=0`. The callback runs on the main thread (8 MiB stack, larger
//! ASan frames); `extract::proptests::deep_inputs_do_not_overflow` checks 2 MiB threads.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cachebot::fuzzing::sql(data);
});
