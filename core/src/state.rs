//! Cooling state as stored in the KV store `key_state`: the items, how they read, how marks
//! merge, and what a request writes.
//!
//! Two kinds of item, so a request reads at most two:
//! - `keys` — per key ([`MarkName`] `k:…`): dead keys, and whole-key cooldowns (seed profile);
//! - `model/<model>` — per quota bucket (`p:…` or `k:…`) for that model.
//!
//! An item is text: a header giving the length of its sorted part, the sorted part (one mark
//! per line, as the last compaction wrote it), then lines appended since. Writers only
//! **append** (no read-modify-write, so two instances cannot overwrite each other's verdicts);
//! readers merge every line of a name in order ([`merge`]); a writer that finds the appended
//! part long **compacts** the item with a compare-and-swap on the generation it read (if
//! someone appended meanwhile, the swap fails and nothing is lost). Nothing is ever deleted.
//!
//! ```text
//! gemini-edge-pool marks v2 140
//! k:9c93227198f8aa82 1764150000000 per_minute_quota 0 0 1764149950000
//! p:team-a 1764230400000 per_day_quota 0 0 1764149950000
//! k:0011223344556677 1764149999000 key_invalid 0 1 1764149900000
//! k:0011223344556677 clear 1764149990000
//! ```
//!
//! Fields: name, end (unix ms; for a dead key, when its probation request is due), reason,
//! strikes, dead (0/1), set at (unix ms); or name, `clear`, set at. A lookup binary-searches the
//! sorted part and scans the short appended part, so its cost does not grow with the pool.

use crate::keys::ApiKey;
use crate::names::{Bucket, MarkName};
use crate::reason::Reason;
use std::collections::BTreeSet;
use std::ops::Range;

/// How long an expired cooling mark is kept: repeated bare 429s grow their backoff from it.
pub const RETAIN_MS: u64 = 15 * 60 * 1000;
/// A dead mark whose probation has been due this long is dropped on compaction: a key still in
/// the pool is simply tried again (and marked again if still dead); a key that left the pool
/// stops taking space.
pub const RETAIN_DEAD_MS: u64 = 7 * 24 * 3600 * 1000;
/// Appended lines that make a writer compact the item.
pub const COMPACT_AFTER_LINES: usize = 24;
/// Two cooling marks ending within this of each other say the same thing (no second write).
const SAME_END_MS: u64 = 1_000;
/// The longest TTL given to an item (the KV store takes a TTL in `u32` seconds).
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// TTL of an item left with no marks.
const EMPTY_TTL_SECS: u64 = 3600;

const HEADER: &str = "gemini-edge-pool marks v2 ";
const FOREIGN_HEADER: &str = "gemini-edge-pool marks ";

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
pub fn merge(prev: Option<Mark>, entry: Entry) -> Option<Mark> {
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

/// Which KV item a mark lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    /// Dead keys and whole-key cooldowns.
    Keys,
    /// Quota buckets cooling for one model.
    Model(String),
}

const MODEL_PREFIX: &str = "model/";

impl Item {
    /// The KV key.
    pub fn kv_key(&self) -> String {
        match self {
            Item::Keys => "keys".to_string(),
            Item::Model(model) => format!("{MODEL_PREFIX}{model}"),
        }
    }

    /// The prefix every model item's KV key starts with (for listing).
    pub fn model_prefix() -> &'static str {
        MODEL_PREFIX
    }

    /// Reads a KV key back.
    pub fn from_kv_key(key: &str) -> Option<Self> {
        if key == "keys" {
            return Some(Item::Keys);
        }
        key.strip_prefix(MODEL_PREFIX).map(|m| Item::Model(m.to_string()))
    }
}

/// One change a request makes to the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The item it goes to.
    pub item: Item,
    /// The mark's name.
    pub name: MarkName,
    /// What it says.
    pub entry: Entry,
}

impl Change {
    /// The text line that records it.
    pub fn line(&self) -> String {
        encode_line(self.name.as_str(), &self.entry)
    }
}

/// The marks of one item as read: the text, its sorted and appended parts, and this
/// request's own changes on top (until a read shows them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    text: Vec<u8>,
    base: Range<usize>,
    tail: Range<usize>,
    local: Vec<(MarkName, Entry)>,
    /// The KV generation the text was read at (`None`: the item did not exist).
    pub generation: Option<u64>,
    /// Written by another version of the proxy: to be replaced, not appended to.
    foreign: bool,
}

