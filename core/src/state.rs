//! Cooling state as stored in the KV store `key_state`, and the changes a request makes to it.
//!
//! Two kinds of item, so a request reads at most two:
//! - `keys` — marks per key fingerprint: dead keys, and whole-key cooldowns (seed profile);
//! - `model/<model>` — marks per quota bucket (`p:<project>` or `k:<fingerprint>`) for that model.
//!
//! Every mark carries its own end time, checked on read (production KV deletes expired items
//! lazily, up to a day late). An item's TTL is its latest mark's end plus [`RETAIN_MS`].
//!
//! An item is text, one mark per line, sorted by name, so a request looks marks up by binary
//! search without decoding the whole item (a 2,000-key pool can have 2,000 marks per model):
//!
//! ```text
//! gemini-edge-pool marks v1
//! k:9c93227198f8aa82 1764150000000 per_minute_quota 0 0 1764149950000
//! p:team-a 1764230400000 per_day_quota 0 0 1764149950000
//! ```
//!
//! Fields: name, end (unix ms), reason, strikes, dead (0/1), set at (unix ms).

use crate::keys::ApiKey;
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// How long an expired mark is kept: repeated bare 429s grow their backoff from it.
pub const RETAIN_MS: u64 = 15 * 60 * 1000;

/// Why a mark was set (stored as a short code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    PerDayQuota,
    PerMinuteQuota,
    NoFreeTier,
    ModelForbidden,
    Throttled,
    UpstreamTrouble,
    ConnectFailure,
    KeyInvalid,
    KeyLeaked,
    KeySuspended,
    KeyBlocked,
    ServiceDisabled,
    ProjectDenied,
    Unauthenticated,
    /// The seed profile cools by HTTP status alone.
    Http(u16),
}

/// Stored codes, in the order of the variants without data.
const REASON_CODES: [(Reason, &str); 14] = [
    (Reason::PerDayQuota, "per_day_quota"),
    (Reason::PerMinuteQuota, "per_minute_quota"),
    (Reason::NoFreeTier, "no_free_tier"),
    (Reason::ModelForbidden, "model_forbidden"),
    (Reason::Throttled, "throttled"),
    (Reason::UpstreamTrouble, "upstream_trouble"),
    (Reason::ConnectFailure, "connect_failure"),
    (Reason::KeyInvalid, "key_invalid"),
    (Reason::KeyLeaked, "key_leaked"),
    (Reason::KeySuspended, "key_suspended"),
    (Reason::KeyBlocked, "key_blocked"),
    (Reason::ServiceDisabled, "service_disabled"),
    (Reason::ProjectDenied, "project_denied"),
    (Reason::Unauthenticated, "unauthenticated"),
];

impl Reason {
    pub fn code(self) -> String {
        match self {
            Reason::Http(status) => format!("http_{status}"),
            other => REASON_CODES.iter().find(|(r, _)| *r == other).map_or("unknown", |(_, c)| c).to_string(),
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        if let Some(status) = code.strip_prefix("http_") {
            return status.parse().ok().map(Reason::Http);
        }
        REASON_CODES.iter().find(|(_, c)| *c == code).map(|(r, _)| *r)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PerDayQuota => f.write_str("per-day quota exhausted (until the daily reset)"),
            Reason::PerMinuteQuota => f.write_str("per-minute quota exceeded"),
            Reason::NoFreeTier => f.write_str("no quota for this model on this key's tier (limit 0)"),
            Reason::ModelForbidden => f.write_str("key may not use this model"),
            Reason::Throttled => f.write_str("rate limited without details (backoff)"),
            Reason::UpstreamTrouble => f.write_str("upstream trouble"),
            Reason::ConnectFailure => f.write_str("connection failure or timeout"),
            Reason::KeyInvalid => f.write_str("API key not valid or expired"),
            Reason::KeyLeaked => f.write_str("API key reported as leaked"),
            Reason::KeySuspended => f.write_str("consumer suspended"),
            Reason::KeyBlocked => f.write_str("API key blocked for this service"),
            Reason::ServiceDisabled => f.write_str("Generative Language API disabled in the project"),
            Reason::ProjectDenied => f.write_str("project denied access"),
            Reason::Unauthenticated => f.write_str("unauthenticated (401)"),
            Reason::Http(status) => write!(f, "HTTP {status} (seed profile)"),
        }
    }
}

