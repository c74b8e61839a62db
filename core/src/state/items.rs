//! Cooling state: which KV item holds which mark, a request's view of the items it read and
//! the changes it makes, and where a key stands. Marks and their merge rule, and the items'
//! byte format, are [`crate::state::marks`]; the write protocol is [`crate::state::commit`].
//!
//! Each part of the pool (secret `keys`, `keys_2`, …; see [`crate::pool::keys`]) has two kinds of
//! item, so a request reads two per part it touches — usually one part:
//! - `keys` — per key ([`MarkName`] `k:…`): dead keys, and cooldowns of a whole key (seed
//!   profile) or a whole project (billing);
//! - `model/<model>` — per quota bucket (`p:…` or `k:…`) for that model.
//!
//! Part 1's items are named as above; part N's carry `@N` (`keys@2`, `model/<model>@2`).
//! Writers only **append** (no read-modify-write, so two instances cannot overwrite each
//! other's verdicts); readers merge a name's lines in order ([`crate::state::marks`]); nothing is ever
//! deleted.
//!
//! **Verdict entries** (a store that takes few writes per item a second: Fastly's KV): each
//! mark is also kept in an entry of its own, `v/<item>/<mark name>`, written by
//! compare-and-swap with a TTL to the mark's end. Distinct verdicts then never compete for one
//! item's writes; the part items become an **index** — written best-effort, read first, and
//! trusted where they say a key is out. Where the index may be behind (written in the last
//! [`HOT_MS`], or this request saw a write to it refused), a key it calls free is confirmed
//! against its entries there before a call ([`PoolState::entries_of`]). What entries say is
//! laid over the index as read ([`PoolState::take_entries`]), and written with the request's
//! next lines to the index ([`PoolState::folded`]).

use crate::google::reason::Reason;
use crate::pool::keys::ApiKey;
use crate::pool::names::{Bucket, MarkName};
use crate::state::marks::{encode_line, Marks, NOTHING};
pub(crate) use crate::state::marks::{Entry, Mark, MAX_STRIKES};
use std::collections::BTreeMap;

/// Which KV item a mark lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item {
    /// The part of the pool whose keys it is about.
    pub part: usize,
    /// `None`: the part's `keys` item; `Some(model)`: its item for that model.
    pub model: Option<String>,
    /// `Some(name)`: not the item itself but the entry of its mark `name` (verdict entries).
    pub entry: Option<MarkName>,
}

const MODEL_PREFIX: &str = "model/";
const ENTRY_PREFIX: &str = "v/";

/// How long after its last write an index may still be missing a verdict whose write it
/// refused: a refused insert means the item took one within the second before (1 insert a
/// second per item, Workers KV's published rule; Fastly publishes none), plus reads up to
/// 300 ms stale, with room to spare.
pub(crate) const HOT_MS: u64 = 2_000;

impl Item {
    /// A part's `keys` item.
    pub fn keys(part: usize) -> Self {
        Item { part, model: None, entry: None }
    }

    /// A part's item for `model`.
    pub fn model(part: usize, model: &str) -> Self {
        Item { part, model: Some(model.to_string()), entry: None }
    }

    /// The entry of mark `name` of this item.
    pub fn entry(&self, name: &MarkName) -> Self {
        Item { entry: Some(name.clone()), ..self.index() }
    }

    /// The item itself (for an entry: the item it belongs to).
    pub fn index(&self) -> Self {
        Item { part: self.part, model: self.model.clone(), entry: None }
    }

    /// The items of `part` a request for `model` reads: its `keys` item, and its model's.
    pub fn of_part(part: usize, model: Option<&str>) -> Vec<Item> {
        let mut items = vec![Item::keys(part)];
        items.extend(model.map(|m| Item::model(part, m)));
        items
    }