impl Marks {
    /// Reads an item's bytes. Never fails: lines that do not read are ignored, a foreign
    /// format reads as empty and is replaced on the next write.
    pub fn decode(text: Vec<u8>, generation: Option<u64>) -> Self {
        let (base, tail, foreign) = layout(&text);
        Marks { text, base, tail, local: Vec::new(), generation, foreign }
    }

    /// The merged mark of `name` (this request's own changes included), or `None`.
    pub fn get(&self, name: &MarkName) -> Option<Mark> {
        self.lookup(name, true)
    }

    fn lookup(&self, name: &MarkName, with_local: bool) -> Option<Mark> {
        let wanted = name.as_str().as_bytes();
        let mut mark = None;
        let mut at = self.lower_bound(wanted);
        // Equal names sit together in the sorted part (a damaged item may repeat one).
        while at < self.base.end {
            let end = line_end(&self.text, at, self.base.end);
            let line = &self.text[at..end];
            if name_of(line) != wanted {
                break;
            }
            if let Some((_, entry)) = parse_line(line) {
                mark = merge(mark, entry);
            }
            at = end + 1;
        }
        for (n, entry) in lines(&self.text, self.tail.clone()) {
            if n == wanted {
                mark = merge(mark, entry);
            }
        }
        for (n, entry) in self.local.iter().filter(|_| with_local) {
            if n == name {
                mark = merge(mark, *entry);
            }
        }
        mark
    }

    /// The mark of `name` if it keeps its key out at `now_ms`.
    pub fn active(&self, name: &MarkName, now_ms: u64) -> Option<Mark> {
        self.get(name).filter(|m| m.is_active(now_ms))
    }

    /// Every name with a mark, and the mark, sorted by name (parses the whole item: for
    /// compaction and `/v1/status`). Built from [`get`](Self::get), so both always agree.
    pub fn all(&self) -> Vec<(MarkName, Mark)> {
        let mut names = BTreeSet::new();
        for range in [self.base.clone(), self.tail.clone()] {
            for (n, _) in lines(&self.text, range) {
                if let Some(name) = std::str::from_utf8(n).ok().and_then(MarkName::parse) {
                    names.insert(name);
                }
            }
        }
        names.extend(self.local.iter().map(|(n, _)| n.clone()));
        names.into_iter().filter_map(|n| self.get(&n).map(|m| (n, m))).collect()
    }

    /// Has the item no mark at all?
    pub fn is_empty(&self) -> bool {
        self.base.is_empty() && self.tail.is_empty() && self.local.is_empty()
    }