/// One mark: a key (or bucket) out of rotation until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    /// Unix ms when the cooldown ends; for a dead key, when its probation request is due
    /// (`u64::MAX`: never).
    pub until_ms: u64,
    pub reason: Reason,
    pub dead: bool,
    /// Consecutive bare 429s (for the growing backoff).
    pub strikes: u32,
    /// Unix ms when the mark was set.
    pub since_ms: u64,
}

impl Mark {
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.dead || now_ms < self.until_ms
    }
}

/// Which KV item a mark lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    Keys,
    Model(String),
}

const MODEL_PREFIX: &str = "model/";

impl Item {
    pub fn kv_key(&self) -> String {
        match self {
            Item::Keys => "keys".to_string(),
            Item::Model(model) => format!("{MODEL_PREFIX}{model}"),
        }
    }

    pub fn model_prefix() -> &'static str {
        MODEL_PREFIX
    }

    pub fn from_kv_key(key: &str) -> Option<Self> {
        if key == "keys" {
            return Some(Item::Keys);
        }
        key.strip_prefix(MODEL_PREFIX).map(|m| Item::Model(m.to_string()))
    }
}

#[derive(Debug, Error, PartialEq)]
#[error("stored cooling state is unreadable: {0}")]
pub struct DecodeError(String);

const HEADER: &str = "gemini-edge-pool marks v1";

/// The marks of one item, by name (a fingerprint in `keys`, a bucket in `model/…`): the text
/// as read, an index of its lines, and the edits made since.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    text: String,
    /// Byte ranges of the mark lines in `text`, sorted by name.
    lines: Vec<(usize, usize)>,
    edits: BTreeMap<String, Option<Mark>>,
}

/// One change a request makes to the stored state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Set { item: Item, name: String, mark: Mark },
    Clear { item: Item, name: String },
}

impl Change {
    pub fn item(&self) -> &Item {
        match self {
            Change::Set { item, .. } | Change::Clear { item, .. } => item,
        }
    }
}

