//! An estimate of a decoded result's size in memory, from its `Serialize`.
//!
//! In process, a miss keeps its rows decoded rather than encoding them (see
//! `read`), and the local tier bounds what it keeps by size. Encoding only
//! to learn a size would cost what keeping them decoded saves, so the rows
//! are walked instead: each primitive counts its size in memory, each
//! string, byte buffer and sequence its length plus the 24 bytes of a
//! `String` or `Vec` header. A value serialized as text through `Display`
//! (a timestamp, a decimal) counts 24 bytes without being formatted: such
//! values are small fixed-size types in memory. Padding and allocator
//! overhead are not counted, so the estimate is below the truth by a
//! small factor at most; the local tier adds a fixed overhead per result.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

/// A `String` or `Vec` header.
const HEADER: usize = 24;

/// The estimated size in memory of `value`, in bytes.
pub(crate) fn weigh<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut w = Weigher(0);
    // The walk itself never fails; a `Serialize` impl that does leaves the
    // estimate at what was counted, and the same rows fail to encode if
    // they are ever encoded.
    let _ = value.serialize(&mut w);
    w.0
}

struct Weigher(usize);

/// Why a walk stopped: only a `Serialize` impl's own error.
#[derive(Debug)]
struct Never(String);

impl Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: Display>(msg: T) -> Never {
        Never(msg.to_string())
    }
}

/// Primitives: their size in memory.
macro_rules! sized {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method(self, _: $ty) -> Result<(), Never> {
            self.0 += std::mem::size_of::<$ty>();
            Ok(())
        }
    )*};
}

impl ser::Serializer for &mut Weigher {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    sized! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.0 += HEADER + v.len();
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Never> {
        self.0 += 1;
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        self.0 += 1;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.0 += 4;
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.0 += 4;
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        self.0 += HEADER;
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.0 += 4;
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        self.0 += HEADER;
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Never> {
        self.serialize_tuple_variant(name, index, variant, len)
    }

    fn collect_str<T: Display + ?Sized>(self, _: &T) -> Result<(), Never> {
        self.0 += HEADER;
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Compounds: the sum of their parts.
macro_rules! parts {
    ($trait:ident, $($method:ident($($key:ident: $kt:ty),*)),+) => {
        impl ser::$trait for &mut Weigher {
            type Ok = ();
            type Error = Never;
            $(
                fn $method<T: Serialize + ?Sized>(
                    &mut self,
                    $($key: $kt,)*
                    value: &T,
                ) -> Result<(), Never> {
                    value.serialize(&mut **self)
                }
            )+
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    };
}

parts!(SerializeSeq, serialize_element());
parts!(SerializeTuple, serialize_element());
parts!(SerializeTupleStruct, serialize_field());
parts!(SerializeTupleVariant, serialize_field());
parts!(SerializeMap, serialize_key(), serialize_value());
parts!(SerializeStruct, serialize_field(_key: &'static str));
parts!(SerializeStructVariant, serialize_field(_key: &'static str));

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Row {
        id: i32,
        title: String,
        score: f64,
        tags: Vec<String>,
        parent: Option<i64>,
    }

    #[test]
    fn counts_primitives_text_and_headers() {
        assert_eq!(weigh(&7u8), 1);
        assert_eq!(weigh(&7i64), 8);
        assert_eq!(weigh("abc"), 24 + 3);
        assert_eq!(weigh(&vec![1u32, 2, 3]), 24 + 12);
        let row = Row {
            id: 1,
            title: "x".repeat(100),
            score: 0.5,
            tags: vec!["a".into(), "bb".into()],
            parent: Some(3),
        };
        assert_eq!(
            weigh(&row),
            4 + (24 + 100) + 8 + (24 + (24 + 1) + (24 + 2)) + (1 + 8)
        );
        // Rows of large text weigh what their text does.
        let big = vec![Row {
            title: "y".repeat(700_000),
            tags: Vec::new(),
            ..row
        }];
        assert!(weigh(&big) > 700_000);
    }

    #[test]
    fn display_values_are_not_formatted() {
        struct Loud;
        impl Display for Loud {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("formatted")
            }
        }
        impl Serialize for Loud {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        assert_eq!(weigh(&[Loud, Loud]), 48);
    }
}
