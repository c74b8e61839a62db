//! The key pool: the operator's key lists as read from the secrets, looked at lazily.
//!
//! Entries are separated by newlines or commas; spaces and blank lines are ignored; a line
//! starting with `#` is a comment; `project-name:KEY` declares the key's Google project.
//! A key is [`MIN_KEY_LEN`]–[`MAX_KEY_LEN`] visible ASCII characters (Google's keys have 39
//! or 53; the proxy never judges one by its prefix): any other entry is rejected — skipped,
//! and reported by [`KeyPool::rejected`] with where it is and what is wrong, never its text.
//! A key listed twice is one key: it is tried and counted once.
//!
//! Each list (secret `keys`, `keys_2`, …) is a **part** of the pool, and a request reads only
//! the parts it needs: [`choose_part`] picks the one to start in, in proportion to its size,
//! and others are added ([`KeyPool::add`]) only if that part has no key left to try. Within
//! the parts read, nothing is parsed as a whole: [`KeyPool::draw`] picks a random byte and
//! reads the entry around it, [`KeyPool::walk`] reads entries in order from a given one. Only
//! `/v1/status`, the key check and the proof that nothing can serve walk every entry
//! ([`KeyPool::iter`]).
//!
//! A key never leaves this module in clear except to be sent to Google: everything else
//! (KV names, logs, `/v1/status`) uses its [`Fingerprint`] or its [`mask`](ApiKey::mask).

use crate::pool::rng::Rng;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

/// Where an entry starts: which part, which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Index of the part (0 for `keys`, 1 for `keys_2`, …).
    pub list: usize,
    /// Byte offset of the entry's first byte in that list.
    pub start: usize,
}

/// One pooled Gemini API key, borrowed from the list it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKey<'a> {
    /// The key itself (sent to Google, never shown).
    pub secret: &'a str,
    /// Keys written `project-name:KEY` share one quota bucket per model.
    pub project: Option<&'a str>,
    /// Where its entry starts in the pool.
    pub at: Position,
    /// Its fingerprint, computed once when the entry is read.
    pub fingerprint: Fingerprint,
}

/// A stable, non-reversible name for a key: FNV-1a 64 of the key text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_hex(|hex| f.write_str(hex))
    }
}

impl Fingerprint {
    /// The fingerprint of a key text.
    pub fn of(secret: &str) -> Self {
        Fingerprint::of_bytes(secret.as_bytes())
    }

    /// Calls `f` with the 16 lowercase hex digits (written by hand, not by `format!`: every
    /// request names keys this way).
    pub fn with_hex<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        let mut digits = [0u8; 16];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = self.hex_digit(i);
        }
        f(std::str::from_utf8(&digits).unwrap_or_default())
    }

    /// The `i`th of the 16 lowercase hex digits (0 the most significant).
    pub(crate) fn hex_digit(&self, i: usize) -> u8 {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        HEX[((self.0 >> (60 - 4 * (i & 15))) & 0xf) as usize]
    }

    /// FNV-1a 64 of any bytes (also the hash that sorts stored marks).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut hash = Fnv::new();
        bytes.iter().for_each(|&byte| hash.push(byte));
        Fingerprint(hash.finish())
    }
}

/// FNV-1a 64, fed one byte at a time: the one hash of the house (fingerprints, and the names
/// stored marks are sorted by).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn push(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

impl ApiKey<'_> {
    /// What a human may see of the key: its last four characters, never more.
    pub fn mask(&self) -> String {
        mask(self.secret)
    }
}

/// `…WXYZ`: the last four characters of a key (or fewer, for very short test keys).
pub(crate) fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let shown = if chars.len() >= 12 { 4 } else { chars.len() / 4 };
    let tail: String = chars[chars.len() - shown..].iter().collect();
    format!("…{tail}")
}

/// The shortest key accepted (Google's are 39 characters or more).
pub(crate) const MIN_KEY_LEN: usize = 30;
/// The longest key accepted.
pub(crate) const MAX_KEY_LEN: usize = 256;

