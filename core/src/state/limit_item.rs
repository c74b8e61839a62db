//! A client's **limit item** (`limit/<day>/<client>`): its lines, what they add up to
//! ([`Tally`]), and its compaction. Which limits count here and the verdict are the gate's
//! ([`crate::decide::limits`]).
//!
//! Lines: `r <minute> <id>` (a request's claim of a place), `x <id>` (a refused request's place
//! given back), `t <tokens>` (a request's tokens, after its answer), and a compacted head
//! `= <requests> <tokens>`. Appends are never lost to a race; the claimer compacts the item
//! with a compare-and-swap once a compaction would remove [`COMPACT_AFTER_LINES`] lines, so it
//! stays short however many requests are refused; reading and compacting are linear in it.

use crate::pool::names::escape;
use crate::state::clock::{self, ResetZone};
use std::collections::HashSet;

/// Lines a compaction of a limit item must remove for its claimer to write it.
pub(crate) const COMPACT_AFTER_LINES: usize = 64;

/// What a client used so far, as its limit item says; and where one request's own line is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Requests that hold a place this quota day.
    pub(crate) day_requests: u64,
    /// Of them, in the current minute.
    pub(crate) minute_requests: u64,
    /// Tokens used this quota day.
    pub(crate) day_tokens: u64,
    /// The places of the line with the id asked for (of the day, of the minute), if it is there.
    pub(crate) own: Option<(u64, u64)>,
}

impl Tally {
    /// Adds up a limit item's lines (`r <minute> <id>`, `x <id>`, `t <tokens>`, and a compacted
    /// head `= <requests> <tokens>`) as seen in `minute`; finds the line of request `id`. One
    /// pass to learn the cancelled ids, one to add up: linear in the item.
    pub(crate) fn read(bytes: &[u8], minute: u64, id: Option<u64>) -> Tally {
        let text = String::from_utf8_lossy(bytes);
        let cancelled = cancelled(&text);
        let own = id.map(|id| format!("{id:x}"));
        let mut tally = Tally::default();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let number = |field: Option<&str>| field.and_then(|f| f.parse::<u64>().ok());
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some("r"), at, Some(claim), None) if !cancelled.contains(claim) => {
                    let Some(at) = number(at) else { continue };
                    if own.as_deref() == Some(claim) {
                        tally.own = Some((tally.day_requests, tally.minute_requests));
                    }
                    tally.day_requests += 1;
                    tally.minute_requests += u64::from(at == minute);
                }
                (Some("t"), tokens, None, None) => {
                    tally.day_tokens = tally.day_tokens.saturating_add(number(tokens).unwrap_or(0));
                }
                // The head of a client counted in entries of its own (`crate::state::limit_entries`).
                (Some("@"), ..) => {
                    let (_, requests, tokens) = head(line).unwrap_or_default();
                    tally.day_requests = tally.day_requests.saturating_add(requests);
                    tally.day_tokens = tally.day_tokens.saturating_add(tokens);
                }
                (Some("="), requests, tokens, None) => {
                    tally.day_requests = tally.day_requests.saturating_add(number(requests).unwrap_or(0));
                    tally.day_tokens = tally.day_tokens.saturating_add(number(tokens).unwrap_or(0));
                }
                _ => {}
            }
        }
        tally
    }

    /// This request's places (of the day, of the minute): its own line's, or — not seen yet —
    /// after every line read.
    pub(crate) fn places(&self) -> (u64, u64) {
        self.own.unwrap_or((self.day_requests, self.minute_requests))
    }
}

/// A head line's counts, `@ <minute> <requests> <tokens>` (the day's through that minute, of a
/// client counted in entries of its own: [`crate::state::limit_entries`]), if it is one.
pub(crate) fn head(line: &str) -> Option<(u64, u64, u64)> {
    let mut fields = line.strip_prefix("@ ")?.split(' ').map(str::parse::<u64>);
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Ok(through)), Some(Ok(requests)), Some(Ok(tokens))) => Some((through, requests, tokens)),
        _ => None,
    }
}

