//! Entry points for fuzzing: what the crate does with bytes read from a
//! store and with SQL text, reachable from the targets in `fuzz/` (built
//! with `--cfg fuzzing`) and from the randomized tests below, which run the
//! same code on seeded random and mutated inputs in every test run. Not part
//! of the crate's API: the module exists only in those builds, and it is the
//! only way the targets reach the crate's internals.
//!
//! Every function here must return for any input: no panic, no abort, no
//! allocation out of proportion to the input. The assertions they make are
//! the invariants under test: a failing one is a finding.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::Codec;
use crate::read::entry::{self, Protect, Seal, Verify};
use crate::store::Key;

/// A row with every kind of field a codec decodes differently: integers of
/// each width, strings, options, floats, byte buffers, sequences, maps,
/// chars and enums.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// An `i32`.
    pub id: i32,
    /// A string (serde's `deserialize_string`).
    pub title: String,
    /// An optional string.
    pub note: Option<String>,
    /// An `i64`.
    pub at: i64,
    /// A bool.
    pub flag: bool,
    /// An `f64`.
    pub score: f64,
    /// A byte buffer (serde's `deserialize_byte_buf`).
    pub blob: Bytes,
    /// A sequence of strings.
    pub tags: Vec<String>,
    /// A map.
    pub attrs: BTreeMap<String, i64>,
    /// A `u128` (the widest integer).
    pub big: u128,
    /// A char.
    pub letter: char,
    /// An enum.
    pub kind: Kind,
}

/// An enum with unit, newtype and struct variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    /// Unit.
    Plain,
    /// Newtype.
    Named(String),
    /// Struct.
    Sized {
        /// A length.
        len: u64,
    },
}

/// Bytes (de)serialized as serde bytes, not as a sequence.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// The key the sealed variants use.
fn test_seal() -> Seal {
    Seal::new(b"cachebot fuzzing secret, 32 byte")
}

const SNAPSHOT: [u64; 2] = [0x1111, 0x2222];
const ENTRY: Key = Key::entry(0xE17);

/// Decode `payload` as every row type the targets use; `true` if one of
/// them decoded.
fn decode_payload<C: Codec>(codec: &C, payload: &[u8]) -> bool {
    let rows = codec.decode::<Vec<Row>>(payload).is_ok();
    // The issue's shape: `(i32, i32, String)` rows.
    let tuples = codec.decode::<Vec<(i32, i32, String)>>(payload).is_ok();
    let maps = codec
        .decode::<Vec<HashMap<String, Vec<u8>>>>(payload)
        .is_ok();
    let nested = codec
        .decode::<Vec<(Option<Vec<String>>, Bytes)>>(payload)
        .is_ok();
    rows || tuples || maps || nested
}

/// What the read path does with an entry's bytes, for one codec: open it
/// (checksummed, and sealed) against the snapshot its own header states,
/// and decode the payload; then the same bytes as a payload, laid out as a
/// valid entry (checksummed and sealed, as a store holding crafted
/// payloads with recomputed checksums would serve them), opened and
/// decoded. Returns how many decodes succeeded.
pub fn entry_with<C: Codec>(codec: &C, bytes: &[u8]) -> usize {
    let mut decoded = 0;
    // As stored bytes: the snapshot the header claims, so that the parser
    // gets past the generations.
    let claimed: Vec<u64> = bytes
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(8)
        .take(usize::from(u16::from_le_bytes([
            bytes.first().copied().unwrap_or(0),
            bytes.get(1).copied().unwrap_or(0),
        ])))
        .map(|g| u64::from_le_bytes(g.try_into().unwrap_or_default()))
        .collect();
    let sealed = Verify::Sealed {
        seal: test_seal(),
        entry: ENTRY,
        now: 0,
    };
    for verify in [Verify::Checksum, sealed] {
        if let Ok(payload) = entry::open(bytes, &claimed, verify) {
            decoded += usize::from(decode_payload(codec, payload));
        }
    }
    // As a payload of an entry with a valid checksum or MAC.
    let protections = [
        Protect::Checksum,
        Protect::new(Some(test_seal()), ENTRY, std::time::Duration::from_secs(60)),
    ];
    let verifications = [Verify::Checksum, Verify::new(Some(test_seal()), ENTRY)];
    for (protect, verify) in protections.into_iter().zip(verifications) {
        let laid = entry::encode_with(&SNAPSHOT, protect, |out| {
            out.extend_from_slice(bytes);
            Ok::<(), ()>(())
        });
        let Ok(Some(laid)) = laid else {
            continue;
        };
        let payload = entry::open(&laid, &SNAPSHOT, verify);
        assert_eq!(payload, Ok(bytes), "a valid entry does not open");
        decoded += usize::from(decode_payload(codec, bytes));
    }
    // An entry of a result depending on its returned rows: what the read
    // path peeks at before checking it (the keys its payload lists), and
    // the rows after them.
    let listed = entry::payload_unchecked(bytes).and_then(crate::read::returned::split_keys);
    if let Some((keys, rows)) = listed {
        assert!(keys.len() <= crate::read::returned::MAX_RETURNED);
        decoded += usize::from(decode_payload(codec, rows));
    }
    if let Some((keys, rows)) = crate::read::returned::split_keys(bytes) {
        assert!(keys.len() <= crate::read::returned::MAX_RETURNED);
        decoded += usize::from(decode_payload(codec, rows));
    }
    decoded
}

