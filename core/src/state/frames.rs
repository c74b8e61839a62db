//! Store operations as bytes: how an edge whose store sits behind a call (Workers' Durable
//! Objects) sends a batch of operations on items and gets their results back in the same
//! order. Item bytes travel as they are; JSON would have to write them in hex (twice the bytes)
//! and parse them back on both sides.
//!
//! A batch is a sequence of operations, each a tag byte, the item's name (u16 length, bytes),
//! then the tag's fields; numbers are big-endian, an optional number is a presence byte (0 or 1)
//! and the number when present, bytes are a u32 length and the bytes:
//! - `g` get — nothing more; `l` list — the name is the prefix;
//! - `a` append — ttl (optional, seconds), bytes;
//! - `r` replace — generation (optional: none means "only if absent"), ttl (optional), bytes;
//! - `d` delete — nothing more.
//!
//! The results, one per operation: `Found` — 1, generation (u64), bytes; `Absent` and `Refused`
//! — 0; `Done` — 1 (a delete's too); `Names` — count (u32), then each name (u16 length, bytes). Which result an
//! operation gets is the tag's: a reader decodes the results knowing the operations it sent.

use thiserror::Error;

/// One operation on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// The item's bytes and generation.
    Get {
        /// The item's name.
        item: String,
    },
    /// Adds bytes at the item's end (creating it).
    Append {
        /// The item's name.
        item: String,
        /// What is added.
        bytes: Vec<u8>,
        /// How long the item is kept from now (`None`: no expiry).
        ttl_secs: Option<u64>,
    },
    /// Writes the whole item if it is still at `generation`.
    Replace {
        /// The item's name.
        item: String,
        /// The item's new bytes.
        bytes: Vec<u8>,
        /// The generation it must still be at (`None`: it must not exist).
        generation: Option<u64>,
        /// How long the item is kept from now (`None`: no expiry).
        ttl_secs: Option<u64>,
    },
    /// Removes the item (a resource Google deleted).
    Delete {
        /// The item's name.
        item: String,
    },
    /// The names of the items starting with `prefix`.
    List {
        /// What the names start with.
        prefix: String,
    },
}

/// What one operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreResult {
    /// A get's item.
    Found {
        /// Its bytes.
        bytes: Vec<u8>,
        /// Its generation (each write adds one).
        generation: u64,
    },
    /// A get's item does not exist.
    Absent,
    /// A write was stored.
    Done,
    /// A replace found another generation: nothing was written.
    Refused,
    /// A list's names.
    Names(Vec<String>),
}

/// Bytes that are not a batch (or not the results of the batch sent).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The bytes end inside an operation or a result.
    #[error("the frame ends inside an operation or a result")]
    Truncated,
    /// An operation's tag is none of `g`, `a`, `r`, `d`, `l`.
    #[error("unknown operation tag {0:#04x}")]
    UnknownTag(u8),
    /// A name's bytes are not UTF-8.
    #[error("an item name is not UTF-8")]
    NotText,
    /// A name does not fit its 16-bit length.
    #[error("a name is longer than 65,535 bytes")]
    NameTooLong,
}

impl StoreOp {
    /// The item (or prefix) the operation is about.
    pub fn item(&self) -> &str {
        match self {
            StoreOp::Get { item }
            | StoreOp::Append { item, .. }
            | StoreOp::Replace { item, .. }
            | StoreOp::Delete { item } => item,
            StoreOp::List { prefix } => prefix,
        }
    }

    /// A batch as bytes.
    pub fn encode_batch(ops: &[StoreOp]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        for op in ops {
            op.encode(&mut out)?;
        }
        Ok(out)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let tag = match self {
            StoreOp::Get { .. } => b'g',
            StoreOp::Append { .. } => b'a',
            StoreOp::Replace { .. } => b'r',
            StoreOp::Delete { .. } => b'd',
            StoreOp::List { .. } => b'l',
        };
        out.push(tag);
        put_name(out, self.item())?;
        match self {
            StoreOp::Get { .. } | StoreOp::List { .. } | StoreOp::Delete { .. } => {}
            StoreOp::Append { bytes, ttl_secs, .. } => {
                put_optional(out, *ttl_secs);
                put_bytes(out, bytes);
            }
            StoreOp::Replace { bytes, generation, ttl_secs, .. } => {
                put_optional(out, *generation);
                put_optional(out, *ttl_secs);
                put_bytes(out, bytes);
            }
        }
        Ok(())
    }

    /// A batch from its bytes.
    pub fn decode_batch(bytes: &[u8]) -> Result<Vec<StoreOp>, FrameError> {
        let mut reader = Reader { bytes };
        let mut ops = Vec::new();
        while let Some(&tag) = reader.bytes.first() {
            reader.bytes = &reader.bytes[1..];
            let item = reader.name()?;
            let op = match tag {
                b'g' => StoreOp::Get { item },
                b'l' => StoreOp::List { prefix: item },
                b'd' => StoreOp::Delete { item },
                b'a' => {
                    let ttl_secs = reader.optional()?;
                    StoreOp::Append { item, ttl_secs, bytes: reader.bytes()? }
                }
                b'r' => {
                    let generation = reader.optional()?;
                    let ttl_secs = reader.optional()?;
                    StoreOp::Replace { item, generation, ttl_secs, bytes: reader.bytes()? }
                }
                other => return Err(FrameError::UnknownTag(other)),
            };
            ops.push(op);
        }
        Ok(ops)
    }
}

