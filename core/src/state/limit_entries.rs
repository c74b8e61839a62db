//! A limited client's requests and tokens as **entries of their own**, for a store that takes
//! few writes per item a second (Fastly's KV; [`crate::decide::limits`] chooses by the store).
//! One item cannot count a client that sends more requests a second than the item takes
//! writes; entries under the client's prefix never compete for one item's budget.
//!
//! Under `limit/<day>/<client>/`:
//! - `<minute>/<slot>` — a request's **place** in its minute (a request per slot: it is stored
//!   only if the store has none, so two requests never hold one slot). Slots below `rpm`
//!   admit; a request takes one of the lowest free slots it listed.
//! - `<minute>/t<tokens>.<id>` — a request's tokens, after its answer.
//!
//! And the client's **head**, the item `limit/<day>/<client>` itself: `@ <minute> <requests>
//! <tokens>`, the day's counts through that minute — written (a plain replacement: every head
//! is exact for its minute, so a race only leaves an older one) by a request that listed the
//! minutes after it, once they are final ([`SETTLE_MS`] after they end). A request reads the
//! head and lists only the minutes after it: one or two minutes usually, the whole day when the
//! head is older (the day's first request, or after two idle minutes).
//!
//! Not covered: a POP whose clock runs more than [`SETTLE_MS`] ahead may write a head through
//! a minute others still claim in, which then counts twice (refusals, never admissions past the
//! limit); and counts in the one-item format of an older version are not read (the day of an
//! upgrade starts from zero).

use crate::state::limit_item::{self, Tally};
use std::collections::{BTreeMap, BTreeSet};

/// A minute is final (no claim of it can still be landing) this long after it ends.
pub(crate) const SETTLE_MS: u64 = 5_000;
/// A request takes one of this many lowest free slots, at random (fewer collisions when
/// requests arrive together).
const SPREAD: usize = 4;

/// What a request learned of its client's entries: the head, and the minutes it listed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims {
    /// `limit/<day>/<client>`: the head's item, and with `/` the entries' prefix.
    item: String,
    head: Head,
    /// Listed minutes after the head's: slots taken and tokens counted.
    minutes: BTreeMap<u64, Minute>,
    /// The minutes listed are every minute after the head's (or the whole day) up to now.
    complete: bool,
}

/// The day's counts through a minute, as the head says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Head {
    through: Option<u64>,
    requests: u64,
    tokens: u64,
}

/// One minute's entries.
#[derive(Debug, Clone, Default)]
struct Minute {
    slots: BTreeSet<u64>,
    tokens: u64,
}

impl Claims {
    /// The entries of the client whose limit item is `item` (`limit/<day>/<client>`).
    pub(crate) fn new(item: String) -> Self {
        Claims { item, ..Claims::default() }
    }

    /// The head's item.
    pub(crate) fn head_item(&self) -> &str {
        &self.item
    }

    /// The head as read (`None`: none yet today).
    pub(crate) fn read_head(&mut self, bytes: Option<&[u8]>) {
        self.head = bytes.and_then(head_of).unwrap_or_default();
    }

    /// The prefixes to list at `minute`: each minute after the head's, if the head is at most
    /// two minutes old; else the whole day.
    pub(crate) fn prefixes(&self, minute: u64) -> Vec<String> {
        match self.head.through {
            Some(through) if through + 2 >= minute => (through + 1..=minute).map(|m| self.minute_prefix(m)).collect(),
            _ => vec![self.prefix()],
        }
    }

    /// The prefix of every entry of the client's day.
    fn prefix(&self) -> String {
        format!("{}/", self.item)
    }

    fn minute_prefix(&self, minute: u64) -> String {
        format!("{}/{minute}/", self.item)
    }

    /// The prefix to list `minute` again (after slots were found taken): what was listed of it
    /// is forgotten, the listing will say it anew.
    pub(crate) fn relist(&mut self, minute: u64) -> String {
        self.minutes.remove(&minute);
        self.minute_prefix(minute)
    }

    /// The names a listing found (with the prefix; others are ignored).
    pub(crate) fn listed(&mut self, names: &[String]) {
        let prefix = self.prefix();
        for name in names {
            let Some((minute, entry)) = name.strip_prefix(&prefix).and_then(|rest| rest.split_once('/')) else {
                continue;
            };
            let Ok(minute) = minute.parse::<u64>() else { continue };
            if self.head.through.is_some_and(|through| minute <= through) {
                continue;
            }
            let seen = self.minutes.entry(minute).or_default();
            match entry.strip_prefix('t') {
                Some(tokens) => {
                    let tokens = tokens.split_once('.').and_then(|(n, _)| n.parse::<u64>().ok()).unwrap_or(0);
                    seen.tokens = seen.tokens.saturating_add(tokens);
                }
                None => {
                    if let Ok(slot) = entry.parse::<u64>() {
                        seen.slots.insert(slot);
                    }
                }
            }
        }
        self.complete = true;
    }

