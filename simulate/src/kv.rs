//! Fastly's KV store as production behaves, as far as Fastly documents it (and a knob where it
//! does not): one origin holds every item's versions; a read at a POP may see a version up to
//! `staleness_ms` old (Fastly: "up to 300 ms" for recently changed data); whether a POP reads
//! its own writes at once is a knob (undocumented); inserts above a per-item rate fail with
//! `TooManyRequests` (Fastly publishes no number); a compare-and-swap is checked at the origin
//! or against the POP's own, possibly stale, view (undocumented: both are modelled); and an
//! acknowledged write may be lost with some probability.

use crate::world::{Store, WriteOutcome};
use gemini_pool_core::{Item, Marks, Rng, Write};
use std::collections::HashMap;
use std::rc::Rc;

/// How the modelled store behaves.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// POPs (each its own view).
    pub pops: usize,
    /// A read may see the origin as it was up to this long ago.
    pub staleness_ms: u64,
    /// A POP sees its own writes at once.
    pub read_your_writes: bool,
    /// Inserts per second one item takes before `TooManyRequests` (`None`: no limit), and the
    /// burst it allows.
    pub inserts_per_sec: Option<(f64, f64)>,
    /// A compare-and-swap is checked against the POP's view rather than the origin's.
    pub local_cas: bool,
    /// Probability that an acknowledged write is lost.
    pub loss: f64,
    /// Latency of a read and of a write, ms.
    pub read_ms: u64,
    /// Latency of a write, ms.
    pub write_ms: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            pops: 1,
            staleness_ms: 0,
            read_your_writes: true,
            inserts_per_sec: None,
            local_cas: false,
            loss: 0.0,
            read_ms: 1,
            write_ms: 3,
        }
    }
}

/// One version of an item.
struct Version {
    at: u64,
    generation: u64,
    bytes: Rc<Vec<u8>>,
}

/// An item's versions (oldest first), who wrote which, and its insert budget.
#[derive(Default)]
struct History {
    versions: Vec<Version>,
    /// The newest generation each POP wrote.
    written_by: HashMap<usize, u64>,
    /// Token bucket: tokens, and when it was last filled.
    tokens: f64,
    filled_at: u64,
    started: bool,
}

/// The modelled KV store.
pub struct Kv {
    config: KvConfig,
    items: HashMap<String, History>,
    rng: Rng,
    /// Inserts refused for the rate (`TooManyRequests`).
    pub throttled: u64,
    /// Writes acknowledged and lost.
    pub lost: u64,
    /// Inserts executed (appends and replacements that were not refused).
    pub inserts: u64,
    /// Items read (lookups).
    pub reads: u64,
}

impl Kv {
    /// An empty store.
    pub fn new(config: KvConfig, seed: u64) -> Self {
        Kv { config, items: HashMap::new(), rng: Rng::new(seed), throttled: 0, lost: 0, inserts: 0, reads: 0 }
    }

    /// The version a read at `pop` sees at `now`.
    fn visible(&mut self, pop: usize, key: &str, now: u64) -> Option<(u64, Rc<Vec<u8>>)> {
        let lag = self.rng.below(self.config.staleness_ms as usize + 1) as u64;
        let history = self.items.get(key)?;
        let seen = history.versions.iter().rev().find(|v| v.at <= now.saturating_sub(lag));
        let own = history.written_by.get(&pop).filter(|_| self.config.read_your_writes);
        let own = own.and_then(|g| history.versions.iter().find(|v| v.generation == *g));
        let newest = match (seen, own) {
            (Some(a), Some(b)) if b.generation > a.generation => b,
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return None,
        };
        Some((newest.generation, newest.bytes.clone()))
    }

    /// Takes an insert token for `key` at `now`, or says the insert is throttled.
    fn admit(&mut self, key: &str, now: u64) -> bool {
        let Some((rate, burst)) = self.config.inserts_per_sec else { return true };
        let history = self.items.entry(key.to_string()).or_default();
        if !history.started {
            (history.tokens, history.filled_at, history.started) = (burst, now, true);
        }
        let earned = (now.saturating_sub(history.filled_at)) as f64 / 1000.0 * rate;
        history.tokens = (history.tokens + earned).min(burst);
        history.filled_at = now;
        if history.tokens < 1.0 {
            return false;
        }
        history.tokens -= 1.0;
        true
    }

    /// Stores a new version written at `pop`.
    fn store(&mut self, pop: usize, key: &str, bytes: Vec<u8>, now: u64) {
        let history = self.items.entry(key.to_string()).or_default();
        let generation = history.versions.last().map_or(1, |v| v.generation + 1);
        history.versions.push(Version { at: now, generation, bytes: Rc::new(bytes) });
        history.written_by.insert(pop, generation);
        // Versions no read can see any more are dropped (the newest is always kept).
        let horizon = now.saturating_sub(self.config.staleness_ms + 1_000);
        let keep_from = history.versions.iter().rposition(|v| v.at <= horizon).unwrap_or(0);
        history.versions.drain(..keep_from);
    }