/// Why an entry of a key list is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A character an HTTP header cannot carry (not visible ASCII).
    NotText,
    /// Shorter than [`MIN_KEY_LEN`] (the length).
    TooShort(usize),
    /// Longer than [`MAX_KEY_LEN`] (the length).
    TooLong(usize),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotText => write!(f, "holds a character that is not visible ASCII"),
            Problem::TooShort(n) => write!(f, "too short for a key ({n} characters; at least {MIN_KEY_LEN})"),
            Problem::TooLong(n) => write!(f, "too long for a key ({n} characters; at most {MAX_KEY_LEN})"),
        }
    }
}

/// An entry that is not a key: where it is (never its text) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The part (0 for `keys`, 1 for `keys_2`, …).
    pub part: usize,
    /// The line of the part it is on (from 1).
    pub line: usize,
    /// What is wrong.
    pub problem: Problem,
}

/// Entries of this length or longer are accepted with probability `DRAW_SPAN / length`, so
/// every key of a mixed pool is drawn equally often; shorter ones are drawn a little less
/// often. No real key is this short (`AIza…` keys have 39 characters, `AQ.…` keys 53), and
/// the closer it is to their length, the fewer draws a request spends.
const DRAW_SPAN: usize = 32;

/// Random bytes to try before [`KeyPool::draw`] gives up (comments and blank space miss).
const DRAW_TRIES: usize = 48;

/// The largest part Fastly's secret store holds (64 KB): [`choose_part`] accepts a part with
/// probability `size / MAX_PART_BYTES`.
const MAX_PART_BYTES: usize = 64 * 1024;

/// The part a request starts in, drawn in proportion to the parts' sizes so that every key is
/// as likely as any other; `size_of` reads a part's size (the caller reads its secret, once).
/// A full part is accepted at once; a part is read only when drawn. ([`crate::decide::flow`] takes
/// the same steps, one fetch at a time.)
pub fn choose_part(parts: usize, rng: &mut Rng, mut size_of: impl FnMut(usize) -> usize) -> usize {
    if parts <= 1 {
        return 0;
    }
    for _ in 0..parts * 4 {
        let part = rng.below(parts);
        if accepts_part(rng, size_of(part)) {
            return part;
        }
    }
    // Small parts were rejected every time: read them all and draw by size.
    let sizes: Vec<usize> = (0..parts).map(&mut size_of).collect();
    part_by_size(rng, &sizes)
}

/// Is a drawn part of `size` bytes accepted? With probability `size / MAX_PART_BYTES`.
pub(crate) fn accepts_part(rng: &mut Rng, size: usize) -> bool {
    rng.below(MAX_PART_BYTES) < size
}

/// A part drawn in proportion to `sizes`.
pub(crate) fn part_by_size(rng: &mut Rng, sizes: &[usize]) -> usize {
    let mut byte = rng.below(sizes.iter().sum::<usize>().max(1));
    for (part, &size) in sizes.iter().enumerate() {
        if byte < size {
            return part;
        }
        byte -= size;
    }
    0
}

/// The pool, in the order the operator wrote it, as far as it has been read.
#[derive(Debug, Default)]
pub struct KeyPool<'a> {
    /// Each part's bytes, `None` while not read.
    lists: Vec<Option<&'a [u8]>>,
    total: usize,
    /// The last line looked up (start, end, is a comment), so a pool written as one long
    /// comma-separated line is scanned for its line ends once, not once per draw.
    last_line: Cell<Option<(usize, usize, usize, bool)>>,
}

impl<'a> KeyPool<'a> {
    /// A pool of `parts` parts, none read yet.
    pub fn with_parts(parts: usize) -> Self {
        KeyPool { lists: vec![None; parts], total: 0, last_line: Cell::new(None) }
    }

    /// A pool with every part read, in order. Nothing is parsed (or even checked to be text)
    /// here.
    pub fn new<I, L>(lists: I) -> Self
    where
        I: IntoIterator<Item = &'a L>,
        L: AsRef<[u8]> + ?Sized + 'a,
    {
        let lists: Vec<&'a [u8]> = lists.into_iter().map(AsRef::as_ref).collect();
        let mut pool = KeyPool::with_parts(lists.len());
        for (part, bytes) in lists.into_iter().enumerate() {
            pool.add(part, bytes);
        }
        pool
    }