    /// Adds one of this request's changes on top of what was read.
    pub fn apply(&mut self, name: MarkName, entry: Entry) {
        self.local.push((name, entry));
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

    /// Must the item be rewritten rather than appended to (another format, or a long tail)?
    pub fn compaction_due(&self) -> bool {
        self.foreign || lines(&self.text, self.tail.clone()).count() >= COMPACT_AFTER_LINES
    }

    /// The compacted item: every mark once, sorted; expired marks and names `keep` rejects
    /// dropped. With its TTL in seconds.
    pub fn compacted(&self, now_ms: u64, keep: impl Fn(&MarkName) -> bool) -> (Vec<u8>, u64) {
        let kept: Vec<(MarkName, Mark)> =
            self.all().into_iter().filter(|(name, mark)| keep(name) && still_useful(mark, now_ms)).collect();
        let body: String = kept.iter().map(|(name, mark)| encode_line(name.as_str(), &Entry::Set(*mark))).collect();
        let text = format!("{HEADER}{}\n{body}", body.len()).into_bytes();
        (text, ttl_secs(&kept, now_ms))
    }
}

/// Should a mark survive compaction at `now_ms`?
fn still_useful(mark: &Mark, now_ms: u64) -> bool {
    let retain = if mark.dead { RETAIN_DEAD_MS } else { RETAIN_MS };
    now_ms < mark.until_ms.saturating_add(retain)
}

/// The TTL of a compacted item: its last mark's end plus [`RETAIN_MS`]; none while it holds a
/// dead key (which only a probation request may lift) — given as [`MAX_TTL_SECS`].
fn ttl_secs(marks: &[(MarkName, Mark)], now_ms: u64) -> u64 {
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
fn layout(text: &[u8]) -> (Range<usize>, Range<usize>, bool) {
    let Some(rest) = text.strip_prefix(HEADER.as_bytes()) else {
        // No header: every line was appended (an append creates a missing item).
        let foreign = text.starts_with(FOREIGN_HEADER.as_bytes());
        return if foreign { (0..0, 0..0, true) } else { (0..0, 0..text.len(), false) };
    };
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else { return (0..0, 0..0, true) };
    let Some(length) = std::str::from_utf8(&rest[..newline]).ok().and_then(|n| n.parse::<usize>().ok()) else {
        return (0..0, 0..0, true);
    };
    let start = HEADER.len() + newline + 1;
    let mut end = start.saturating_add(length).min(text.len());
    // A damaged length: the sorted part ends at the last whole line within it.
    if end > start && text[end - 1] != b'\n' {
        end = text[start..end].iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i + 1);
    }
    (start..end, end..text.len(), false)
}

impl Marks {
    /// The first line start in the sorted part whose name is not less than `wanted`.
    fn lower_bound(&self, wanted: &[u8]) -> usize {
        let (mut lo, mut hi) = (self.base.start, self.base.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = self.text[lo..mid].iter().rposition(|&b| b == b'\n').map_or(lo, |i| lo + i + 1);
            let end = line_end(&self.text, start, self.base.end);
            if name_of(&self.text[start..end]) < wanted {
                lo = end + 1;
            } else {
                hi = start;
            }
        }
        lo.min(self.base.end)
    }
}

fn line_end(text: &[u8], start: usize, limit: usize) -> usize {
    text[start..limit].iter().position(|&b| b == b'\n').map_or(limit, |i| start + i)
}

fn name_of(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b' ').next().unwrap_or_default()
}

/// The readable lines of `text[range]`, as (name bytes, entry).
fn lines(text: &[u8], range: Range<usize>) -> impl Iterator<Item = (&[u8], Entry)> {
    text[range].split(|&b| b == b'\n').filter_map(parse_line)
}

/// `name until reason strikes dead since` or `name clear since`.
fn parse_line(line: &[u8]) -> Option<(&[u8], Entry)> {
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
            strikes: fields.next()?.parse().ok()?,
            dead: match fields.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            },
            since_ms: fields.next()?.parse().ok()?,
        })
    };
    fields.next().is_none().then_some((name.as_bytes(), entry))
}

fn encode_line(name: &str, entry: &Entry) -> String {
    match entry {
        Entry::Set(m) => format!(
            "{name} {} {} {} {} {}\n",
            m.until_ms,
            m.reason.code(),
            m.strikes,
            u8::from(m.dead),
            m.since_ms
        ),
        Entry::Clear(since) => format!("{name} clear {since}\n"),
    }
}

/// Where a key stands for one model at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// It may serve.
    Ready,
    /// Dead, and its probation request is due.
    Probation,
    /// Cooling until then.
    Cooling {
        /// Unix ms.
        until_ms: u64,
    },
    /// Dead.
    Dead,
}

/// The state a request reads: the `keys` item and the item of the requested model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolState {
    /// The `keys` item.
    pub keys: Marks,
    /// The `model/<model>` item (empty for requests without a model).
    pub model: Marks,
}

impl PoolState {
    /// The item `item` lives in, as read.
    pub fn marks(&self, item: &Item) -> &Marks {
        match item {
            Item::Keys => &self.keys,
            Item::Model(_) => &self.model,
        }
    }

    fn marks_mut(&mut self, item: &Item) -> &mut Marks {
        match item {
            Item::Keys => &mut self.keys,
            Item::Model(_) => &mut self.model,
        }
    }

    /// Applies one of this request's changes on top of what was read.
    pub fn apply(&mut self, change: &Change) {
        self.marks_mut(&change.item).apply(change.name.clone(), change.entry);
    }

    /// Does the stored state already say what `change` says?
    pub fn covers(&self, change: &Change) -> bool {
        self.marks(&change.item).covers(&change.name, &change.entry)
    }

