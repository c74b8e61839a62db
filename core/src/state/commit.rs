//! Committing verdicts: what a request writes to the KV store, when, and how it knows the
//! write holds. The edge only executes the [`Write`]s and reads back.
//!
//! Protocol, run as soon as an attempt has a verdict (before the next attempt):
//! 1. [`Commit::new`] keeps the changes the state read last does not already say (a
//!    verdict another instance committed first is not written again);
//! 2. [`Commit::writes`]: one append per item (or, for an item in a foreign format, a
//!    replacement by compare-and-swap);
//! 3. the edge reads both items again — the next attempt chooses from that fresh state — and
//!    calls [`Commit::confirm`]: a change the fresh state shows is done; a change missing
//!    from a *newer* version of its item was lost to a concurrent rewrite and is written again;
//!    a change missing from the *same* version is not visible yet (an eventually consistent
//!    store) and is left to the store — unless the store **refused** its write (Fastly's
//!    `TooManyRequests`, an `overloaded` Durable Object): then it is not stored anywhere, and
//!    stays with the request ([`Committer::uncommitted`]), to go out with its next write or,
//!    after the client has its answer, with a backoff ([`crate::decide::linger::Linger`]);
//! 4. [`compactions`]: an item whose appended part has grown long is rewritten, sorted, with a
//!    compare-and-swap on the generation just read. If another instance appended meanwhile
//!    the swap fails, and nothing is lost.
//!
//! No step gives up because another instance wrote at the same time: appends do not conflict.
//!
//! With verdict entries ([`crate::state::items`]), each change is written twice: to its entry,
//! by compare-and-swap on the generation read (a change missing from a newer version is
//! merged and written again, as above), and appended to its index item **best-effort** — the
//! entry is what must hold; an index write the store refuses is dropped, never carried.

use crate::pool::names::MarkName;
use crate::state::items::{Change, Entry, Item, PoolState};
use crate::state::marks::{encode_line, written_line, Marks};

/// Rounds of write-and-read-back before the commit is abandoned (a store that keeps
/// acknowledging writes and then losing them; logged).
pub(crate) const MAX_ROUNDS: u32 = 8;

/// One write for the edge to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Append `bytes` to the item (creating it if missing). No TTL: an append must never
    /// shorten the life of marks it does not know about.
    Append {
        /// Where.
        item: Item,
        /// The lines.
        bytes: Vec<u8>,
    },
    /// Replace the item if it is still at `generation` (`None`: only if it does not exist).
    Replace {
        /// Where.
        item: Item,
        /// The whole new item.
        bytes: Vec<u8>,
        /// The generation it was computed from.
        generation: Option<u64>,
        /// Seconds.
        ttl_secs: u64,
    },
}

/// A request's changes on their way to the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Commit {
    pending: Vec<Change>,
    /// Verdict entries are written: the index items are best-effort.
    entries: bool,
    /// The items whose writes were refused (the store is throttling: those may be behind).
    refused_items: Vec<Item>,
    /// Generation of each item when it was last written to, to tell staleness from loss (in
    /// the order of the writes).
    written_over: Vec<(Item, Option<u64>)>,
    /// Items whose write the store refused this round.
    refused: Vec<Item>,
    rounds: u32,
}

/// What [`Commit::confirm`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// Every change shows (or is left to an eventually consistent store).
    Done,
    /// Some change was lost: call [`Commit::writes`] again.
    WriteAgain,
    /// [`MAX_ROUNDS`] rounds and still lost.
    GaveUp,
    /// What is left was refused by the store (throttled, overloaded): written again later.
    Refused,
}

impl Commit {
    /// The changes `state` does not already say (with `entries`, each index change with its
    /// entry's).
    pub(crate) fn new(changes: Vec<Change>, state: &PoolState, entries: bool) -> Self {
        let with_entries = changes.into_iter().flat_map(|change| {
            let entry = (entries && change.item.entry.is_none())
                .then(|| Change { item: change.item.entry(&change.name), ..change.clone() });
            entry.into_iter().chain([change])
        });
        let mut pending: Vec<Change> = Vec::new();
        for change in with_entries.filter(|c| !state.covers(c)) {
            if !pending.contains(&change) {
                pending.push(change);
            }
        }
        Commit { pending, entries, refused_items: Vec::new(), written_over: Vec::new(), refused: Vec::new(), rounds: 0 }
    }