    fn execute(&mut self, pop: usize, write: Write, now: u64) -> WriteOutcome {
        let key = match &write {
            Write::Append { item, .. } | Write::Replace { item, .. } => item.kv_key(),
        };
        if !self.admit(&key, now) {
            self.throttled += 1;
            return WriteOutcome::Refused;
        }
        self.inserts += 1;
        let lost = self.lose();
        match write {
            Write::Append { bytes, .. } => {
                if lost {
                    return WriteOutcome::Done;
                }
                self.append_at_origin(pop, &key, &bytes, now);
                WriteOutcome::Done
            }
            Write::Replace { bytes, generation, .. } => {
                let current = match self.config.local_cas {
                    true => self.visible(pop, &key, now).map(|(g, _)| g),
                    false => self.items.get(&key).and_then(|h| h.versions.last()).map(|v| v.generation),
                };
                if current != generation || lost {
                    return WriteOutcome::Done;
                }
                self.store(pop, &key, bytes, now);
                WriteOutcome::Done
            }
        }
    }
}

impl Kv {
    /// An append, as the origin executes it: onto the newest version.
    fn append_at_origin(&mut self, pop: usize, key: &str, bytes: &[u8], now: u64) {
        let mut whole =
            self.items.get(key).and_then(|h| h.versions.last()).map_or_else(Vec::new, |v| (*v.bytes).clone());
        whole.extend_from_slice(bytes);
        self.store(pop, key, whole, now);
    }

    /// Whether an acknowledged write is lost (counted).
    fn lose(&mut self) -> bool {
        let lost = self.config.loss > 0.0 && (self.rng.below(1_000_000) as f64) < self.config.loss * 1e6;
        self.lost += u64::from(lost);
        lost
    }

    /// The largest item, bytes.
    pub fn largest(&self) -> usize {
        self.items.values().filter_map(|h| h.versions.last()).map(|v| v.bytes.len()).max().unwrap_or(0)
    }
}

impl Store for Kv {
    fn read(&mut self, pop: usize, items: &[Item], now: u64) -> (Vec<(Item, Marks)>, u64) {
        self.reads += items.len() as u64;
        let read = items
            .iter()
            .map(|item| {
                let marks = match self.visible(pop, &item.kv_key(), now) {
                    Some((generation, bytes)) => Marks::decode((*bytes).clone(), Some(generation)),
                    None => Marks::default(),
                };
                (item.clone(), marks)
            })
            .collect();
        (read, self.config.read_ms)
    }

    fn write(&mut self, pop: usize, writes: Vec<Write>, now: u64) -> (Vec<WriteOutcome>, u64) {
        let outcomes = writes.into_iter().map(|w| self.execute(pop, w, now)).collect();
        (outcomes, self.config.write_ms)
    }

    fn truth(&self, item: &Item) -> Marks {
        match self.items.get(&item.kv_key()).and_then(|h| h.versions.last()) {
            Some(v) => Marks::decode((*v.bytes).clone(), Some(v.generation)),
            None => Marks::default(),
        }
    }

    fn calls(&self) -> u64 {
        self.inserts + self.throttled
    }

    fn refused(&self) -> u64 {
        self.throttled
    }

    fn reads(&self) -> u64 {
        self.reads
    }

    fn largest_item(&self) -> usize {
        self.largest()
    }

    fn look(&mut self, pop: usize, names: &[String], now: u64) -> (Vec<Option<Vec<u8>>>, u64) {
        self.reads += names.len() as u64;
        let found = names.iter().map(|name| self.visible(pop, name, now).map(|(_, bytes)| (*bytes).clone())).collect();
        (found, self.config.read_ms)
    }

    /// Fastly's list is strongly consistent unless asked otherwise: the origin's names.
    fn list(&mut self, _pop: usize, prefix: &str, _now: u64) -> (Vec<String>, u64) {
        self.reads += 1;
        let names = self
            .items
            .iter()
            .filter(|(name, history)| name.starts_with(prefix) && !history.versions.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        (names, self.config.read_ms)
    }

    /// An insert in mode `add`: refused if the item exists — at the origin, or in the POP's
    /// view where compare-and-swap is checked there.
    fn add(&mut self, pop: usize, name: &str, bytes: Vec<u8>, now: u64) -> (bool, u64) {
        if !self.admit(name, now) {
            self.throttled += 1;
            return (false, self.config.write_ms);
        }
        self.inserts += 1;
        let exists = match self.config.local_cas {
            true => self.visible(pop, name, now).is_some(),
            false => self.items.get(name).is_some_and(|h| !h.versions.is_empty()),
        };
        if exists {
            return (false, self.config.write_ms);
        }
        if self.lose() {
            return (true, self.config.write_ms);
        }
        self.store(pop, name, bytes, now);
        (true, self.config.write_ms)
    }

    fn put(&mut self, pop: usize, name: &str, bytes: Vec<u8>, now: u64) -> u64 {
        if !self.admit(name, now) {
            self.throttled += 1;
            return self.config.write_ms;
        }
        self.inserts += 1;
        if !self.lose() {
            self.store(pop, name, bytes, now);
        }
        self.config.write_ms
    }

    fn append(&mut self, pop: usize, name: &str, bytes: Vec<u8>, now: u64) -> u64 {
        if !self.admit(name, now) {
            self.throttled += 1;
            return self.config.write_ms;
        }
        self.inserts += 1;
        self.append_at_origin(pop, name, &bytes, now);
        self.config.write_ms
    }
}