    /// The KV key.
    pub fn kv_key(&self) -> String {
        let base = match &self.model {
            None => "keys".to_string(),
            Some(model) => [MODEL_PREFIX, model].concat(),
        };
        let item = match self.part {
            0 => base,
            part => [base.as_str(), "@", &(part + 1).to_string()].concat(),
        };
        match &self.entry {
            None => item,
            Some(name) => [ENTRY_PREFIX, &item, "/", name.as_str()].concat(),
        }
    }

    /// The prefix every model item's KV key starts with (for listing).
    pub fn model_prefix() -> &'static str {
        MODEL_PREFIX
    }

    /// Reads a KV key back (an item's, not an entry's).
    pub fn from_kv_key(key: &str) -> Option<Self> {
        let (base, part) = match key.rsplit_once('@') {
            Some((base, n)) => (base, n.parse::<usize>().ok().filter(|n| *n >= 2)? - 1),
            None => (key, 0),
        };
        if base == "keys" {
            return Some(Item::keys(part));
        }
        base.strip_prefix(MODEL_PREFIX).filter(|m| !m.is_empty()).map(|m| Item::model(part, m))
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
        encode_line(&self.name, &self.entry)
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
        /// Why (of the mark that ends last).
        reason: Reason,
    },
    /// Dead.
    Dead,
}

/// One part's state as a request reads it: its `keys` item and its item of the requested
/// model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartState {
    /// The `keys` item.
    pub keys: Marks,
    /// The `model/<model>` item (empty for requests without a model).
    pub model: Marks,
    /// What the entries this request read say, over `keys` and `model` (kept when the items
    /// are read again: [`PoolState::inherit`]).
    said: [Marks; 2],
}

/// An item as read, with what entries said over it.
struct Seen<'s> {
    item: &'s Marks,
    said: &'s Marks,
}

impl Seen<'_> {
    fn get(&self, hash: u64) -> Option<Mark> {
        self.said.over(hash, self.item.get_hashed(hash))
    }

    fn is_empty(&self) -> bool {
        self.item.is_empty() && self.said.is_empty()
    }
}

/// The state of every part a request has read, the model it is for, and the verdict entries
/// it has read (laid over the index items).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolState {
    parts: Vec<Option<PartState>>,
    model: Option<String>,
    entries: BTreeMap<Item, Marks>,
}

impl PoolState {
    /// No part read yet, for a request about `model`.
    pub fn new(parts: usize, model: Option<&str>) -> Self {
        PoolState { parts: vec![None; parts], model: model.map(str::to_string), entries: BTreeMap::new() }
    }

    /// A pool of one part in this state (tests and simple callers).
    pub fn single(part: PartState, model: Option<&str>) -> Self {
        let mut state = PoolState::new(1, model);
        state.set(0, part);
        state
    }

    /// How many parts the pool has.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The model the state is about.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Sets what part `part` holds (as just read).
    pub fn set(&mut self, part: usize, state: PartState) {
        if let Some(slot) = self.parts.get_mut(part) {
            *slot = Some(state);
        }
    }

    /// Takes part `part`'s state out (empty if it was not read).
    pub fn take(&mut self, part: usize) -> PartState {
        self.parts.get_mut(part).and_then(Option::take).unwrap_or_default()
    }

    /// The parts read, by index.
    pub fn read_parts(&self) -> Vec<usize> {
        (0..self.parts.len()).filter(|&p| self.parts[p].is_some()).collect()
    }

    /// The items of part `part` a request for this state's model reads.
    pub fn items(&self, part: usize) -> Vec<Item> {
        Item::of_part(part, self.model.as_deref())
    }

    /// The item `item` lives in, as read (empty if its part, or the entry, was not read).
    pub fn marks(&self, item: &Item) -> &Marks {
        if item.entry.is_some() {
            return self.entries.get(item).unwrap_or(&NOTHING);
        }
        match self.parts.get(item.part).and_then(Option::as_ref) {
            Some(part) if item.model.is_none() => &part.keys,
            Some(part) => &part.model,
            None => &NOTHING,
        }
    }