    /// Nothing left to write?
    pub(crate) fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The writes for this round, given the state read last (with the changes applied).
    pub(crate) fn writes(&mut self, state: &PoolState, now_ms: u64) -> Vec<Write> {
        self.rounds += 1;
        self.written_over.clear();
        let mut writes = Vec::new();
        for item in self.items() {
            let marks = state.marks(&item);
            self.written_over.push((item.clone(), marks.generation));
            if item.entry.is_some() {
                // The entry as read, with this request's changes to it: swapped in whole.
                let mut merged = marks.clone();
                for change in self.pending.iter().filter(|c| c.item == item) {
                    merged.apply(change.name.clone(), change.entry);
                }
                let (bytes, ttl_secs) = merged.compacted(now_ms);
                writes.push(Write::Replace { item, bytes, generation: marks.generation, ttl_secs });
            } else if marks.compaction_due() {
                let (bytes, ttl_secs) = with_folded(marks, state, &item).compacted(now_ms);
                writes.push(Write::Replace { item, bytes, generation: marks.generation, ttl_secs });
            } else {
                let mut bytes = self.pending.iter().filter(|c| c.item == item).map(Change::line).collect::<String>();
                if self.entries {
                    bytes.push_str(&folded_lines(&state.folded(&item), now_ms));
                }
                writes.push(Write::Append { item, bytes: bytes.into_bytes() });
            }
        }
        writes
    }

    /// The store refused the writes at these indices of the last round (throttled,
    /// overloaded): their changes are stored nowhere.
    pub(crate) fn refuse(&mut self, writes: &[usize]) {
        for &i in writes {
            if let Some((item, _)) = self.written_over.get(i) {
                self.refused.push(item.clone());
                self.refused_items.push(item.index());
            }
        }
    }

    /// Checks the writes against the state read after them.
    pub(crate) fn confirm(&mut self, fresh: &PoolState) -> Confirmed {
        let written_over = std::mem::take(&mut self.written_over);
        let refused = std::mem::take(&mut self.refused);
        let entries = self.entries;
        self.pending.retain(|change| {
            if fresh.covers(change) {
                return false;
            }
            // An index write beside an entry's is best-effort: refused, it is dropped.
            let best_effort = entries && change.item.entry.is_none();
            if refused.contains(&change.item) {
                return !best_effort;
            }
            let before = written_over.iter().find(|(item, _)| *item == change.item).and_then(|(_, g)| *g);
            let unchanged = before.is_some() && fresh.marks(&change.item).generation == before;
            !unchanged
        });
        let only_refused = self.pending.iter().all(|c| refused.contains(&c.item));
        match (self.pending.is_empty(), only_refused, self.rounds >= MAX_ROUNDS) {
            (true, ..) => Confirmed::Done,
            (false, true, _) => Confirmed::Refused,
            (false, false, false) => Confirmed::WriteAgain,
            (false, false, true) => Confirmed::GaveUp,
        }
    }

    /// Names still unconfirmed (for the log when giving up).
    pub(crate) fn unconfirmed(&self) -> Vec<&MarkName> {
        self.pending.iter().map(|c| &c.name).collect()
    }

    /// The changes not stored yet.
    pub(crate) fn pending(&self) -> &[Change] {
        &self.pending
    }

    /// The entries this round writes (to read back with the items).
    pub(crate) fn entry_items(&self) -> Vec<Item> {
        self.items().into_iter().filter(|item| item.entry.is_some()).collect()
    }

    fn items(&self) -> Vec<Item> {
        let mut items: Vec<Item> = self.pending.iter().map(|c| c.item.clone()).collect();
        items.sort();
        items.dedup();
        items
    }
}

