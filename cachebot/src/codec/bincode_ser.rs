//! bincode 2's standard format, written by the crate's own serde
//! `Serializer` straight into the entry's buffer.
//!
//! Why not `bincode::serde::encode_*`: bincode's serializer leaves
//! `collect_str` to serde's default, `serialize_str(&value.to_string())`,
//! and types that serialize through `Display` use it for every value:
//! chrono's timestamps, decimals, many IDs. Each one then allocates a
//! `String` and grows it a character at a time, which dominates the encode
//! of rows with such fields. Here the text is formatted in place at the end of the
//! output, and its length prefix is slipped in front of it afterwards (one
//! byte, moved with the text, for anything under 251 bytes). Writing to a
//! `Vec<u8>` directly also skips bincode's writer layer.
//!
//! The bytes are exactly bincode 2's with `config::standard()` (little
//! endian, variable-length integers): entries are decoded by bincode
//! itself, and the tests compare both encoders on the same values. One
//! thing is added: sequences and maps of unknown length (a serialized
//! iterator), which bincode refuses, are written with their count once it
//! is known.

use std::fmt::{self, Display, Write as _};

use serde::ser::{self, Serialize};

/// Marker bytes of bincode's variable-length integers: a value below 251
/// is its own byte; larger ones are a marker and the value in 2, 4, 8 or
/// 16 little-endian bytes.
const SINGLE_BYTE_MAX: u64 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;
const U128_BYTE: u8 = 254;

/// Why a value did not encode.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Error {
        Error(msg.to_string())
    }
}

