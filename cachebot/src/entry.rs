//! The layout of a stored entry.
//!
//! `magic (2) | generation count (u16) | generations (u64 each) |
//! checksum of the payload (u64) | payload`, little endian. The generations
//! are the snapshot read before the database query; the entry is served
//! only while every one of them is still current. The checksum makes
//! truncated or overwritten entries misses instead of wrong values.

use crate::store::Generation;

const MAGIC: [u8; 2] = [0xCB, 0x01];
const HEADER: usize = 2 + 2;

/// Room reserved for the payload when it is written in place: most results
/// fit, so the buffer rarely grows.
const PAYLOAD_HINT: usize = 512;

/// Lay out an entry whose payload `write` appends in place (no copy).
/// `Ok(None)` if there are more generations than the format holds (the
/// caller then does not cache).
pub(crate) fn encode_with<E>(
    snapshot: &[Generation],
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Option<Vec<u8>>, E> {
    let Ok(n) = u16::try_from(snapshot.len()) else {
        return Ok(None);
    };
    let start = HEADER + snapshot.len() * 8 + 8;
    let mut out = Vec::with_capacity(start + PAYLOAD_HINT);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&n.to_le_bytes());
    for g in snapshot {
        out.extend_from_slice(&g.to_le_bytes());
    }
    out.extend_from_slice(&[0; 8]);
    write(&mut out)?;
    let sum = xxhash_rust::xxh3::xxh3_64(&out[start..]).to_le_bytes();
    out[start - 8..start].copy_from_slice(&sum);
    Ok(Some(out))
}

/// Lay out an entry around a ready payload.
#[cfg(test)]
fn encode(snapshot: &[Generation], payload: &[u8]) -> Option<Vec<u8>> {
    encode_with(snapshot, |out| {
        out.extend_from_slice(payload);
        Ok::<(), ()>(())
    })
    .ok()
    .flatten()
}

/// Why an entry was not served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The bytes are not an entry of this format (garbage, truncated).
    Corrupt,
    /// A generation moved since the entry was stored.
    Stale,
}

/// The payload, if the entry is intact and its snapshot equals `current`.
pub(crate) fn open<'a>(bytes: &'a [u8], current: &[Generation]) -> Result<&'a [u8], Reject> {
    let rest = bytes.strip_prefix(&MAGIC[..]).ok_or(Reject::Corrupt)?;
    let (n, rest) = split(rest, 2)?;
    let n = u16::from_le_bytes([n[0], n[1]]) as usize;
    let (gens, rest) = split(rest, n.checked_mul(8).ok_or(Reject::Corrupt)?)?;
    let (sum, payload) = split(rest, 8)?;
    let sum = u64::from_le_bytes(sum.try_into().map_err(|_| Reject::Corrupt)?);
    if xxhash_rust::xxh3::xxh3_64(payload) != sum {
        return Err(Reject::Corrupt);
    }
    if n != current.len() {
        return Err(Reject::Stale);
    }
    let fresh = gens
        .chunks_exact(8)
        .zip(current)
        .all(|(g, c)| g == c.to_le_bytes().as_slice());
    if fresh {
        Ok(payload)
    } else {
        Err(Reject::Stale)
    }
}

fn split(b: &[u8], n: usize) -> Result<(&[u8], &[u8]), Reject> {
    if b.len() < n {
        Err(Reject::Corrupt)
    } else {
        Ok(b.split_at(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_snapshot() {
        let e = encode(&[1, 2, 3], b"rows").unwrap();
        assert_eq!(open(&e, &[1, 2, 3]), Ok(&b"rows"[..]));
        assert_eq!(open(&e, &[1, 2, 4]), Err(Reject::Stale));
        assert_eq!(open(&e, &[1, 2]), Err(Reject::Stale));
    }

    #[test]
    fn payload_written_in_place() {
        let big = vec![9u8; 3 * PAYLOAD_HINT];
        let e = encode_with(&[4, 5], |out| {
            out.extend_from_slice(&big);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(open(&e, &[4, 5]), Ok(&big[..]));
        assert_eq!(encode_with(&[1], |_| Err("no")), Err("no"));
        let too_many = vec![1; usize::from(u16::MAX) + 1];
        assert_eq!(encode(&too_many, b""), None);
    }

    #[test]
    fn damage_is_corruption() {
        let e = encode(&[7], b"payload").unwrap();
        for cut in 0..e.len() {
            assert!(open(&e[..cut], &[7]).is_err(), "truncated at {cut}");
        }
        let mut flipped = e.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&flipped, &[7]), Err(Reject::Corrupt));
        assert_eq!(open(b"garbage bytes here", &[7]), Err(Reject::Corrupt));
        assert_eq!(open(&[0xCB, 0x01, 0xFF, 0xFF], &[7]), Err(Reject::Corrupt));
    }
}
