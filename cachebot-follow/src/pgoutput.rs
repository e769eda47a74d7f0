//! A decoder for the `pgoutput` (protocol version 1) messages that
//! pgwire-replication forwards raw: Relation, Type, Origin, Insert, Update,
//! Delete, Truncate (Begin, Commit and Message are parsed by the transport).
//!
//! The bytes are input: every read is bounded by the message, nothing
//! panics, a malformed message is a [`DecodeError`].

use std::collections::HashMap;

/// A malformed or unexpected pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput: {0}")]
pub struct DecodeError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Its name.
    pub name: String,
    /// Its type OID (a domain's own OID).
    pub type_oid: u32,
    /// Part of the replica identity.
    pub key: bool,
}

/// A relation as announced on this stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The schema.
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Its columns, in the order tuples list them.
    pub columns: Vec<RelColumn>,
}

/// One value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// `n`: NULL (or, in a key-only old tuple, a column that is not part of the key).
    Null,
    /// `u`: an unchanged TOASTed value the server did not send.
    Unchanged,
    /// `t`: text format.
    Text(Vec<u8>),
    /// `b`: binary format (the type's send function).
    Binary(Vec<u8>),
}

/// Which old tuple an Update or Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: the replica identity's columns only.
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A row change or truncate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// A new row.
    Insert {
        /// Relation OID.
        rel: u32,
        /// The new tuple.
        new: Vec<TupleValue>,
    },
    /// An updated row; `old` is `None` when the identity is unchanged and not FULL.
    Update {
        /// Relation OID.
        rel: u32,
        /// The old tuple, when sent.
        old: Option<(OldKind, Vec<TupleValue>)>,
        /// The new tuple.
        new: Vec<TupleValue>,
    },
    /// A deleted row.
    Delete {
        /// Relation OID.
        rel: u32,
        /// The old tuple.
        old: (OldKind, Vec<TupleValue>),
    },
    /// Truncated relations (CASCADE already expanded by the server).
    Truncate {
        /// Relation OIDs.
        rels: Vec<u32>,
    },
}

/// What one message was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A relation was (re)announced; the decoder's map holds it.
    Relation(u32),
    /// A message the follower does not need (Type, Origin).
    Ignored,
    /// A row change.
    Change(RowChange),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return err("truncated message");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn count(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.i16()?).or_else(|_| err("negative count"))
    }
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let Some(end) = self.buf.iter().position(|&b| b == 0) else {
            return err("unterminated string");
        };
        let s = String::from_utf8_lossy(self.take(end)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<TupleValue>, DecodeError> {
        let n = self.count()?;
        // Each value takes at least one byte: a count beyond the message is a lie.
        let mut out = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                kind @ (b't' | b'b') => {
                    let len = usize::try_from(self.i32()?).or_else(|_| err("negative length"))?;
                    let bytes = self.take(len)?.to_vec();
                    if kind == b't' {
                        TupleValue::Text(bytes)
                    } else {
                        TupleValue::Binary(bytes)
                    }
                }
                k => return err(format!("unknown tuple value kind {k:#x}")),
            });
        }
        Ok(out)
    }
    fn old(&mut self, tag: u8) -> Result<Option<(OldKind, Vec<TupleValue>)>, DecodeError> {
        let kind = match tag {
            b'K' => OldKind::Key,
            b'O' => OldKind::Full,
            _ => return Ok(None),
        };
        Ok(Some((kind, self.tuple()?)))
    }
}

/// The relations announced on one replication connection. pgoutput
/// announces a relation before its first change in each session and again
/// after its schema changed: build one decoder per connection, never persist it.
#[derive(Debug, Default)]
pub struct Decoder {
    relations: HashMap<u32, Relation>,
}

