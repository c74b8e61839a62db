//! Mark names: the one place where a key or a project becomes the name of its cooling mark.
//!
//! Storage, pruning, selection and `/v1/status` all name marks through [`MarkName::of`], so a
//! name can never be built two ways. Names go into the KV items' text lines, so they hold no
//! space, newline or `%` of their own: a project name is percent-encoded byte by byte outside
//! `[A-Za-z0-9._-]`, which keeps any name the operator writes (`my team`, `équipe`, `a/b`)
//! distinct and readable.

use crate::pool::keys::{ApiKey, Fingerprint, Fnv};
use std::fmt;

/// The unit Google counts quota in: a declared project, or the key alone when none is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket<'a> {
    /// Every key written `project:KEY` with this project name.
    Project(&'a str),
    /// One key (by fingerprint).
    Key(Fingerprint),
}

impl<'a> Bucket<'a> {
    /// The quota bucket `key` draws from.
    pub fn of(key: &ApiKey<'a>) -> Self {
        match key.project {
            Some(project) => Bucket::Project(project),
            None => Bucket::Key(key.fingerprint),
        }
    }
}

/// The name of a mark: `k:<16 hex digits>` for a key, `p:<encoded project>` for a project.
/// A key's name is held inline: every candidate key a request considers is named, so naming
/// one allocates nothing. (Ordered as its text: every key's name before every project's.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkName(Name);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Name {
    /// `k:<16 hex digits>`.
    Key([u8; KEY_NAME_LEN]),
    /// `p:<encoded project>`.
    Project(String),
}

/// The length of a key's mark name: `k:` and 16 hex digits.
const KEY_NAME_LEN: usize = 18;

impl MarkName {
    /// The one naming function.
    pub fn of(bucket: Bucket<'_>) -> Self {
        match bucket {
            Bucket::Key(_) => {
                let mut name = [0u8; KEY_NAME_LEN];
                let mut at = 0;
                write_name(bucket, |byte| {
                    if let Some(slot) = name.get_mut(at) {
                        *slot = byte;
                    }
                    at += 1;
                });
                MarkName(Name::Key(name))
            }
            Bucket::Project(project) => {
                let mut name = String::with_capacity(2 + project.len());
                write_name(bucket, |byte| name.push(char::from(byte)));
                MarkName(Name::Project(name))
            }
        }
    }

    /// The hash of `bucket`'s name, FNV-1a 64 as marks are stored by, without writing the name
    /// down: a lookup in an item's sorted records needs only this, and every candidate key a
    /// request considers is looked up.
    pub fn hash_of(bucket: Bucket<'_>) -> u64 {
        let mut hash = Fnv::new();
        write_name(bucket, |byte| hash.push(byte));
        hash.finish()
    }

    /// The name of a key's own mark (dead keys, per-key cooldowns).
    pub fn key(key: &ApiKey<'_>) -> Self {
        MarkName::of(Bucket::Key(key.fingerprint))
    }

    /// `k:` and `hex` (16 lowercase hex digits, checked by the callers).
    fn key_named(hex: &[u8]) -> Self {
        let mut name = [0u8; KEY_NAME_LEN];
        for (to, from) in name.iter_mut().zip(b"k:".iter().chain(hex)) {
            *to = *from;
        }
        MarkName(Name::Key(name))
    }

    /// The name as stored, as bytes (what lookups compare and hash).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Name::Key(name) => name,
            Name::Project(name) => name.as_bytes(),
        }
    }

    /// The name as stored.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Built only from `k:` and hex digits: always text.
            Name::Key(name) => std::str::from_utf8(name).unwrap_or_default(),
            Name::Project(name) => name,
        }
    }

    /// Reads a stored name back: `None` unless it is one [`MarkName::of`] could have written.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("k", hex) if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) => {
                Some(MarkName::key_named(hex.as_bytes()))
            }
            ("p", rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(MarkName(Name::Project(text.to_string())))
            }
            _ => None,
        }
    }
}

impl fmt::Display for MarkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hands `emit` the bytes of `bucket`'s name, one at a time (ASCII only): naming and hashing
/// both come through here, so they cannot disagree.
fn write_name(bucket: Bucket<'_>, mut emit: impl FnMut(u8)) {
    match bucket {
        Bucket::Key(fp) => {
            emit(b'k');
            emit(b':');
            (0..16).for_each(|i| emit(fp.hex_digit(i)));
        }
        Bucket::Project(project) => {
            emit(b'p');
            emit(b':');
            escape_into(project, emit);
        }
    }
}