    /// Applies one of this request's changes on top of what was read.
    pub fn apply(&mut self, change: &Change) {
        if change.item.entry.is_some() {
            self.entries.entry(change.item.clone()).or_default().apply(change.name.clone(), change.entry);
            return;
        }
        let Some(Some(part)) = self.parts.get_mut(change.item.part) else { return };
        let marks = if change.item.model.is_none() { &mut part.keys } else { &mut part.model };
        marks.apply(change.name.clone(), change.entry);
    }

    /// Does the stored state already say what `change` says?
    pub fn covers(&self, change: &Change) -> bool {
        self.marks(&change.item).covers(&change.name, &change.entry)
    }

    /// Takes in verdict entries as read, and lays what each says over its index item: the
    /// entry's mark, or — an entry that exists but holds none — a clear of a dead mark the
    /// index may still show. (An entry that does not exist says nothing.)
    pub fn take_entries(&mut self, read: Vec<(Item, Marks)>) {
        for (item, marks) in read {
            let Some(name) = item.entry.clone() else { continue };
            let said = match marks.get(&name) {
                Some(mark) => Some(Entry::Set(mark)),
                None => marks.generation.map(|_| Entry::Clear(0)),
            };
            if let (Some(entry), Some(Some(part))) = (said, self.parts.get_mut(item.part)) {
                part.said[usize::from(item.model.is_some())].apply(name, entry);
            }
            self.entries.insert(item, marks);
        }
    }

    /// This state is the items read again: it keeps what the entries read before said, with
    /// the entries it read itself (newer) over them.
    pub fn inherit(&mut self, mut earlier: PoolState) {
        let fresh: Vec<(Item, Marks)> = std::mem::take(&mut self.entries).into_iter().collect();
        for (part, slot) in self.parts.iter_mut().enumerate() {
            let said = earlier.parts.get_mut(part).and_then(Option::as_mut).map(|p| std::mem::take(&mut p.said));
            if let (Some(state), Some(said)) = (slot.as_mut(), said) {
                state.said = said;
            }
        }
        self.entries = std::mem::take(&mut earlier.entries);
        self.take_entries(fresh);
    }

    /// What the entries this request read say of `item`'s marks that `item` as read does not:
    /// written with the request's own lines, so each write the index takes carries everything
    /// its writer learned (an index behind a storm catches up in a few writes).
    pub fn folded(&self, item: &Item) -> Vec<(MarkName, Entry)> {
        let index = self.marks(item);
        let of_item = self.entries.iter().filter(|(entry, _)| entry.index() == *item);
        let said = of_item.filter_map(|(entry, marks)| {
            let name = entry.entry.as_ref()?;
            match marks.get(name) {
                Some(mark) => Some((name.clone(), Entry::Set(mark))),
                // A cleared entry: the index may still say dead.
                None => marks.generation.map(|_| (name.clone(), Entry::Clear(0))),
            }
        });
        said.filter(|(name, entry)| !index.covers(name, entry)).collect()
    }

    /// Has this request read `key`'s entries?
    pub fn confirmed(&self, key: &ApiKey<'_>) -> bool {
        let own = MarkName::of(Bucket::Key(key.fingerprint));
        self.items(key.at.list).iter().any(|item| self.entries.contains_key(&item.entry(&own)))
    }