    /// The pool a request starts with: part `part` alone, or every part when that one holds
    /// no key; `None` when no part holds one. `read` gives a part's bytes (a secret read).
    pub fn starting<E>(
        parts: usize,
        part: usize,
        mut read: impl FnMut(usize) -> Result<&'a [u8], E>,
    ) -> Result<Option<Self>, E> {
        let mut pool = KeyPool::with_parts(parts);
        pool.add(part, read(part)?);
        if !pool.is_empty() {
            return Ok(Some(pool));
        }
        for other in (0..parts).filter(|&p| p != part) {
            pool.add(other, read(other)?);
        }
        Ok(if pool.is_empty() { None } else { Some(pool) })
    }

    /// Adds part `part` as read from its secret.
    pub fn add(&mut self, part: usize, bytes: &'a [u8]) {
        if let Some(slot) = self.lists.get_mut(part) {
            if slot.is_none() {
                self.total += bytes.len();
                *slot = Some(bytes);
            }
        }
    }

    /// How many parts the pool has (read or not).
    pub fn parts(&self) -> usize {
        self.lists.len()
    }

    /// Has part `part` been read?
    pub fn has(&self, part: usize) -> bool {
        self.lists.get(part).is_some_and(Option::is_some)
    }

    /// Has every part been read?
    pub fn is_whole(&self) -> bool {
        self.lists.iter().all(Option::is_some)
    }