/// Append `value` to `out` in bincode 2's standard format. On an error,
/// `out` holds a partial value: the caller discards it.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    value.serialize(&mut Encoder { out })
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn varint(&mut self, v: u64) {
        if v <= SINGLE_BYTE_MAX {
            self.out.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            self.out.push(U16_BYTE);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.out.push(U32_BYTE);
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            self.out.push(U64_BYTE);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn varint128(&mut self, v: u128) {
        match u64::try_from(v) {
            Ok(small) => self.varint(small),
            Err(_) => {
                self.out.push(U128_BYTE);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Zigzag: 0, -1, 1, -2... become 0, 1, 2, 3..., whatever the width.
    fn signed(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    /// Put the varint of `count` at `at`, in front of what follows it.
    fn insert_varint(&mut self, at: usize, count: u64) {
        if count <= SINGLE_BYTE_MAX {
            self.out.insert(at, count as u8);
            return;
        }
        let tail = self.out.split_off(at);
        self.varint(count);
        self.out.extend_from_slice(&tail);
    }
}

/// Formats straight into the output.
struct Append<'a>(&'a mut Vec<u8>);

impl fmt::Write for Append<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }

    // Formatters that write a character at a time (chrono's) get a push,
    // not a UTF-8 round trip and a copy.
    fn write_char(&mut self, c: char) -> fmt::Result {
        if c.is_ascii() {
            self.0.push(c as u8);
        } else {
            self.0
                .extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
        }
        Ok(())
    }
}

/// Room made before formatting a value in place: a timestamp's worth, so
/// that typical values never grow the buffer one character at a time.
const TEXT_HINT: usize = 40;

/// Integers wider than a byte: one variable-length encoding whatever their
/// width, so each widens to 64 bits first.
macro_rules! widened {
    ($($method:ident($ty:ty) => $write:ident($wide:ty);)*) => {$(
        fn $method(self, v: $ty) -> Result<(), Error> {
            self.$write(<$wide>::from(v));
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Counted<'a, 'b>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Counted<'a, 'b>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(u8::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.out.push(v as u8);
        Ok(())
    }

    widened! {
        serialize_i16(i16) => signed(i64);
        serialize_i32(i32) => signed(i64);
        serialize_i64(i64) => signed(i64);
        serialize_u16(u16) => varint(u64);
        serialize_u32(u32) => varint(u64);
        serialize_u64(u64) => varint(u64);
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.varint128(((v << 1) ^ (v >> 127)) as u128);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.out.push(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint128(v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        // bincode writes a char as its UTF-8 bytes, without a length.
        let mut buf = [0u8; 4];
        self.out
            .extend_from_slice(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.varint(u64::from(variant_index));
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.varint(u64::from(variant_index));
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Counted<'a, 'b>, Error> {
        Ok(Counted::start(self, len))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint(u64::from(variant_index));
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Counted<'a, 'b>, Error> {
        Ok(Counted::start(self, len))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Error> {
        // The same bytes: the index, then the fields.
        self.serialize_tuple_variant(name, variant_index, variant, len)
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        let start = self.out.len();
        self.out.reserve(TEXT_HINT);
        write!(Append(self.out), "{value}")
            .map_err(|_| Error("a Display implementation returned an error".into()))?;
        let len = self.out.len() - start;
        self.insert_varint(start, len as u64);
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A sequence or map: its length up front when known, else counted and
/// put in front of the elements at the end.
pub(crate) struct Counted<'a, 'b> {
    enc: &'a mut Encoder<'b>,
    /// Where the count goes, when the length was not known.
    count_at: Option<usize>,
    count: u64,
}

impl<'a, 'b> Counted<'a, 'b> {
    fn start(enc: &'a mut Encoder<'b>, len: Option<usize>) -> Counted<'a, 'b> {
        let count_at = match len {
            Some(len) => {
                enc.len(len);
                None
            }
            None => Some(enc.out.len()),
        };
        Counted {
            enc,
            count_at,
            count: 0,
        }
    }

    fn finish(self) -> Result<(), Error> {
        if let Some(at) = self.count_at {
            self.enc.insert_varint(at, self.count);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Counted<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        value.serialize(&mut *self.enc)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Counted<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.count += 1;
        key.serialize(&mut *self.enc)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.enc)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Tuples, structs and their variants: the fields one after another.
macro_rules! fields {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), Error> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    };
}

fields!(SerializeTuple, serialize_element);
fields!(SerializeTupleStruct, serialize_field);
fields!(SerializeTupleVariant, serialize_field);
fields!(SerializeStruct, serialize_field, _key);
fields!(SerializeStructVariant, serialize_field, _key);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize, Serializer};

    use super::*;

    fn ours<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(v, &mut out).unwrap();
        out
    }

    fn theirs<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    /// Serializes through `collect_str`, as chrono's timestamps do.
    #[derive(Clone, Debug, PartialEq, Deserialize)]
    struct Text(String);

    impl Serialize for Text {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(i64),
        Tuple(u8, String),
        Struct { a: Option<u16>, b: Vec<char> },
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: i32,
        big: u128,
        neg: i128,
        score: f64,
        ratio: f32,
        flag: bool,
        tiny: i8,
        title: Option<String>,
        at: Text,
        shape: Shape,
        bytes: serde_bytes_like::Bytes,
        map: BTreeMap<String, u64>,
        unit: (),
        pair: (i16, u32),
    }

    /// `serialize_bytes` without pulling in serde_bytes.
    mod serde_bytes_like {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Clone, Debug, PartialEq)]
        pub(super) struct Bytes(pub(super) Vec<u8>);

        impl Serialize for Bytes {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
                Vec::<u8>::deserialize(d).map(Bytes)
            }
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            any::<i64>().prop_map(Shape::Newtype),
            (any::<u8>(), ".{0,3}").prop_map(|(a, b)| Shape::Tuple(a, b)),
            (
                any::<Option<u16>>(),
                proptest::collection::vec(any::<char>(), 0..4)
            )
                .prop_map(|(a, b)| Shape::Struct { a, b }),
        ]
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            (
                any::<i32>(),
                any::<u128>(),
                any::<i128>(),
                any::<f64>(),
                any::<f32>(),
            ),
            (
                any::<bool>(),
                any::<i8>(),
                any::<Option<String>>(),
                ".{0,300}",
            ),
            (shape(), proptest::collection::vec(any::<u8>(), 0..300)),
            (
                proptest::collection::btree_map(".{0,4}", any::<u64>(), 0..4),
                any::<(i16, u32)>(),
            ),
        )
            .prop_map(
                |(
                    (id, big, neg, score, ratio),
                    (flag, tiny, title, at),
                    (shape, bytes),
                    (map, pair),
                )| Row {
                    id,
                    big,
                    neg,
                    score,
                    ratio,
                    flag,
                    tiny,
                    title,
                    at: Text(at),
                    shape,
                    bytes: serde_bytes_like::Bytes(bytes),
                    map,
                    unit: (),
                    pair,
                },
            )
    }

    proptest! {
        #[test]
        fn same_bytes_as_bincode(rows in proptest::collection::vec(row(), 0..4)) {
            let bytes = ours(&rows);
            prop_assert_eq!(&bytes, &theirs(&rows));
        }

        #[test]
        fn integers_at_every_width_boundary(shift in 0u32..128, delta in -2i64..=2) {
            let u = (1u128 << shift).wrapping_add_signed(i128::from(delta));
            let i = u as i128;
            prop_assert_eq!(ours(&u), theirs(&u));
            prop_assert_eq!(ours(&i), theirs(&i));
            prop_assert_eq!(ours(&(u as u64)), theirs(&(u as u64)));
            prop_assert_eq!(ours(&(u as i64)), theirs(&(u as i64)));
            prop_assert_eq!(ours(&(u as u32)), theirs(&(u as u32)));
            prop_assert_eq!(ours(&(u as i32)), theirs(&(u as i32)));
            prop_assert_eq!(ours(&(u as u16)), theirs(&(u as u16)));
            prop_assert_eq!(ours(&(u as i16)), theirs(&(u as i16)));
            prop_assert_eq!(ours(&(u as usize)), theirs(&(u as usize)));
            prop_assert_eq!(ours(&(u as isize)), theirs(&(u as isize)));
        }
    }

    #[test]
    fn long_collected_text_gets_a_wide_length() {
        // 251 bytes and more: the length needs a marker byte and two more.
        for len in [0, 1, 250, 251, 252, 65_535, 65_536, 70_000] {
            let v = vec![Text("é".repeat(len / 2) + &"x".repeat(len % 2))];
            assert_eq!(ours(&v), theirs(&v), "len {len}");
            let back: (Vec<Text>, usize) =
                bincode::serde::decode_from_slice(&ours(&v), bincode::config::standard()).unwrap();
            assert_eq!(back.0, v);
        }
    }

    #[test]
    fn sequences_of_unknown_length_are_counted() {
        struct Iter(u64);
        impl Serialize for Iter {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // A filter has no exact size hint: serialize_seq(None).
                s.collect_seq((0..self.0).filter(|_| true))
            }
        }
        for n in [0, 3, 250, 251, 1000] {
            let bytes = ours(&Iter(n));
            // bincode refuses to write it (an empty filter's hint is exact),
            // and reads it back as a Vec.
            let refused = bincode::serde::encode_to_vec(Iter(n), bincode::config::standard());
            assert_eq!(refused.is_err(), n > 0);
            let (back, used): (Vec<u64>, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            assert_eq!(back, (0..n).collect::<Vec<_>>());
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn display_errors_are_errors() {
        struct Broken;
        impl Display for Broken {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        impl Serialize for Broken {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        let mut out = Vec::new();
        assert!(encode_into(&Broken, &mut out).is_err());
    }
}
