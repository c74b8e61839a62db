//! A client's policy in a request's flow: its limits are checked and counted before any key
//! is tried (and a refused request counts nothing), and its projects fence the keys.

use gemini_pool_core::{
    Answer, CoolingSettings, Finish, Flow, Gate, Limiter, Limits, Machine, Marks, Policy, ResetZone, Step, Tokens,
};
use std::collections::HashMap;

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

/// Runs one request of client `app` through `flow`; `store` holds the raw items it looks at
/// and appends to; the platform counter says `platform`.
fn run(mut flow: Flow<'_>, list: &str, store: &mut HashMap<String, Vec<u8>>, platform: Option<u64>) -> Run {
    let mut run = Run { finish: Finish::EmptyPool, sent: Vec::new(), rated: 0 };
    for _ in 0..1_000 {
        match flow.step(NOW) {
            Step::Fetch(_) => flow.fetched(0, leaked(list)),
            Step::Read(items) => flow.read(items.into_iter().map(|i| (i, Marks::default())).collect()),
            Step::Configure => flow.configured(&CoolingSettings::default()),
            Step::Send(keys) => {
                run.sent.push(keys[0].project.unwrap_or_default().to_string());
                flow.answered(vec![Answer::Served]);
            }
            Step::Record { read_back, .. } => {
                if read_back.is_empty() {
                    flow.written();
                } else {
                    flow.read(read_back.into_iter().map(|i| (i, Marks::default())).collect());
                }
            }
            Step::Look(names) => flow.looked(names.iter().map(|n| store.get(n).cloned()).collect()),
            Step::Append { item, bytes, .. } => store.entry(item).or_default().extend(bytes),
            Step::Rate(_) => {
                run.rated += 1;
                flow.rated(platform);
            }
            Step::Remember { .. } | Step::Log(_) | Step::Wait(_) => {}
            Step::Done(finish) => {
                run.finish = finish;
                return run;
            }
        }
    }
    panic!("the flow did not end");
}

/// The key list lives for the whole test.
fn leaked(list: &str) -> &'static [u8] {
    Box::leak(list.as_bytes().to_vec().into_boxed_slice())
}

fn gate(limits: Limits, limiter: Limiter) -> Gate {
    Gate::new(limits, limiter, "app", NOW, ZONE)
}

#[test]
fn rpd_admits_up_to_the_limit_then_refuses_and_counts_nothing_more() {
    let list = key("alpha", 1);
    let mut store = HashMap::new();
    let limits = Limits { rpd: Some(3), ..Limits::default() };
    for n in 0..5u64 {
        let done =
            run(Flow::new(1, Some("m"), n, 32).with_limits(gate(limits, Limiter::Store)), &list, &mut store, None);
        let admitted = n < 3;
        assert_eq!(done.finish == Finish::Served, admitted, "request {n}: {:?}", done.finish);
        assert_eq!(done.sent.len(), usize::from(admitted), "a refused request tries no key");
    }
    let item = String::from_utf8(store.get("limit/2026-01-15/app").cloned().expect("counted")).expect("text");
    let claims = item.lines().filter(|l| l.starts_with("r ")).count();
    let given_back = item.lines().filter(|l| l.starts_with("x ")).count();
    assert_eq!((claims, given_back), (5, 2), "every request claims; the refused give their places back");
}

#[test]
fn a_refusal_says_when_and_how_much_is_left() {
    let mut store = HashMap::new();
    store.insert(
        "limit/2026-01-15/app".to_string(),
        format!("r {} a\nr {} b\n", NOW / 60_000, NOW / 60_000).into_bytes(),
    );
    let mut flow =
        Flow::new(1, Some("m"), 1, 32).with_limits(gate(Limits { rpm: Some(2), ..Limits::default() }, Limiter::Store));
    let mut finish = Finish::EmptyPool;
    let mut appended = Vec::new();
    for _ in 0..10 {
        match flow.step(NOW) {
            Step::Look(names) => flow.looked(names.iter().map(|n| store.get(n).cloned()).collect()),
            Step::Append { item, bytes, .. } => {
                appended.push(String::from_utf8(bytes.clone()).expect("text"));
                store.entry(item).or_default().extend(bytes);
            }
            Step::Done(done) => {
                finish = done;
                break;
            }
            other => panic!("a refused request tries no key: {other:?}"),
        }
    }
    let Finish::Error(reply) = finish else { panic!("refused") };
    assert_eq!(appended.len(), 2, "a claim, then the place given back: {appended:?}");
    assert!(appended[0].starts_with("r ") && appended[1].starts_with("x "), "{appended:?}");
    assert_eq!((reply.status, reply.retry_after_secs, reply.code.as_str()), (429, Some(60), "client_rate_limited"));
    let headers = flow.rate_headers();
    assert!(headers.contains(&("x-ratelimit-remaining-requests", "0".to_string())), "{headers:?}");
    assert_eq!(flow.usage("app", NOW, &settings()), None, "a refused request counts nowhere");
}