impl Marks {
    /// Indexes an item's text, keeping the bytes as read (nothing is parsed until looked up).
    pub fn decode(bytes: impl Into<Vec<u8>>) -> Result<Self, DecodeError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(Marks::default());
        }
        let text = String::from_utf8(bytes).map_err(|e| DecodeError(e.to_string()))?;
        let Some(body) = text.strip_prefix(HEADER) else {
            return Err(DecodeError("unknown format".to_string()));
        };
        let offset = HEADER.len();
        let mut lines = Vec::with_capacity(body.len() / 64 + 1);
        let mut start = 0;
        for (end, _) in body.match_indices('\n').chain(std::iter::once((body.len(), ""))) {
            if end > start {
                lines.push((offset + start, offset + end));
            }
            start = end + 1;
        }
        let mut marks = Marks { text, lines, edits: BTreeMap::new() };
        if !marks.lines.windows(2).all(|w| marks.name_at(w[0]) <= marks.name_at(w[1])) {
            let Marks { text, mut lines, .. } = marks;
            lines.sort_by(|a, b| name_of(&text, *a).cmp(name_of(&text, *b)));
            marks = Marks { text, lines, edits: BTreeMap::new() };
        }
        Ok(marks)
    }

    /// The item's text: every mark, sorted by name.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::from(HEADER);
        for (name, mark) in self.all() {
            out.push('\n');
            out.push_str(&format!(
                "{name} {} {} {} {} {}",
                mark.until_ms,
                mark.reason.code(),
                mark.strikes,
                u8::from(mark.dead),
                mark.since_ms
            ));
        }
        out.into_bytes()
    }

    pub fn get(&self, name: &str) -> Option<Mark> {
        if let Some(edit) = self.edits.get(name) {
            return *edit;
        }
        let at = self.lines.binary_search_by(|range| self.name_at(*range).cmp(name)).ok()?;
        parse_line(&self.text[self.lines[at].0..self.lines[at].1]).map(|(_, mark)| mark)
    }

    pub fn active(&self, name: &str, now_ms: u64) -> Option<Mark> {
        self.get(name).filter(|m| m.is_active(now_ms))
    }

    /// In a model's item: the mark keeping `key` from serving now — its own or its project's,
    /// whichever ends later.
    pub fn cooling_for(&self, key: &ApiKey<'_>, now_ms: u64) -> Option<Mark> {
        if self.is_empty() {
            return None;
        }
        let mut name = [0u8; 18];
        let own = self.active(key.fingerprint().key_bucket_name(&mut name), now_ms);
        let shared = key.project.and_then(|project| self.active_project(project, now_ms));
        match (own, shared) {
            (Some(a), Some(b)) => Some(if a.until_ms >= b.until_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The active mark of project bucket `p:<project>`.
    pub fn active_project(&self, project: &str, now_ms: u64) -> Option<Mark> {
        if self.is_empty() {
            return None;
        }
        self.active(&crate::keys::Bucket::Project(project.to_string()).to_string(), now_ms)
    }

    /// Every mark, sorted by name (parses the whole item: for writes and `/v1/status`).
    pub fn all(&self) -> BTreeMap<String, Mark> {
        let mut all: BTreeMap<String, Mark> = self
            .lines
            .iter()
            .filter_map(|&(a, b)| parse_line(&self.text[a..b]))
            .map(|(name, mark)| (name.to_string(), mark))
            .collect();
        for (name, edit) in &self.edits {
            match edit {
                Some(mark) => all.insert(name.clone(), *mark),
                None => all.remove(name),
            };
        }
        all
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.edits.values().all(Option::is_none)
    }

    pub fn set(&mut self, name: String, mark: Mark) {
        self.edits.insert(name, Some(mark));
    }

    pub fn clear(&mut self, name: &str) {
        self.edits.insert(name.to_string(), None);
    }

    /// Applies a change meant for this item.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Set { name, mark, .. } => self.set(name.clone(), *mark),
            Change::Clear { name, .. } => self.clear(name),
        }
    }

    /// Drops marks that ended more than [`RETAIN_MS`] ago, and marks of keys that left the
    /// pool (`known` says whether a name still belongs to it).
    pub fn prune(&mut self, now_ms: u64, known: impl Fn(&str) -> bool) {
        let kept: BTreeMap<String, Mark> = self
            .all()
            .into_iter()
            .filter(|(name, mark)| known(name) && (mark.dead || now_ms < mark.until_ms.saturating_add(RETAIN_MS)))
            .collect();
        *self = Marks {
            text: String::new(),
            lines: Vec::new(),
            edits: kept.into_iter().map(|(n, m)| (n, Some(m))).collect(),
        };
    }

    /// The KV TTL for this item in whole seconds; `None` when it must not expire (dead keys).
    pub fn ttl_secs(&self, now_ms: u64) -> Option<u64> {
        let all = self.all();
        if all.values().any(|m| m.dead) {
            return None;
        }
        let last = all.values().map(|m| m.until_ms).max().unwrap_or(now_ms);
        let remaining = last.saturating_add(RETAIN_MS).saturating_sub(now_ms);
        Some(remaining.div_ceil(1000).max(60))
    }

    fn name_at(&self, range: (usize, usize)) -> &str {
        name_of(&self.text, range)
    }
}

fn name_of(text: &str, (start, end): (usize, usize)) -> &str {
    let line = &text[start..end];
    line.split_once(' ').map_or(line, |(name, _)| name)
}

/// `name until reason strikes dead since`; `None` for a line that does not read so.
fn parse_line(line: &str) -> Option<(&str, Mark)> {
    let mut fields = line.split(' ');
    let name = fields.next()?;
    let mark = Mark {
        until_ms: fields.next()?.parse().ok()?,
        reason: Reason::from_code(fields.next()?)?,
        strikes: fields.next()?.parse().ok()?,
        dead: fields.next()? == "1",
        since_ms: fields.next()?.parse().ok()?,
    };
    Some((name, mark))
}

/// Where a key stands for one model at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Dead, and its probation request is due.
    Probation,
    Cooling {
        until_ms: u64,
    },
    Dead,
}

/// The state a request reads: the `keys` item and the item of the requested model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolState {
    pub keys: Marks,
    pub model: Marks,
}

