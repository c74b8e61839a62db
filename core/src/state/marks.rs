//! Marks: what a mark is ([`Mark`], [`Entry`]), the rule by which a name's lines merge
//! ([`merge`]), and one stored item of them ([`Marks`]): how it reads and how it is compacted —
//! the byte format of the KV items named in [`crate::state::items`].
//!
//! An item has two parts. The **sorted part**, as the last compaction wrote it, is fixed-size
//! binary records sorted by name hash, so a lookup is a binary search that reads a few records
//! whatever the pool's size. The **appended part** is text lines, one per verdict, added by
//! writers since (an append needs no read and cannot overwrite another writer's line):
//!
//! ```text
//! gemini-edge-pool marks v2 75\n            header: the sorted part's length in bytes
//! <3 records of 25 bytes>                      sorted part
//! p:team-a 1764230400000 per_day_quota 0 0 1764149950000\n
//! k:0011223344556677 clear 1764149990000\n     appended part
//! ```
//!
//! A record: name hash (FNV-1a 64 of the [`MarkName`], 8 bytes), end (unix ms, 8), set at
//! (unix ms, 6), reason (2: its row in [`crate::google::reason`], or `0x8000 | status` for the seed
//! profile), dead and strikes (1: the top bit, and the rest). A line: name, end, reason code,
//! strikes, dead (0/1), set at — or name, `clear`, set at. All numbers big-endian. An item
//! created by an append has no header: all of it is the appended part.
//!
//! Every line and record of a name is merged in order with [`merge`] — by a lookup, and by a
//! listing in one pass over the item; tests and the `state_item` fuzz target hold the two to
//! the same answers.

use crate::google::reason::Reason;
use crate::pool::names::MarkName;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

/// The most bare 429s a mark counts (the backoff is capped long before: `throttle_max`).
pub(crate) const MAX_STRIKES: u32 = 127;

/// One mark: a key (or bucket) out of rotation until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Unix ms when the cooldown ends; for a dead key, when its probation request is due
    /// (`u64::MAX`: never).
    pub until_ms: u64,
    /// Why.
    pub reason: Reason,
    /// The key itself is unusable (until a probation request shows otherwise).
    pub dead: bool,
    /// Consecutive bare 429s (for the growing backoff).
    pub strikes: u32,
    /// Unix ms when the mark was set.
    pub since_ms: u64,
}

impl Mark {
    /// Does the mark keep its key out at `now_ms`?
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.dead || now_ms < self.until_ms
    }
}

/// What one stored line says about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The name is marked.
    Set(Mark),
    /// A dead key proved alive (its dead mark goes; cooldowns stay). Unix ms when.
    Clear(u64),
}

/// The merge rule, applied to a name's lines in the order they were written: a dead mark
/// stays until cleared; a cooldown never shortens another (the later end wins, strikes add
/// up); anything else replaces what was there.
pub(crate) fn merge(prev: Option<Mark>, entry: Entry) -> Option<Mark> {
    match (prev, entry) {
        (Some(p), Entry::Clear(_)) if !p.dead => Some(p),
        (_, Entry::Clear(_)) => None,
        (Some(p), Entry::Set(m)) if p.dead && !m.dead => Some(p),
        (Some(p), Entry::Set(m)) if !p.dead && !m.dead && p.until_ms > m.until_ms => {
            Some(Mark { strikes: p.strikes.max(m.strikes), ..p })
        }
        (_, Entry::Set(m)) => Some(m),
    }
}

