//! How results become bytes.
//!
//! The codec is part of every entry key, so switching codecs never decodes
//! one codec's bytes with another. The default is bincode 2 (compact and
//! fast); postcard is available behind the
//! `postcard` feature. A decode that fails, or that leaves bytes unread, is
//! a miss, never an error for the application.
//!
//! The bytes decoded come from the store, and whoever can write to the
//! store can craft them: decoding allocates in proportion to the bytes'
//! length, never to a length they state (bincode under a limit, postcard
//! borrowing strings from the input).

use serde::de::DeserializeOwned;
use serde::Serialize;

mod bincode_ser;

use crate::error::CodecError;

/// Turns results into bytes and back.
///
/// ```
/// use cachebot::codec::{Bincode, Codec};
/// let bytes = Bincode.encode(&vec![(1, "a".to_string())]).unwrap();
/// let back: Vec<(i32, String)> = Bincode.decode(&bytes).unwrap();
/// assert_eq!(back, vec![(1, "a".to_string())]);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// A short, stable name; part of every entry key.
    const NAME: &'static str;

    /// Encode a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decode a value; trailing bytes are an error.
    ///
    /// `bytes` may be crafted (they come from the store): an implementation
    /// must return an error, never panic or allocate far beyond
    /// `bytes.len()`, whatever lengths they state.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// Encode a value at the end of `out`, where the entry's header already
    /// is. The default appends what [`encode`](Self::encode) returns;
    /// codecs that can write in place override it and save a copy.
    ///
    /// ```
    /// use cachebot::codec::{Bincode, Codec};
    ///
    /// let mut out = b"header".to_vec();
    /// Bincode.encode_into(&vec![1u32, 2], &mut out).unwrap();
    /// assert_eq!(Bincode.decode::<Vec<u32>>(&out[6..]).unwrap(), vec![1, 2]);
    /// ```
    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        out.extend_from_slice(&self.encode(value)?);
        Ok(())
    }
}

/// bincode 2 with its standard configuration (the default codec).
///
/// Values are decoded by bincode and encoded by the crate's own writer of
/// the same format, which formats `Display`-serialized fields (chrono's
/// timestamps, for one) in place instead of through a `String` each, and
/// also accepts sequences of unknown length.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const NAME: &'static str = "bincode2";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // bincode's own format, written without its `to_string` per
        // `collect_str` (see `bincode_ser`).
        bincode_ser::encode_into(value, out).map_err(|e| {
            CodecError::new(
                Self::NAME,
                "the value does not serialize (a `Serialize` impl failed, or a map or \
                 sequence reported a wrong length)",
            )
            .with_source(e)
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, used) = bounded_bincode_decode(bytes)?;
        if used != bytes.len() {
            return Err(trailing(Self::NAME, bytes.len() - used));
        }
        Ok(value)
    }
}

/// What a legitimate bincode payload can claim against bincode's limit, per
/// byte of payload: bincode counts every value at its size in memory (a
/// `u128` varint of one byte claims 16, a sequence length claims 8), and a
/// string or byte buffer at its length, which the payload holds. So a
/// limit of this many times the payload's length never rejects a payload
/// the crate wrote.
const BINCODE_CLAIMS_PER_BYTE: usize = 16;

/// The largest payload decoded at all: its limit is the last tier's.
const BINCODE_MAX_PAYLOAD: usize = (1 << 30) / BINCODE_CLAIMS_PER_BYTE;

/// bincode 2 with a limit on what it may allocate, bounded by the
/// payload's length.
///
/// Unlimited, bincode trusts a length prefix: a string or byte buffer
/// claiming 2^40 bytes is allocated (`vec![0; len]`) before the payload is
/// found too short, and the process aborts (`memory allocation ... failed`)
/// or panics (`capacity overflow`). With a limit, bincode refuses any
/// length whose claims exceed it before allocating. The limit is a const
/// generic, so the payload picks one of three tiers: a decode allocates at
/// most 1 MiB, or 16 times the payload's length (sequences and maps are
/// preallocated by serde at most 1 MiB each, whatever they claim). Three
/// tiers instead of one per payload size: each is a copy of the decoder
/// per result type.
fn bounded_bincode_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    let budget = bytes.len().saturating_mul(BINCODE_CLAIMS_PER_BYTE);
    let decoded = if budget <= 1 << 20 {
        decode_from_slice(bytes, standard().with_limit::<{ 1 << 20 }>())
    } else if budget <= 1 << 24 {
        decode_from_slice(bytes, standard().with_limit::<{ 1 << 24 }>())
    } else if bytes.len() <= BINCODE_MAX_PAYLOAD {
        decode_from_slice(bytes, standard().with_limit::<{ 1 << 30 }>())
    } else {
        return Err(CodecError::new(
            Bincode::NAME,
            format!(
                "a payload of {} bytes is over the {BINCODE_MAX_PAYLOAD}-byte decoding limit",
                bytes.len()
            ),
        ));
    };
    decoded.map_err(|e| does_not_decode(Bincode::NAME).with_source(e))
}

/// A payload that is not a value of the requested type: written for another
/// type (a changed struct), by another version, or damaged.
fn does_not_decode(codec: &'static str) -> CodecError {
    CodecError::new(
        codec,
        "the bytes are not a value of the requested type (written for another type or \
         version, or damaged)",
    )
}

/// A payload with bytes left after the value.
fn trailing(codec: &'static str, extra: usize) -> CodecError {
    CodecError::new(
        codec,
        format!("{extra} bytes left after the value (written for another type or damaged)"),
    )
}

/// postcard 1.x (feature `postcard`).
#[cfg(feature = "postcard")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    const NAME: &'static str = "postcard1";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        postcard::to_stdvec(value).map_err(does_not_encode)
    }

    fn encode_into<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // postcard extends by value; on an error the caller drops `out`.
        *out = postcard::to_extend(value, std::mem::take(out)).map_err(does_not_encode)?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) = postcard::take_from_bytes(bytes)
            .map_err(|e| does_not_decode(Self::NAME).with_source(e))?;
        if !rest.is_empty() {
            return Err(trailing(Self::NAME, rest.len()));
        }
        Ok(value)
    }
}

/// A value postcard cannot write (a sequence or map of unknown length, or a
/// failing `Serialize` impl).
#[cfg(feature = "postcard")]
fn does_not_encode(error: postcard::Error) -> CodecError {
    CodecError::new(
        Postcard::NAME,
        "the value does not serialize (postcard needs the length of every sequence and map \
         up front, and a `Serialize` impl may fail)",
    )
    .with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Codec>(c: C) {
        let v = vec![
            (1i64, Some("é\0x".to_string()), vec![0u8, 255]),
            (2, None, vec![]),
        ];
        let bytes = c.encode(&v).unwrap();
        let back: Vec<(i64, Option<String>, Vec<u8>)> = c.decode(&bytes).unwrap();
        assert_eq!(back, v);
        assert!(c
            .decode::<Vec<(i64, Option<String>, Vec<u8>)>>(&bytes[..bytes.len() - 1])
            .is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(c
            .decode::<Vec<(i64, Option<String>, Vec<u8>)>>(&longer)
            .is_err());
    }

    #[test]
    fn bincode_round_trips_and_rejects_damage() {
        round_trip(Bincode);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_round_trips_and_rejects_damage() {
        round_trip(Postcard);
    }
}