    /// The entries that can keep `key` out — its own and its project's — in those items of
    /// its part that may be behind at `now_ms`: written within [`HOT_MS`], or `throttled` (a
    /// write to them was refused).
    pub fn entries_of(&self, key: &ApiKey<'_>, now_ms: u64, throttled: &[Item]) -> Vec<Item> {
        let hot = |marks: &Marks| marks.last_written_ms().is_some_and(|at| now_ms < at.saturating_add(HOT_MS));
        let quiet =
            self.parts.get(key.at.list).and_then(Option::as_ref).is_none_or(|p| !hot(&p.keys) && !hot(&p.model));
        if quiet && !throttled.iter().any(|item| item.part == key.at.list) {
            return Vec::new(); // the usual case: nothing to confirm, no item named
        }
        let behind = |item: &Item| throttled.contains(item) || hot(self.marks(item));
        let items: Vec<Item> = self.items(key.at.list).into_iter().filter(behind).collect();
        let mut names = vec![MarkName::of(Bucket::Key(key.fingerprint))];
        if let bucket @ Bucket::Project(_) = Bucket::of(key) {
            names.push(MarkName::of(bucket));
        }
        items.iter().flat_map(|item| names.iter().map(move |name| item.entry(name))).collect()
    }

    /// Where `key` stands for this state's model at `now_ms`.
    pub fn availability(&self, key: &ApiKey<'_>, now_ms: u64) -> Availability {
        match self.parts.get(key.at.list).and_then(Option::as_ref) {
            Some(part) => part.availability(key, now_ms),
            None => Availability::Ready,
        }
    }
}

impl PartState {
    /// A part's items as read.
    pub fn new(keys: Marks, model: Marks) -> Self {
        PartState { keys, model, said: Default::default() }
    }

    /// Where `key` (a key of this part) stands for the model at `now_ms`.
    pub fn availability(&self, key: &ApiKey<'_>, now_ms: u64) -> Availability {
        if self.keys.is_empty() && self.model.is_empty() && self.said.iter().all(Marks::is_empty) {
            return Availability::Ready;
        }
        let names = KeyNames::of(key);
        let [keys, model] = [0, 1].map(|i| Seen { item: [&self.keys, &self.model][i], said: &self.said[i] });
        let own = keys.get(names.own);
        if let Some(mark) = own.filter(|m| m.dead) {
            return if now_ms >= mark.until_ms { Availability::Probation } else { Availability::Dead };
        }
        let cooling = [names.pick(own, &keys, now_ms), names.cooling(&model, now_ms)];
        match cooling.into_iter().flatten().max_by_key(|m| m.until_ms) {
            Some(mark) => Availability::Cooling { until_ms: mark.until_ms, reason: mark.reason },
            None => Availability::Ready,
        }
    }
}

/// In one item: the mark keeping `key` from serving now — its own or its project's,
/// whichever ends later.
pub(crate) fn cooling_for(marks: &Marks, key: &ApiKey<'_>, now_ms: u64) -> Option<Mark> {
    KeyNames::of(key).cooling(&Seen { item: marks, said: &NOTHING }, now_ms)
}

/// The marks that can keep a key out, by the hashes of their names: its own, and its
/// project's (no name is written to look one up).
struct KeyNames {
    own: u64,
    project: Option<u64>,
}

impl KeyNames {
    fn of(key: &ApiKey<'_>) -> Self {
        let project = match Bucket::of(key) {
            bucket @ Bucket::Project(_) => Some(MarkName::hash_of(bucket)),
            Bucket::Key(_) => None,
        };
        KeyNames { own: MarkName::hash_of(Bucket::Key(key.fingerprint)), project }
    }

    fn cooling(&self, marks: &Seen<'_>, now_ms: u64) -> Option<Mark> {
        if marks.is_empty() {
            return None;
        }
        self.pick(marks.get(self.own), marks, now_ms)
    }