/// How long an expired cooling mark is kept: repeated bare 429s grow their backoff from it.
pub(crate) const RETAIN_MS: u64 = 15 * 60 * 1000;
/// A dead mark whose probation has been due this long is dropped on compaction: a key still in
/// the pool is simply tried again (and marked again if still dead); a key that left the pool
/// stops taking space.
const RETAIN_DEAD_MS: u64 = 7 * 24 * 3600 * 1000;
/// The name of the line a compaction ends with, `~ <unix ms>`: when it was written (an index
/// may be missing a verdict whose write came just after; [`Marks::last_written_ms`]). It reads
/// as a damaged line to anything else, and is skipped.
const WRITTEN: &str = "~";
/// Appended lines that make a writer compact the item.
const COMPACT_AFTER_LINES: usize = 24;
/// Two cooling marks ending within this of each other say the same thing (no second write).
const SAME_END_MS: u64 = 1_000;
/// The longest TTL given to an item (the KV store takes a TTL in `u32` seconds).
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// TTL of an item left with no marks.
const EMPTY_TTL_SECS: u64 = 3600;

const HEADER: &str = "gemini-edge-pool marks v2 ";
const FOREIGN_HEADER: &str = "gemini-edge-pool marks ";
/// Bytes per record of the sorted part.
const RECORD: usize = 25;
/// The latest "set at" a record holds (6 bytes of milliseconds: the year 10889).
const MAX_SINCE_MS: u64 = 0xFFFF_FFFF_FFFF;

/// The marks of one item as read: the bytes, its sorted and appended parts, and this
/// request's own changes on top (until a read shows them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    bytes: Vec<u8>,
    sorted: Range<usize>,
    appended: Range<usize>,
    /// This request's own changes (and what entries it read say), by the hash of the name:
    /// sorted by hash, a name's in the order they came.
    local: Vec<(u64, Entry)>,
    /// The KV generation the bytes were read at (`None`: the item did not exist).
    pub generation: Option<u64>,
    /// Written by another version of the proxy: to be replaced, not appended to.
    foreign: bool,
    /// The appended part's lines by the hash of their name (built by the first lookup).
    index: LineIndex,
}

/// The appended part's lines as (hash of the name, start, end), sorted by hash and, within a
/// hash, in the order they were written: built once per read by the first lookup that needs
/// it, so each line's name is hashed once and a lookup is a binary search — not a scan of
/// every line for every candidate key (a storm or a relearning pool leaves thousands of lines
/// until a compaction gets through). With it, when the item was last written: the latest time
/// a line carries (its mark's "set at", written with it; a compaction's [`WRITTEN`] line).
/// Derived from the bytes, so it takes no part in equality.
#[derive(Debug, Clone, Default)]
struct LineIndex(OnceLock<Indexed>);

/// What a [`LineIndex`] holds once built.
#[derive(Debug, Clone, Default)]
struct Indexed {
    /// (hash of the name, start, end) of each line, by hash, in the order written.
    lines: Vec<(u64, u32, u32)>,
    /// The latest time a line carries.
    written: Option<u64>,
}

impl PartialEq for LineIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LineIndex {}

/// An item that holds nothing.
pub(crate) static NOTHING: Marks = Marks {
    bytes: Vec::new(),
    sorted: 0..0,
    appended: 0..0,
    local: Vec::new(),
    generation: None,
    foreign: false,
    index: LineIndex(OnceLock::new()),
};

impl Marks {
    /// Reads an item's bytes. Never fails: what does not read is ignored; a foreign format
    /// reads as empty and is replaced on the next write.
    pub fn decode(bytes: Vec<u8>, generation: Option<u64>) -> Self {
        let (sorted, appended, foreign) = layout(&bytes);
        Marks { bytes, sorted, appended, local: Vec::new(), generation, foreign, index: LineIndex::default() }
    }

    /// The merged mark of `name` (this request's own changes included), or `None`.
    pub fn get(&self, name: &MarkName) -> Option<Mark> {
        self.lookup(name, true)
    }

    /// The mark of `name` if it keeps its key out at `now_ms`.
    pub fn active(&self, name: &MarkName, now_ms: u64) -> Option<Mark> {
        self.get(name).filter(|m| m.is_active(now_ms))
    }

    /// [`get`](Self::get) for the name whose hash is `hash` ([`MarkName::hash_of`], which
    /// needs no name written). A name is known by its hash everywhere — records, lines, this
    /// request's changes — as compaction knows it.
    pub fn get_hashed(&self, hash: u64) -> Option<Mark> {
        if self.is_empty() {
            return None;
        }
        self.by_hash(hash, true)
    }

