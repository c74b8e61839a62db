//! Cloudflare's Durable Objects as production behaves: each object is one single-threaded
//! instance with strongly consistent storage, serving one call at a time; Cloudflare puts an
//! object's ceiling near 1,000 requests/s (200–750 with writes). Past what it can serve, calls
//! queue; a call that would wait longer than `max_wait_ms` fails `overloaded`.
//!
//! The state may be sharded over several objects (an item lives in the object its name hashes
//! to), and each isolate may keep a read cache of items for `cache_ms` — refreshed by its own
//! writes at once, so it never hides a refusal the isolate itself recorded, and hides another
//! isolate's for at most `cache_ms`.

use crate::world::{Store, WriteOutcome};
use gemini_pool_core::{Item, Marks, Write};
use std::collections::HashMap;

/// An item as an object holds it: its bytes and generation, or `None` if absent.
type Stored = Option<(Vec<u8>, u64)>;

/// How the modelled objects behave.
#[derive(Debug, Clone)]
pub struct ObjectConfig {
    /// Objects the items are spread over (by the hash of the item's name).
    pub shards: usize,
    /// Time an object spends on one call, ms (1 ms: about 1,000 calls/s).
    pub service_ms: f64,
    /// A call that would wait longer than this in the object's queue fails `overloaded`.
    pub max_wait_ms: f64,
    /// Round trip from an isolate to the object, ms.
    pub rtt_ms: u64,
    /// Isolates per POP (each with its own read cache).
    pub isolates: usize,
    /// How long an isolate serves an item from its cache (0: no cache).
    pub cache_ms: u64,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        ObjectConfig { shards: 1, service_ms: 1.0, max_wait_ms: 200.0, rtt_ms: 10, isolates: 4, cache_ms: 0 }
    }
}

/// The modelled objects.
pub struct Objects {
    config: ObjectConfig,
    items: HashMap<String, (Vec<u8>, u64)>,
    /// When each object is free again (ms, fractional).
    busy_until: Vec<f64>,
    /// Each isolate's cache: item → (the item, read at).
    caches: HashMap<usize, HashMap<String, (Stored, u64)>>,
    /// Calls made to the objects, and calls refused `overloaded`.
    pub calls: u64,
    /// Calls refused `overloaded`.
    pub overloaded: u64,
    /// Reads served from an isolate's cache.
    pub cache_hits: u64,
}

impl Objects {
    /// Empty objects.
    pub fn new(config: ObjectConfig) -> Self {
        let shards = config.shards.max(1);
        Objects {
            config,
            items: HashMap::new(),
            busy_until: vec![0.0; shards],
            caches: HashMap::new(),
            calls: 0,
            overloaded: 0,
            cache_hits: 0,
        }
    }

    fn shard(&self, key: &str) -> usize {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (hash % self.busy_until.len() as u64) as usize
    }

    /// One call to object `shard` at `now`: its latency, or `None` if it is refused.
    fn call(&mut self, shard: usize, now: u64) -> Option<u64> {
        self.calls += 1;
        let start = self.busy_until[shard].max(now as f64);
        if start - now as f64 > self.config.max_wait_ms {
            self.overloaded += 1;
            return None;
        }
        self.busy_until[shard] = start + self.config.service_ms;
        Some(self.config.rtt_ms + (start + self.config.service_ms - now as f64).ceil() as u64)
    }

    /// The isolate of a POP a request lands on.
    pub fn isolate(&self, pop: usize, draw: usize) -> usize {
        pop * self.config.isolates.max(1) + draw % self.config.isolates.max(1)
    }

    fn remember(&mut self, isolate: usize, key: &str, value: Stored, now: u64) {
        if self.config.cache_ms > 0 {
            self.caches.entry(isolate).or_default().insert(key.to_string(), (value, now));
        }
    }
}

