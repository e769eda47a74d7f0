//! `cargo fuzz run entry_bincode`: bytes read from a store, through the read path's entry
//! decoding with the Bincode codec (`cachebot::fuzzing::entry_with`): the entry header parser,
//! checksummed and sealed, then the payload as a valid entry's and decoded as several row types.
//! Must never panic, abort or allocate out of proportion to the input.
//!
//! ```text
//! cd fuzz && mkdir -p corpus-work/entry_bincode
//! cargo fuzz run entry_bincode corpus-work/entry_bincode corpus/entry -- -max_total_time=120 -rss_limit_mb=512
//! ```
//!
//! `-rss_limit_mb` makes an allocation bomb a finding. The same entry points run on seeded random
//! and mutated inputs in every test run (`cachebot/src/fuzzing.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cachebot::fuzzing::entry_with(&cachebot::codec::Bincode, data);
});
