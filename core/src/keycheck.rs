//! The key check (`POST /v1/keys/check?cursor=N`, admins only): probe a batch of keys with a
//! call Google does not bill — the native model list, one model per page — read each answer
//! with the same classifier as any other, and record what it proves.
//!
//! - a dead-key answer marks the key dead (probation after `dead_probation`, as usual);
//! - an answer only a working key gets clears a dead mark;
//! - anything else (a quota answer, Google's trouble) changes nothing.
//!
//! A batch is at most [`BATCH`] keys — well under Fastly's 32 backend requests per request —
//! and the answer names the cursor of the next batch, so a browser walks the whole pool.

use crate::auth::query_param;
use crate::classify::{Outcome, Verdict};
use crate::envelope::ErrorReply;
use crate::keys::{ApiKey, KeyPool};
use crate::names::MarkName;
use crate::settings::CoolingSettings;
use crate::state::{Change, Entry, Item, Mark, PoolState};
use serde::Serialize;
use std::time::Duration;

/// Keys probed per call.
pub const BATCH: usize = 16;

/// The path and query of the probe (a GET with the key in `x-goog-api-key`).
pub const PROBE_PATH: &str = "/v1beta/models?pageSize=1";

/// The cursor of a call (`?cursor=N`, digits only; none: the first batch).
pub fn cursor(query: Option<&str>) -> Result<usize, ErrorReply> {
    let invalid = || ErrorReply::bad_request("invalid_cursor", "`cursor` must be a whole number (digits only).");
    match query_param(query, "cursor") {
        None => Ok(0),
        Some(text) if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) => Err(invalid()),
        Some(text) => text.parse::<usize>().map_err(|_| invalid()),
    }
}