    /// `base` with this request's changes (an overlay: what entries said) to the name whose hash
    /// is `hash` merged over it, in order.
    pub(crate) fn over(&self, hash: u64, base: Option<Mark>) -> Option<Mark> {
        let first = self.local.partition_point(|(h, _)| *h < hash);
        let run = self.local[first..].iter().take_while(|(h, _)| *h == hash);
        run.fold(base, |mark, (_, entry)| merge(mark, *entry))
    }

    /// Every mark by the hash of its name, sorted by hash (reads the whole item: for
    /// compaction and tests). One pass over each part — records, then lines, then this
    /// request's changes, each merged into its name's slot in order, as a lookup merges them —
    /// so its cost is linear in the item (plus a sort of the names lines added).
    pub fn all(&self) -> Vec<(u64, Mark)> {
        if !self.records_sorted() {
            return self.all_by_lookup();
        }
        // The records are sorted by hash already: each name's run merges into one slot.
        let mut merged: Vec<(u64, Option<Mark>)> = Vec::with_capacity(self.sorted.len() / RECORD);
        for (hash, entry) in self.records() {
            match merged.last_mut() {
                Some((last, mark)) if *last == hash => *mark = merge(*mark, entry),
                _ => merged.push((hash, merge(None, entry))),
            }
        }
        let recorded = merged.len();
        let mut index: BTreeMap<u64, usize> = BTreeMap::new();
        let later = self.lines().map(|(name, entry)| (fnv(name), entry));
        for (hash, entry) in later.chain(self.local.iter().copied()) {
            let slot = match merged[..recorded].binary_search_by_key(&hash, |(h, _)| *h) {
                Ok(at) => at,
                Err(_) => *index.entry(hash).or_insert_with(|| {
                    merged.push((hash, None));
                    merged.len() - 1
                }),
            };
            merged[slot].1 = merge(merged[slot].1, entry);
        }
        let mut all: Vec<(u64, Mark)> = merged.into_iter().filter_map(|(hash, mark)| Some((hash, mark?))).collect();
        all.sort_by_key(|(hash, _)| *hash);
        all
    }

    /// Are the records in hash order (as every compaction writes them; damaged bytes may not
    /// be)?
    fn records_sorted(&self) -> bool {
        let count = self.sorted.len() / RECORD;
        (1..count).all(|i| self.record_hash(i - 1) <= self.record_hash(i))
    }

    /// [`all`](Self::all) for a damaged item whose records are out of order: each name as a
    /// lookup finds it (the compaction that follows writes them in order).
    fn all_by_lookup(&self) -> Vec<(u64, Mark)> {
        let mut hashes: Vec<u64> = self.records().map(|(hash, _)| hash).collect();
        hashes.extend(self.lines().map(|(name, _)| fnv(name)));
        hashes.extend(self.local.iter().map(|(hash, _)| *hash));
        hashes.sort_unstable();
        hashes.dedup();
        hashes.into_iter().filter_map(|hash| self.by_hash(hash, true).map(|m| (hash, m))).collect()
    }

