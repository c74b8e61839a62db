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

use crate::google::reason::Reason;
use crate::pool::keys::ApiKey;
use crate::pool::names::{Bucket, MarkName};
use crate::state::marks::{encode_line, Marks, NOTHING};
pub(crate) use crate::state::marks::{Entry, Mark, MAX_STRIKES};

/// Which KV item a mark lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Item {
    /// The part of the pool whose keys it is about.
    pub part: usize,
    /// `None`: the part's `keys` item; `Some(model)`: its item for that model.
    pub model: Option<String>,
}

const MODEL_PREFIX: &str = "model/";

impl Item {
    /// A part's `keys` item.
    pub fn keys(part: usize) -> Self {
        Item { part, model: None }
    }

    /// A part's item for `model`.
    pub fn model(part: usize, model: &str) -> Self {
        Item { part, model: Some(model.to_string()) }
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
        match self.part {
            0 => base,
            part => [base.as_str(), "@", &(part + 1).to_string()].concat(),
        }
    }

    /// The prefix every model item's KV key starts with (for listing).
    pub fn model_prefix() -> &'static str {
        MODEL_PREFIX
    }

    /// Reads a KV key back.
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
}

/// The state of every part a request has read, and the model it is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolState {
    parts: Vec<Option<PartState>>,
    model: Option<String>,
}

impl PoolState {
    /// No part read yet, for a request about `model`.
    pub fn new(parts: usize, model: Option<&str>) -> Self {
        PoolState { parts: vec![None; parts], model: model.map(str::to_string) }
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

    /// The item `item` lives in, as read (empty if its part was not read).
    pub fn marks(&self, item: &Item) -> &Marks {
        match self.parts.get(item.part).and_then(Option::as_ref) {
            Some(part) if item.model.is_none() => &part.keys,
            Some(part) => &part.model,
            None => &NOTHING,
        }
    }

    /// Applies one of this request's changes on top of what was read.
    pub fn apply(&mut self, change: &Change) {
        let Some(Some(part)) = self.parts.get_mut(change.item.part) else { return };
        let marks = if change.item.model.is_none() { &mut part.keys } else { &mut part.model };
        marks.apply(change.name.clone(), change.entry);
    }

    /// Does the stored state already say what `change` says?
    pub fn covers(&self, change: &Change) -> bool {
        self.marks(&change.item).covers(&change.name, &change.entry)
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
    /// Where `key` (a key of this part) stands for the model at `now_ms`.
    pub fn availability(&self, key: &ApiKey<'_>, now_ms: u64) -> Availability {
        if self.keys.is_empty() && self.model.is_empty() {
            return Availability::Ready;
        }
        let names = KeyNames::of(key);
        let own = self.keys.get_hashed(names.own);
        if let Some(mark) = own.filter(|m| m.dead) {
            return if now_ms >= mark.until_ms { Availability::Probation } else { Availability::Dead };
        }
        let cooling = [names.pick(own, &self.keys, now_ms), names.cooling(&self.model, now_ms)];
        match cooling.into_iter().flatten().max_by_key(|m| m.until_ms) {
            Some(mark) => Availability::Cooling { until_ms: mark.until_ms, reason: mark.reason },
            None => Availability::Ready,
        }
    }
}

/// In one item: the mark keeping `key` from serving now — its own or its project's,
/// whichever ends later.
pub(crate) fn cooling_for(marks: &Marks, key: &ApiKey<'_>, now_ms: u64) -> Option<Mark> {
    KeyNames::of(key).cooling(marks, now_ms)
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

    fn cooling(&self, marks: &Marks, now_ms: u64) -> Option<Mark> {
        if marks.is_empty() {
            return None;
        }
        self.pick(marks.get_hashed(self.own), marks, now_ms)
    }

    /// Of the key's own mark in `marks` (already found) and its project's, the one keeping it
    /// out at `now_ms` that ends later.
    fn pick(&self, own: Option<Mark>, marks: &Marks, now_ms: u64) -> Option<Mark> {
        let own = own.filter(|m| m.is_active(now_ms));
        let shared = self.project.and_then(|p| marks.get_hashed(p)).filter(|m| m.is_active(now_ms));
        match (own, shared) {
            (Some(a), Some(b)) => Some(if a.until_ms >= b.until_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// The state of items read from the store, per part (for `model`'s request).
pub(crate) fn state_of(parts: usize, model: Option<&str>, items: Vec<(Item, Marks)>) -> PoolState {
    let mut state = PoolState::new(parts, model);
    let mut read: Vec<(usize, PartState)> = Vec::new();
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
}
