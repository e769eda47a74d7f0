//! The layout of a stored entry.
//!
//! `magic (2) | generation count (u16) | generations (u64 each) |
//! checksum of the payload (u64) | payload`, little endian. The generations
//! are the snapshot read before the database query; the entry is served
//! only while every one of them is still current. The checksum makes
//! truncated or overwritten entries misses instead of wrong values.
//!
//! With a secret ([`Seal`]), entries are sealed instead: `magic (2) |
//! generation count (u16) | generations (u64 each) | expiry (u64, Unix
//! seconds) | MAC (32) | payload`, where the MAC is BLAKE3 in keyed mode,
//! under a key derived from the secret, over the entry's key, everything
//! before the MAC and the payload. The entry key already commits to the
//! query, its binds, the result type, the codec and the generation keys, so
//! an entry is served only for the query, type and snapshot it was written
//! for, and not after its expiry, whoever wrote the bytes. A cache with a
//! secret reads only sealed entries; one without reads only checksummed ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::{Generation, Key};

const MAGIC: [u8; 2] = [0xCB, 0x01];
const MAGIC_SEALED: [u8; 2] = [0xCB, 0x02];
const HEADER: usize = 2 + 2;
const MAC_LEN: usize = 32;

/// Room reserved for the payload when it is written in place: most results
/// fit, so the buffer rarely grows.
const PAYLOAD_HINT: usize = 512;

/// The key of the entries' MAC, derived from the cache's secret. Its
/// `Debug` shows nothing of it.
#[derive(Clone, Copy)]
pub(crate) struct Seal {
    key: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

impl Seal {
    /// The shortest secret accepted, in bytes.
    pub(crate) const MIN_SECRET: usize = 16;

    /// Derive the entries' MAC key from a secret (BLAKE3's key derivation,
    /// with a context string of its own, so the secret may serve elsewhere).
    pub(crate) fn new(secret: &[u8]) -> Seal {
        Seal {
            key: blake3::derive_key("cachebot 2026-12 entry MAC v1", secret),
        }
    }

    fn mac(&self, entry: Key, header: &[u8], payload: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&entry.hash().to_le_bytes());
        h.update(header);
        h.update(payload);
        h.finalize()
    }
}

/// How an entry is protected: a checksum, or a MAC for its key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Protect {
    /// The payload's xxh3 checksum: catches damage, not forgery.
    Checksum,
    /// Sealed for this entry key, valid until `expires` (Unix seconds).
    Sealed {
        seal: Seal,
        entry: Key,
        expires: u64,
    },
}

