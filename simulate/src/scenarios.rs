//! The named scenarios of `make simulate` and of the short runs in `make test`.

use crate::google::GoogleConfig;
use crate::kv::KvConfig;
use crate::object::ObjectConfig;
use crate::world::{run, Scenario, StoreModel};
use gemini_pool_core::Limits;

/// How big a run is: `make test`'s short seeded runs, or `make simulate`'s full ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Seconds: what `make test` runs, with asserted bounds.
    Short,
    /// Minutes: the table in docs/benchmarks.md.
    Full,
}

/// The scenarios of the issue: a 60-client burst at one POP (as the e2e burst test), a 429
/// storm over 20 POPs at 1,000 requests/s with 10,000 keys, and that storm with 300 ms stale
/// reads, with inserts throttled at 1/s per item, and with both.
pub fn scenarios(size: Size) -> Vec<Scenario> {
    let quick = size == Size::Short;
    let burst = Scenario {
        name: "burst: 1 POP, 60 clients × 12, 12 one-key projects at 3 rpm",
        keys: 12,
        projects: 12,
        parts: 1,
        rate_per_sec: 0.0,
        duration_ms: 60_000,
        bursts: Vec::new(),
        clients: 60,
        per_client: 12,
        read_once: false,
        pops: 1,
        google: GoogleConfig { rpm: 3, ..GoogleConfig::default() },
        store: StoreModel::Kv(KvConfig::default()),
        limits: None,
        seed: 1,
    };
    let storm_kv = |staleness_ms, inserts_per_sec| KvConfig { staleness_ms, inserts_per_sec, ..KvConfig::default() };
    let storm = |name, store| Scenario {
        name,
        keys: if quick { 2_000 } else { 10_000 },
        projects: if quick { 200 } else { 1_000 },
        parts: 8,
        rate_per_sec: if quick { 300.0 } else { 1_000.0 },
        duration_ms: if quick { 2_000 } else { 5_000 },
        bursts: vec![(1_000, 500)],
        clients: 0,
        per_client: 0,
        read_once: false,
        pops: 20,
        google: GoogleConfig { rpm: 1, window_ms: 60_000, ..GoogleConfig::default() },
        store,
        limits: None,
        seed: 2,
    };
    let before = Scenario {
        name: "burst, the design before: state read once, verdicts written at the end",
        read_once: true,
        ..burst.clone()
    };
    vec![
        burst,
        before,
        storm("storm: 20 POPs, 1,000 req/s, 10,000 keys, strict KV", StoreModel::Kv(storm_kv(0, None))),
        storm("storm, 300 ms stale reads", StoreModel::Kv(storm_kv(300, None))),
        storm("storm, inserts throttled at 1/s per item", StoreModel::Kv(storm_kv(0, Some((1.0, 1.0))))),
        storm("storm, 300 ms stale + 1 insert/s", StoreModel::Kv(storm_kv(300, Some((1.0, 1.0))))),
        storm(
            "storm, 300 ms stale + 1 insert/s + CAS at the POP + 1 % lost",
            StoreModel::Kv(KvConfig { local_cas: true, loss: 0.01, ..storm_kv(300, Some((1.0, 1.0))) }),
        ),
    ]
}

/// A client's daily limit under 30 concurrent clients sending back to back, over 4 POPs: how far
/// past `rpd` they get on Fastly's KV (strict, and with 300 ms stale reads between POPs) and
/// on a Durable Object.
pub fn limit_scenarios(size: Size) -> Vec<Scenario> {
    let quick = size == Size::Short;
    let rpd = if quick { 100 } else { 300 };
    let base = Scenario {
        name: "",
        keys: 40,
        projects: 40,
        parts: 1,
        rate_per_sec: 0.0,
        duration_ms: 60_000,
        bursts: Vec::new(),
        clients: 30,
        per_client: if quick { 8 } else { 20 },
        read_once: false,
        pops: 4,
        google: GoogleConfig { rpm: 1_000, ..GoogleConfig::default() },
        store: StoreModel::Kv(KvConfig::default()),
        limits: Some(Limits { rpd: Some(rpd), ..Limits::default() }),
        seed: 4,
    };
    let kv = |staleness_ms| StoreModel::Kv(KvConfig { staleness_ms, ..KvConfig::default() });
    vec![
        Scenario { name: "rpd, 30 clients over 4 POPs, strict KV", store: kv(0), ..base.clone() },
        Scenario { name: "rpd, 30 clients over 4 POPs, KV 300 ms stale", store: kv(300), ..base.clone() },
        Scenario {
            name: "rpd, 30 clients over 4 POPs, KV 300 ms stale, a POP's own writes unseen",
            store: StoreModel::Kv(KvConfig { staleness_ms: 300, read_your_writes: false, ..KvConfig::default() }),
            ..base.clone()
        },
        Scenario {
            name: "rpd, 30 clients, Durable Object",
            store: StoreModel::Objects(ObjectConfig { shards: 16, cache_ms: 1_000, ..ObjectConfig::default() }),
            ..base
        },
    ]
}

/// The Workers state designs compared: one object without a cache (the design before), and
/// the one in use on a paid plan (16 objects, a 1 s read cache in each isolate).
pub fn workers_designs() -> [(&'static str, ObjectConfig); 2] {
    [
        ("one object, no cache", ObjectConfig { shards: 1, cache_ms: 0, ..ObjectConfig::default() }),
        ("16 objects, 1 s isolate read cache", ObjectConfig { shards: 16, cache_ms: 1_000, ..ObjectConfig::default() }),
    ]
}

/// The highest steady rate (requests/s) at which under 1 % of the state calls fail
/// `overloaded` (doubling, then bisecting); `u64::MAX` past 100,000.
pub fn ceiling(config: &ObjectConfig, size: Size) -> u64 {
    let quick = size == Size::Short;
    let overloaded = |rate: f64| {
        let scenario = Scenario {
            name: "ceiling",
            keys: 2_000,
            projects: 200,
            parts: 4,
            rate_per_sec: rate,
            duration_ms: if quick { 1_000 } else { 3_000 },
            bursts: Vec::new(),
            clients: 0,
            per_client: 0,
            read_once: false,
            pops: 10,
            google: GoogleConfig { rpm: 1_000_000, ..GoogleConfig::default() },
            store: StoreModel::Objects(config.clone()),
            limits: None,
            seed: 3,
        };
        let report = run(&scenario);
        report.refused_writes as f64 > report.store_calls as f64 * 0.01
    };
    let (mut low, mut high) = (100.0, 200.0);
    while !overloaded(high) && high < 100_000.0 {
        (low, high) = (high, high * 2.0);
    }
    for _ in 0..if quick { 4 } else { 7 } {
        let mid = (low + high) / 2.0;
        if overloaded(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    if !overloaded(high) {
        return u64::MAX; // past the search's end
    }
    low as u64
}