    /// Do the parts read hold no key at all? (Stops at the first key: cheap for any real pool.)
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// A key drawn uniformly from the pool but for the entries at `passed` (a random byte, the
    /// entry around it, accepted in inverse proportion to its length), or `None` after
    /// [`DRAW_TRIES`] misses. An entry at `passed` is a miss, found before it is parsed.
    pub fn draw(&self, rng: &mut Rng, passed: &[Position]) -> Option<ApiKey<'a>> {
        if self.total == 0 {
            return None;
        }
        for _ in 0..DRAW_TRIES {
            let Some((list, offset)) = self.locate(rng.below(self.total)) else { continue };
            let Some(entry) = self.entry_at(list, offset) else { continue };
            if passed.contains(&Position { list, start: entry.start }) {
                continue;
            }
            // Accept or reject on the entry's length alone: only the accepted one is parsed.
            if entry.len() > DRAW_SPAN && rng.below(entry.len()) >= DRAW_SPAN {
                continue;
            }
            if let Ok(key) = parse_entry(&self.lists[list]?[entry.clone()], Position { list, start: entry.start }) {
                return Some(key);
            }
        }
        None
    }

    /// The first key after the one at `at`, in pool order, wrapping around (the key itself
    /// in a pool of one).
    pub fn after(&self, at: Position) -> Option<ApiKey<'a>> {
        self.walk(at).next().or_else(|| self.key_at(at))
    }

    /// Every other key, in pool order, starting after the one at `at` and wrapping around.
    pub fn walk(&self, at: Position) -> impl Iterator<Item = ApiKey<'a>> + '_ {
        let rest = self.entries_from(at.list, at.start).filter_map(|(entry, _)| entry.ok()).filter(move |k| k.at > at);
        rest.chain(self.iter().take_while(move |k| k.at < at))
    }

    /// Every key of the parts read, in pool order (parses every entry: `/v1/status`, key
    /// checks, and the proof that no key can serve).
    pub fn iter(&self) -> impl Iterator<Item = ApiKey<'a>> + '_ {
        self.entries_from(0, 0).filter_map(|(entry, _)| entry.ok())
    }

    /// Every key once, in pool order: a key listed again later is left out (`/v1/status`, the
    /// key check).
    pub fn distinct(&self) -> impl Iterator<Item = ApiKey<'a>> + '_ {
        let mut seen = std::collections::HashSet::new();
        self.iter().filter(move |key| seen.insert(key.fingerprint))
    }

    /// Entries that are not keys, where they are and why (parses every entry).
    pub fn rejected(&self) -> impl Iterator<Item = Rejected> + '_ {
        // Lines are counted as the walk goes (part, byte counted up to, line there).
        let mut counted = (0, 0, 1);
        self.entries_from(0, 0).filter_map(move |(entry, at)| {
            let problem = entry.err()?;
            let text = (*self.lists.get(at.list)?)?;
            if counted.0 != at.list {
                counted = (at.list, 0, 1);
            }
            let upto = at.start.min(text.len());
            counted.2 += text[counted.1.min(upto)..upto].iter().filter(|&&b| b == b'\n').count();
            counted.1 = upto;
            Some(Rejected { part: at.list, line: counted.2, problem })
        })
    }

    /// How many keys the pool holds, each once (parses every entry).
    pub fn count(&self) -> usize {
        self.distinct().count()
    }

    /// The key whose entry starts at `at`.
    pub fn key_at(&self, at: Position) -> Option<ApiKey<'a>> {
        let text = (*self.lists.get(at.list)?)?;
        let end = separator_after(text.get(at.start..)?).map_or(text.len(), |i| at.start + i);
        parse_entry(text.get(at.start..end)?, at).ok()
    }

    /// Part index and byte offset of the `n`th byte of all parts read, together.
    fn locate(&self, mut n: usize) -> Option<(usize, usize)> {
        for (i, list) in self.lists.iter().enumerate() {
            let Some(list) = list else { continue };
            if n < list.len() {
                return Some((i, n));
            }
            n -= list.len();
        }
        None
    }

    /// The bytes of the entry holding byte `offset` of list `list` (not parsed yet), or
    /// `None` if that byte is a separator or in a comment.
    fn entry_at(&self, list: usize, offset: usize) -> Option<Range<usize>> {
        let bytes = self.lists[list]?;
        if matches!(bytes.get(offset)?, b'\n' | b',') {
            return None;
        }
        let start = memchr::memrchr2(b',', b'\n', &bytes[..offset]).map_or(0, |i| i + 1);
        let end = separator_after(&bytes[offset..]).map_or(bytes.len(), |i| offset + i);
        // An entry that begins its line says itself whether the line is a comment; one after a
        // comma needs the line's start.
        let comment = if line_starts_at(bytes, start) {
            bytes[start..end].trim_ascii_start().starts_with(b"#")
        } else {
            self.in_comment_line(list, bytes, offset)
        };
        (!comment).then_some(start..end)
    }

    /// Is the line holding byte `offset` a comment? (The answer for the line is kept: a pool
    /// written as one long comma-separated line is scanned for its ends once.)
    fn in_comment_line(&self, list: usize, bytes: &[u8], offset: usize) -> bool {
        if let Some((l, start, end, comment)) = self.last_line.get() {
            if l == list && start <= offset && offset < end {
                return comment;
            }
        }
        let start = memchr::memrchr(b'\n', &bytes[..offset]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &bytes[offset..]).map_or(bytes.len(), |i| offset + i);
        let comment = bytes[start..end].trim_ascii_start().starts_with(b"#");
        self.last_line.set(Some((list, start, end, comment)));
        comment
    }

    /// Entries from byte `start` of list `list` to the end of the pool (blank space and
    /// comments skipped): each a key or why it is not one, with where it starts.
    fn entries_from(
        &self,
        list: usize,
        start: usize,
    ) -> impl Iterator<Item = (Result<ApiKey<'a>, Problem>, Position)> + '_ {
        self.lists.iter().enumerate().skip(list).filter_map(|(i, text)| Some((i, (*text)?))).flat_map(
            move |(i, text)| {
                let from = if i == list { start.min(text.len()) } else { 0 };
                Entries { text, list: i, at: from, in_comment: !line_starts_at(text, from) && in_comment(text, from) }
            },
        )
    }
}

/// Where the first separator (`,` or a newline) of `bytes` is.
fn separator_after(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b',', b'\n', bytes)
}

