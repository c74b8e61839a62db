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

use crate::admin::status::rejected_lines;
use crate::client::envelope::ErrorReply;
use crate::client::query::query_param;
use crate::decide::judge;
use crate::decide::machine::{Answer, Machine, Step};
use crate::google::classify::{classify, Outcome, Verdict};
use crate::pool::keys::{ApiKey, KeyPool};
use crate::settings::CoolingSettings;
use crate::state::commit::{Committer, Round};
use crate::state::items::state_of;
use crate::state::items::{Change, Item, PoolState};
use crate::state::marks::Marks;
use serde::Serialize;

/// Keys probed per call.
pub(crate) const BATCH: usize = 16;

/// The path and query of the probe (a GET with the key in `x-goog-api-key`).
const PROBE_PATH: &str = "/v1beta/models?pageSize=1";

/// The cursor of a call (`?cursor=N`, digits only; none: the first batch).
fn cursor(query: Option<&str>) -> Result<usize, ErrorReply> {
    let invalid = || ErrorReply::bad_request("invalid_cursor", "`cursor` must be a whole number (digits only).");
    match query_param(query, "cursor") {
        None => Ok(0),
        Some(text) if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) => Err(invalid()),
        Some(text) => text.parse::<usize>().map_err(|_| invalid()),
    }
}

/// The parts of the pool a batch's keys are in (their state is read before judging).
pub(crate) fn parts(batch: &[ApiKey<'_>]) -> Vec<usize> {
    let mut parts: Vec<usize> = batch.iter().map(|k| k.at.list).collect();
    parts.dedup();
    parts
}

/// The JSON answer: the findings, the next cursor, how many keys are checked so far (never
/// more than there are), of how many.
pub(crate) fn answer(findings: &[Finding], next: Option<usize>, cursor: usize, total: usize) -> Vec<u8> {
    let checked = cursor.saturating_add(findings.len()).min(total);
    let body = serde_json::json!({ "results": findings, "next": next, "checked": checked, "total": total });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The keys of one batch, from `cursor` (a position in pool order, each key counted once),
/// and the next cursor (`None` after the last batch).
pub(crate) fn batch<'a>(pool: &KeyPool<'a>, cursor: usize) -> (Vec<ApiKey<'a>>, Option<usize>) {
    let mut keys = pool.distinct().skip(cursor);
    let batch: Vec<ApiKey<'a>> = keys.by_ref().take(BATCH).collect();
    let next = keys.next().map(|_| cursor + batch.len());
    (batch, next)
}

/// What the probe of one key found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Finding {
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

/// The finding on `key` from Google's `verdict`, and the changes it makes to `state` — by the
/// same rule as a request's attempt ([`crate::decide::judge`]).
pub(crate) fn judge(
    key: &ApiKey<'_>,
    verdict: &Verdict,
    state: &PoolState,
    cooling: &CoolingSettings,
    now_ms: u64,
) -> (Finding, Vec<Change>) {
    let changes = judge::judge(key, verdict, state, cooling, now_ms, 0).changes();
    let (result, reason) = match &verdict.outcome {
        Outcome::Success => ("ok", "answers".to_string()),
        Outcome::KeyDead(why) => ("dead", why.to_string()),
        other => ("unknown", other.to_string()),
    };
    let finding = Finding {
        key: key.mask(),
        fingerprint: key.fingerprint.to_string(),
        project: key.project.map(str::to_string),
        result,
        reason,
        http_status: verdict.status,
    };
    (finding, changes)
}

/// How a key check ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The JSON answer ([`answer`]).
    Answer(Vec<u8>),
    /// No part of the pool holds a key: a configuration error.
    EmptyPool,
}

