//! Cooling state as stored in the KV store `key_state`, and the changes a request makes to it.
//!
//! Two kinds of item, so a request reads at most two:
//! - `keys` — marks per key fingerprint: dead keys, and whole-key cooldowns (seed profile);
//! - `model/<model>` — marks per quota bucket (`p:<project>` or `k:<fingerprint>`) for that model.
//!
//! Every mark carries its own end time, checked on read (production KV deletes expired items
//! lazily, up to a day late). An item's TTL is its latest mark's end plus [`RETAIN_MS`].

use crate::keys::ApiKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// How long an expired mark is kept: repeated bare 429s grow their backoff from it.
pub const RETAIN_MS: u64 = 15 * 60 * 1000;

/// Why a mark was set (stored as a short code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Unix ms when the cooldown ends; for a dead key, when its probation request is due
    /// (`u64::MAX`: never).
    #[serde(rename = "u")]
    pub until_ms: u64,
    #[serde(rename = "r")]
    pub reason: Reason,
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub dead: bool,
    /// Consecutive bare 429s (for the growing backoff).
    #[serde(rename = "n", default, skip_serializing_if = "is_zero")]
    pub strikes: u32,
    /// Unix ms when the mark was set.
    #[serde(rename = "s", default)]
    pub since_ms: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

#[derive(Debug, Error)]
#[error("stored cooling state is unreadable: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// The marks of one item, by name (a fingerprint in `keys`, a bucket in `model/…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    #[serde(rename = "v")]
    version: u32,
    marks: BTreeMap<String, Mark>,
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
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            return Ok(Marks::default());
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn encode(&self) -> Vec<u8> {
        let versioned = Marks { version: 1, marks: self.marks.clone() };
        serde_json::to_vec(&versioned).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&Mark> {
        self.marks.get(name)
    }

    pub fn active(&self, name: &str, now_ms: u64) -> Option<&Mark> {
        self.marks.get(name).filter(|m| m.is_active(now_ms))
    }

    /// The active mark of project bucket `p:<project>`.
    pub fn active_project(&self, project: &str, now_ms: u64) -> Option<&Mark> {
        if self.marks.is_empty() {
            return None;
        }
        self.active(&format!("p:{project}"), now_ms)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Mark)> {
        self.marks.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn set(&mut self, name: String, mark: Mark) {
        self.marks.insert(name, mark);
    }

    pub fn clear(&mut self, name: &str) {
        self.marks.remove(name);
    }

    /// Applies a change meant for this item.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Set { name, mark, .. } => self.set(name.clone(), mark.clone()),
            Change::Clear { name, .. } => self.clear(name),
        }
    }

    /// Drops marks that ended more than [`RETAIN_MS`] ago, and marks of keys that left the
    /// pool (`known` says whether a name still belongs to it).
    pub fn prune(&mut self, now_ms: u64, known: impl Fn(&str) -> bool) {
        self.marks.retain(|name, mark| {
            known(name) && (mark.dead || now_ms < mark.until_ms.saturating_add(RETAIN_MS))
        });
    }

    /// The KV TTL for this item in whole seconds; `None` when it must not expire (dead keys).
    pub fn ttl_secs(&self, now_ms: u64) -> Option<u64> {
        if self.marks.values().any(|m| m.dead) {
            return None;
        }
        let last = self.marks.values().map(|m| m.until_ms).max().unwrap_or(now_ms);
        let remaining = last.saturating_add(RETAIN_MS).saturating_sub(now_ms);
        Some(remaining.div_ceil(1000).max(60))
    }
}

/// Where a key stands for one model at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Dead, and its probation request is due.
    Probation,
    Cooling { until_ms: u64 },
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
        if self.model.is_empty() {
            return Availability::Ready;
        }
        let own = self.model.active(bucket, now_ms).map(|m| m.until_ms);
        let shared = key
            .project
            .and_then(|project| self.model.active_project(project, now_ms))
            .map(|m| m.until_ms);
        match own.max(shared) {
            Some(until_ms) => Availability::Cooling { until_ms },
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
        let bytes = marks.encode();
        assert_eq!(Marks::decode(&bytes).expect("decodes").get("p:team"), marks.get("p:team"));
        assert!(!String::from_utf8_lossy(&bytes).contains("AIza"));
        assert!(Marks::decode(b"garbage").is_err());
        assert!(Marks::decode(b"").expect("empty is fine").is_empty());
    }

    #[test]
    fn prune_and_ttl() {
        let mut marks = Marks::default();
        marks.set("a".into(), mark(1_000, Reason::Throttled));
        marks.set("b".into(), mark(2_000_000, Reason::PerMinuteQuota));
        marks.prune(1_000 + RETAIN_MS, |_| true);
        assert!(marks.get("a").is_none() && marks.get("b").is_some());
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