/// Does byte `at` begin a line?
fn line_starts_at(text: &[u8], at: usize) -> bool {
    at == 0 || text.get(at - 1) == Some(&b'\n')
}

/// Is byte `at` inside a comment line?
fn in_comment(text: &[u8], at: usize) -> bool {
    let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |i| i + 1);
    text[start..].trim_ascii_start().starts_with(b"#")
}

/// Walks the entries of one list.
struct Entries<'a> {
    text: &'a [u8],
    list: usize,
    at: usize,
    in_comment: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Result<ApiKey<'a>, Problem>, Position);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.at >= self.text.len() {
                return None;
            }
            let start = self.at;
            let rest = &self.text[start..];
            if line_starts_at(self.text, start) {
                self.in_comment = rest.trim_ascii_start().starts_with(b"#");
            }
            let len = separator_after(rest).unwrap_or(rest.len());
            self.at = start + len + 1;
            let raw = &rest[..len];
            if self.in_comment || raw.trim_ascii().is_empty() {
                continue;
            }
            let at = Position { list: self.list, start };
            return Some((parse_entry(raw, at), at));
        }
    }
}

/// One entry (not blank): `KEY` or `project:KEY`, trimmed; why not, if it holds no usable key
/// (a key is [`MIN_KEY_LEN`]–[`MAX_KEY_LEN`] visible ASCII characters; a project name any
/// UTF-8 text).
fn parse_entry(raw: &[u8], at: Position) -> Result<ApiKey<'_>, Problem> {
    let entry = raw.trim_ascii();
    if entry.len() > MAX_KEY_LEN {
        return match entry.iter().position(|&b| b == b':') {
            Some(colon) => split_at_colon(entry, colon, at),
            None => Err(Problem::TooLong(entry.len())),
        };
    }
    // The common entry, a bare key, is searched for a colon, checked and hashed in one pass
    // (every candidate a request draws comes through here).
    let mut hash = Fnv::new();
    let mut text = true;
    for (i, &byte) in entry.iter().enumerate() {
        if byte == b':' {
            return split_at_colon(entry, i, at);
        }
        text &= byte.is_ascii_graphic();
        hash.push(byte);
    }
    checked_key(None, entry, text, hash, at)
}

/// A `project:KEY` entry whose first colon is at `colon`.
fn split_at_colon(entry: &[u8], colon: usize, at: Position) -> Result<ApiKey<'_>, Problem> {
    let project = Some(entry[..colon].trim_ascii()).filter(|p| !p.is_empty());
    let secret = entry[colon + 1..].trim_ascii();
    let mut hash = Fnv::new();
    secret.iter().for_each(|&byte| hash.push(byte));
    checked_key(project, secret, secret.iter().all(u8::is_ascii_graphic), hash, at)
}

