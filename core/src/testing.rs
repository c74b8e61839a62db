//! A rig for tests (feature `testing`): the core's machines driven by **one** executor against
//! **one** strict in-memory store — what is written is read back at once — the way quinn-proto's
//! tests drive a connection pair. Unit tests, `core/tests` and the fuzz checks use it; the
//! simulator (`simulate/`) has its own executor, because there the store *is* the model under
//! test (stale, throttled, lossy).
//!
//! Every item lives in one map by its store name: marks items (`model/m`), resource records
//! (`res/files/f`), limit items, indexes, usage shards. Writes behave as the edges make them
//! behave: appends append, a replace holds only at its generation, a record is stored only if
//! absent, an [`Append`] marked for compaction is read back and compacted with a
//! compare-and-swap.

use crate::client::policy::Policy;
use crate::decide::machine::{Answer, Machine, Step};
use crate::pool::keys::ApiKey;
use crate::settings::CoolingSettings;
use crate::state::commit::Write;
use crate::state::items::Item;
use crate::state::marks::Marks;
use crate::state::usage::Append;
use std::collections::BTreeMap;

/// The strict store.
#[derive(Debug, Default, Clone)]
pub struct Store {
    /// Every item by its store name: its bytes and generation.
    pub items: BTreeMap<String, (Vec<u8>, u64)>,
    /// Items read (marks items and looks).
    pub reads: usize,
    /// Writes made.
    pub writes: usize,
    /// This many of the next appends to marks items are acknowledged and then lost to a
    /// concurrent rewrite (the generation moves on, the bytes do not).
    pub lose_appends: usize,
    /// Refuse every write of a [`Step::Commit`] (a throttled store).
    pub refuse_writes: bool,
}

impl Store {
    /// An item's bytes (`None`: absent).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.items.get(name).map(|(bytes, _)| bytes.as_slice())
    }

    /// An item's bytes as text (empty if absent).
    pub fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.get(name).unwrap_or_default()).into_owned()
    }

    /// A marks item as the core reads it.
    pub fn marks(&self, item: &Item) -> Marks {
        match self.items.get(&item.kv_key()) {
            Some((bytes, generation)) => Marks::decode(bytes.clone(), Some(*generation)),
            None => Marks::default(),
        }
    }

    /// Marks items, read.
    pub fn read(&mut self, items: &[Item]) -> Vec<(Item, Marks)> {
        self.reads += items.len();
        items.iter().map(|item| (item.clone(), self.marks(item))).collect()
    }

    /// Writes to marks items; the indices of those refused.
    pub fn write(&mut self, writes: Vec<Write>) -> Vec<usize> {
        if self.refuse_writes {
            return (0..writes.len()).collect();
        }
        for write in writes {
            self.writes += 1;
            match write {
                Write::Append { item, bytes } => {
                    let entry = self.items.entry(item.kv_key()).or_default();
                    entry.1 += 1;
                    match self.lose_appends {
                        0 => entry.0.extend(bytes),
                        _ => self.lose_appends -= 1,
                    }
                }
                Write::Replace { item, bytes, generation, .. } => self.swap_at(&item.kv_key(), bytes, generation),
            }
        }
        Vec::new()
    }

    /// Appends to an item by name.
    pub fn append(&mut self, name: &str, bytes: &[u8]) {
        self.writes += 1;
        let entry = self.items.entry(name.to_string()).or_default();
        entry.0.extend_from_slice(bytes);
        entry.1 += 1;
    }

    /// Replaces an item if it is still at `generation` (`None`: if it is absent).
    fn swap_at(&mut self, name: &str, bytes: Vec<u8>, generation: Option<u64>) {
        let current = self.items.get(name).map(|(_, g)| *g);
        if current == generation {
            self.items.insert(name.to_string(), (bytes, current.unwrap_or(0) + 1));
        }
    }

    /// Replaces an item whatever it holds.
    fn put(&mut self, name: &str, bytes: Vec<u8>) {
        let generation = self.items.get(name).map_or(1, |(_, g)| g + 1);
        self.items.insert(name.to_string(), (bytes, generation));
    }

    /// A count as the edges make it: appended, then read back and compacted if marked.
    pub fn count(&mut self, append: &Append) {
        self.append(&append.item, &append.bytes);
        let Some((bytes, generation)) = self.items.get(&append.item).cloned() else { return };
        if let Some(compacted) = append.compacted(&bytes) {
            self.swap_at(&append.item, compacted, Some(generation));
        }
    }
}

/// What a rig saw a machine do, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A key list fetched.
    Fetch(usize),
    /// Marks items read.
    Read(usize),
    /// The cooling settings asked for.
    Configure,
    /// Keys sent to Google (their secrets).
    Send(Vec<String>),
    /// Writes, then items read back.
    Commit(usize, usize),
    /// Items looked at by name.
    Look(Vec<String>),
    /// A record stored (or found there already).
    Remember(String),
    /// A record removed.
    Forget(String),
    /// A claim appended and read back.
    Claim(String),
    /// A compaction swapped in.
    Swap(String),
    /// Items listed by a prefix.
    List(String),
    /// Policies read.
    Policies(Vec<String>),
    /// A knob read.
    Knob(&'static str),
    /// The platform's counter asked.
    Rate(String),
    /// Bytes appended.
    Append(String),
    /// A line logged.
    Log(String),
    /// A wait.
    Wait(u64),
}

