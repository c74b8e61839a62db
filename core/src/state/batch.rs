//! Usage held by one instance and written together: the rule for what waits and for how long.
//!
//! A request's usage lines (its usage shard, the recent-failures list) need not reach the store
//! the moment its answer is sent: they are history for the operator, read by `/v1/status`,
//! `/v1/usage` and the console. An instance that serves request after request (a warm Fastly
//! sandbox) holds them in a [`UsageBatch`] and writes each item once for all the requests of
//! up to [`HOLD_MS`] — one store append instead of one a request. Lines are additive (reading
//! adds them up), so the appends of one item are joined as they are.
//!
//! What never waits: a client's limit tokens (its next request's gate reads them). What it
//! costs: counts trail by up to [`HOLD_MS`], and an instance that traps loses what it held (at
//! most [`HOLD_MS`] of its requests' usage lines; never a verdict, never a limit count).

use crate::state::usage::Append;

/// How long an instance holds usage lines before it writes them (milliseconds).
pub(crate) const HOLD_MS: u64 = 1_000;
/// Bytes held past which they are written at once, whatever their age.
const MAX_HELD_BYTES: usize = 16 * 1024;

/// The usage lines an instance holds, one append per item, since its oldest line.
#[derive(Debug, Default)]
pub struct UsageBatch {
    held: Vec<Append>,
    since_ms: Option<u64>,
}

impl UsageBatch {
    /// Takes a request's `appends` at `now_ms`: returns what to write now — what cannot wait,
    /// and what is held if it is due — and holds the rest.
    pub fn count(&mut self, appends: Vec<Append>, now_ms: u64) -> Vec<Append> {
        let mut now = self.hold(appends, now_ms);
        now.extend(self.take_due(now_ms));
        now
    }

    /// Takes a request's `appends` at `now_ms`: returns those to write now (a client's limit
    /// tokens), holds the rest.
    fn hold(&mut self, appends: Vec<Append>, now_ms: u64) -> Vec<Append> {
        let (later, now): (Vec<Append>, Vec<Append>) = appends.into_iter().partition(|a| a.may_wait);
        for append in later {
            self.join(append);
        }
        if !self.held.is_empty() && self.since_ms.is_none() {
            self.since_ms = Some(now_ms);
        }
        now
    }

    /// Milliseconds until what is held is due (0: now), or `None`: nothing is held.
    pub fn due_in_ms(&self, now_ms: u64) -> Option<u64> {
        let since = self.since_ms?;
        let bytes: usize = self.held.iter().map(|a| a.bytes.len()).sum();
        if bytes >= MAX_HELD_BYTES {
            return Some(0);
        }
        Some((since + HOLD_MS).saturating_sub(now_ms))
    }

    /// What is held, to write now; the batch starts over.
    pub fn take(&mut self) -> Vec<Append> {
        self.since_ms = None;
        std::mem::take(&mut self.held)
    }

    /// What is held, if it is due at `now_ms`.
    fn take_due(&mut self, now_ms: u64) -> Vec<Append> {
        match self.due_in_ms(now_ms) {
            Some(0) => self.take(),
            _ => Vec::new(),
        }
    }

    /// Adds `append` to the held append of its item: its lines after theirs, the longer time
    /// to live, and a read-back if either asked for one.
    fn join(&mut self, append: Append) {
        match self.held.iter_mut().find(|held| held.item == append.item) {
            Some(held) => {
                held.bytes.extend_from_slice(&append.bytes);
                held.ttl_secs = held.ttl_secs.max(append.ttl_secs);
                held.compact = held.compact.or(append.compact);
            }
            None => self.held.push(append),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::usage::Compaction;

    fn append(item: &str, bytes: &str, may_wait: bool, compact: Option<Compaction>) -> Append {
        Append { item: item.into(), bytes: bytes.into(), ttl_secs: 60, compact, shard: None, may_wait }
    }

    #[test]
    fn limit_tokens_go_now_and_usage_lines_wait_joined_by_item() {
        let mut batch = UsageBatch::default();
        assert_eq!(batch.due_in_ms(0), None, "nothing held");
        let now = batch.hold(
            vec![
                append("limit/2026-01-15/app", "t 12\n", false, Some(Compaction::Limit(7))),
                append("usage/2026-01-15/3", "c app m 1 0\n", true, None),
                append("recent/failures", "x\n", true, Some(Compaction::Failures)),
            ],
            1_000,
        );
        assert_eq!(now.iter().map(|a| a.item.as_str()).collect::<Vec<_>>(), ["limit/2026-01-15/app"]);
        let now2 =
            batch.hold(vec![append("usage/2026-01-15/3", "c app m 1 0\n", true, Some(Compaction::Usage))], 1_500);
        assert!(now2.is_empty());
        assert_eq!(batch.due_in_ms(1_500), Some(500), "due a hold after the oldest line");
        assert!(batch.take_due(1_999).is_empty());
        let written = batch.take_due(2_000);
        assert_eq!(written.len(), 2, "one append per item");
        let usage = written.iter().find(|a| a.item == "usage/2026-01-15/3").expect("held");
        assert_eq!(usage.bytes, b"c app m 1 0\nc app m 1 0\n");
        assert_eq!(usage.compact, Some(Compaction::Usage), "read back if either asked");
        assert_eq!(batch.due_in_ms(2_000), None, "starts over");
    }

    #[test]
    fn a_large_batch_is_due_at_once() {
        let mut batch = UsageBatch::default();
        let line = "c app m 1 0\n".repeat(MAX_HELD_BYTES / 12 + 1);
        assert!(batch.hold(vec![append("usage/2026-01-15/0", &line, true, None)], 5_000).is_empty());
        assert_eq!(batch.due_in_ms(5_000), Some(0), "past the byte bound: written now");
    }
}