    /// Where `key` stands for this state's model at `now_ms`.
    pub fn availability(&self, key: &ApiKey<'_>, now_ms: u64) -> Availability {
        if self.keys.is_empty() && self.model.is_empty() {
            return Availability::Ready;
        }
        let names = KeyNames::of(key);
        if let Some(mark) = self.keys.get(&names.own).filter(|m| m.dead) {
            return if now_ms >= mark.until_ms { Availability::Probation } else { Availability::Dead };
        }
        let cooling = [names.cooling(&self.keys, now_ms), names.cooling(&self.model, now_ms)];
        match cooling.into_iter().flatten().max_by_key(|m| m.until_ms) {
            Some(mark) => Availability::Cooling { until_ms: mark.until_ms },
            None => Availability::Ready,
        }
    }
}

/// In one item: the mark keeping `key` from serving now — its own or its project's,
/// whichever ends later.
pub fn cooling_for(marks: &Marks, key: &ApiKey<'_>, now_ms: u64) -> Option<Mark> {
    KeyNames::of(key).cooling(marks, now_ms)
}

/// The names of the marks that can keep a key out: its own, and its project's.
struct KeyNames {
    own: MarkName,
    project: Option<MarkName>,
}

impl KeyNames {
    fn of(key: &ApiKey<'_>) -> Self {
        let project = match Bucket::of(key) {
            bucket @ Bucket::Project(_) => Some(MarkName::of(bucket)),
            Bucket::Key(_) => None,
        };
        KeyNames { own: MarkName::key(key), project }
    }

    fn cooling(&self, marks: &Marks, now_ms: u64) -> Option<Mark> {
        if marks.is_empty() {
            return None;
        }
        let own = marks.active(&self.own, now_ms);
        let shared = self.project.as_ref().and_then(|name| marks.active(name, now_ms));
        match (own, shared) {
            (Some(a), Some(b)) => Some(if a.until_ms >= b.until_ms { a } else { b }),
            (a, b) => a.or(b),
        }
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
        let text: String = lines.iter().map(|(n, e)| encode_line(n, e)).collect();
        Marks::decode(text.into_bytes(), Some(1))
    }

    #[test]
    fn appended_lines_read_and_compact_into_a_sorted_item() {
        let marks = with_lines(&[
            ("p:team", Entry::Set(mark(5_000, Reason::PerMinuteQuota))),
            ("k:00000000000000aa", Entry::Set(Mark { dead: true, ..mark(9, Reason::KeyInvalid) })),
            ("k:00000000000000ab", Entry::Set(Mark { strikes: 3, ..mark(7, Reason::Http(429)) })),
        ]);
        let (bytes, _) = marks.compacted(0, |_| true);
        let compacted = Marks::decode(bytes.clone(), Some(2));
        assert_eq!(compacted.all(), marks.all());
        for n in ["p:team", "k:00000000000000aa", "k:00000000000000ab", "k:00000000000000ac", "p:zzz", "k:0000000000000000"] {
            assert_eq!(compacted.get(&name(n)), marks.get(&name(n)), "{n}");
        }
        assert!(String::from_utf8_lossy(&bytes).starts_with("gemini-edge-pool marks v2 "));
        // Appending to a compacted item keeps both parts readable.
        let mut more = bytes;
        more.extend_from_slice(encode_line("p:team", &Entry::Set(mark(9_000, Reason::PerDayQuota))).as_bytes());
        let both = Marks::decode(more, Some(3));
        assert_eq!(both.get(&name("p:team")).map(|m| m.until_ms), Some(9_000));
        assert_eq!(both.get(&name("k:00000000000000ab")).map(|m| m.strikes), Some(3));
    }

    #[test]
    fn binary_search_finds_every_mark_of_a_big_item() {
        let mut marks = Marks::default();
        for i in 0..2_000u64 {
            marks.apply(name(&format!("k:{i:016x}")), Entry::Set(mark(i + 10, Reason::Throttled)));
        }
        let (bytes, _) = marks.compacted(0, |_| true);
        let read = Marks::decode(bytes, None);
        for i in (0..2_000u64).step_by(7) {
            assert_eq!(read.get(&name(&format!("k:{i:016x}"))).map(|m| m.until_ms), Some(i + 10));
        }
        assert_eq!(read.get(&name("k:ffffffffffffffff")), None);
        assert_eq!(read.get(&name("k:0000000000000000")).map(|m| m.until_ms), Some(10));
    }