#[test]
fn the_platform_counter_decides_rpm_without_touching_the_store() {
    let list = key("alpha", 1);
    let mut store = HashMap::new();
    let limits = Limits { rpm: Some(10), ..Limits::default() };
    let admitted =
        run(Flow::new(1, Some("m"), 1, 32).with_limits(gate(limits, Limiter::Platform)), &list, &mut store, Some(9));
    assert_eq!((admitted.finish, admitted.rated), (Finish::Served, 1));
    let refused =
        run(Flow::new(1, Some("m"), 2, 32).with_limits(gate(limits, Limiter::Platform)), &list, &mut store, Some(10));
    assert!(matches!(refused.finish, Finish::Error(ref r) if r.status == 429));
    assert!(store.is_empty(), "{store:?}");
}

#[test]
fn tokens_of_a_limited_client_are_appended_to_its_item_after_the_answer() {
    let list = key("alpha", 1);
    let mut store = HashMap::new();
    let limits = Limits { tokens_per_day: Some(100), ..Limits::default() };
    let mut flow = Flow::new(1, Some("m"), 1, 32).with_limits(gate(limits, Limiter::Store));
    let done;
    loop {
        match flow.step(NOW) {
            Step::Fetch(_) => flow.fetched(0, leaked(&list)),
            Step::Read(items) => flow.read(items.into_iter().map(|i| (i, Marks::default())).collect()),
            Step::Send(_) => flow.answered(vec![Answer::Served]),
            Step::Look(names) => flow.looked(names.iter().map(|n| store.get(n).cloned()).collect()),
            Step::Record { .. } => flow.written(),
            Step::Done(finish) => {
                done = finish;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(done, Finish::Served);
    let mut append = flow.usage("app", NOW, &settings()).expect("counted");
    append.tokens = Tokens { prompt: 60, completion: 50, thinking: 0, cached: 0 };
    let appends = append.appends();
    assert_eq!(appends.len(), 2);
    assert_eq!((appends[0].item.as_str(), appends[0].bytes.as_slice()), ("limit/2026-01-15/app", &b"t 110\n"[..]));
    assert!(appends[1].item.starts_with("usage/"), "then the usage counts");
    store.insert(appends[0].item.clone(), appends[0].bytes.clone());
    let over = run(Flow::new(1, Some("m"), 2, 32).with_limits(gate(limits, Limiter::Store)), &list, &mut store, None);
    assert!(matches!(over.finish, Finish::Error(ref r) if r.message.contains("tokens_per_day")));
}

#[test]
fn projects_keep_a_client_on_its_teams_keys() {
    let list = [key("alpha", 1), key("alpha", 2), key("beta", 1), key("beta", 2), key("gamma", 1)].join("\n");
    let policy = Policy::parse("app", r#"{"projects":["beta"]}"#).expect("reads");
    let mut store = HashMap::new();
    for seed in 0..40 {
        let flow = Flow::new(1, Some("m"), seed, 32).within(policy.projects.clone());
        let done = run(flow, &list, &mut store, None);
        assert_eq!(done.sent, ["beta"], "seed {seed}");
    }
    let nowhere = Policy::parse("app", r#"{"projects":["delta"]}"#).expect("reads");
    let done = run(Flow::new(1, Some("m"), 1, 32).within(nowhere.projects), &list, &mut store, None);
    assert!(done.sent.is_empty() && matches!(done.finish, Finish::Error(_)), "{:?}", done.finish);
}