/// The whole protocol for one set of changes, as rounds for a machine to hand to its edge
/// ([`crate::decide::flow`], [`crate::admin::keycheck`]): write and read back (again while a write was lost),
/// then the compactions due.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    commit: Commit,
    stage: CommitterStage,
    /// The rounds ended with changes the store refused.
    refused_at_end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitterStage {
    Write,
    Compact,
    Compacting,
    Done,
}

/// One round of a [`Committer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Round {
    /// Execute these writes (maybe none), then read the items back
    /// ([`Committer::read_back`]).
    WriteAndRead(Vec<Write>),
    /// Execute these writes; no read-back ([`Committer::written`]).
    Write(Vec<Write>),
    /// Recorded.
    Done,
}

impl Committer {
    /// The protocol for `changes`, given the state as read last (with `entries`: verdict
    /// entries written, the index best-effort).
    pub(crate) fn new(changes: Vec<Change>, state: &PoolState, entries: bool) -> Self {
        Committer { commit: Commit::new(changes, state, entries), stage: CommitterStage::Write, refused_at_end: false }
    }

    /// The entries the next write round writes, to read back with the items.
    pub(crate) fn entry_items(&self) -> Vec<Item> {
        match self.stage {
            CommitterStage::Write => self.commit.entry_items(),
            _ => Vec::new(),
        }
    }

    /// The items whose writes (or whose entries' writes) the store refused: it is throttling
    /// them, and they may be behind.
    pub(crate) fn refused_items(&self) -> &[Item] {
        &self.commit.refused_items
    }

    /// The next round, given the state as the request sees it now (what was read last, with its
    /// own changes applied) and the time.
    pub(crate) fn round(&mut self, state: &PoolState, now_ms: u64) -> Round {
        match self.stage {
            CommitterStage::Write if self.commit.is_done() => Round::WriteAndRead(Vec::new()),
            CommitterStage::Write => Round::WriteAndRead(self.commit.writes(state, now_ms)),
            CommitterStage::Compact => {
                let due = compactions(state, now_ms);
                self.stage = if due.is_empty() { CommitterStage::Done } else { CommitterStage::Compacting };
                if due.is_empty() {
                    Round::Done
                } else {
                    Round::Write(due)
                }
            }
            CommitterStage::Compacting | CommitterStage::Done => Round::Done,
        }
    }

    /// The items as read back after a [`Round::WriteAndRead`]; a log line if the store keeps
    /// losing the writes (the commit is then abandoned).
    pub(crate) fn read_back(&mut self, fresh: &PoolState) -> Option<String> {
        if self.stage != CommitterStage::Write {
            return None;
        }
        match self.commit.confirm(fresh) {
            Confirmed::WriteAgain => None,
            Confirmed::Done => {
                self.stage = CommitterStage::Compact;
                None
            }
            Confirmed::Refused => {
                (self.stage, self.refused_at_end) = (CommitterStage::Compact, true);
                None
            }
            Confirmed::GaveUp => {
                self.stage = CommitterStage::Compact;
                let names: Vec<String> = self.commit.unconfirmed().iter().map(|n| n.to_string()).collect();
                Some(format!("state: the store keeps losing writes to {}; gave up", names.join(", ")))
            }
        }
    }

    /// The writes of a [`Round::Write`] are done.
    pub(crate) fn written(&mut self) {
        if self.stage == CommitterStage::Compacting {
            self.stage = CommitterStage::Done;
        }
    }

    /// The store refused these writes of the last round.
    pub(crate) fn refused(&mut self, writes: &[usize]) {
        if self.stage == CommitterStage::Write {
            self.commit.refuse(writes);
        }
    }

    /// The changes the store refused, not stored anywhere yet (once the rounds are done; an
    /// entry's change goes back to its index item's: committed again, it writes both).
    pub(crate) fn uncommitted(&self) -> Vec<Change> {
        if !self.refused_at_end {
            return Vec::new();
        }
        let mut changes: Vec<Change> = Vec::new();
        for change in self.commit.pending() {
            let index = Change { item: change.item.index(), ..change.clone() };
            if !changes.contains(&index) {
                changes.push(index);
            }
        }
        changes
    }
}