/// [`entry_with`] for every codec this build has.
pub fn entry(bytes: &[u8]) -> usize {
    #[allow(unused_mut)]
    let mut decoded = entry_with(&crate::codec::Bincode, bytes);
    #[cfg(feature = "postcard")]
    {
        decoded += entry_with(&crate::codec::Postcard, bytes);
    }
    decoded
}

/// The memcached answer parser over `bytes` as a stream of answers, with
/// the largest value the default store accepts and with a small limit.
/// Returns how many answers were parsed.
#[cfg(feature = "memcached")]
pub fn answers(bytes: &[u8]) -> usize {
    crate::store::parse_stream(bytes, 1024 * 1024 - 1024) + crate::store::parse_stream(bytes, 16)
}

/// The SQL analysis over `bytes` (as lossy UTF-8), as the read path and the
/// write path's instrumentation run it on rendered statements: the
/// dependencies of a read and the tables a statement writes. Checks the
/// documented invariants of both answers (tables sorted and unique,
/// conjunctions and atoms never empty, atoms sorted and deduplicated) and
/// that both are deterministic. Returns the number of tables found.
pub fn sql(bytes: &[u8]) -> usize {
    use crate::backend::SqlDialect;
    use crate::extract::{analyze, write_targets, Extracted, Pins, WriteTargets};

    let sql = String::from_utf8_lossy(bytes);
    let dialect = SqlDialect::PostgreSql;
    let mut found = 0;
    let analysis = analyze(&sql, dialect);
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
        found += a.tables.len();
    }
    assert_eq!(
        analyze(&sql, dialect),
        analysis,
        "analyze not deterministic"
    );

    let writes = write_targets(&sql, dialect);
    if let WriteTargets::Tables(tables) = &writes {
        assert!(!tables.is_empty(), "Tables([])");
        assert!(
            tables.windows(2).all(|w| w[0] < w[1]),
            "tables not sorted and unique"
        );
        found += tables.len();
    }
    assert_eq!(
        write_targets(&sql, dialect),
        writes,
        "write_targets not deterministic"
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Bincode;

    fn random_row(rng: &mut fastrand::Rng) -> Row {
        let text = |rng: &mut fastrand::Rng| -> String {
            (0..rng.usize(0..12)).map(|_| rng.char(..)).collect()
        };
        Row {
            id: rng.i32(..),
            title: text(rng),
            note: rng.bool().then(|| text(rng)),
            at: rng.i64(..),
            flag: rng.bool(),
            score: f64::from(rng.i32(..)) / 7.0,
            blob: Bytes((0..rng.usize(0..20)).map(|_| rng.u8(..)).collect()),
            tags: (0..rng.usize(0..4)).map(|_| text(rng)).collect(),
            attrs: (0..rng.usize(0..4))
                .map(|_| (text(rng), rng.i64(..)))
                .collect(),
            big: rng.u128(..),
            letter: rng.char(..),
            kind: match rng.u8(0..3) {
                0 => Kind::Plain,
                1 => Kind::Named(text(rng)),
                _ => Kind::Sized { len: rng.u64(..) },
            },
        }
    }

    /// A length prefix as each codec writes it: bincode's varint (`0xFD`
    /// then a little-endian u64) or postcard's LEB128.
    fn huge_length(rng: &mut fastrand::Rng, leb128: bool) -> Vec<u8> {
        let len = match rng.u8(0..4) {
            0 => 1 << 40,
            1 => 1 << 60,
            2 => u64::MAX,
            _ => rng.u64(1 << 20..),
        };
        if leb128 {
            let mut out = Vec::new();
            let mut n = len;
            loop {
                let byte = (n & 0x7F) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    return out;
                }
                out.push(byte | 0x80);
            }
        }
        let mut out = vec![0xFD];
        out.extend_from_slice(&len.to_le_bytes());
        out
    }

    /// Damage `bytes` the ways a hostile or broken store would.
    fn mutate(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, leb128: bool) {
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(0..=bytes.len());
            match rng.u8(0..6) {
                0 if !bytes.is_empty() => {
                    let i = rng.usize(0..bytes.len());
                    bytes[i] ^= 1 << rng.u8(0..8);
                }
                1 => {
                    let huge = huge_length(rng, leb128);
                    bytes.splice(at..at, huge);
                }
                2 => {
                    // Overwrite a length in place.
                    let huge = huge_length(rng, leb128);
                    let end = (at + huge.len()).min(bytes.len());
                    bytes.splice(at..end, huge);
                }
                3 => bytes.truncate(at),
                4 => bytes.insert(at, rng.u8(..)),
                _ => {
                    let end = (at + rng.usize(0..8)).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
    }

    /// The crafted payload of the issue: one row of `(i32, i32, String)`
    /// whose string claims 2^40, 2^60 or `u64::MAX` bytes.
    #[test]
    fn the_issues_payloads_are_errors_not_aborts() {
        for len in [1u64 << 40, 1 << 60, u64::MAX] {
            let payload = crafted(len);
            let got = Bincode.decode::<Vec<(i32, i32, String)>>(&payload);
            assert!(got.is_err(), "{len}: {got:?}");
            // And a byte buffer, a map of strings, a row.
            assert!(Bincode.decode::<Vec<(i32, i32, Bytes)>>(&payload).is_err());
            assert!(Bincode
                .decode::<Vec<(i32, i32, HashMap<String, i32>)>>(&payload)
                .is_err());
            assert_eq!(entry(&payload), 0);
        }
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_borrows_strings_so_lengths_are_checked_against_the_payload() {
        use crate::codec::Postcard;
        for len in [1u64 << 40, 1 << 60, u64::MAX] {
            let mut payload = vec![0x01, 0x02, 0x02];
            let mut n = len;
            while n >= 0x80 {
                payload.push((n as u8) | 0x80);
                n >>= 7;
            }
            payload.push(n as u8);
            assert!(Postcard
                .decode::<Vec<(i32, i32, String)>>(&payload)
                .is_err());
            assert!(Postcard.decode::<Vec<(i32, i32, Bytes)>>(&payload).is_err());
        }
    }

    #[test]
    fn legitimate_payloads_still_decode_at_every_size_tier() {
        let mut rng = fastrand::Rng::with_seed(7);
        // Small, then over 64 KiB and over 1 MiB of payload (the limit's
        // tiers), with the densest claims: one-byte `u128`s claim 16 each.
        for rows in [1usize, 3000, 80_000] {
            let small: Vec<(u128, String)> = (0..rows)
                .map(|i| (i as u128 % 100, "é".repeat(i % 3)))
                .collect();
            let bytes = Bincode.encode(&small).unwrap();
            assert_eq!(
                Bincode.decode::<Vec<(u128, String)>>(&bytes).unwrap(),
                small
            );
        }
        // The densest claims at each tier's edge: a payload of exactly 64 KiB
        // and 1 MiB (a 3- or 5-byte length, then one byte per `u128`), and
        // one byte over.
        for (n, len) in [
            (65_533, 65_536),
            (65_534, 65_537),
            ((1 << 20) - 5, 1 << 20),
            ((1 << 20) - 4, (1 << 20) + 1),
        ] {
            let dense = vec![1u128; n];
            let bytes = Bincode.encode(&dense).unwrap();
            assert_eq!(bytes.len(), len);
            assert_eq!(Bincode.decode::<Vec<u128>>(&bytes).unwrap(), dense);
        }
        let big: Vec<Row> = (0..2000).map(|_| random_row(&mut rng)).collect();
        let bytes = Bincode.encode(&big).unwrap();
        assert!(bytes.len() > 64 * 1024, "{}", bytes.len());
        assert_eq!(Bincode.decode::<Vec<Row>>(&bytes).unwrap(), big);
    }

    fn cases() -> usize {
        std::env::var("CACHEBOT_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000)
    }

    /// Random and mutated entries and payloads through the read path's
    /// decoding, for each codec: never a panic or an abort.
    #[test]
    fn random_and_mutated_entries_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0xCAC4E);
        let mut decoded = 0;
        for case in 0..cases() {
            let rows: Vec<Row> = (0..rng.usize(0..4)).map(|_| random_row(&mut rng)).collect();
            let postcard = cfg!(feature = "postcard") && rng.bool();
            let mut bytes = match case % 4 {
                // Pure noise.
                0 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
                // A whole entry, checksummed or sealed, then damaged.
                1 => {
                    let protect = if rng.bool() {
                        Protect::Checksum
                    } else {
                        Protect::new(Some(test_seal()), ENTRY, std::time::Duration::from_secs(9))
                    };
                    entry::encode_with(&SNAPSHOT, protect, |out| Bincode.encode_into(&rows, out))
                        .unwrap()
                        .unwrap()
                }
                // A payload, damaged.
                _ => {
                    #[cfg(feature = "postcard")]
                    if postcard {
                        crate::codec::Postcard.encode(&rows).unwrap()
                    } else {
                        Bincode.encode(&rows).unwrap()
                    }
                    #[cfg(not(feature = "postcard"))]
                    Bincode.encode(&rows).unwrap()
                }
            };
            if case % 8 != 3 {
                mutate(&mut rng, &mut bytes, postcard);
            }
            decoded += entry(&bytes);
        }
        // The undamaged payloads decode: the harness reaches the decoders.
        assert!(decoded > cases() / 16, "{decoded}");
    }

    /// The seed corpus of the entry targets (`fuzz/corpus/entry`):
    /// `CACHEBOT_WRITE_SEEDS=$PWD/fuzz/corpus/entry cargo test -p cachebot
    /// --features postcard --lib write_entry_seeds -- --ignored`.
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_entry_seeds() {
        let dir = std::path::PathBuf::from(std::env::var("CACHEBOT_WRITE_SEEDS").unwrap());
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seeds: Vec<Vec<u8>> = vec![crafted(u64::MAX)];
        for n in 0..3 {
            let rows: Vec<Row> = (0..n).map(|_| random_row(&mut rng)).collect();
            let tuples: Vec<(i32, i32, String)> = vec![(1, 2, "title".into()); n];
            seeds.push(Bincode.encode(&rows).unwrap());
            seeds.push(Bincode.encode(&tuples).unwrap());
            #[cfg(feature = "postcard")]
            {
                seeds.push(crate::codec::Postcard.encode(&rows).unwrap());
                seeds.push(crate::codec::Postcard.encode(&tuples).unwrap());
            }
            let entry = entry::encode_with(&SNAPSHOT, Protect::Checksum, |out| {
                Bincode.encode_into(&rows, out)
            });
            seeds.push(entry.unwrap().unwrap());
        }
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }

    fn crafted(len: u64) -> Vec<u8> {
        let mut payload = vec![0x01, 0x02, 0x02, 0xFD];
        payload.extend_from_slice(&len.to_le_bytes());
        payload
    }

    #[cfg(feature = "memcached")]
    #[test]
    fn random_and_mutated_answer_streams_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x3E3C);
        let mut parsed = 0;
        for case in 0..cases() {
            let mut stream = Vec::new();
            for _ in 0..rng.usize(0..5) {
                match rng.u8(0..5) {
                    0 => stream.extend_from_slice(b"EN\r\n"),
                    1 => stream.extend_from_slice(b"HD\r\n"),
                    2 => stream.extend_from_slice(b"NS\r\n"),
                    3 => stream.extend_from_slice(b"CLIENT_ERROR bad data chunk\r\n"),
                    _ => {
                        let value: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
                        stream.extend_from_slice(format!("VA {}", value.len()).as_bytes());
                        if rng.bool() {
                            stream.extend_from_slice(b" f0 t-1");
                        }
                        stream.extend_from_slice(b"\r\n");
                        stream.extend_from_slice(&value);
                        stream.extend_from_slice(b"\r\n");
                    }
                }
            }
            if case % 4 == 0 {
                stream = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            } else if case % 4 != 1 {
                mutate(&mut rng, &mut stream, false);
                if rng.u8(0..8) == 0 {
                    // A line that never ends.
                    stream.extend(std::iter::repeat_n(b'9', 4000));
                }
            }
            parsed += answers(&stream);
        }
        assert!(parsed > cases() / 4, "{parsed}");
    }

    #[test]
    fn sql_entry_point_checks_reads_writes_and_garbage() {
        assert_eq!(
            sql(br#"SELECT "photos"."id" FROM "photos" WHERE "photos"."user_id" = $1"#),
            1
        );
        assert_eq!(sql(br#"UPDATE "photos" SET "status" = $1"#), 1);
        let mut rng = fastrand::Rng::with_seed(12);
        for _ in 0..200 {
            let garbage: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            sql(&garbage);
        }
    }
}