    /// Of the key's own mark in `marks` (already found) and its project's, the one keeping it
    /// out at `now_ms` that ends later.
    fn pick(&self, own: Option<Mark>, marks: &Seen<'_>, now_ms: u64) -> Option<Mark> {
        let own = own.filter(|m| m.is_active(now_ms));
        let shared = self.project.and_then(|p| marks.get(p)).filter(|m| m.is_active(now_ms));
        match (own, shared) {
            (Some(a), Some(b)) => Some(if a.until_ms >= b.until_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// The state of items read from the store, per part (for `model`'s request), with the entries
/// among them laid over.
pub(crate) fn state_of(parts: usize, model: Option<&str>, items: Vec<(Item, Marks)>) -> PoolState {
    let mut state = PoolState::new(parts, model);
    let mut read: Vec<(usize, PartState)> = Vec::new();
    let (entries, items): (Vec<_>, Vec<_>) = items.into_iter().partition(|(item, _)| item.entry.is_some());
    for (item, marks) in items {
        let at = match read.iter().position(|(p, _)| *p == item.part) {
            Some(at) => at,
            None => {
                read.push((item.part, PartState::default()));
                read.len() - 1
            }
        };
        match item.model {
            None => read[at].1.keys = marks,
            Some(_) => read[at].1.model = marks,
        }
    }
    for (part, part_state) in read {
        state.set(part, part_state);
    }
    state.take_entries(entries);
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::reason::Reason;
    use crate::state::marks::merge;

    fn mark(until_ms: u64, reason: Reason) -> Mark {
        Mark { until_ms, reason, dead: false, strikes: 0, since_ms: 1 }
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
    fn item_names() {
        for item in [Item::keys(0), Item::keys(3), Item::model(0, "gemini-3.5-flash"), Item::model(1, "m.2")] {
            assert_eq!(Item::from_kv_key(&item.kv_key()), Some(item));
        }
        assert_eq!(Item::model(1, "gemini-3.5-flash").kv_key(), "model/gemini-3.5-flash@2");
        assert_eq!(Item::from_kv_key("model/x@1"), None);
        assert_eq!(Item::from_kv_key("other"), None);
    }

    #[test]
    fn what_entries_say_lies_over_the_index_and_stays_when_it_is_read_again() {
        let key_list = "team:AIzaSyITEMS000000000000000000000000000001\n";
        let pool = crate::pool::keys::KeyPool::new([key_list]);
        let key = pool.iter().next().expect("a key");
        let own = MarkName::of(Bucket::Key(key.fingerprint));
        let project = MarkName::of(Bucket::Project("team"));
        // The index says the key is dead; its entry was cleared since (a probation success).
        let dead = Entry::Set(Mark { dead: true, ..mark(u64::MAX, Reason::KeyInvalid) });
        let mut keys = Marks::default();
        keys.apply(own.clone(), dead);
        let index = Marks::decode(keys.compacted(0).0, Some(3));
        let mut state = PoolState::single(PartState::new(index, Marks::default()), Some("m"));
        assert_eq!(state.availability(&key, 10), Availability::Dead);
        let cleared = Marks::decode(Marks::default().compacted(5).0, Some(9));
        state.take_entries(vec![(Item::keys(0).entry(&own), cleared)]);
        assert_eq!(state.availability(&key, 10), Availability::Ready);
        // The project cools for the model: an entry the index has not taken yet.
        let mut cooling = Marks::default();
        cooling.apply(project.clone(), Entry::Set(mark(5_000, Reason::PerMinuteQuota)));
        state.take_entries(vec![(Item::model(0, "m").entry(&project), cooling)]);
        assert!(matches!(state.availability(&key, 10), Availability::Cooling { until_ms: 5_000, .. }));
        assert!(state.confirmed(&key));
        // The items read again (still behind) keep what the entries said.
        let mut again =
            PoolState::single(PartState::new(state.marks(&Item::keys(0)).clone(), Marks::default()), Some("m"));
        again.inherit(state);
        assert!(matches!(again.availability(&key, 10), Availability::Cooling { until_ms: 5_000, .. }));
        // What the entries say and the index does not goes with the next index write.
        assert_eq!(again.folded(&Item::model(0, "m")).len(), 1);
        assert_eq!(again.folded(&Item::keys(0)), vec![(own, Entry::Clear(0))]);
    }
}