impl StoreResult {
    /// The results of a batch as bytes (each as its operation's tag writes it).
    pub fn encode_all(results: &[StoreResult]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        for result in results {
            match result {
                StoreResult::Found { bytes, generation } => {
                    out.push(1);
                    out.extend_from_slice(&generation.to_be_bytes());
                    put_bytes(&mut out, bytes);
                }
                StoreResult::Absent | StoreResult::Refused => out.push(0),
                StoreResult::Done => out.push(1),
                StoreResult::Names(names) => {
                    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
                    for name in names {
                        put_name(&mut out, name)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The results of `ops` from their bytes.
    pub fn decode_all(ops: &[StoreOp], bytes: &[u8]) -> Result<Vec<StoreResult>, FrameError> {
        let mut reader = Reader { bytes };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                StoreOp::Get { .. } => match reader.byte()? {
                    0 => StoreResult::Absent,
                    _ => {
                        let generation = reader.number()?;
                        StoreResult::Found { generation, bytes: reader.bytes()? }
                    }
                },
                StoreOp::Append { .. } | StoreOp::Replace { .. } | StoreOp::Delete { .. } => match reader.byte()? {
                    0 => StoreResult::Refused,
                    _ => StoreResult::Done,
                },
                StoreOp::List { .. } => {
                    let count = reader.length()?;
                    // Each name takes 2 bytes at least: a count past that is a damaged frame.
                    let mut names = Vec::with_capacity(count.min(reader.bytes.len() / 2));
                    for _ in 0..count {
                        names.push(reader.name()?);
                    }
                    StoreResult::Names(names)
                }
            };
            results.push(result);
        }
        Ok(results)
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), FrameError> {
    let len = u16::try_from(name.len()).map_err(|_| FrameError::NameTooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn put_optional(out: &mut Vec<u8>, number: Option<u64>) {
    match number {
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // An item is far below 4 GiB (Fastly's KV holds 25 MB; an object's value 2 MB).
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a frame front to back; every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        if self.bytes.len() < n {
            return Err(FrameError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn number(&mut self) -> Result<u64, FrameError> {
        let mut be = [0u8; 8];
        be.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(be))
    }

    fn length(&mut self) -> Result<usize, FrameError> {
        let mut be = [0u8; 4];
        be.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(be) as usize)
    }

    fn optional(&mut self) -> Result<Option<u64>, FrameError> {
        match self.byte()? {
            0 => Ok(None),
            _ => self.number().map(Some),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, FrameError> {
        let len = self.length()?;
        Ok(self.take(len)?.to_vec())
    }

    fn name(&mut self) -> Result<String, FrameError> {
        let mut be = [0u8; 2];
        be.copy_from_slice(self.take(2)?);
        let name = self.take(usize::from(u16::from_be_bytes(be)))?;
        String::from_utf8(name.to_vec()).map_err(|_| FrameError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_op() -> Vec<StoreOp> {
        vec![
            StoreOp::Get { item: "model/gemini-2.5-flash".into() },
            StoreOp::Append {
                item: "usage/2026-12-04/3".into(),
                bytes: b"line one\n\x00\xff".to_vec(),
                ttl_secs: None,
            },
            StoreOp::Append { item: "lim/team".into(), bytes: Vec::new(), ttl_secs: Some(86_400) },
            StoreOp::Replace {
                item: "keys".into(),
                bytes: vec![7; 300],
                generation: Some(u64::MAX),
                ttl_secs: Some(1),
            },
            StoreOp::Replace { item: "r/files/abc".into(), bytes: b"{}".to_vec(), generation: None, ttl_secs: None },
            StoreOp::Delete { item: "res/files/abc".into() },
            StoreOp::List { prefix: "model/".into() },
        ]
    }

    #[test]
    fn a_batch_and_its_results_come_back_as_they_were_sent() {
        let ops = every_op();
        let sent = StoreOp::encode_batch(&ops).unwrap();
        assert_eq!(StoreOp::decode_batch(&sent).unwrap(), ops);
        let results = vec![
            StoreResult::Found { bytes: b"marks\n\x00".to_vec(), generation: 42 },
            StoreResult::Done,
            StoreResult::Refused,
            StoreResult::Done,
            StoreResult::Refused,
            StoreResult::Done,
            StoreResult::Names(vec!["model/a".into(), "model/b@2".into(), String::new()]),
        ];
        let answered = StoreResult::encode_all(&results).unwrap();
        assert_eq!(StoreResult::decode_all(&ops, &answered).unwrap(), results);
        let absent = StoreResult::encode_all(&[StoreResult::Absent]).unwrap();
        assert_eq!(StoreResult::decode_all(&ops[..1], &absent).unwrap(), vec![StoreResult::Absent]);
    }

    #[test]
    fn damaged_frames_are_errors_never_panics() {
        let sent = StoreOp::encode_batch(&every_op()).unwrap();
        for cut in 0..sent.len() {
            // Every prefix either decodes (it ends between operations) or says it is cut.
            match StoreOp::decode_batch(&sent[..cut]) {
                Ok(ops) => assert!(ops.len() < every_op().len()),
                Err(e) => assert_eq!(e, FrameError::Truncated),
            }
        }
        assert_eq!(StoreOp::decode_batch(b"x\x00\x00"), Err(FrameError::UnknownTag(b'x')));
        assert_eq!(StoreOp::decode_batch(b"g\x00\x01\xff"), Err(FrameError::NotText));
        let list = [StoreOp::List { prefix: String::new() }];
        assert_eq!(StoreResult::decode_all(&list, b"\xff\xff\xff\xff\x00"), Err(FrameError::Truncated));
        assert_eq!(StoreResult::decode_all(&list[..], b""), Err(FrameError::Truncated));
    }

    #[test]
    fn a_name_too_long_for_its_length_field_is_refused() {
        let op = StoreOp::Get { item: "x".repeat(70_000) };
        assert_eq!(StoreOp::encode_batch(&[op]), Err(FrameError::NameTooLong));
    }
}