/// One call of the key check as a [`Machine`]: fetch every key list, read the state of the
/// batch's parts, probe the batch side by side, judge each answer, record what the answers
/// prove, answer. The edge runs it with the same loop as a request's [`crate::decide::flow::Flow`];
/// its `Send` is the probe ([`PROBE_PATH`]).
pub struct Check<'a> {
    cursor: usize,
    part_names: &'a [&'a str],
    lists: Vec<Option<&'a [u8]>>,
    batch: Vec<ApiKey<'a>>,
    next: Option<usize>,
    total: usize,
    state: PoolState,
    cooling: Option<CoolingSettings>,
    findings: Vec<Finding>,
    logs: Vec<String>,
    stage: Stage,
    /// Verdicts have entries of their own ([`crate::state::items`]).
    entries: bool,
}

enum Stage {
    Fetch,
    Configure,
    Read,
    Probe,
    Judge(Vec<Answer>),
    Commit(Committer),
    Done(Checked),
}

impl<'a> Check<'a> {
    /// The path and query of the probe, the key check's `Send` (a GET with the key in
    /// `x-goog-api-key`: the native model list, one model per page — a call Google does not
    /// bill).
    pub const PROBE_PATH: &'static str = PROBE_PATH;

    /// The cursor a call asks for (`?cursor=N`, digits only; none: the first batch), or the
    /// 400 to answer.
    pub fn cursor(query: Option<&str>) -> Result<usize, ErrorReply> {
        cursor(query)
    }

    /// The check of the batch at `cursor` over a pool of `parts` key lists, named `part_names`
    /// in log lines (the first batch logs the entries that are not keys).
    pub fn new(parts: usize, cursor: usize, part_names: &'a [&'a str]) -> Self {
        Check {
            cursor,
            part_names,
            lists: vec![None; parts.max(1)],
            batch: Vec::new(),
            next: None,
            total: 0,
            state: PoolState::new(parts.max(1), None),
            cooling: None,
            findings: Vec::new(),
            logs: Vec::new(),
            stage: Stage::Fetch,
            entries: false,
        }
    }

    /// Verdicts have entries of their own: the check writes them too (a revival in the index
    /// alone would be undone by the entry still saying dead).
    pub fn verdict_entries(mut self, on: bool) -> Self {
        self.entries = on;
        self
    }

    /// Every list fetched: the batch.
    fn batch_up(&mut self) -> Stage {
        let pool = KeyPool::new(self.lists.iter().map(|l| l.unwrap_or_default()));
        if pool.is_empty() {
            return Stage::Done(Checked::EmptyPool);
        }
        if self.cursor == 0 {
            self.logs.extend(rejected_lines(&pool, self.part_names, 20));
        }
        let (batch, next) = batch(&pool, self.cursor);
        (self.batch, self.next, self.total) = (batch, next, pool.count());
        Stage::Configure
    }

    fn answer(&self) -> Checked {
        Checked::Answer(answer(&self.findings, self.next, self.cursor, self.total))
    }

    fn items(&self) -> Vec<Item> {
        parts(&self.batch).into_iter().flat_map(|p| self.state.items(p)).collect()
    }
}

