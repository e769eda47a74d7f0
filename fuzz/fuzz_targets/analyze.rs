//! `cargo fuzz run analyze`: SQL text to dependencies and write targets never panic (nor
//! overflow the stack), are deterministic, and keep the documented invariants of their results.
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

use cachebot::extract::{analyze, write_targets, Extracted, Pins, WriteTargets};
use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::PostgreSqlDialect;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let dialect = PostgreSqlDialect {};

    let analysis = analyze(&sql, &dialect);
    if let Extracted::Cacheable(a) = &analysis {
        assert!(!a.tables.is_empty(), "cacheable without tables");
        assert!(
            a.tables.windows(2).all(|w| w[0].table < w[1].table),
            "tables not sorted and unique"
        );
        for deps in &a.tables {
            if let Pins::AnyOf(conjunctions) = &deps.pins {
                assert!(!conjunctions.is_empty(), "empty AnyOf");
                for c in conjunctions {
                    assert!(!c.atoms.is_empty(), "empty conjunction");
                    assert!(
                        c.atoms.windows(2).all(|w| w[0] < w[1]),
                        "atoms not sorted and deduplicated"
                    );
                }
            }
        }
    }
    assert_eq!(
        analyze(&sql, &dialect),
        analysis,
        "analyze not deterministic"
    );

    let writes = write_targets(&sql, &dialect);
    if let WriteTargets::Tables(tables) = &writes {
        assert!(!tables.is_empty(), "Tables([])");
        assert!(
            tables.windows(2).all(|w| w[0] < w[1]),
            "tables not sorted and unique"
        );
    }
    assert_eq!(
        write_targets(&sql, &dialect),
        writes,
        "write_targets not deterministic"
    );
});