/// Google's answer to one key, as a test decides it.
pub type Google<'f, 'a> = dyn FnMut(&ApiKey<'a>) -> Answer + 'f;

/// The rig: key lists, the store, the clock, the cooling settings, the platform's counter, and
/// what it saw.
pub struct Rig<'a> {
    /// The pool's key lists, by part.
    pub lists: Vec<&'a [u8]>,
    /// The store.
    pub store: Store,
    /// The time each step is asked at (a `Wait` moves it on).
    pub now_ms: u64,
    /// The cooling settings a `Configure` hands over.
    pub cooling: CoolingSettings,
    /// What the platform's rate counter says (`None`: no counter).
    pub platform: Option<u64>,
    /// The knobs a `Knob` step reads (absent: not set).
    pub knobs: BTreeMap<&'static str, String>,
    /// Clients' policies, by label, for a `Policies` step.
    pub policies: BTreeMap<String, Policy>,
    /// Every step, in order.
    pub seen: Vec<Seen>,
}

/// Steps a machine may take before a rig calls it stuck.
const MOST_STEPS: usize = 10_000;

impl<'a> Rig<'a> {
    /// A rig over `lists`, at `now_ms`, with an empty store.
    pub fn new(lists: &[&'a [u8]], now_ms: u64) -> Self {
        Rig {
            lists: lists.to_vec(),
            store: Store::default(),
            now_ms,
            cooling: CoolingSettings::default(),
            platform: None,
            knobs: BTreeMap::new(),
            policies: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    /// Runs `machine` to its end; `google` answers each key sent.
    pub fn drive<M: Machine<'a>>(&mut self, machine: &mut M, mut google: impl FnMut(&ApiKey<'a>) -> Answer) -> M::Done {
        for _ in 0..MOST_STEPS {
            if let Some(done) = self.turn(machine, &mut google) {
                return done;
            }
        }
        panic!("the machine did not end in {MOST_STEPS} steps: {:?}", self.seen.last());
    }

    /// Does `machine`'s next step: `Some` with its end once it is over.
    pub fn turn<M: Machine<'a>>(&mut self, machine: &mut M, google: &mut Google<'_, 'a>) -> Option<M::Done> {
        let step = machine.step(self.now_ms);
        match step {
            Step::Fetch(part) => {
                self.seen.push(Seen::Fetch(part));
                machine.fetched(part, self.lists.get(part).copied().unwrap_or_default());
            }
            Step::Read(items) => {
                self.seen.push(Seen::Read(items.len()));
                machine.read(self.store.read(&items));
            }
            Step::Configure => {
                self.seen.push(Seen::Configure);
                machine.configured(&self.cooling);
            }
            Step::Send(keys) => {
                self.seen.push(Seen::Send(keys.iter().map(|k| k.secret.to_string()).collect()));
                machine.answered(keys.iter().map(&mut *google).collect());
            }
            Step::Commit { writes, read_back } => {
                self.seen.push(Seen::Commit(writes.len(), read_back.len()));
                let refused = self.store.write(writes);
                if !refused.is_empty() {
                    machine.refused(refused);
                }
                match read_back.is_empty() {
                    true => machine.written(),
                    false => machine.read(self.store.read(&read_back)),
                }
            }
            Step::Look(names) => {
                self.store.reads += names.len();
                let found = names.iter().map(|n| self.store.get(n).map(<[u8]>::to_vec)).collect();
                self.seen.push(Seen::Look(names));
                machine.looked(found);
            }
            Step::Remember { item, record, index, .. } => {
                let stored = self.store.get(&item).is_none();
                if stored {
                    self.store.items.insert(item.clone(), (record, 1));
                    if let Some(index) = &index {
                        self.store.count(index);
                    }
                }
                self.seen.push(Seen::Remember(item));
                machine.remembered(stored);
            }
            Step::Forget { item, index } => {
                self.store.items.remove(&item);
                self.store.count(&index);
                self.seen.push(Seen::Forget(item));
            }
            Step::Claim { item, bytes, .. } => {
                self.store.append(&item, &bytes);
                let read = self.store.items.get(&item).cloned();
                self.seen.push(Seen::Claim(item));
                machine.claimed(read);
            }
            Step::Swap { item, bytes, generation, .. } => {
                match generation {
                    Some(_) => self.store.swap_at(&item, bytes, generation),
                    None => self.store.put(&item, bytes),
                }
                self.seen.push(Seen::Swap(item));
            }
            Step::List(prefix) => {
                let names = self.store.items.keys().filter(|name| name.starts_with(&prefix)).cloned().collect();
                self.seen.push(Seen::List(prefix));
                machine.listed(names);
            }
            Step::Policies(labels) => {
                let found = labels.iter().map(|label| self.policies.get(label).cloned()).collect();
                self.seen.push(Seen::Policies(labels));
                machine.policies(found);
            }
            Step::Knob(name) => {
                self.seen.push(Seen::Knob(name));
                machine.knob(self.knobs.get(name).cloned());
            }
            Step::Rate(entry) => {
                self.seen.push(Seen::Rate(entry));
                machine.rated(self.platform);
            }
            Step::Append { item, bytes, .. } => {
                self.store.append(&item, &bytes);
                self.seen.push(Seen::Append(item));
            }
            Step::Log(line) => self.seen.push(Seen::Log(line)),
            Step::Wait(ms) => {
                self.now_ms += ms;
                self.seen.push(Seen::Wait(ms));
            }
            Step::Done(done) => return Some(done),
        }
        None
    }

    /// The secrets of the keys sent, in order.
    pub fn sent(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|s| if let Seen::Send(keys) = s { Some(keys.clone()) } else { None })
            .flatten()
            .collect()
    }

    /// The lines logged, in order.
    pub fn logs(&self) -> Vec<String> {
        self.seen.iter().filter_map(|s| if let Seen::Log(line) = s { Some(line.clone()) } else { None }).collect()
    }
}