impl<'a> Machine<'a> for Check<'a> {
    type Done = Checked;

    fn step(&mut self, now_ms: u64) -> Step<'a, Checked> {
        loop {
            if !self.logs.is_empty() {
                return Step::Log(self.logs.remove(0));
            }
            match &mut self.stage {
                Stage::Fetch => match self.lists.iter().position(Option::is_none) {
                    Some(part) => return Step::Fetch(part),
                    None => self.stage = self.batch_up(),
                },
                Stage::Configure if self.cooling.is_none() => return Step::Configure,
                Stage::Configure if self.batch.is_empty() => self.stage = Stage::Done(self.answer()),
                Stage::Configure => self.stage = Stage::Read,
                Stage::Read => return Step::Read(self.items()),
                Stage::Probe => return Step::Send(self.batch.clone()),
                Stage::Judge(answers) => {
                    let answers = std::mem::take(answers);
                    self.stage = self.judge_all(answers, now_ms);
                }
                Stage::Commit(recorder) => {
                    let (round, entries) = (recorder.round(&self.state, now_ms), recorder.entry_items());
                    match round {
                        Round::WriteAndRead(writes) => {
                            let read_back = self.items().into_iter().chain(entries).collect();
                            return Step::Commit { writes, read_back };
                        }
                        Round::Write(writes) => return Step::Commit { writes, read_back: Vec::new() },
                        Round::Done => self.stage = Stage::Done(self.answer()),
                    }
                }
                Stage::Done(checked) => return Step::Done(checked.clone()),
            }
        }
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        if let Some(slot) = self.lists.get_mut(part) {
            *slot = Some(bytes);
        }
    }

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        let parts = self.lists.len();
        match &mut self.stage {
            Stage::Read => {
                self.state = state_of(parts, None, items);
                self.stage = Stage::Probe;
            }
            Stage::Commit(recorder) => {
                let fresh = state_of(parts, None, items);
                self.logs.extend(recorder.read_back(&fresh));
                self.state = fresh;
            }
            _ => {}
        }
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        self.cooling = Some(cooling.clone());
    }

    fn answered(&mut self, answers: Vec<Answer>) {
        if matches!(self.stage, Stage::Probe) {
            self.stage = Stage::Judge(answers);
        }
    }

    fn written(&mut self) {
        if let Stage::Commit(recorder) = &mut self.stage {
            recorder.written();
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        if let Stage::Commit(recorder) = &mut self.stage {
            recorder.refused(&writes);
        }
    }
}

impl Check<'_> {
    /// Judges every probe's answer (logging the dead keys found); records what they prove.
    fn judge_all(&mut self, answers: Vec<Answer>, now_ms: u64) -> Stage {
        let Some(cooling) = self.cooling.as_ref() else { return Stage::Configure };
        let mut changes = Vec::new();
        for (key, answer) in self.batch.iter().zip(answers) {
            let verdict = match answer {
                Answer::Served | Answer::Made(_) | Answer::Page(_) | Answer::Empty => classify(200, b""),
                Answer::Error { status, body } => classify(status, &body),
                Answer::None { timeout, detail } => Verdict::connect_failure(timeout, detail),
            };
            let (finding, made) = judge(key, &verdict, &self.state, cooling, now_ms);
            if finding.result == "dead" {
                self.logs.push(format!("key check: key {} ({}): {}", finding.key, finding.fingerprint, finding.reason));
            }
            self.findings.push(finding);
            changes.extend(made);
        }
        for change in &changes {
            self.state.apply(change);
        }
        match changes.is_empty() {
            true => Stage::Done(self.answer()),
            false => Stage::Commit(Committer::new(changes, &self.state, self.entries)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::names::MarkName;
    use crate::state::items::{Entry, PartState};
    use crate::state::marks::Marks;

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
        let [Change { entry: Entry::Set(mark), .. }] = change[..] else { panic!("a dead mark") };
        assert!(mark.dead && mark.until_ms == 1_000 + 6 * 3_600_000);
        // Stored dead, now it answers: the mark goes.
        let stored = format!("{} {} key_invalid 0 1 1\n", MarkName::key(&key), mark.until_ms);
        let dead =
            PoolState::single(PartState::new(Marks::decode(stored.into_bytes(), Some(1)), Marks::default()), None);
        let (finding, change) = judge(&key, &classify(200, b"{}"), &dead, &cooling, 2_000);
        assert_eq!(finding.result, "ok");
        assert!(matches!(change[..], [Change { entry: Entry::Clear(2_000), .. }]));
        // A quota answer or Google's trouble changes nothing.
        let (finding, change) = judge(&key, &classify(503, b""), &dead, &cooling, 3_000);
        assert_eq!((finding.result, change), ("unknown", vec![]));
        assert!(!serde_json::to_string(&finding).expect("json").contains("AIza"));
    }
}