    #[test]
    fn merge_rule() {
        let cool = |until| Entry::Set(mark(until, Reason::PerMinuteQuota));
        let dead = Entry::Set(Mark { dead: true, ..mark(50, Reason::KeyInvalid) });
        // A cooldown never shortens another; a later end replaces.
        assert_eq!(merge(merge(None, cool(100)), cool(60)).map(|m| m.until_ms), Some(100));
        assert_eq!(merge(merge(None, cool(60)), cool(100)).map(|m| m.until_ms), Some(100));
        // A dead mark stays until cleared; a clear leaves cooldowns alone.
        assert!(merge(merge(None, dead), cool(500)).is_some_and(|m| m.dead));
        assert_eq!(merge(merge(None, dead), Entry::Clear(60)), None);
        assert_eq!(merge(merge(None, cool(100)), Entry::Clear(60)).map(|m| m.until_ms), Some(100));
        // A clear followed by a new dead verdict: dead again (the order of the lines decides).
        assert!(merge(merge(merge(None, dead), Entry::Clear(60)), dead).is_some_and(|m| m.dead));
    }

    #[test]
    fn duplicate_and_damaged_lines_give_one_answer() {
        let text = "gemini-edge-pool marks v2 62\nz 5 throttled 0 0 1\nz\nz 9 throttled 2 0 1\nbroken line\nz 7 per_day_quota 0 0 1\n";
        let marks = Marks::decode(text.as_bytes().to_vec(), None);
        let z = MarkName::parse("z");
        assert_eq!(z, None, "not a name we write, but still one answer:");
        let all = marks.all();
        assert!(all.is_empty());
        let ours = "k:00000000000000aa 5 throttled 0 0 1\nk:00000000000000aa 9 throttled 2 0 1\nk:00000000000000aa\n";
        let marks = Marks::decode(ours.as_bytes().to_vec(), None);
        let all = marks.all();
        assert_eq!(all.len(), 1);
        assert_eq!(Some(all[0].1), marks.get(&name("k:00000000000000aa")));
        assert_eq!(all[0].1.until_ms, 9);
    }

    #[test]
    fn foreign_or_damaged_headers() {
        let v1 = Marks::decode(b"gemini-edge-pool marks v1\nk:00000000000000aa 9 throttled 0 0 1".to_vec(), Some(4));
        assert!(v1.is_empty() && v1.compaction_due());
        let bad_length = Marks::decode(b"gemini-edge-pool marks v2 999\nk:00000000000000aa 9 throttled 0 0 1".to_vec(), None);
        assert_eq!(bad_length.get(&name("k:00000000000000aa")).map(|m| m.until_ms), Some(9));
        assert!(Marks::decode(b"\xff\xfe garbage".to_vec(), None).all().is_empty());
    }

    #[test]
    fn compaction_prunes_and_sets_the_ttl() {
        let mut marks = Marks::default();
        marks.apply(name("p:a"), Entry::Set(mark(1_000, Reason::Throttled)));
        marks.apply(name("p:b"), Entry::Set(mark(2_000_000, Reason::PerMinuteQuota)));
        let (bytes, ttl) = marks.compacted(1_000 + RETAIN_MS, |_| true);
        let read = Marks::decode(bytes, None);
        assert!(read.get(&name("p:a")).is_none() && read.get(&name("p:b")).is_some());
        assert_eq!(ttl, (2_000_000 + RETAIN_MS - (1_000 + RETAIN_MS)).div_ceil(1000));
        marks.apply(name("k:00000000000000cc"), Entry::Set(Mark { dead: true, ..mark(0, Reason::KeyLeaked) }));
        assert_eq!(marks.compacted(0, |_| true).1, MAX_TTL_SECS);
        // A dead mark whose probation is long overdue goes; so do names the caller drops.
        let (bytes, ttl) = marks.compacted(RETAIN_DEAD_MS + 1, |n| n.as_str() != "p:b");
        assert!(Marks::decode(bytes, None).is_empty());
        assert_eq!(ttl, EMPTY_TTL_SECS);
        // A far-away end still gives a TTL the store accepts.
        let mut far = Marks::default();
        far.apply(name("p:x"), Entry::Set(mark(u64::MAX, Reason::NoFreeTier)));
        assert_eq!(far.compacted(0, |_| true).1, MAX_TTL_SECS);
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