    /// Requests of the day before `minute`'s (the head's, and the minutes listed after it).
    fn before(&self, minute: u64) -> u64 {
        let listed: usize = self.minutes.range(..minute).map(|(_, m)| m.slots.len()).sum();
        self.head.requests.saturating_add(listed as u64)
    }

    /// A free slot of `minute` below `cap`, drawn (by `draw`) from the lowest few free; or the
    /// lowest free slot at or over `cap`, which no request may take (`Err`).
    pub(crate) fn free_slot(&self, minute: u64, cap: u64, draw: u64) -> Result<u64, u64> {
        let taken = self.minutes.get(&minute).map(|m| &m.slots);
        let free = (0..).filter(|slot| !taken.is_some_and(|t| t.contains(slot)));
        let lowest: Vec<u64> = free.take(SPREAD).collect();
        let below: Vec<u64> = lowest.iter().copied().filter(|&slot| slot < cap).collect();
        match below.len() {
            0 => Err(lowest[0]),
            n => Ok(below[(draw % n as u64) as usize]),
        }
    }

    /// How many more requests `minute` may admit under `rpm` and `rpd`.
    pub(crate) fn cap(&self, minute: u64, rpm: Option<u64>, rpd: Option<u64>) -> u64 {
        let day = rpd.map_or(u64::MAX, |rpd| rpd.saturating_sub(self.before(minute)));
        rpm.unwrap_or(u64::MAX).min(day)
    }

    /// `slot` of `minute` is taken (by this request, or by another before it).
    pub(crate) fn taken(&mut self, minute: u64, slot: u64) {
        self.minutes.entry(minute).or_default().slots.insert(slot);
    }

    /// The counts as a [`Tally`], this request at `slot` of `minute` (if it has one).
    pub(crate) fn tally(&self, minute: u64, slot: Option<u64>) -> Tally {
        let before = self.before(minute);
        let this_minute = self.minutes.get(&minute).map_or(0, |m| m.slots.len() as u64);
        let tokens: u64 = self.minutes.values().map(|m| m.tokens).sum();
        Tally {
            day_requests: before + this_minute,
            minute_requests: this_minute,
            day_tokens: self.head.tokens.saturating_add(tokens),
            own: slot.map(|slot| (before + slot, slot)),
        }
    }

    /// The counts once this request holds a slot of `minute`: it is the last of the requests
    /// counted (its slot, drawn from the lowest free, says nothing of how many came before).
    pub(crate) fn held_tally(&self, minute: u64) -> Tally {
        let tally = self.tally(minute, None);
        let own = (tally.day_requests.saturating_sub(1), tally.minute_requests.saturating_sub(1));
        Tally { own: Some(own), ..tally }
    }

    /// The entry of `slot` in `minute`.
    pub(crate) fn slot_entry(&self, minute: u64, slot: u64) -> String {
        format!("{}/{minute}/{slot}", self.item)
    }

    /// A new head, if one is due at `now_ms`: the counts through the last final minute, when
    /// the head is older and every minute after it was listed.
    pub(crate) fn folded(&self, now_ms: u64) -> Option<Vec<u8>> {
        let through = (now_ms.checked_sub(SETTLE_MS)? / 60_000).checked_sub(1)?;
        if !self.complete || self.head.through.is_some_and(|head| head >= through) {
            return None;
        }
        let folded = self.minutes.range(..=through);
        let (requests, tokens) = folded
            .fold((self.head.requests, self.head.tokens), |(r, t), (_, m)| (r + m.slots.len() as u64, t + m.tokens));
        Some(format!("@ {through} {requests} {tokens}\n").into_bytes())
    }
}

/// Where a limited client's tokens count after its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenItem {
    /// Its limit item (`limit/<day>/<client>`).
    pub item: String,
    /// How long the store keeps it.
    pub ttl_secs: u64,
    /// Counted in entries of its own: this request's id, which names its tokens' entry.
    pub entry: Option<u64>,
}