/// A key from its parts, hashed and checked for text (`text`): the length rules, then text.
fn checked_key<'a>(
    project: Option<&'a [u8]>,
    secret: &'a [u8],
    text: bool,
    hash: Fnv,
    at: Position,
) -> Result<ApiKey<'a>, Problem> {
    if secret.len() > MAX_KEY_LEN {
        return Err(Problem::TooLong(secret.len()));
    }
    if !text {
        return Err(Problem::NotText);
    }
    if secret.len() < MIN_KEY_LEN {
        return Err(Problem::TooShort(secret.len()));
    }
    let secret = std::str::from_utf8(secret).map_err(|_| Problem::NotText)?;
    let project = match project {
        Some(p) => Some(std::str::from_utf8(p).map_err(|_| Problem::NotText)?),
        None => None,
    };
    Ok(ApiKey { secret, project, at, fingerprint: Fingerprint(hash.finish()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets<'a>(pool: &KeyPool<'a>) -> Vec<&'a str> {
        pool.iter().map(|k| k.secret).collect()
    }

    #[test]
    fn parses_newlines_commas_spaces_comments_and_projects() {
        let pool = KeyPool::new(["AIzaA10000000000000000000000000000, AIzaB20000000000000000000000000000\r\n\n  # a comment, with commas\nproj x:AIzaC30000000000000000000000000000\n", "AQ.D40000000000000000000000000000"]);
        assert_eq!(
            secrets(&pool),
            [
                "AIzaA10000000000000000000000000000",
                "AIzaB20000000000000000000000000000",
                "AIzaC30000000000000000000000000000",
                "AQ.D40000000000000000000000000000"
            ]
        );
        let keys: Vec<_> = pool.iter().collect();
        assert_eq!(keys[2].project, Some("proj x"));
        assert_eq!(keys[0].project, None);
        assert_eq!(keys[3].at, Position { list: 1, start: 0 });
        assert_eq!(pool.key_at(keys[2].at).map(|k| k.secret), Some("AIzaC30000000000000000000000000000"));
    }

    #[test]
    fn entries_that_are_not_keys_are_skipped_and_reported_without_their_text() {
        let long = "x".repeat(100_000);
        const Z: &str = "0000000000000000000000000000";
        let text = format!("AIzaGood1{Z}\nAIza bad\u{7f}{Z}\nAIzaÜmlaut{Z}\n:\na\nAIza\n{long}\nteam: \nAIzaGood2{Z}");
        let pool = KeyPool::new([text.as_str()]);
        assert_eq!(secrets(&pool), [format!("AIzaGood1{Z}"), format!("AIzaGood2{Z}")]);
        let rejected: Vec<(usize, Problem)> = pool.rejected().map(|r| (r.line, r.problem)).collect();
        assert_eq!(
            rejected,
            [
                (2, Problem::NotText),
                (3, Problem::NotText),
                (4, Problem::TooShort(0)),
                (5, Problem::TooShort(1)),
                (6, Problem::TooShort(4)),
                (7, Problem::TooLong(100_000)),
                (8, Problem::TooShort(0)),
            ]
        );
        let mut rng = Rng::new(2);
        // A draw never gives an entry that is not a key (the 100 KB line makes most draws miss).
        assert!((0..20).all(|_| pool.draw(&mut rng, &[]).is_none_or(|k| k.secret.starts_with("AIzaGood"))));
    }

    #[test]
    fn a_key_listed_twice_is_one_key() {
        const Z: &str = "0000000000000000000000000000";
        let text = format!("AIzaOne{Z}\nteam:AIzaTwo{Z}\nAIzaOne{Z}");
        let pool = KeyPool::new([text.as_str()]);
        assert_eq!((pool.iter().count(), pool.count(), pool.distinct().count()), (3, 2, 2));
    }

    #[test]
    fn after_walks_in_order_and_wraps() {
        let pool = KeyPool::new([
            "# head\nk10000000000000000000000000000,k20000000000000000000000000000\n",
            "k30000000000000000000000000000",
        ]);
        let keys: Vec<_> = pool.iter().collect();
        assert_eq!(pool.after(keys[0].at).map(|k| k.secret), Some("k20000000000000000000000000000"));
        assert_eq!(pool.after(keys[1].at).map(|k| k.secret), Some("k30000000000000000000000000000"));
        assert_eq!(pool.after(keys[2].at).map(|k| k.secret), Some("k10000000000000000000000000000"));
        let one = KeyPool::new(["solo0000000000000000000000000000"]);
        let solo = one.iter().next().expect("key");
        assert_eq!(one.after(solo.at), Some(solo));
    }

    #[test]
    fn draws_are_uniform_over_keys_of_different_lengths() {
        // Short and long entries, comments, one long comma-separated line.
        let long = (0..20).map(|i| format!("team-{i}:AQ.{i:0>60}")).collect::<Vec<_>>().join(",");
        let short = (0..20).map(|i| format!("AIza{i:0>35}")).collect::<Vec<_>>().join("\n");
        let text = format!("# pool\n{short}\n{long}\n");
        let pool = KeyPool::new([text.as_str()]);
        let mut counts = std::collections::HashMap::new();
        let mut rng = Rng::new(3);
        for _ in 0..40_000 {
            let key = pool.draw(&mut rng, &[]).expect("a key");
            *counts.entry(key.secret).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 40);
        let (min, max) = (counts.values().min().copied(), counts.values().max().copied());
        assert!(min > Some(800) && max < Some(1200), "{min:?} {max:?}");
    }

    #[test]
    fn draws_skip_every_entry_of_a_comment_line() {
        let pool = KeyPool::new(["# AIzaSyCOMMENTED10000000000000000000000000000, AIzaSyCOMMENTED20000000000000000000000000000,AIzaSyCOMMENTED30000000000000000000000000000\nAIzaSyKEPT0000000000000000000000000000,  #notacomment0000000000000000000000000000\n"]);
        let mut rng = Rng::new(9);
        let drawn: std::collections::HashSet<_> =
            (0..500).filter_map(|_| pool.draw(&mut rng, &[])).map(|k| k.secret).collect();
        // After a comma, `#` begins an entry, not a comment (a key list's own rule).
        assert_eq!(
            drawn,
            ["AIzaSyKEPT0000000000000000000000000000", "#notacomment0000000000000000000000000000"]
                .into_iter()
                .collect(),
            "{drawn:?}"
        );
        assert_eq!(drawn, pool.iter().map(|k| k.secret).collect());
    }

    #[test]
    fn nothing_to_draw() {
        let mut rng = Rng::new(1);
        assert_eq!(KeyPool::new(["# only a comment\n\n,,"]).draw(&mut rng, &[]), None);
        assert_eq!(KeyPool::new([""]).draw(&mut rng, &[]), None);
        assert!(KeyPool::new(["  \n# c\n,"]).is_empty());
        assert!(!KeyPool::new(["# c\nk000000000000000000000000000000"]).is_empty());
    }

    #[test]
    fn parts_are_read_only_when_added() {
        let mut pool = KeyPool::with_parts(2);
        assert!(pool.is_empty() && !pool.is_whole());
        pool.add(1, b"k30000000000000000000000000000\nk40000000000000000000000000000");
        assert_eq!(secrets(&pool), ["k30000000000000000000000000000", "k40000000000000000000000000000"]);
        let mut rng = Rng::new(5);
        assert!((0..50).all(|_| pool.draw(&mut rng, &[]).is_some_and(|k| k.at.list == 1)));
        pool.add(0, b"k10000000000000000000000000000,k20000000000000000000000000000");
        assert_eq!(
            secrets(&pool),
            [
                "k10000000000000000000000000000",
                "k20000000000000000000000000000",
                "k30000000000000000000000000000",
                "k40000000000000000000000000000"
            ]
        );
        assert!(pool.is_whole());
    }

    #[test]
    fn the_starting_part_follows_the_sizes_and_reads_little() {
        let sizes = [60_000, 20_000, 60_000, 0];
        let mut rng = Rng::new(9);
        let mut counts = [0u32; 4];
        let mut reads = 0;
        for _ in 0..10_000 {
            let mut read = [false; 4];
            counts[choose_part(4, &mut rng, |p| {
                read[p] = true;
                sizes[p]
            })] += 1;
            reads += read.iter().filter(|r| **r).count();
        }
        assert_eq!(counts[3], 0);
        assert!((1_250..1_600).contains(&counts[1]), "{counts:?}");
        assert!(counts[0].abs_diff(counts[2]) < 400, "{counts:?}");
        assert!(reads < 20_000, "{reads} secret reads for 10,000 requests");
        assert_eq!(choose_part(1, &mut rng, |_| unreachable!()), 0);
        assert_eq!(choose_part(3, &mut rng, |p| [0, 0, 10][p]), 2);
    }

    #[test]
    fn mask_shows_at_most_the_last_four_characters() {
        assert_eq!(mask("AIzaSyABCDEFGHIJKLMNOP1234"), "…1234");
        assert_eq!(mask("short"), "…t");
        assert_eq!(mask(""), "…");
    }

    #[test]
    fn fingerprint_is_stable() {
        let fp = Fingerprint::of("AIzaSyExample");
        assert_eq!(fp, Fingerprint::of("AIzaSyExample"));
        assert_ne!(fp, Fingerprint::of("AIzaSyExamplf"));
        assert_eq!(fp.to_string().len(), 16);
    }
}