impl PoolState {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.model.is_empty()
    }

    pub fn availability(&self, key: &ApiKey<'_>, now_ms: u64) -> Availability {
        if self.is_empty() {
            return Availability::Ready;
        }
        let fp = key.fingerprint();
        let mut name = [0u8; 18];
        let bucket = fp.key_bucket_name(&mut name);
        if !self.keys.is_empty() {
            // In `keys`, marks are named by the bare fingerprint (the bucket name minus `k:`).
            if let Some(mark) = self.keys.get(&bucket[2..]) {
                if mark.dead {
                    return if now_ms >= mark.until_ms { Availability::Probation } else { Availability::Dead };
                }
                if now_ms < mark.until_ms {
                    return Availability::Cooling { until_ms: mark.until_ms };
                }
            }
        }
        match self.model.cooling_for(key, now_ms) {
            Some(mark) => Availability::Cooling { until_ms: mark.until_ms },
            None => Availability::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Bucket, KeyPool};

    fn mark(until_ms: u64, reason: Reason) -> Mark {
        Mark { until_ms, reason, dead: false, strikes: 0, since_ms: 0 }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut marks = Marks::default();
        marks.set("p:team".into(), mark(5_000, Reason::PerMinuteQuota));
        marks.set("k:00000000000000aa".into(), Mark { dead: true, ..mark(9, Reason::KeyInvalid) });
        marks.set("k:00000000000000ab".into(), Mark { strikes: 3, ..mark(7, Reason::Http(429)) });
        let bytes = marks.encode();
        let decoded = Marks::decode(bytes.clone()).expect("decodes");
        for name in ["p:team", "k:00000000000000aa", "k:00000000000000ab"] {
            assert_eq!(decoded.get(name), marks.get(name), "{name}");
        }
        assert_eq!(decoded.get("k:00000000000000ac"), None);
        assert_eq!(decoded.all(), marks.all());
        assert!(!String::from_utf8_lossy(&bytes).contains("AIza"));
        assert!(Marks::decode(&b"garbage"[..]).is_err());
        assert!(Marks::decode(&b""[..]).expect("empty is fine").is_empty());
        // Unsorted or damaged lines still read; a damaged line is simply absent.
        let odd = format!("{HEADER}\nz 5 throttled 0 0 1\nbroken line\na 9 per_day_quota 0 0 1");
        let odd = Marks::decode(odd.as_bytes()).expect("decodes");
        assert_eq!(odd.get("a").map(|m| m.until_ms), Some(9));
        assert_eq!(odd.get("z").map(|m| m.reason), Some(Reason::Throttled));
        assert_eq!(odd.all().len(), 2);
    }

    #[test]
    fn prune_and_ttl() {
        let mut marks = Marks::default();
        marks.set("a".into(), mark(1_000, Reason::Throttled));
        marks.set("b".into(), mark(2_000_000, Reason::PerMinuteQuota));
        marks.prune(1_000 + RETAIN_MS, |_| true);
        assert!(marks.get("a").is_none() && marks.get("b").is_some());
        marks.clear("b");
        assert!(marks.is_empty());
        marks.set("b".into(), mark(2_000_000, Reason::PerMinuteQuota));
        assert_eq!(marks.ttl_secs(1_000_000), Some((1_000_000 + RETAIN_MS) / 1000));
        marks.set("c".into(), Mark { dead: true, ..mark(0, Reason::KeyLeaked) });
        assert_eq!(marks.ttl_secs(0), None);
        marks.prune(u64::MAX / 2, |name| name != "c");
        assert!(marks.is_empty());
    }

    #[test]
    fn availability_reads_key_model_and_project_marks() {
        let pool = KeyPool::parse(["AIzaKeyOne00000000", "team:AIzaKeyTwo00000000"]);
        let (one, two) = (*pool.get(0).expect("key"), *pool.get(1).expect("key"));
        let mut state = PoolState::default();
        assert_eq!(state.availability(&one, 10), Availability::Ready);
        state.model.set(Bucket::Key(one.fingerprint()).to_string(), mark(100, Reason::Throttled));
        state.model.set("p:team".into(), mark(200, Reason::PerDayQuota));
        assert_eq!(state.availability(&one, 10), Availability::Cooling { until_ms: 100 });
        assert_eq!(state.availability(&two, 10), Availability::Cooling { until_ms: 200 });
        assert_eq!(state.availability(&one, 100), Availability::Ready);
        state.keys.set(one.fingerprint().to_string(), Mark { dead: true, ..mark(500, Reason::KeyInvalid) });
        assert_eq!(state.availability(&one, 400), Availability::Dead);
        assert_eq!(state.availability(&one, 500), Availability::Probation);
    }
}
