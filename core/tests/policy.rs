//! A client's policy in a request's flow: its limits are checked and counted before any key
//! is tried (and a refused request counts nothing), and its projects fence the keys.

use gemini_pool_core::testing::{Rig, Seen, Store};
use gemini_pool_core::{
    Answer, Finish, Flow, Gate, Gated, Limiter, Limits, Listed, Listing, Policy, ResetZone, Tokens,
};

/// Usage counted, in UTC, kept 30 days.
fn settings() -> gemini_pool_core::RequestSettings {
    gemini_pool_core::RequestSettings {
        reset_zone: gemini_pool_core::ResetZone::Fixed(0),
        history_days: 30,
        ..Default::default()
    }
}

const NOW: u64 = 1_768_478_400_000; // 2026-01-15 12:00 UTC
const ZONE: ResetZone = ResetZone::Fixed(0);

fn key(project: &str, n: u32) -> String {
    format!("{project}:AIzaSy{n:0>33}")
}

struct Run {
    finish: Finish,
    sent: Vec<String>,
    rated: usize,
}

/// Runs one request of client `app` through `flow` behind `gate`; `store` holds the items; the
/// platform counter says `platform`.
fn run(flow: Flow<'_>, gate: Option<Gate>, list: &str, store: &mut Store, platform: Option<u64>) -> Run {
    let mut rig = Rig::new(&[list.as_bytes()], NOW);
    rig.store = std::mem::take(store);
    rig.platform = platform;
    // Each request's own claim id.
    static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut gated = Gated::new(flow, gate, IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut sent = Vec::new();
    let finish = rig.drive(&mut gated, |key| {
        sent.push(key.project.unwrap_or_default().to_string());
        Answer::Served
    });
    *store = std::mem::take(&mut rig.store);
    let rated = rig.seen.iter().filter(|s| matches!(s, Seen::Rate(_))).count();
    Run { finish, sent, rated }
}

fn gate(limits: Limits, limiter: Limiter) -> Option<Gate> {
    Some(Gate::new(limits, limiter, "app", NOW, ZONE))
}

#[test]
fn rpd_admits_up_to_the_limit_then_refuses_and_counts_nothing_more() {
    let list = key("alpha", 1);
    let mut store = Store::default();
    let limits = Limits { rpd: Some(3), ..Limits::default() };
    for n in 0..5u64 {
        let done = run(Flow::new(1, Some("m"), n, 32), gate(limits, Limiter::Store), &list, &mut store, None);
        let admitted = n < 3;
        assert_eq!(done.finish == Finish::Served, admitted, "request {n}: {:?}", done.finish);
        assert_eq!(done.sent.len(), usize::from(admitted), "a refused request tries no key");
    }
    let item = store.text("limit/2026-01-15/app");
    let claims = item.lines().filter(|l| l.starts_with("r ")).count();
    let given_back = item.lines().filter(|l| l.starts_with("x ")).count();
    assert_eq!((claims, given_back), (5, 2), "every request claims; the refused give their places back");
}

#[test]
fn a_refusal_says_when_and_how_much_is_left() {
    let mut rig = Rig::new(&[], NOW);
    let minute = NOW / 60_000;
    rig.store.append("limit/2026-01-15/app", format!("r {minute} a\nr {minute} b\n").as_bytes());
    let flow = Flow::new(1, Some("m"), 1, 32);
    let mut gated = Gated::new(flow, gate(Limits { rpm: Some(2), ..Limits::default() }, Limiter::Store), 7);
    let finish = rig.drive(&mut gated, |_| panic!("a refused request tries no key"));
    let Finish::Error(reply) = finish else { panic!("refused") };
    assert!(
        matches!(rig.seen[..], [Seen::Claim(_), Seen::Append(_)]),
        "a claim, then its place given back: {:?}",
        rig.seen
    );
    assert!(rig.store.text("limit/2026-01-15/app").ends_with(&format!("r {minute} 7\nx 7\n")));
    assert_eq!((reply.status, reply.retry_after_secs, reply.code.as_str()), (429, Some(60), "client_rate_limited"));
    let headers = gated.rate_headers();
    assert!(headers.contains(&("x-ratelimit-remaining-requests", "0".to_string())), "{headers:?}");
    assert_eq!(gated.usage("app", NOW, &settings()), None, "a refused request counts nowhere");
}

#[test]
fn the_platform_counter_decides_rpm_without_touching_the_store() {
    let list = key("alpha", 1);
    let mut store = Store::default();
    let limits = Limits { rpm: Some(10), ..Limits::default() };
    let admitted = run(Flow::new(1, Some("m"), 1, 32), gate(limits, Limiter::Platform), &list, &mut store, Some(9));
    assert_eq!((admitted.finish, admitted.rated), (Finish::Served, 1));
    let refused = run(Flow::new(1, Some("m"), 2, 32), gate(limits, Limiter::Platform), &list, &mut store, Some(10));
    assert!(matches!(refused.finish, Finish::Error(ref r) if r.status == 429));
    assert!(store.items.is_empty(), "{:?}", store.items);
}

#[test]
fn tokens_of_a_limited_client_are_appended_to_its_item_after_the_answer() {
    let list = key("alpha", 1);
    let limits = Limits { tokens_per_day: Some(100), ..Limits::default() };
    let mut rig = Rig::new(&[list.as_bytes()], NOW);
    let mut gated = Gated::new(Flow::new(1, Some("m"), 1, 32), gate(limits, Limiter::Store), 7);
    assert_eq!(rig.drive(&mut gated, |_| Answer::Served), Finish::Served);
    let mut append = gated.usage("app", NOW, &settings()).expect("counted");
    append.tokens = Tokens { prompt: 60, completion: 50, thinking: 0, cached: 0 };
    let appends = append.appends();
    assert_eq!(appends.len(), 2);
    assert_eq!((appends[0].item.as_str(), appends[0].bytes.as_slice()), ("limit/2026-01-15/app", &b"t 110\n"[..]));
    assert!(appends[1].item.starts_with("usage/"), "then the usage counts");
    let mut store = std::mem::take(&mut rig.store);
    store.count(&appends[0]);
    let over = run(Flow::new(1, Some("m"), 2, 32), gate(limits, Limiter::Store), &list, &mut store, None);
    assert!(matches!(over.finish, Finish::Error(ref r) if r.message.contains("tokens_per_day")));
}

#[test]
fn a_list_passes_the_same_gate() {
    use gemini_pool_core::{Caller, Kind};
    let list = key("alpha", 1);
    let mut rig = Rig::new(&[list.as_bytes()], NOW);
    let limits = Limits { rpd: Some(1), ..Limits::default() };
    let caller = Caller { label: "app".into(), admin: false };
    let mut first = Gated::new(Listing::new(Kind::File, &caller, 1, NOW), gate(limits, Limiter::Store), 1);
    assert!(matches!(rig.drive(&mut first, |_| Answer::Page(b"{}".to_vec())), Listed::Answer(_)));
    let mut second = Gated::new(Listing::new(Kind::File, &caller, 1, NOW), gate(limits, Limiter::Store), 2);
    let Listed::Error(reply) = rig.drive(&mut second, |_| panic!("a refused list asks Google nothing")) else {
        panic!("refused")
    };
    assert_eq!((reply.status, reply.code.as_str()), (429, "client_rate_limited"));
}

#[test]
fn a_client_refused_all_day_keeps_a_short_limit_item() {
    // 10,000 requests, 100 a minute, against rpm 5 and rpd 20: nearly all refused. The claimer
    // compacts the item whenever that removes enough, so it stays short however long the day.
    let list = key("alpha", 1);
    let limits = Limits { rpm: Some(5), rpd: Some(20), ..Limits::default() };
    let mut store = Store::default();
    let (mut longest, mut admitted) = (0, 0);
    for n in 0..10_000u64 {
        let now = NOW + n * 600;
        let mut rig = Rig::new(&[list.as_bytes()], now);
        rig.store = std::mem::take(&mut store);
        let gate = Some(Gate::new(limits, Limiter::Store, "app", now, ZONE));
        let mut gated = Gated::new(Flow::new(1, Some("m"), n, 32), gate, n);
        admitted += usize::from(rig.drive(&mut gated, |_| Answer::Served) == Finish::Served);
        store = std::mem::take(&mut rig.store);
        longest = longest.max(store.get("limit/2026-01-15/app").map_or(0, <[u8]>::len));
    }
    assert_eq!(admitted, 20, "the day's limit, exactly");
    assert!(longest < 4_000, "the item grew to {longest} bytes");
}

#[test]
fn projects_keep_a_client_on_its_teams_keys() {
    let list = [key("alpha", 1), key("alpha", 2), key("beta", 1), key("beta", 2), key("gamma", 1)].join("\n");
    let policy = Policy::parse("app", r#"{"projects":["beta"]}"#).expect("reads");
    let mut store = Store::default();
    for seed in 0..40 {
        let flow = Flow::new(1, Some("m"), seed, 32).within(policy.projects.clone());
        let done = run(flow, None, &list, &mut store, None);
        assert_eq!(done.sent, ["beta"], "seed {seed}");
    }
    let nowhere = Policy::parse("app", r#"{"projects":["delta"]}"#).expect("reads");
    let done = run(Flow::new(1, Some("m"), 1, 32).within(nowhere.projects), None, &list, &mut store, None);
    assert!(done.sent.is_empty() && matches!(done.finish, Finish::Error(_)), "{:?}", done.finish);
}

/// A gate counting in entries of their own, as on Fastly's KV.
fn entries_gate(limits: Limits, now: u64) -> Option<Gate> {
    Some(Gate::new(limits, Limiter::Store, "app", now, ZONE).entries(true))
}

#[test]
fn a_client_counted_in_entries_gets_its_limits_exactly_and_a_refusal_writes_nothing() {
    // 3,000 requests, 100 a minute, against rpm 5 and rpd 20, one after another.
    let list = key("alpha", 1);
    let limits = Limits { rpm: Some(5), rpd: Some(20), ..Limits::default() };
    let mut store = Store::default();
    let mut per_minute = std::collections::BTreeMap::<u64, usize>::new();
    for n in 0..3_000u64 {
        let now = NOW + n * 600;
        let mut rig = Rig::new(&[list.as_bytes()], now);
        rig.store = std::mem::take(&mut store);
        let mut gated = Gated::new(Flow::new(1, Some("m"), n, 32), entries_gate(limits, now), n);
        if rig.drive(&mut gated, |_| Answer::Served) == Finish::Served {
            *per_minute.entry(now / 60_000).or_default() += 1;
        }
        store = std::mem::take(&mut rig.store);
    }
    assert_eq!(per_minute.values().sum::<usize>(), 20, "the day's limit, exactly: {per_minute:?}");
    assert!(per_minute.values().all(|&n| n == 5), "rpm, exactly: {per_minute:?}");
    let entries = store.items.keys().filter(|name| name.starts_with("limit/2026-01-15/app/")).count();
    assert_eq!(entries, 20, "an entry per admitted request, none for a refused one");
    let head = store.text("limit/2026-01-15/app");
    assert!(head.starts_with("@ ") && head.ends_with(" 20 0\n"), "the head counts the day: {head:?}");
}

#[test]
fn requests_arriving_together_each_hold_their_own_slot() {
    // 12 requests step by step in turn: they list the same minute and reach for the same
    // slots; the store keeps each slot for one, the others try again.
    let list = key("alpha", 1);
    for seed in 0..20u64 {
        let limits = Limits { rpm: Some(5), ..Limits::default() };
        let mut rig = Rig::new(&[list.as_bytes()], NOW);
        let mut machines: Vec<_> = (0..12u64)
            .map(|n| Gated::new(Flow::new(1, Some("m"), n, 32), entries_gate(limits, NOW), seed * 100 + n))
            .collect();
        let mut ends: Vec<Option<Finish>> = vec![None; machines.len()];
        let mut google = |_: &gemini_pool_core::ApiKey<'_>| Answer::Served;
        while ends.iter().any(Option::is_none) {
            for (machine, end) in machines.iter_mut().zip(ends.iter_mut()).filter(|(_, end)| end.is_none()) {
                *end = rig.turn(machine, &mut google);
            }
        }
        let admitted = ends.iter().filter(|end| **end == Some(Finish::Served)).count();
        assert_eq!(admitted, 5, "seed {seed}: {ends:?}");
        let slots = rig.store.items.keys().filter(|name| name.starts_with("limit/2026-01-15/app/")).count();
        assert_eq!(slots, 5, "seed {seed}");
    }
}

#[test]
fn tokens_counted_in_entries_reach_the_limit() {
    let list = key("alpha", 1);
    let limits = Limits { tokens_per_day: Some(100), ..Limits::default() };
    let mut rig = Rig::new(&[list.as_bytes()], NOW);
    let mut gated = Gated::new(Flow::new(1, Some("m"), 1, 32), entries_gate(limits, NOW), 7);
    assert_eq!(rig.drive(&mut gated, |_| Answer::Served), Finish::Served);
    let mut append = gated.usage("app", NOW, &settings()).expect("counted");
    append.tokens = Tokens { prompt: 60, completion: 50, thinking: 0, cached: 0 };
    let tokens = &append.appends()[0];
    let minute = NOW / 60_000;
    assert_eq!(tokens.item, format!("limit/2026-01-15/app/{minute}/t110.7"), "an entry of its own");
    assert_eq!(tokens.compact, None);
    let mut store = std::mem::take(&mut rig.store);
    store.count(tokens);
    let mut rig = Rig::new(&[list.as_bytes()], NOW + 1_000);
    rig.store = store;
    let mut over = Gated::new(Flow::new(1, Some("m"), 2, 32), entries_gate(limits, NOW + 1_000), 8);
    let finish = rig.drive(&mut over, |_| panic!("a refused request tries no key"));
    assert!(matches!(finish, Finish::Error(ref r) if r.message.contains("tokens_per_day")), "{finish:?}");
}

#[test]
fn an_rpm_the_platform_counts_touches_no_entry_either() {
    // The gate is made before knob `rate_limiter` is read; once it says `platform`, a client with
    // only `rpm` costs no store operation, entries or not.
    let list = key("alpha", 1);
    let limits = Limits { rpm: Some(10), ..Limits::default() };
    let mut rig = Rig::new(&[list.as_bytes()], NOW);
    rig.platform = Some(3);
    rig.knobs.insert("rate_limiter", "platform".into());
    let mut gated = Gated::new(Flow::new(1, Some("m"), 1, 32), entries_gate(limits, NOW), 7).reading_limiter(true);
    assert_eq!(rig.drive(&mut gated, |_| Answer::Served), Finish::Served);
    assert!(rig.seen.iter().any(|s| matches!(s, Seen::Rate(_))), "{:?}", rig.seen);
    assert!(!rig.seen.iter().any(|s| matches!(s, Seen::List(_) | Seen::Look(_) | Seen::Remember(_))), "{:?}", rig.seen);
}