    /// Has the item no mark at all?
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.appended.is_empty() && self.local.is_empty()
    }

    /// Adds one of this request's changes on top of what was read.
    pub fn apply(&mut self, name: MarkName, entry: Entry) {
        let hash = fnv(name.as_bytes());
        let at = self.local.partition_point(|(h, _)| *h <= hash);
        self.local.insert(at, (hash, entry));
    }

    /// Does what is stored (this request's own changes aside) already say what `entry` says
    /// about `name`?
    pub fn covers(&self, name: &MarkName, entry: &Entry) -> bool {
        let existing = self.lookup(name, false);
        match entry {
            Entry::Clear(_) => !existing.is_some_and(|m| m.dead),
            Entry::Set(m) => existing.is_some_and(|e| match (e.dead, m.dead) {
                (true, false) => true,
                (false, true) => false,
                _ => e.until_ms.saturating_add(SAME_END_MS) >= m.until_ms && e.strikes >= m.strikes,
            }),
        }
    }

    /// Must the item be rewritten rather than appended to (another format, or a long
    /// appended part)?
    pub fn compaction_due(&self) -> bool {
        self.foreign || self.line_index().len() >= COMPACT_AFTER_LINES
    }

    /// When the item was last written, as far as its lines tell (unix ms; `None`: nothing
    /// tells — an item compacted by an older version, or none).
    pub fn last_written_ms(&self) -> Option<u64> {
        self.indexed().written
    }

    /// The compacted item — every mark once, as sorted records; expired marks dropped — and
    /// its TTL in seconds.
    pub fn compacted(&self, now_ms: u64) -> (Vec<u8>, u64) {
        let kept: Vec<(u64, Mark)> = self.all().into_iter().filter(|(_, mark)| still_useful(mark, now_ms)).collect();
        let mut bytes = format!("{HEADER}{}\n", kept.len() * RECORD).into_bytes();
        for (hash, mark) in &kept {
            bytes.extend_from_slice(&encode_record(*hash, mark));
        }
        bytes.extend_from_slice(written_line(now_ms).as_bytes());
        (bytes, ttl_secs(&kept, now_ms))
    }

    fn lookup(&self, name: &MarkName, with_local: bool) -> Option<Mark> {
        if self.is_empty() {
            return None;
        }
        self.by_hash(fnv(name.as_bytes()), with_local)
    }

    /// Merges, in order, the records, lines and (if asked) local changes of one name, known by
    /// its hash.
    fn by_hash(&self, hash: u64, with_local: bool) -> Option<Mark> {
        let mut mark = None;
        let count = self.sorted.len() / RECORD;
        let mut at = self.first_record(hash);
        // The name's run of records (one that does not decode is skipped, as a listing skips it).
        while at < count && self.record_hash(at) == Some(hash) {
            if let Some((_, entry)) = self.record(at) {
                mark = merge(mark, entry);
            }
            at += 1;
        }
        let index = self.line_index();
        let first = index.partition_point(|(h, ..)| *h < hash);
        let run = index[first..].iter().take_while(|(h, ..)| *h == hash);
        for &(_, start, end) in run {
            if let Some((_, entry)) = self.bytes.get(start as usize..end as usize).and_then(parse_line) {
                mark = merge(mark, entry);
            }
        }
        if with_local {
            mark = self.over(hash, mark);
        }
        mark
    }

    /// The appended part's lines by name hash ([`LineIndex`]), built on first use.
    fn line_index(&self) -> &[(u64, u32, u32)] {
        &self.indexed().lines
    }

    /// The [`LineIndex`]: built on first use.
    fn indexed(&self) -> &Indexed {
        self.index.0.get_or_init(|| {
            let mut index: Vec<(u64, u32, u32)> = Vec::new();
            let mut written: Option<u64> = None;
            let mut start = self.appended.start;
            for line in self.bytes[self.appended.clone()].split(|&b| b == b'\n') {
                let end = start + line.len();
                let name = line.split(|&b| b == b' ').next().unwrap_or(line);
                if !line.is_empty() {
                    index.push((fnv(name), start as u32, end as u32));
                    written = written.max(last_number(line));
                }
                start = end + 1;
            }
            // Stable: a name's lines stay in the order they were written.
            index.sort_by_key(|(hash, ..)| *hash);
            Indexed { lines: index, written }
        })
    }

    /// The index of the first record whose hash is not less than `hash`.
    fn first_record(&self, hash: u64) -> usize {
        let (mut lo, mut hi) = (0, self.sorted.len() / RECORD);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.record_hash(mid) {
                Some(h) if h < hash => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// The hash of record `index` alone (all a search needs).
    fn record_hash(&self, index: usize) -> Option<u64> {
        let start = self.sorted.start + index * RECORD;
        let bytes: [u8; 8] = self.bytes.get(start..start + 8)?.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }

    fn record(&self, index: usize) -> Option<(u64, Entry)> {
        let start = self.sorted.start + index * RECORD;
        decode_record(self.bytes.get(start..start + RECORD)?)
    }

    fn records(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        (0..self.sorted.len() / RECORD).filter_map(|i| self.record(i))
    }

    /// The readable lines of the appended part in the order they were written, as (name
    /// bytes, entry).
    fn lines(&self) -> impl Iterator<Item = (&[u8], Entry)> {
        let appended = &self.bytes[self.appended.clone()];
        appended.split(|&b| b == b'\n').filter(|line| !line.is_empty()).filter_map(parse_line)
    }
}

/// A line's last field as a number: the "set at" of a mark's line, the time of a [`WRITTEN`]
/// line.
fn last_number(line: &[u8]) -> Option<u64> {
    let field = line.rsplit(|&b| b == b' ').next()?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// FNV-1a 64: the hash records are sorted by.
fn fnv(bytes: &[u8]) -> u64 {
    crate::pool::keys::Fingerprint::of_bytes(bytes).0
}

/// Should a mark survive compaction at `now_ms`?
fn still_useful(mark: &Mark, now_ms: u64) -> bool {
    let retain = if mark.dead { RETAIN_DEAD_MS } else { RETAIN_MS };
    now_ms < mark.until_ms.saturating_add(retain)
}

/// The TTL of a compacted item: its last mark's end plus [`RETAIN_MS`]; while it holds a dead
/// key (which only a probation request may lift), [`MAX_TTL_SECS`].
fn ttl_secs(marks: &[(u64, Mark)], now_ms: u64) -> u64 {
    if marks.is_empty() {
        return EMPTY_TTL_SECS;
    }
    if marks.iter().any(|(_, m)| m.dead) {
        return MAX_TTL_SECS;
    }
    let last = marks.iter().map(|(_, m)| m.until_ms).max().unwrap_or(now_ms);
    let remaining = last.saturating_add(RETAIN_MS).saturating_sub(now_ms);
    remaining.div_ceil(1000).clamp(60, MAX_TTL_SECS)
}

/// Where the sorted and the appended parts are, and whether the format is foreign.
fn layout(bytes: &[u8]) -> (Range<usize>, Range<usize>, bool) {
    let Some(rest) = bytes.strip_prefix(HEADER.as_bytes()) else {
        let foreign = bytes.starts_with(FOREIGN_HEADER.as_bytes());
        return if foreign { (0..0, 0..0, true) } else { (0..0, 0..bytes.len(), false) };
    };
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else { return (0..0, 0..0, true) };
    let Some(length) = std::str::from_utf8(&rest[..newline]).ok().and_then(|n| n.parse::<usize>().ok()) else {
        return (0..0, 0..0, true);
    };
    let start = HEADER.len() + newline + 1;
    // A damaged length: the sorted part ends at the last whole record within the bytes.
    let length = length.min(bytes.len() - start) / RECORD * RECORD;
    (start..start + length, start + length..bytes.len(), false)
}

fn encode_record(hash: u64, mark: &Mark) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[0..8].copy_from_slice(&hash.to_be_bytes());
    record[8..16].copy_from_slice(&mark.until_ms.to_be_bytes());
    record[16..22].copy_from_slice(&mark.since_ms.min(MAX_SINCE_MS).to_be_bytes()[2..]);
    record[22..24].copy_from_slice(&mark.reason.number().to_be_bytes());
    record[24] = (u8::from(mark.dead) << 7) | u8::try_from(mark.strikes.min(MAX_STRIKES)).unwrap_or(0x7F);
    record
}

fn decode_record(record: &[u8]) -> Option<(u64, Entry)> {
    let number = |range: Range<usize>| record[range].iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
    let mark = Mark {
        until_ms: number(8..16),
        since_ms: number(16..22),
        reason: Reason::from_number(u16::try_from(number(22..24)).ok()?)?,
        dead: record[24] & 0x80 != 0,
        strikes: u32::from(record[24] & 0x7F),
    };
    Some((number(0..8), Entry::Set(mark)))
}

#[cfg(test)]
thread_local! {
    /// Lines parsed on this thread (tests count them: a listing parses each line once).
    static LINES_PARSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `name until reason strikes dead since` or `name clear since`.
fn parse_line(line: &[u8]) -> Option<(&[u8], Entry)> {
    #[cfg(test)]
    LINES_PARSED.with(|n| n.set(n.get() + 1));
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(' ');
    let name = fields.next().filter(|n| !n.is_empty())?;
    let second = fields.next()?;
    let entry = if second == "clear" {
        Entry::Clear(fields.next()?.parse().ok()?)
    } else {
        Entry::Set(Mark {
            until_ms: second.parse().ok()?,
            reason: Reason::from_code(fields.next()?)?,
            strikes: fields.next()?.parse::<u32>().ok()?.min(MAX_STRIKES),
            dead: match fields.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            },
            since_ms: fields.next()?.parse::<u64>().ok()?.min(MAX_SINCE_MS),
        })
    };
    fields.next().is_none().then_some((name.as_bytes(), entry))
}

/// The line that says an item was written at `now_ms` ([`WRITTEN`]): a compaction ends with
/// one, and so does an append to an index beside verdict entries (its lines carry when their
/// marks were set, which may be long before).
pub(crate) fn written_line(now_ms: u64) -> String {
    format!("{WRITTEN} {now_ms}\n")
}

/// The line an append writes for `entry` about `name`.
pub(crate) fn encode_line(name: &MarkName, entry: &Entry) -> String {
    match entry {
        Entry::Set(m) => {
            format!("{name} {} {} {} {} {}\n", m.until_ms, m.reason.code(), m.strikes, u8::from(m.dead), m.since_ms)
        }
        Entry::Clear(since) => format!("{name} clear {since}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(until_ms: u64, reason: Reason) -> Mark {
        Mark { until_ms, reason, dead: false, strikes: 0, since_ms: 1 }
    }

    fn name(text: &str) -> MarkName {
        MarkName::parse(text).expect("a mark name")
    }

    fn with_lines(lines: &[(&str, Entry)]) -> Marks {
        let text: String = lines.iter().map(|(n, e)| encode_line(&name(n), e)).collect();
        Marks::decode(text.into_bytes(), Some(1))
    }

    #[test]
    fn appended_lines_read_and_compact_into_sorted_records() {
        let marks = with_lines(&[
            ("p:team", Entry::Set(mark(5_000, Reason::PerMinuteQuota))),
            ("k:00000000000000aa", Entry::Set(Mark { dead: true, ..mark(9, Reason::KeyInvalid) })),
            ("k:00000000000000ab", Entry::Set(Mark { strikes: 3, ..mark(7, Reason::Http(429)) })),
        ]);
        let (bytes, _) = marks.compacted(7);
        assert_eq!(bytes.len(), HEADER.len() + 3 + 3 * RECORD + "~ 7\n".len());
        let compacted = Marks::decode(bytes.clone(), Some(2));
        // The compaction says when it was written (a mark's line says when it was set).
        assert_eq!((compacted.last_written_ms(), marks.last_written_ms()), (Some(7), Some(1)));
        assert_eq!(compacted.all(), marks.all());
        for n in ["p:team", "k:00000000000000aa", "k:00000000000000ab", "k:00000000000000ac", "p:zzz"] {
            assert_eq!(compacted.get(&name(n)), marks.get(&name(n)), "{n}");
        }
        // Appending to a compacted item keeps both parts readable.
        let mut more = bytes;
        more.extend_from_slice(encode_line(&name("p:team"), &Entry::Set(mark(9_000, Reason::PerDayQuota))).as_bytes());
        let both = Marks::decode(more, Some(3));
        assert_eq!(both.get(&name("p:team")).map(|m| m.until_ms), Some(9_000));
        assert_eq!(both.get(&name("k:00000000000000ab")).map(|m| (m.strikes, m.reason)), Some((3, Reason::Http(429))));
    }

    #[test]
    fn a_listing_in_one_pass_is_what_lookups_say_of_every_name() {
        // Records, then lines that change some of them and add others, then local changes.
        let records: Vec<(String, Entry)> = (0..300)
            .map(|i| (format!("k:{:016x}", i * 7), Entry::Set(mark(1_000 + i, Reason::PerMinuteQuota))))
            .collect();
        let refs: Vec<(&str, Entry)> = records.iter().map(|(n, e)| (n.as_str(), *e)).collect();
        let (bytes, _) = with_lines(&refs).compacted(0);
        let mut bytes = bytes;
        for i in (0..600).step_by(5) {
            let entry = match i % 3 {
                0 => Entry::Set(Mark { dead: true, ..mark(9, Reason::KeyInvalid) }),
                1 => Entry::Clear(2),
                _ => Entry::Set(Mark { strikes: 2, ..mark(500, Reason::Http(429)) }),
            };
            bytes.extend_from_slice(encode_line(&name(&format!("k:{:016x}", i * 7)), &entry).as_bytes());
        }
        let mut marks = Marks::decode(bytes, Some(1));
        marks.apply(name("k:0000000000000007"), Entry::Clear(3));
        marks.apply(name("p:new"), Entry::Set(mark(77, Reason::PerDayQuota)));
        assert!(marks.records_sorted());
        assert_eq!(marks.all(), marks.all_by_lookup());
        assert_eq!(marks.all().len(), 300 + 60 - 20 + 1, "every name once");
        // Linear: a listing (what a compaction reads) parses each of the 120 lines once (and the
        // line saying when the records were written) — a lookup per name re-parsed every line
        // for each of the 341 names.
        let before = LINES_PARSED.with(std::cell::Cell::get);
        let _ = marks.compacted(0);
        assert_eq!(LINES_PARSED.with(std::cell::Cell::get) - before, 121);
    }

    #[test]
    fn binary_search_finds_every_mark_of_a_big_item() {
        let mut marks = Marks::default();
        for i in 0..2_000u64 {
            marks.apply(name(&format!("k:{i:016x}")), Entry::Set(mark(i + 10, Reason::Throttled)));
        }
        let (bytes, _) = marks.compacted(0);
        let read = Marks::decode(bytes, None);
        for i in (0..2_000u64).step_by(7) {
            assert_eq!(read.get(&name(&format!("k:{i:016x}"))).map(|m| m.until_ms), Some(i + 10));
        }
        assert_eq!(read.get(&name("k:ffffffffffffffff")), None);
    }

    #[test]
    fn duplicate_and_damaged_entries_give_one_answer() {
        let ours =
            "k:00000000000000aa 5 throttled 0 0 1\nk:00000000000000aa 9 throttled 2 0 1\nk:00000000000000aa\nbroken\n";
        let marks = Marks::decode(ours.as_bytes().to_vec(), None);
        let all = marks.all();
        assert_eq!(all.len(), 1);
        assert_eq!(Some(all[0].1), marks.get(&name("k:00000000000000aa")));
        assert_eq!(all[0].1.until_ms, 9);
        // Two records of one name in the sorted part (a damaged item) merge too.
        let record = |until| encode_record(fnv(b"p:x"), &mark(until, Reason::Throttled));
        let mut bytes = format!("{HEADER}{}\n", 2 * RECORD).into_bytes();
        bytes.extend_from_slice(&record(50));
        bytes.extend_from_slice(&record(40));
        let twice = Marks::decode(bytes, None);
        assert_eq!(twice.get(&name("p:x")).map(|m| m.until_ms), Some(50));
        assert_eq!(twice.all().len(), 1);
    }

    #[test]
    fn strikes_beyond_the_cap_read_as_the_cap() {
        // Found by fuzzing: a line with 585 strikes did not survive compaction (7 bits).
        let marks = Marks::decode(b"k:00000000000000aa 2 http_393 585 0 1\n".to_vec(), Some(1));
        let read = marks.get(&name("k:00000000000000aa")).expect("a mark");
        assert_eq!(read.strikes, MAX_STRIKES);
        let (bytes, _) = marks.compacted(0);
        assert_eq!(Marks::decode(bytes, None).all(), marks.all());
        // Likewise a "set at" beyond the record's 48 bits.
        let far = Marks::decode(b"k:00000000000000aa 1 http_429 3 0 1333333333333333333\n".to_vec(), Some(1));
        assert_eq!(Marks::decode(far.compacted(0).0, None).all(), far.all());
    }

    #[test]
    fn foreign_or_damaged_headers() {
        let v1 = Marks::decode(b"gemini-edge-pool marks v1\nk:00000000000000aa 9 throttled 0 0 1".to_vec(), Some(4));
        assert!(v1.is_empty() && v1.compaction_due());
        let cut = Marks::decode(format!("{HEADER}999\n{}", "x".repeat(30)).into_bytes(), None);
        assert_eq!(cut.all().len(), 0);
        assert!(Marks::decode(b"\xff\xfe garbage".to_vec(), None).all().is_empty());
    }

    #[test]
    fn compaction_prunes_and_sets_the_ttl() {
        let mut marks = Marks::default();
        marks.apply(name("p:a"), Entry::Set(mark(1_000, Reason::Throttled)));
        marks.apply(name("p:b"), Entry::Set(mark(2_000_000, Reason::PerMinuteQuota)));
        let (bytes, ttl) = marks.compacted(1_000 + RETAIN_MS);
        let read = Marks::decode(bytes, None);
        assert!(read.get(&name("p:a")).is_none() && read.get(&name("p:b")).is_some());
        assert_eq!(ttl, (2_000_000 + RETAIN_MS - (1_000 + RETAIN_MS)).div_ceil(1000));
        marks.apply(name("k:00000000000000cc"), Entry::Set(Mark { dead: true, ..mark(0, Reason::KeyLeaked) }));
        assert_eq!(marks.compacted(0).1, MAX_TTL_SECS);
        // A dead mark whose probation is long overdue goes.
        let (bytes, ttl) = marks.compacted(RETAIN_DEAD_MS + 2_000_000 + RETAIN_MS);
        assert!(Marks::decode(bytes, None).all().is_empty());
        assert_eq!(ttl, EMPTY_TTL_SECS);
        // A far-away end still gives a TTL the store accepts, and survives the round trip.
        let mut far = Marks::default();
        far.apply(name("p:x"), Entry::Set(mark(u64::MAX, Reason::NoFreeTier)));
        let (bytes, ttl) = far.compacted(0);
        assert_eq!(ttl, MAX_TTL_SECS);
        assert_eq!(Marks::decode(bytes, None).get(&name("p:x")).map(|m| m.until_ms), Some(u64::MAX));
    }

    #[test]
    fn covers_says_when_a_write_adds_nothing() {
        let n = name("p:t");
        let mut marks = Marks::default();
        assert!(!marks.covers(&n, &Entry::Set(mark(10_000, Reason::PerMinuteQuota))));
        // This request's own changes are not "stored".
        marks.apply(n.clone(), Entry::Set(mark(10_000, Reason::PerMinuteQuota)));
        assert!(!marks.covers(&n, &Entry::Set(mark(10_000, Reason::PerMinuteQuota))));
        let stored = with_lines(&[("p:t", Entry::Set(mark(10_000, Reason::PerMinuteQuota)))]);
        assert!(stored.covers(&n, &Entry::Set(mark(10_900, Reason::PerMinuteQuota))));
        assert!(!stored.covers(&n, &Entry::Set(mark(12_000, Reason::PerMinuteQuota))));
        assert!(!stored.covers(&n, &Entry::Set(Mark { strikes: 1, ..mark(10_000, Reason::Throttled) })));
        assert!(stored.covers(&n, &Entry::Clear(5)));
    }
}