impl Store for Objects {
    /// `pop` is the isolate (see [`Objects::isolate`]).
    fn read(&mut self, isolate: usize, items: &[Item], now: u64) -> (Vec<(Item, Marks)>, u64) {
        let mut latency = 0;
        let mut called = Vec::new();
        let mut read = Vec::with_capacity(items.len());
        for item in items {
            let key = item.kv_key();
            let cached =
                self.caches.get(&isolate).and_then(|c| c.get(&key)).filter(|(_, at)| now < at + self.config.cache_ms);
            let value = match cached {
                Some((value, _)) => {
                    self.cache_hits += 1;
                    value.clone()
                }
                None => {
                    let shard = self.shard(&key);
                    if !called.contains(&shard) {
                        called.push(shard);
                        match self.call(shard, now) {
                            Some(ms) => latency = latency.max(ms),
                            None => latency = latency.max(self.config.rtt_ms + self.config.max_wait_ms as u64),
                        }
                    }
                    let value = self.items.get(&key).cloned();
                    self.remember(isolate, &key, value.clone(), now);
                    value
                }
            };
            let marks = value.map_or_else(Marks::default, |(bytes, generation)| Marks::decode(bytes, Some(generation)));
            read.push((item.clone(), marks));
        }
        (read, latency)
    }

    fn write(&mut self, isolate: usize, writes: Vec<Write>, now: u64) -> (Vec<WriteOutcome>, u64) {
        let mut latency = 0;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            let (key, item_key) = match &write {
                Write::Append { item, .. } | Write::Replace { item, .. } => (item.kv_key(), item.kv_key()),
            };
            let Some(ms) = self.call(self.shard(&key), now) else {
                latency = latency.max(self.config.rtt_ms + self.config.max_wait_ms as u64);
                outcomes.push(WriteOutcome::Refused);
                continue;
            };
            latency = latency.max(ms);
            match write {
                Write::Append { bytes, .. } => {
                    let entry = self.items.entry(key).or_default();
                    entry.0.extend_from_slice(&bytes);
                    entry.1 += 1;
                }
                Write::Replace { bytes, generation, .. } => {
                    let current = self.items.get(&key).map(|(_, g)| *g);
                    if current == generation {
                        self.items.insert(key, (bytes, current.unwrap_or(0) + 1));
                    }
                }
            }
            let value = self.items.get(&item_key).cloned();
            self.remember(isolate, &item_key, value, now);
            outcomes.push(WriteOutcome::Done);
        }
        (outcomes, latency)
    }

    fn truth(&self, item: &Item) -> Marks {
        match self.items.get(&item.kv_key()) {
            Some((bytes, generation)) => Marks::decode(bytes.clone(), Some(*generation)),
            None => Marks::default(),
        }
    }

    fn calls(&self) -> u64 {
        self.calls
    }

    fn refused(&self) -> u64 {
        self.overloaded
    }

    /// Straight from the object (the edge reads limit items past the isolate's cache).
    fn look(&mut self, _: usize, names: &[String], now: u64) -> (Vec<Option<Vec<u8>>>, u64) {
        let mut latency = 0;
        let found = names
            .iter()
            .map(|name| {
                latency = latency.max(self.call(self.shard(name), now).unwrap_or(self.config.rtt_ms));
                self.items.get(name).map(|(bytes, _)| bytes.clone())
            })
            .collect();
        (found, latency)
    }

    /// One call: the object appends and reads back without interleaving another.
    fn claim(&mut self, _: usize, name: &str, bytes: Vec<u8>, now: u64) -> (Option<Vec<u8>>, u64) {
        let Some(ms) = self.call(self.shard(name), now) else { return (None, self.config.rtt_ms) };
        let entry = self.items.entry(name.to_string()).or_default();
        entry.0.extend_from_slice(&bytes);
        entry.1 += 1;
        (Some(entry.0.clone()), ms)
    }

    fn append(&mut self, _: usize, name: &str, bytes: Vec<u8>, now: u64) -> u64 {
        let Some(ms) = self.call(self.shard(name), now) else { return self.config.rtt_ms };
        let entry = self.items.entry(name.to_string()).or_default();
        entry.0.extend_from_slice(&bytes);
        entry.1 += 1;
        ms
    }
}