/// Rewrites due for the items of `state` (a long appended part, or a foreign format).
pub(crate) fn compactions(state: &PoolState, now_ms: u64) -> Vec<Write> {
    state
        .read_parts()
        .into_iter()
        .flat_map(|part| state.items(part))
        .filter(|item| state.marks(item).compaction_due() && state.marks(item).generation.is_some())
        .map(|item| {
            let marks = state.marks(&item);
            let (bytes, ttl_secs) = with_folded(marks, state, &item).compacted(now_ms);
            Write::Replace { item, bytes, generation: marks.generation, ttl_secs }
        })
        .collect()
}

/// The appends that give each index item of `state` what the entries read said and it did not
/// ([`PoolState::folded`]), after the answer: while readers keep finding such verdicts the index
/// is written to (or refuses a write because another instance just wrote it), so it stays "may
/// be behind"; it goes quiet only once no reader has met one for a while.
pub(crate) fn repairs(state: &PoolState, now_ms: u64) -> Vec<Write> {
    let items = state.read_parts().into_iter().flat_map(|part| state.items(part));
    let appends = items.filter_map(|item| {
        let folded = state.folded(&item);
        let bytes = folded_lines(&folded, now_ms).into_bytes();
        (!folded.is_empty()).then_some(Write::Append { item, bytes })
    });
    appends.collect()
}

/// What an index append beside verdict entries ends with: the lines of what the entries read
/// said and the index did not (`folded`), and the line saying when it was written.
fn folded_lines(folded: &[(MarkName, Entry)], now_ms: u64) -> String {
    let mut lines: String = folded.iter().map(|(name, entry)| encode_line(name, entry)).collect();
    lines.push_str(&written_line(now_ms));
    lines
}

