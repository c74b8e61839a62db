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
        verdict_entries: true,
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
        verdict_entries: true,
    };
    let before = Scenario {
        name: "burst, the design before: state read once, verdicts written at the end",
        read_once: true,
        verdict_entries: false,
        ..burst.clone()
    };
    // The e2e burst (tests/e2e/bursts.py) as Viceroy runs it: the Gemini simulator answers
    // in about a millisecond, so the whole burst is in flight before any verdict is stored.
    let fast = Scenario {
        name: "burst as in Viceroy: 60 clients × 5, Google answering in 2 ms",
        per_client: 5,
        google: GoogleConfig { rpm: 3, served_ms: 2, refused_ms: 2, ..GoogleConfig::default() },
        ..burst.clone()
    };
    vec![
        burst,
        fast,
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

/// A pool relearning a day's refusals at once (a wrong `daily_reset_zone`, Google resetting
/// late): 2,000 one-key projects over two key lists, 1,800 of them spent for the day, 200
/// requests/s over 4 POPs — on a strict store, and with inserts throttled at 1/s per item (the
/// part items then grow long: compactions are refused too). What the table shows is the CPU
/// of the dearest request against the median's.
pub fn relearning_scenarios(size: Size) -> Vec<Scenario> {
    let quick = size == Size::Short;
    let base = Scenario {
        name: "",
        keys: 2_000,
        projects: 2_000,
        parts: 2,
        rate_per_sec: 200.0,
        duration_ms: if quick { 3_000 } else { 10_000 },
        bursts: Vec::new(),
        clients: 0,
        per_client: 0,
        read_once: false,
        pops: 4,
        google: GoogleConfig { rpm: 1_000, exhausted: 1_800, projects: 2_000, ..GoogleConfig::default() },
        store: StoreModel::Kv(KvConfig::default()),
        limits: None,
        seed: 5,
        verdict_entries: true,
    };
    let throttled = KvConfig { staleness_ms: 300, inserts_per_sec: Some((1.0, 1.0)), ..KvConfig::default() };
    let block = GoogleConfig { in_one_block: true, ..base.google.clone() };
    vec![
        Scenario { name: "relearning: 1,800 of 2,000 keys refused per day, strict KV", ..base.clone() },
        Scenario {
            name: "relearning, 300 ms stale + 1 insert/s",
            store: StoreModel::Kv(throttled.clone()),
            ..base.clone()
        },
        Scenario {
            name: "relearning, 300 ms stale + 1 insert/s, the refused keys in one block",
            store: StoreModel::Kv(throttled.clone()),
            google: block.clone(),
            ..base.clone()
        },
        Scenario {
            name: "relearning, 300 ms stale + 1 insert/s, one block, items only (the design before)",
            store: StoreModel::Kv(throttled),
            google: block,
            verdict_entries: false,
            ..base
        },
    ]
}

/// A busy limited client on a throttled store: 20 requests/s for a minute (20 s in the short
/// run), `rpm` 600 (200), `rpd` 5,000, over 4 POPs, each request claiming its place in the
/// client's one limit item: on a store without an insert limit, and on one that takes an insert
/// a second per item.
pub fn busy_client(size: Size) -> Vec<Scenario> {
    let quick = size == Size::Short;
    let base = limit_scenarios(size).swap_remove(0);
    let throttled = KvConfig { staleness_ms: 300, inserts_per_sec: Some((1.0, 1.0)), ..KvConfig::default() };
    let busy = Scenario {
        name: "busy client: 20 req/s for a minute, rpm 600, rpd 5,000, 4 POPs, KV 300 ms stale + 1 insert/s",
        rate_per_sec: 20.0,
        duration_ms: if quick { 20_000 } else { 60_000 },
        clients: 0,
        per_client: 0,
        store: StoreModel::Kv(throttled.clone()),
        limits: Some(Limits { rpm: Some(if quick { 200 } else { 600 }), rpd: Some(5_000), ..Limits::default() }),
        ..base
    };
    let unthrottled = StoreModel::Kv(KvConfig { staleness_ms: 300, ..KvConfig::default() });
    let name = "busy client, KV 300 ms stale, no insert limit";
    let troubled = KvConfig { local_cas: true, loss: 0.01, ..throttled.clone() };
    let over_rpd = Scenario {
        name: "busy client over its rpd: 20 req/s for two minutes, rpm 600, rpd 900, KV 300 ms stale + 1 insert/s",
        duration_ms: 120_000,
        limits: Some(Limits { rpm: Some(600), rpd: Some(900), ..Limits::default() }),
        ..busy.clone()
    };
    vec![
        Scenario { name, store: unthrottled, ..busy.clone() },
        Scenario {
            name: "busy client, KV 300 ms stale + 1 insert/s + CAS at the POP + 1 % lost writes",
            store: StoreModel::Kv(troubled),
            ..busy.clone()
        },
        over_rpd,
        Scenario {
            name: "busy client, Durable Object",
            store: limit_scenarios(size).swap_remove(3).store,
            verdict_entries: false,
            ..busy.clone()
        },
        busy,
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
        verdict_entries: true,
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
            verdict_entries: false,
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
            verdict_entries: false,
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