/// `text` with every byte outside `[A-Za-z0-9._-]` written `%XX`: safe in a stored line, and
/// distinct for distinct texts (also how usage counts name clients).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, |byte| out.push(char::from(byte)));
    out
}

/// [`escape`], a byte at a time.
fn escape_into(text: &str, mut emit: impl FnMut(u8)) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            emit(byte);
        } else {
            emit(b'%');
            emit(UPPER_HEX[usize::from(byte >> 4)]);
            emit(UPPER_HEX[usize::from(byte & 0xf)]);
        }
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Reads [`escape`]'s output back (`None` if it is not).
pub(crate) fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The bucket a request is pinned to, owned (a [`Bucket`] borrows from the key lists).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pinned {
    /// Keys written `project:KEY` with this project.
    Project(String),
    /// One key with no declared project.
    Key(Fingerprint),
}

impl Pinned {
    /// The bucket `key` draws from.
    pub fn of(key: &ApiKey<'_>) -> Self {
        match Bucket::of(key) {
            Bucket::Project(project) => Pinned::Project(project.to_string()),
            Bucket::Key(fp) => Pinned::Key(fp),
        }
    }

    /// Is `key` in this bucket?
    pub fn holds(&self, key: &ApiKey<'_>) -> bool {
        match (self, Bucket::of(key)) {
            (Pinned::Project(p), Bucket::Project(q)) => p == q,
            (Pinned::Key(fp), Bucket::Key(other)) => *fp == other,
            _ => false,
        }
    }

    pub(crate) fn mark(&self) -> MarkName {
        match self {
            Pinned::Project(p) => MarkName::of(Bucket::Project(p)),
            Pinned::Key(fp) => MarkName::of(Bucket::Key(*fp)),
        }
    }

    pub(crate) fn parse(mark: &str) -> Option<Self> {
        match mark.split_once(':')? {
            ("k", hex) if hex.len() == 16 => u64::from_str_radix(hex, 16).ok().map(|n| Pinned::Key(Fingerprint(n))),
            ("p", project) if !project.is_empty() => unescape(project).map(Pinned::Project),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_project_name_becomes_one_safe_name() {
        for project in ["team-a", "my team", "équipe", "a/b", "x%20y", "tab\there", "名前"] {
            let name = MarkName::of(Bucket::Project(project));
            assert!(name.as_str().bytes().all(|b| b.is_ascii_graphic()), "{name}");
            assert_eq!(MarkName::parse(name.as_str()), Some(name.clone()));
        }
        assert_eq!(MarkName::of(Bucket::Project("my team")).as_str(), "p:my%20team");
        assert_ne!(MarkName::of(Bucket::Project("x y")), MarkName::of(Bucket::Project("x%20y")));
        assert_ne!(MarkName::of(Bucket::Project("a b")), MarkName::of(Bucket::Project("a_b")));
        for text in ["my team", "équipe", "50% off", "", "a/b:c"] {
            assert_eq!(unescape(&escape(text)).as_deref(), Some(text));
        }
    }

    #[test]
    fn a_name_hashes_as_its_text() {
        let buckets = [
            Bucket::Key(Fingerprint(0)),
            Bucket::Key(Fingerprint(u64::MAX)),
            Bucket::Key(Fingerprint(0xab)),
            Bucket::Project("team-a"),
            Bucket::Project("équipe 名前 %"),
            Bucket::Project(""),
        ];
        for bucket in buckets {
            let name = MarkName::of(bucket);
            assert_eq!(MarkName::hash_of(bucket), Fingerprint::of_bytes(name.as_bytes()).0, "{name}");
        }
    }

    #[test]
    fn key_names() {
        let name = MarkName::of(Bucket::Key(Fingerprint(0xab)));
        assert_eq!(name.as_str(), "k:00000000000000ab");
        assert_eq!(MarkName::parse(name.as_str()), Some(name));
        assert_eq!(MarkName::parse("k:xyz"), None);
        assert_eq!(MarkName::parse("q:1"), None);
    }
}