/// `item` as read, with what the entries the request read say of it ([`PoolState::folded`]).
fn with_folded(marks: &Marks, state: &PoolState, item: &Item) -> Marks {
    let mut marks = marks.clone();
    for (name, entry) in state.folded(item) {
        marks.apply(name, entry);
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::reason::Reason;
    use crate::state::items::{Entry, Mark, PartState};
    use crate::state::marks::Marks;

    fn change(name: &str, until_ms: u64) -> Change {
        Change {
            item: Item::model(0, "m"),
            name: MarkName::parse(name).expect("name"),
            entry: Entry::Set(Mark { until_ms, reason: Reason::PerMinuteQuota, dead: false, strikes: 0, since_ms: 1 }),
        }
    }

    fn state_of(text: &[u8], generation: Option<u64>) -> PoolState {
        PoolState::single(PartState::new(Marks::default(), Marks::decode(text.to_vec(), generation)), Some("m"))
    }

    /// A store that applies appends, optionally losing the first one to a rewrite.
    fn run(lose_first: bool) -> (Confirmed, u32, Vec<u8>) {
        let mut stored: Vec<u8> = Vec::new();
        let mut generation = None;
        let mut commit = Commit::new(vec![change("p:a", 60_000)], &state_of(b"", None), false);
        let mut state = state_of(b"", None);
        let mut rounds = 0;
        loop {
            for write in commit.writes(&state, 0) {
                let Write::Append { bytes, .. } = write else { panic!("append expected") };
                rounds += 1;
                if !(lose_first && rounds == 1) {
                    stored.extend_from_slice(&bytes);
                }
                generation = Some(generation.unwrap_or(0) + 1);
            }
            state = state_of(&stored, generation);
            match commit.confirm(&state) {
                Confirmed::WriteAgain => continue,
                other => return (other, rounds, stored),
            }
        }
    }

    #[test]
    fn a_lost_append_is_written_again() {
        assert_eq!(run(false).0, Confirmed::Done);
        assert_eq!(run(false).1, 1);
        let (confirmed, rounds, stored) = run(true);
        assert_eq!((confirmed, rounds), (Confirmed::Done, 2));
        assert!(String::from_utf8_lossy(&stored).contains("p:a 60000"));
    }

    #[test]
    fn a_stale_read_is_not_a_loss() {
        let mut commit = Commit::new(vec![change("p:a", 60_000)], &state_of(b"", None), false);
        let before = state_of(b"", Some(7));
        assert_eq!(commit.writes(&before, 0).len(), 1);
        // The read after the append still shows generation 7: the store has not caught up.
        assert_eq!(commit.confirm(&before), Confirmed::Done);
    }

    #[test]
    fn what_is_already_stored_is_not_written() {
        let stored = state_of(b"p:a 60500 per_minute_quota 0 0 1\n", Some(1));
        assert!(Commit::new(vec![change("p:a", 60_000)], &stored, false).is_done());
        assert!(!Commit::new(vec![change("p:a", 90_000)], &stored, false).is_done());
    }

    #[test]
    fn a_store_that_keeps_losing_is_given_up_on() {
        let mut commit = Commit::new(vec![change("p:a", 60_000)], &state_of(b"", None), false);
        let mut outcome = Confirmed::WriteAgain;
        for generation in 0..MAX_ROUNDS as u64 {
            let _ = commit.writes(&state_of(b"", Some(generation)), 0);
            outcome = commit.confirm(&state_of(b"", Some(generation + 100)));
        }
        assert_eq!(outcome, Confirmed::GaveUp);
        assert_eq!(commit.unconfirmed().len(), 1);
    }

    #[test]
    fn long_tails_and_foreign_items_are_compacted() {
        let tail: String = (0..30).map(|i| format!("p:x{i} 5 throttled 0 0 1\n")).collect();
        let state = state_of(tail.as_bytes(), Some(3));
        let [Write::Replace { generation, ref bytes, .. }] = compactions(&state, 0)[..] else {
            panic!("one replacement")
        };
        assert_eq!(generation, Some(3));
        assert!(bytes.starts_with(b"gemini-edge-pool marks v2 "));
        let foreign = state_of(b"gemini-edge-pool marks v1\n", Some(1));
        let mut commit = Commit::new(vec![change("p:a", 60_000)], &foreign, false);
        let mut with_change = foreign.clone();
        with_change.apply(&change("p:a", 60_000));
        let writes = commit.writes(&with_change, 0);
        let [Write::Replace { bytes, .. }] = &writes[..] else { panic!("a replacement") };
        let name = MarkName::parse("p:a").expect("name");
        assert_eq!(Marks::decode(bytes.clone(), None).get(&name).map(|m| m.until_ms), Some(60_000));
    }

    #[test]
    fn with_entries_a_verdict_is_done_when_its_entry_holds_and_a_refused_index_write_is_dropped() {
        let change = change("p:a", 60_000);
        let entry = change.item.entry(&change.name);
        let mut commit = Commit::new(vec![change.clone()], &state_of(b"", Some(4)), true);
        let mut state = state_of(b"", Some(4));
        state.apply(&change);
        let writes = commit.writes(&state, 0);
        // The entry by compare-and-swap ("only if absent": none was read), the index appended.
        let [Write::Append { item: index, .. }, Write::Replace { item, bytes, generation: None, ttl_secs }] =
            &writes[..]
        else {
            panic!("{writes:?}")
        };
        assert_eq!((index, item), (&change.item, &entry));
        assert_eq!(item.kv_key(), "v/model/m/p:a");
        assert!(*ttl_secs >= 60 && Marks::decode(bytes.clone(), Some(1)).covers(&change.name, &change.entry));
        // The store refused the index write; the entry holds: done, nothing carried.
        commit.refuse(&[0]);
        let mut fresh = state_of(b"", Some(4));
        fresh.take_entries(vec![(entry.clone(), Marks::decode(bytes.clone(), Some(1)))]);
        assert_eq!(commit.confirm(&fresh), Confirmed::Done);
        assert_eq!(commit.refused_items, vec![change.item.clone()]);
        // A refused entry write is carried (and goes back to its index item's change).
        let mut commit = Committer::new(vec![change.clone()], &state_of(b"", Some(4)), true);
        let Round::WriteAndRead(writes) = commit.round(&state, 0) else { panic!("a write round") };
        assert_eq!(writes.len(), 2);
        commit.refused(&[0, 1]);
        assert_eq!(commit.read_back(&state_of(b"", Some(4))), None);
        assert_eq!(commit.uncommitted(), vec![change]);
    }
}