/// The parts of the pool a batch's keys are in (their state is read before judging).
pub fn parts(batch: &[ApiKey<'_>]) -> Vec<usize> {
    let mut parts: Vec<usize> = batch.iter().map(|k| k.at.list).collect();
    parts.dedup();
    parts
}

/// The findings on a batch from Google's verdicts (in batch order), and the changes they make.
pub fn judge_all(
    batch: &[ApiKey<'_>],
    verdicts: impl IntoIterator<Item = Verdict>,
    state: &PoolState,
    cooling: &CoolingSettings,
    now_ms: u64,
) -> (Vec<Finding>, Vec<Change>) {
    let mut findings = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    for (key, verdict) in batch.iter().zip(verdicts) {
        let (finding, change) = judge(key, &verdict, state, cooling, now_ms);
        findings.push(finding);
        changes.extend(change);
    }
    (findings, changes)
}

/// The JSON answer: the findings, the next cursor, how many keys are checked so far (never
/// more than there are), of how many.
pub fn answer(findings: &[Finding], next: Option<usize>, cursor: usize, total: usize) -> Vec<u8> {
    let checked = cursor.saturating_add(findings.len()).min(total);
    let body = serde_json::json!({ "results": findings, "next": next, "checked": checked, "total": total });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The keys of one batch, from `cursor` (a position in pool order, each key counted once),
/// and the next cursor (`None` after the last batch).
pub fn batch<'a>(pool: &KeyPool<'a>, cursor: usize) -> (Vec<ApiKey<'a>>, Option<usize>) {
    let mut keys = pool.distinct().skip(cursor);
    let batch: Vec<ApiKey<'a>> = keys.by_ref().take(BATCH).collect();
    let next = keys.next().map(|_| cursor + batch.len());
    (batch, next)
}

/// What the probe of one key found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The key's mask (`…WXYZ`).
    pub key: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its project, if declared.
    pub project: Option<String>,
    /// `ok`, `dead`, or `unknown` (Google's trouble, a quota answer, no answer).
    pub result: &'static str,
    /// Why, in words.
    pub reason: String,
    /// Google's HTTP status (`null`: no answer).
    pub http_status: Option<u16>,
}

/// The finding on `key` from Google's `verdict`, and the change it makes to `state`.
pub fn judge(
    key: &ApiKey<'_>,
    verdict: &Verdict,
    state: &PoolState,
    cooling: &CoolingSettings,
    now_ms: u64,
) -> (Finding, Option<Change>) {
    let name = MarkName::key(key);
    let item = Item::keys(key.at.list);
    let dead_now = state.marks(&item).get(&name).is_some_and(|m| m.dead);
    let (result, reason, change) = match &verdict.outcome {
        Outcome::Success => {
            let change = dead_now.then_some(Change { item, name, entry: Entry::Clear(now_ms) });
            ("ok", "answers".to_string(), change)
        }
        Outcome::KeyDead(why) => {
            let mark = Mark {
                until_ms: after(now_ms, cooling.dead_probation),
                reason: *why,
                dead: true,
                strikes: 0,
                since_ms: now_ms,
            };
            ("dead", why.to_string(), Some(Change { item, name, entry: Entry::Set(mark) }))
        }
        other => ("unknown", other.to_string(), None),
    };
    let finding = Finding {
        key: key.mask(),
        fingerprint: key.fingerprint.to_string(),
        project: key.project.map(str::to_string),
        result,
        reason,
        http_status: verdict.status,
    };
    (finding, change)
}

fn after(now_ms: u64, duration: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::marks::Marks;
    use crate::state::PartState;

    #[test]
    fn batches_walk_the_pool() {
        let list: String = (0..40).map(|i| format!("AIzaSyKEY{i:030}\n")).collect();
        let pool = KeyPool::new([list.as_str()]);
        let (first, next) = batch(&pool, 0);
        assert_eq!((first.len(), next), (16, Some(16)));
        let (last, next) = batch(&pool, 32);
        assert_eq!((last.len(), next), (8, None));
        assert_eq!(batch(&pool, 99).0.len(), 0);
    }

    #[test]
    fn a_cursor_is_a_whole_number_and_the_answer_says_how_far_the_walk_is() {
        assert_eq!(cursor(None), Ok(0));
        assert_eq!(cursor(Some("cursor=32")), Ok(32));
        for bad in ["cursor=x", "cursor=+16", "cursor=-1", "cursor=", "cursor=1e3", "cursor=99999999999999999999999"] {
            assert_eq!(cursor(Some(bad)).map_err(|e| e.code), Err("invalid_cursor".to_string()), "{bad}");
        }
        let answer: serde_json::Value = serde_json::from_slice(&answer(&[], Some(48), 32, 40)).unwrap_or_default();
        assert_eq!(answer, serde_json::json!({"results": [], "next": 48, "checked": 32, "total": 40}));
        let past: serde_json::Value = serde_json::from_slice(&super::answer(&[], None, 999, 40)).unwrap_or_default();
        assert_eq!(past["checked"], 40, "never more than there are");
    }

    #[test]
    fn dead_keys_are_marked_and_working_ones_revived() {
        let pool = KeyPool::new(["AIzaSyKEY000000000000000000000000000001"]);
        let key = pool.iter().next().expect("a key");
        let cooling = CoolingSettings::default();
        let empty = PoolState::single(PartState::default(), None);
        let invalid = classify(400, br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#);
        let (finding, change) = judge(&key, &invalid, &empty, &cooling, 1_000);
        assert_eq!((finding.result, finding.http_status), ("dead", Some(400)));
        let Some(Change { entry: Entry::Set(mark), .. }) = change else { panic!("a dead mark") };
        assert!(mark.dead && mark.until_ms == 1_000 + 6 * 3_600_000);
        // Stored dead, now it answers: the mark goes.
        let stored = format!("{} {} key_invalid 0 1 1\n", MarkName::key(&key), mark.until_ms);
        let dead = PoolState::single(
            PartState { keys: Marks::decode(stored.into_bytes(), Some(1)), model: Marks::default() },
            None,
        );
        let (finding, change) = judge(&key, &classify(200, b"{}"), &dead, &cooling, 2_000);
        assert_eq!(finding.result, "ok");
        assert!(matches!(change, Some(Change { entry: Entry::Clear(2_000), .. })));
        // A quota answer or Google's trouble changes nothing.
        let (finding, change) = judge(&key, &classify(503, b""), &dead, &cooling, 3_000);
        assert_eq!((finding.result, change), ("unknown", None));
        assert!(!serde_json::to_string(&finding).expect("json").contains("AIza"));
    }
}