impl Decoder {
    /// The relation announced under `oid`.
    pub fn relation(&self, oid: u32) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    /// Decode one message (the payload of an `XLogData`).
    pub fn decode(&mut self, data: &[u8]) -> Result<Decoded, DecodeError> {
        let mut r = Reader { buf: data };
        match r.u8()? {
            b'R' => {
                let oid = r.u32()?;
                let schema = r.cstr()?;
                let name = r.cstr()?;
                let replica_identity = r.u8()?;
                let n = r.count()?;
                let mut columns = Vec::with_capacity(n.min(r.buf.len()));
                for _ in 0..n {
                    let flags = r.u8()?;
                    let name = r.cstr()?;
                    let type_oid = r.u32()?;
                    let _type_mod = r.i32()?;
                    columns.push(RelColumn {
                        name,
                        type_oid,
                        key: flags & 1 != 0,
                    });
                }
                self.relations.insert(
                    oid,
                    Relation {
                        schema,
                        name,
                        replica_identity,
                        columns,
                    },
                );
                Ok(Decoded::Relation(oid))
            }
            b'Y' | b'O' => Ok(Decoded::Ignored),
            b'I' => {
                let rel = r.u32()?;
                if r.u8()? != b'N' {
                    return err("insert without a new tuple");
                }
                let new = r.tuple()?;
                Ok(Decoded::Change(RowChange::Insert { rel, new }))
            }
            b'U' => {
                let rel = r.u32()?;
                let mut tag = r.u8()?;
                let old = r.old(tag)?;
                if old.is_some() {
                    tag = r.u8()?;
                }
                if tag != b'N' {
                    return err("update without a new tuple");
                }
                let new = r.tuple()?;
                Ok(Decoded::Change(RowChange::Update { rel, old, new }))
            }
            b'D' => {
                let rel = r.u32()?;
                let tag = r.u8()?;
                let Some(old) = r.old(tag)? else {
                    return err(format!("delete with old tuple tag {tag:#x}"));
                };
                Ok(Decoded::Change(RowChange::Delete { rel, old }))
            }
            b'T' => {
                let n = r.u32()?;
                let _flags = r.u8()?;
                // Each OID takes 4 bytes: a count beyond the message is a lie.
                if usize::try_from(n).map_or(true, |n| n.saturating_mul(4) > r.buf.len()) {
                    return err("truncate lists more relations than it holds");
                }
                let rels = (0..n).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
                Ok(Decoded::Change(RowChange::Truncate { rels }))
            }
            t => err(format!("unexpected pgoutput message {t:#x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16389u32.to_be_bytes());
        m.extend(b"public\0photos\0");
        m.push(b'd');
        m.extend(2i16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 23u32), (0, "body", 25)] {
            m.push(flags);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(oid.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut m = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => m.push(b'n'),
                Some(b) => {
                    m.push(b'b');
                    m.extend((b.len() as i32).to_be_bytes());
                    m.extend(*b);
                }
            }
        }
        m
    }

    #[test]
    fn decodes_relation_and_changes() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&relation()), Ok(Decoded::Relation(16389)));
        let rel = d.relation(16389).cloned();
        assert_eq!(
            rel.map(|r| (r.schema, r.name, r.columns.len())),
            Some(("public".into(), "photos".into(), 2))
        );

        let mut u = vec![b'U'];
        u.extend(16389u32.to_be_bytes());
        u.push(b'K');
        u.extend(tuple(&[Some(&[0, 0, 0, 1]), None]));
        u.push(b'N');
        u.extend(tuple(&[Some(&[0, 0, 0, 2]), Some(b"x")]));
        let Ok(Decoded::Change(RowChange::Update {
            old: Some((OldKind::Key, old)),
            new,
            ..
        })) = d.decode(&u)
        else {
            panic!("not an update with a key-only old tuple");
        };
        assert_eq!(old[1], TupleValue::Null);
        assert_eq!(new[1], TupleValue::Binary(b"x".to_vec()));

        let mut t = vec![b'T'];
        t.extend(2u32.to_be_bytes());
        t.push(1);
        t.extend(1u32.to_be_bytes());
        t.extend(2u32.to_be_bytes());
        assert_eq!(
            d.decode(&t),
            Ok(Decoded::Change(RowChange::Truncate { rels: vec![1, 2] }))
        );
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let mut d = Decoder::default();
        let mut samples: Vec<Vec<u8>> = vec![
            vec![],
            vec![b'Z'],
            vec![b'T', 0xff, 0xff, 0xff, 0xff, 0],
            vec![b'I', 0, 0, 0, 1, b'N', 0x7f, 0xff],
            vec![b'I', 0, 0, 0, 1, b'N', 0, 1, b'b', 0x7f, 0xff, 0xff, 0xff],
            vec![b'D', 0, 0, 0, 1, b'X'],
            vec![b'R', 0, 0, 0, 1, b'a'],
        ];
        // Every prefix of valid messages, and a few bit flips.
        let valid = relation();
        for n in 0..valid.len() {
            samples.push(valid[..n].to_vec());
        }
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let mut m = valid.clone();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = seed as usize % m.len();
            m[i] ^= (seed >> 8) as u8;
            samples.push(m);
        }
        for s in samples {
            let _ = d.decode(&s);
        }
    }
}
