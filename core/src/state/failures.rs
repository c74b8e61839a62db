//! The recent-failures list the console shows: every failed attempt (time, key fingerprint,
//! model, Google's status, what it meant), appended after the answer to one shared item,
//! `recent/failures`, and read newest first, at most [`KEEP`]. A writer that reads the item back
//! (as usage shards are: one in [`COMPACT_CHECK_ONE_IN`](crate::state::usage)) trims it to
//! the last [`KEEP`] lines once it holds twice as many. Nothing in a line comes from Google's
//! text or the client's body beyond the model name (a checked model id): no key can be in it.

use crate::pool::keys::Fingerprint;
use crate::pool::names::{escape, unescape};
use serde_json::{json, Value};

/// The item.
pub const ITEM: &str = "recent/failures";
/// Failures kept and shown.
pub(crate) const KEEP: usize = 100;
/// How long the item lives after its last failure.
pub(crate) const TTL_SECS: u64 = 30 * 86_400;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When (unix ms).
    pub at_ms: u64,
    /// The key.
    pub fingerprint: Fingerprint,
    /// The model (`-`: none).
    pub model: String,
    /// Google's status (0: no answer).
    pub status: u16,
    /// What it meant (the verdict's outcome).
    pub reason: String,
}

impl Failure {
    /// Its line: `<ms> <fingerprint> <model> <status> <reason, escaped>`.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.at_ms,
            self.fingerprint,
            escape(&self.model),
            self.status,
            escape(&self.reason)
        )
    }

    fn parse(line: &str) -> Option<Failure> {
        let mut fields = line.split(' ');
        let at_ms = fields.next()?.parse().ok()?;
        let hex = fields.next()?;
        let fingerprint = Fingerprint(u64::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 16)?);
        let model = unescape(fields.next()?)?;
        let status = fields.next()?.parse().ok()?;
        let reason = unescape(fields.next()?)?;
        fields.next().is_none().then_some(Failure { at_ms, fingerprint, model, status, reason })
    }

    /// As `/v1/status` shows it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "at": crate::state::clock::rfc3339_millis(self.at_ms),
            "fingerprint": self.fingerprint.to_string(),
            "model": self.model,
            "status": self.status,
            "reason": self.reason,
        })
    }
}

/// The last [`KEEP`] failures in the item, newest first.
pub fn recent(bytes: &[u8]) -> Vec<Failure> {
    let text = String::from_utf8_lossy(bytes);
    let mut all: Vec<Failure> = text.lines().filter_map(Failure::parse).collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.at_ms));
    all.truncate(KEEP);
    all
}

/// The item trimmed to its last [`KEEP`] lines, once it holds twice as many.
pub(crate) fn compacted(bytes: &[u8]) -> Option<Vec<u8>> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    if lines < 2 * KEEP {
        return None;
    }
    let mut kept: Vec<Failure> = recent(bytes);
    kept.reverse();
    Some(kept.iter().map(Failure::line).collect::<String>().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(n: u64) -> Failure {
        Failure {
            at_ms: n,
            fingerprint: Fingerprint(n),
            model: "m".into(),
            status: 429,
            reason: "per-minute quota".into(),
        }
    }

    #[test]
    fn lines_read_back_newest_first_and_trim_to_the_last_hundred() {
        let mut item = String::new();
        for n in 0..250 {
            item.push_str(&failure(n).line());
        }
        item.push_str("garbage\n1 zz m 1 x\n");
        let shown = recent(item.as_bytes());
        assert_eq!((shown.len(), shown[0].at_ms, shown[99].at_ms), (KEEP, 249, 150));
        assert_eq!(shown[0].reason, "per-minute quota");
        let trimmed = compacted(item.as_bytes()).expect("long");
        assert_eq!(recent(&trimmed), shown);
        assert_eq!(compacted(&trimmed), None);
    }
}