impl Protect {
    /// The protection of an entry written now for `entry`, under `seal` if
    /// the cache has one.
    pub(crate) fn new(seal: Option<Seal>, entry: Key, ttl: Duration) -> Protect {
        match seal {
            None => Protect::Checksum,
            Some(seal) => Protect::Sealed {
                seal,
                entry,
                expires: now_secs()
                    .saturating_add(ttl.as_secs())
                    .saturating_add(u64::from(ttl.subsec_nanos() > 0)),
            },
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lay out an entry whose payload `write` appends in place (no copy).
/// `Ok(None)` if there are more generations than the format holds (the
/// caller then does not cache).
pub(crate) fn encode_with<E>(
    snapshot: &[Generation],
    protect: Protect,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Option<Vec<u8>>, E> {
    let Ok(n) = u16::try_from(snapshot.len()) else {
        return Ok(None);
    };
    let trailer = match protect {
        Protect::Checksum => 8,
        Protect::Sealed { .. } => 8 + MAC_LEN,
    };
    let start = HEADER + snapshot.len() * 8 + trailer;
    let mut out = Vec::with_capacity(start + PAYLOAD_HINT);
    out.extend_from_slice(match protect {
        Protect::Checksum => &MAGIC,
        Protect::Sealed { .. } => &MAGIC_SEALED,
    });
    out.extend_from_slice(&n.to_le_bytes());
    for g in snapshot {
        out.extend_from_slice(&g.to_le_bytes());
    }
    match protect {
        Protect::Checksum => out.extend_from_slice(&[0; 8]),
        Protect::Sealed { expires, .. } => {
            out.extend_from_slice(&expires.to_le_bytes());
            out.extend_from_slice(&[0; MAC_LEN]);
        }
    }
    write(&mut out)?;
    match protect {
        Protect::Checksum => {
            let sum = xxhash_rust::xxh3::xxh3_64(&out[start..]).to_le_bytes();
            out[start - 8..start].copy_from_slice(&sum);
        }
        Protect::Sealed { seal, entry, .. } => {
            let (head, payload) = out.split_at(start);
            let mac = seal.mac(entry, &head[..start - MAC_LEN], payload);
            out[start - MAC_LEN..start].copy_from_slice(mac.as_bytes());
        }
    }
    Ok(Some(out))
}

/// Lay out an entry around a ready payload.
#[cfg(test)]
fn encode(snapshot: &[Generation], payload: &[u8]) -> Option<Vec<u8>> {
    encode_with(snapshot, Protect::Checksum, |out| {
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
    /// A generation moved since the entry was stored, or a sealed entry
    /// expired.
    Stale,
    /// A cache with a secret found an entry its MAC does not authenticate:
    /// forged, written for another key, or written without the secret.
    Forged,
}

/// How an entry must be protected to be served: see [`Protect`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Verify {
    /// A checksummed entry.
    Checksum,
    /// An entry sealed for `entry` with `seal`, not expired at `now`.
    Sealed { seal: Seal, entry: Key, now: u64 },
}

impl Verify {
    /// What an entry read now for `entry` must carry.
    pub(crate) fn new(seal: Option<Seal>, entry: Key) -> Verify {
        match seal {
            None => Verify::Checksum,
            Some(seal) => Verify::Sealed {
                seal,
                entry,
                now: now_secs(),
            },
        }
    }
}

/// The payload, if the entry is intact (authentic, when sealed) and its
/// snapshot equals `current`. Reads nothing outside `bytes` and allocates
/// nothing, whatever they hold.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    current: &[Generation],
    verify: Verify,
) -> Result<&'a [u8], Reject> {
    let (sealed, rest) = if let Some(rest) = bytes.strip_prefix(&MAGIC[..]) {
        (false, rest)
    } else if let Some(rest) = bytes.strip_prefix(&MAGIC_SEALED[..]) {
        (true, rest)
    } else {
        return Err(Reject::Corrupt);
    };
    match (sealed, verify) {
        (false, Verify::Checksum) | (true, Verify::Sealed { .. }) => {}
        // A cache without the secret cannot check a seal.
        (true, Verify::Checksum) => return Err(Reject::Corrupt),
        // Anyone can compute a checksum.
        (false, Verify::Sealed { .. }) => return Err(Reject::Forged),
    }
    let (n, rest) = split(rest, 2)?;
    let n = u16::from_le_bytes([n[0], n[1]]) as usize;
    let (gens, rest) = split(rest, n.checked_mul(8).ok_or(Reject::Corrupt)?)?;
    let fresh = n == current.len()
        && gens
            .chunks_exact(8)
            .zip(current)
            .all(|(g, c)| g == c.to_le_bytes().as_slice());
    let Verify::Sealed { seal, entry, now } = verify else {
        let (sum, payload) = split(rest, 8)?;
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| Reject::Corrupt)?);
        if xxhash_rust::xxh3::xxh3_64(payload) != sum {
            return Err(Reject::Corrupt);
        }
        return if fresh {
            Ok(payload)
        } else {
            Err(Reject::Stale)
        };
    };
    let (expires, rest) = split(rest, 8)?;
    let (mac, payload) = split(rest, MAC_LEN)?;
    let expires = u64::from_le_bytes(expires.try_into().map_err(|_| Reject::Corrupt)?);
    // A stale entry is a miss whatever its MAC says: not worth hashing.
    if !fresh || now > expires {
        return Err(Reject::Stale);
    }
    let mac: [u8; MAC_LEN] = mac.try_into().map_err(|_| Reject::Corrupt)?;
    let header = &bytes[..bytes.len() - payload.len() - MAC_LEN];
    // `blake3::Hash` compares in constant time.
    if seal.mac(entry, header, payload) == blake3::Hash::from(mac) {
        Ok(payload)
    } else {
        Err(Reject::Forged)
    }
}

/// The payload of an entry *before* it is checked: for reading what the
/// entry says it depends on ([`super::returned::split_keys`]), which
/// decides the generations [`open`] then checks it against (and its
/// checksum or MAC covers those bytes too). `None` for bytes that are not
/// laid out as an entry.
pub(crate) fn payload_unchecked(bytes: &[u8]) -> Option<&[u8]> {
    let (trailer, rest) = if let Some(rest) = bytes.strip_prefix(&MAGIC[..]) {
        (8, rest)
    } else if let Some(rest) = bytes.strip_prefix(&MAGIC_SEALED[..]) {
        (8 + MAC_LEN, rest)
    } else {
        return None;
    };
    let (n, rest) = rest.split_first_chunk::<2>()?;
    let skip = usize::from(u16::from_le_bytes(*n))
        .checked_mul(8)?
        .checked_add(trailer)?;
    rest.get(skip..)
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

    const C: Verify = Verify::Checksum;

    #[test]
    fn opens_only_with_the_same_snapshot() {
        let e = encode(&[1, 2, 3], b"rows").unwrap();
        assert_eq!(open(&e, &[1, 2, 3], C), Ok(&b"rows"[..]));
        assert_eq!(open(&e, &[1, 2, 4], C), Err(Reject::Stale));
        assert_eq!(open(&e, &[1, 2], C), Err(Reject::Stale));
    }

    #[test]
    fn payload_written_in_place() {
        let big = vec![9u8; 3 * PAYLOAD_HINT];
        let e = encode_with(&[4, 5], Protect::Checksum, |out| {
            out.extend_from_slice(&big);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(open(&e, &[4, 5], C), Ok(&big[..]));
        assert_eq!(
            encode_with(&[1], Protect::Checksum, |_| Err("no")),
            Err("no")
        );
        let too_many = vec![1; usize::from(u16::MAX) + 1];
        assert_eq!(encode(&too_many, b""), None);
    }

    #[test]
    fn damage_is_corruption() {
        let e = encode(&[7], b"payload").unwrap();
        for cut in 0..e.len() {
            assert!(open(&e[..cut], &[7], C).is_err(), "truncated at {cut}");
        }
        let mut flipped = e.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&flipped, &[7], C), Err(Reject::Corrupt));
        assert_eq!(open(b"garbage bytes here", &[7], C), Err(Reject::Corrupt));
        assert_eq!(
            open(&[0xCB, 0x01, 0xFF, 0xFF], &[7], C),
            Err(Reject::Corrupt)
        );
    }

    fn sealed(seal: Seal, entry: Key, snapshot: &[Generation], payload: &[u8]) -> Vec<u8> {
        let protect = Protect::new(Some(seal), entry, Duration::from_secs(60));
        encode_with(snapshot, protect, |out| {
            out.extend_from_slice(payload);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn sealed_entries_open_only_for_their_key_secret_and_snapshot() {
        let seal = Seal::new(b"0123456789abcdef0123456789abcdef");
        let key = Key::entry(42);
        let e = sealed(seal, key, &[1, 2], b"rows");
        let now = now_secs();
        let v = |seal, entry, now| Verify::Sealed { seal, entry, now };
        assert_eq!(open(&e, &[1, 2], v(seal, key, now)), Ok(&b"rows"[..]));
        // Stale before forged: a moved generation is a plain miss.
        assert_eq!(open(&e, &[1, 3], v(seal, key, now)), Err(Reject::Stale));
        // Past its expiry, however it came back.
        assert_eq!(
            open(&e, &[1, 2], v(seal, key, now + 61)),
            Err(Reject::Stale)
        );
        // Another key (another query, type or codec), another secret.
        assert_eq!(
            open(&e, &[1, 2], v(seal, Key::entry(43), now)),
            Err(Reject::Forged)
        );
        let other = Seal::new(b"another secret of at least 16 bytes");
        assert_eq!(open(&e, &[1, 2], v(other, key, now)), Err(Reject::Forged));
        // Every byte is covered: the payload, the generations, the expiry.
        for at in 0..e.len() {
            let mut bad = e.clone();
            bad[at] ^= 0x40;
            assert!(
                open(&bad, &[1, 2], v(seal, key, now)).is_err(),
                "byte {at} not covered"
            );
        }
        // A checksummed entry is not authentic; a sealed one is unreadable
        // without the secret.
        let plain = encode(&[1, 2], b"rows").unwrap();
        assert_eq!(
            open(&plain, &[1, 2], v(seal, key, now)),
            Err(Reject::Forged)
        );
        assert_eq!(open(&e, &[1, 2], C), Err(Reject::Corrupt));
        for cut in 0..e.len() {
            assert!(open(&e[..cut], &[1, 2], v(seal, key, now)).is_err());
        }
        assert_eq!(format!("{seal:?}"), "Seal(..)");
    }
}