/// The limit item of `client` for the quota day of `now_ms`.
pub(crate) fn item(client: &str, now_ms: u64, zone: ResetZone) -> String {
    format!("limit/{}/{}", clock::day_of(now_ms, zone), escape(client))
}

/// The ids of the claims given back (`x <id>`).
fn cancelled(text: &str) -> HashSet<&str> {
    text.lines().filter_map(|l| l.strip_prefix("x ")).collect()
}

/// A limit item compacted, if that removes [`COMPACT_AFTER_LINES`] lines or more: one head line
/// `= <requests> <tokens>` for all but the current minute's requests, which keep their lines
/// (in order: their places), and no cancelled line. Linear in the item, like [`Tally::read`];
/// the compacted item's length is bounded by the current minute's admissions, however many
/// requests were refused.
pub(crate) fn compacted(bytes: &[u8], minute: u64) -> Option<Vec<u8>> {
    let tally = Tally::read(bytes, minute, None);
    let text = String::from_utf8_lossy(bytes);
    let cancelled = cancelled(&text);
    let current = format!("r {minute} ");
    let kept: Vec<&str> =
        text.lines().filter(|l| l.strip_prefix(current.as_str()).is_some_and(|id| !cancelled.contains(id))).collect();
    let lines = text.lines().count();
    if lines < kept.len() + 1 + COMPACT_AFTER_LINES {
        return None;
    }
    let earlier = tally.day_requests.saturating_sub(kept.len() as u64);
    let mut out = format!("= {earlier} {}\n", tally.day_tokens);
    for line in kept {
        out.push_str(line);
        out.push('\n');
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: u64 = 1_768_478_400_000; // 2026-01-15 12:00:00 UTC

    #[test]
    fn requests_of_this_minute_and_today_add_up_and_a_cancelled_place_is_free() {
        let minute = NOON / 60_000;
        let item =
            format!("= 10 500\nr {} a\nr {minute} b\nt 40\nr {minute} c\nx b\ngarbage\nr {minute} d\n", minute - 1);
        let tally = Tally::read(item.as_bytes(), minute, Some(0xd));
        assert_eq!((tally.day_requests, tally.minute_requests, tally.day_tokens), (13, 2, 540));
        assert_eq!(tally.own, Some((12, 1)), "d comes after the 10 compacted, a and c (b gave its place back)");
    }

    #[test]
    fn an_item_is_read_in_time_linear_in_its_length() {
        // 40,000 refused requests (a claim and its give-back each) before any compaction: read
        // in milliseconds. The scan of every give-back for every claim it replaces made 1.6
        // billion comparisons of this item (seconds; 10,000 refusals were 250 ms of a request's
        // time on Fastly): the bound is forty times what linear takes, and far below that.
        let mut item = String::new();
        for id in 0..40_000u64 {
            item.push_str(&format!("r 1000 {id:x}\nx {id:x}\n"));
        }
        let started = std::time::Instant::now();
        let tally = Tally::read(item.as_bytes(), 1000, Some(20_000));
        let took = started.elapsed();
        assert_eq!((tally.day_requests, tally.own), (0, None));
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn a_long_item_compacts_to_the_same_tally() {
        let minute = 1000;
        let mut item = String::new();
        for n in 0..80u64 {
            item.push_str(&format!("r {} {n:x}\nt 3\n", minute - 1 + n % 2));
        }
        item.push_str("x 3\nx 4\n");
        let before = Tally::read(item.as_bytes(), minute, Some(0x4f));
        let compacted = compacted(item.as_bytes(), minute).expect("long");
        assert_eq!(Tally::read(&compacted, minute, Some(0x4f)), before);
        assert!(compacted.len() < 500, "{}", compacted.len());
        assert_eq!(super::compacted(b"r 1 1\n", minute), None);
    }
}