impl TokenItem {
    /// Where `tokens` counted at `now_ms` go: the limit item, or their own entry.
    pub(crate) fn name(&self, now_ms: u64, tokens: u64) -> String {
        match self.entry {
            Some(id) => token_entry(&self.item, now_ms / 60_000, tokens, id),
            None => self.item.clone(),
        }
    }
}

/// The entry a request's `tokens` go to: under `item` (`limit/<day>/<client>`), in `minute`,
/// named by the request's `id`.
fn token_entry(item: &str, minute: u64, tokens: u64, id: u64) -> String {
    format!("{item}/{minute}/t{tokens}.{id:x}")
}

/// A head's counts, if the bytes hold one ([`limit_item::head`]).
fn head_of(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (through, requests, tokens) = text.lines().find_map(limit_item::head)?;
    Some(Head { through: Some(through), requests, tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = "limit/2026-01-15/app";
    const MINUTE: u64 = 29_474_880; // 2026-01-15 12:00 UTC

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| format!("{ITEM}/{n}")).collect()
    }

    #[test]
    fn with_no_head_the_whole_day_is_listed_and_a_recent_head_lists_its_later_minutes() {
        let mut claims = Claims::new(ITEM.into());
        assert_eq!(claims.prefixes(MINUTE), [format!("{ITEM}/")]);
        claims.read_head(Some(format!("@ {} 7 100\n", MINUTE - 2).as_bytes()));
        assert_eq!(claims.prefixes(MINUTE), [format!("{ITEM}/{}/", MINUTE - 1), format!("{ITEM}/{MINUTE}/")]);
        claims.read_head(Some(format!("@ {} 7 100\n", MINUTE - 3).as_bytes()));
        assert_eq!(claims.prefixes(MINUTE), [format!("{ITEM}/")]);
    }

    #[test]
    fn places_count_the_head_and_the_minutes_after_it() {
        let mut claims = Claims::new(ITEM.into());
        claims.read_head(Some(format!("@ {} 7 100\n", MINUTE - 2).as_bytes()));
        let earlier = MINUTE - 2;
        claims.listed(&names(&[
            &format!("{earlier}/0"),
            &format!("{}/0", MINUTE - 1),
            &format!("{}/1", MINUTE - 1),
            &format!("{}/t40.ab", MINUTE - 1),
            &format!("{MINUTE}/0"),
            &format!("{MINUTE}/2"),
            &format!("{MINUTE}/t2.cd"),
            "not-a-minute/0",
        ]));
        assert_eq!(claims.before(MINUTE), 9, "the head's 7 and the previous minute's 2");
        assert_eq!(claims.free_slot(MINUTE, 10, 0), Ok(1));
        assert_eq!(claims.free_slot(MINUTE, 10, 1), Ok(3));
        assert_eq!(claims.free_slot(MINUTE, 2, 1), Ok(1), "only slots below the cap");
        assert_eq!(claims.free_slot(MINUTE, 1, 0), Err(1));
        assert_eq!(claims.cap(MINUTE, Some(60), Some(12)), 3);
        claims.taken(MINUTE, 1);
        let tally = claims.tally(MINUTE, Some(1));
        assert_eq!(tally, Tally { day_requests: 12, minute_requests: 3, day_tokens: 142, own: Some((10, 1)) });
    }

    #[test]
    fn a_head_is_folded_once_a_minute_is_final_and_only_from_a_complete_listing() {
        let now = (MINUTE + 1) * 60_000 + SETTLE_MS;
        let mut claims = Claims::new(ITEM.into());
        claims.read_head(Some(format!("@ {} 7 100\n", MINUTE - 1).as_bytes()));
        assert_eq!(claims.folded(now), None, "not listed yet");
        claims.listed(&names(&[&format!("{MINUTE}/0"), &format!("{MINUTE}/t5.a"), &format!("{}/0", MINUTE + 1)]));
        assert_eq!(claims.folded(now - 1), None, "the minute is not final yet");
        assert_eq!(claims.folded(now), Some(format!("@ {MINUTE} 8 105\n").into_bytes()));
        claims.read_head(Some(format!("@ {MINUTE} 8 105\n").as_bytes()));
        assert_eq!(claims.folded(now), None, "the head is current");
    }

    #[test]
    fn a_damaged_head_reads_as_none() {
        for bytes in [&b"@ x 1 2\n"[..], b"@ 1 2\n", b"\xff", b"= 3 4\n"] {
            let mut claims = Claims::new(ITEM.into());
            claims.read_head(Some(bytes));
            assert_eq!(claims.head, Head::default());
        }
    }
}
