//! `cargo fuzz run answers`: a memcached server's answers, as the store's pipelined reads and
//! bumps parse them (`cachebot::fuzzing::answers`): never a panic, a value outside the bytes
//! read or over the limit, nor a prefix of an answer decided differently from the whole (answers
//! arrive split anywhere).
//!
//! ```text
//! cd fuzz && mkdir -p corpus-work/answers
//! cargo fuzz run answers corpus-work/answers corpus/answers -- -max_total_time=120
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cachebot::fuzzing::answers(data);
});
