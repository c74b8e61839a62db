//! Choosing keys under cooling, retries, and what each answer changes.

use gemini_pool_core::attempts::{Attempts, Choice};
use gemini_pool_core::classify::{classify, Outcome, Verdict};
use gemini_pool_core::keys::{Bucket, KeyPool};
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, Strategy, WhenAllCooling};
use gemini_pool_core::state::{Change, Item, Mark, PoolState, Reason};

const NOW: u64 = 1_768_478_400_000;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("AIzaSyTEST{i:020}")).collect()
}

fn pool_of(list: &str) -> KeyPool<'_> {
    KeyPool::parse([list])
}

fn minute_429() -> Verdict {
    Verdict { status: Some(429), outcome: Outcome::MinuteQuota { retry_delay_ms: Some(30_000) }, detail: String::new() }
}

fn mark(until_ms: u64, reason: Reason, dead: bool) -> Mark {
    Mark { until_ms, reason, dead, strikes: 0, since_ms: NOW }
}

fn first_choice(pool: &KeyPool<'_>, state: &PoolState, settings: &RequestSettings, seed: u64) -> Choice {
    Attempts::new(pool, state.clone(), Some("m".into()), settings, seed).next(NOW)
}

fn spread(strategy: Strategy) -> Vec<u32> {
    let list = keys(10).join("\n");
    let pool = pool_of(&list);
    let settings = RequestSettings { strategy, ..RequestSettings::default() };
    let mut counts = vec![0u32; 10];
    for request in 0..10_000u64 {
        // Each request is a fresh instance with fresh entropy.
        match first_choice(&pool, &PoolState::default(), &settings, request.wrapping_mul(0x9E37_79B9) ^ 0xABCD) {
            Choice::Try(i) => counts[i] += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    counts
}

#[test]
fn ten_thousand_choices_over_ten_keys_are_even() {
    for strategy in [Strategy::RoundRobin, Strategy::Random] {
        let counts = spread(strategy);
        let (max, min) = (*counts.iter().max().unwrap_or(&0), *counts.iter().min().unwrap_or(&0));
        assert!(min > 0 && f64::from(max) / f64::from(min) <= 1.2, "{strategy:?}: {counts:?}");
    }
}

#[test]
fn retries_never_repeat_a_key_and_respect_the_budget() {
    let list = keys(5).join("\n");
    let pool = pool_of(&list);
    let settings = RequestSettings { max_attempts: 4, ..RequestSettings::default() };
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &settings, 1);
    let cooling = CoolingSettings::default();
    let mut seen = Vec::new();
    while let Choice::Try(i) = attempts.next(NOW) {
        assert!(!seen.contains(&i));
        seen.push(i);
        let upstream_trouble =
            classify(503, br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#);
        assert!(attempts.failed(i, &upstream_trouble, &cooling, NOW));
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(attempts.next(NOW), Choice::Exhausted);
    // 503s bench nobody.
    assert!(attempts.changes().is_empty());
}

#[test]
fn round_robin_retries_walk_in_pool_order() {
    let list = keys(6).join("\n");
    let pool = pool_of(&list);
    let settings = RequestSettings { max_attempts: 3, ..RequestSettings::default() };
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &settings, 99);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    attempts.failed(first, &minute_429(), &CoolingSettings::default(), NOW);
    assert_eq!(attempts.next(NOW), Choice::Try((first + 1) % 6));
}

#[test]
fn quota_verdicts_move_on_without_spending_the_budget() {
    let list = keys(5).join("\n");
    let pool = pool_of(&list);
    let settings = RequestSettings { max_attempts: 1, ..RequestSettings::default() };
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &settings, 11);
    let mut tried = 0;
    // Four keys answer with their own quota 429: the request still reaches the fifth.
    while let Choice::Try(i) = attempts.next(NOW) {
        tried += 1;
        if tried == 5 {
            attempts.succeeded(i);
            break;
        }
        assert!(attempts.failed(i, &minute_429(), &CoolingSettings::default(), NOW));
    }
    assert_eq!(tried, 5);
    // A 503 spends the budget of one.
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &settings, 11);
    let Choice::Try(i) = attempts.next(NOW) else { panic!("no key") };
    let trouble = classify(503, b"");
    attempts.failed(i, &trouble, &CoolingSettings::default(), NOW);
    assert_eq!(attempts.next(NOW), Choice::Exhausted);
}

#[test]
fn the_budget_never_exceeds_the_pool() {
    let list = keys(2).join("\n");
    let pool = pool_of(&list);
    let settings = RequestSettings { max_attempts: 10, ..RequestSettings::default() };
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &settings, 3);
    let mut n = 0;
    while let Choice::Try(i) = attempts.next(NOW) {
        attempts.failed(i, &minute_429(), &CoolingSettings::default(), NOW);
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn cooling_keys_are_skipped_for_their_model_only() {
    let list = keys(3).join("\n");
    let pool = pool_of(&list);
    let mut state = PoolState::default();
    for i in [0, 2] {
        let fp = pool.get(i).map(|k| k.fingerprint()).expect("key");
        state.model.set(Bucket::Key(fp).to_string(), mark(NOW + 30_000, Reason::PerMinuteQuota, false));
    }
    for seed in 0..50 {
        assert_eq!(first_choice(&pool, &state, &RequestSettings::default(), seed), Choice::Try(1));
    }
    // The same keys serve another model: its item has no marks.
    let other = PoolState { keys: state.keys.clone(), model: Default::default() };
    let picks: std::collections::HashSet<_> =
        (0..50).map(|s| first_choice(&pool, &other, &RequestSettings::default(), s)).collect();
    assert_eq!(picks.len(), 3);
}

#[test]
fn a_per_minute_verdict_cools_the_whole_project() {
    let list = "team:AIzaSyAAAAAAAAAAAAAAA1\nteam:AIzaSyBBBBBBBBBBBBBBB2\nAIzaSyCCCCCCCCCCCCCCC3";
    let pool = pool_of(list);
    let settings = RequestSettings { strategy: Strategy::Random, ..RequestSettings::default() };
    for seed in 0..20 {
        let mut attempts = Attempts::new(&pool, PoolState::default(), Some("gemini-2.5-flash".into()), &settings, seed);
        let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
        if first == 2 {
            continue;
        }
        attempts.failed(first, &minute_429(), &CoolingSettings::default(), NOW);
        let Some(Change::Set { item, name, mark }) = attempts.changes().first() else { panic!("no change") };
        assert_eq!((item, name.as_str()), (&Item::Model("gemini-2.5-flash".into()), "p:team"));
        assert_eq!((mark.reason, mark.dead), (Reason::PerMinuteQuota, false));
        assert!(mark.until_ms >= NOW + 30_000 && mark.until_ms <= NOW + 31_000);
        // The other key of the project is skipped: only the unrelated key is left.
        assert_eq!(attempts.next(NOW), Choice::Try(2));
    }
}

#[test]
fn all_cooling_answers_with_the_soonest_recovery() {
    let list = keys(3).join("\n");
    let pool = pool_of(&list);
    let mut state = PoolState::default();
    for (i, secs) in [(0, 50), (1, 20), (2, 90)] {
        let fp = pool.get(i).map(|k| k.fingerprint()).expect("key");
        state.model.set(Bucket::Key(fp).to_string(), mark(NOW + secs * 1000, Reason::PerMinuteQuota, false));
    }
    assert_eq!(
        first_choice(&pool, &state, &RequestSettings::default(), 5),
        Choice::AllCooling { retry_after_ms: 20_000 }
    );
    let shortest = RequestSettings { when_all_cooling: WhenAllCooling::ShortestCooldown, ..RequestSettings::default() };
    assert_eq!(first_choice(&pool, &state, &shortest, 5), Choice::Try(1));
    // Within the jitter of its end, a cooldown does not make the client wait.
    let later =
        Attempts::new(&pool, state.clone(), Some("m".into()), &RequestSettings::default(), 5).next(NOW + 19_500);
    assert_eq!(later, Choice::Try(1));
}

#[test]
fn all_dead_and_probation() {
    let list = keys(2).join("\n");
    let pool = pool_of(&list);
    let mut state = PoolState::default();
    for i in 0..2 {
        let fp = pool.get(i).map(|k| k.fingerprint()).expect("key").to_string();
        state.keys.set(fp, mark(NOW + 1000 * (i as u64 + 1), Reason::KeyInvalid, true));
    }
    assert_eq!(first_choice(&pool, &state, &RequestSettings::default(), 1), Choice::AllDead);
    // After key 0's probation time, it gets one request; a success revives it.
    let mut attempts = Attempts::new(&pool, state, Some("m".into()), &RequestSettings::default(), 1);
    assert_eq!(attempts.next(NOW + 1000), Choice::Try(0));
    attempts.succeeded(0);
    let fp0 = pool.get(0).map(|k| k.fingerprint()).expect("key").to_string();
    assert_eq!(attempts.changes(), &[Change::Clear { item: Item::Keys, name: fp0 }]);
}

#[test]
fn a_dead_verdict_marks_the_key_and_moves_on() {
    let list = keys(2).join("\n");
    let pool = pool_of(&list);
    let mut attempts = Attempts::new(&pool, PoolState::default(), Some("m".into()), &RequestSettings::default(), 4);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    let dead = classify(400, br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#);
    assert!(attempts.failed(first, &dead, &CoolingSettings::default(), NOW));
    assert_eq!(attempts.next(NOW), Choice::Try(1 - first));
    let fp = pool.get(first).map(|k| k.fingerprint()).expect("key").to_string();
    let set = attempts.changes().first().cloned();
    assert!(matches!(set, Some(Change::Set { item: Item::Keys, ref name, ref mark }) if *name == fp && mark.dead));
}

#[test]
fn repeated_bare_429s_grow() {
    let list = keys(1).join("\n");
    let pool = pool_of(&list);
    let throttled = classify(429, br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#);
    let mut state = PoolState::default();
    let mut lengths = Vec::new();
    let mut now = NOW;
    for _ in 0..3 {
        let mut attempts = Attempts::new(&pool, state.clone(), Some("m".into()), &RequestSettings::default(), 1);
        let Choice::Try(i) = attempts.next(now) else { panic!("no key at {now}") };
        attempts.failed(i, &throttled, &CoolingSettings::default(), now);
        let (next_state, changes) = attempts.into_parts();
        let Some(Change::Set { mark, .. }) = changes.first() else { panic!("no change") };
        lengths.push(mark.until_ms - now);
        now = mark.until_ms;
        state = next_state;
    }
    assert_eq!(lengths, [5_000, 10_000, 20_000]);
}

#[test]
fn ninety_percent_cooling_still_picks_uniformly() {
    let list = keys(500).join("\n");
    let pool = pool_of(&list);
    let mut state = PoolState::default();
    for i in 0..450 {
        let fp = pool.get(i).map(|k| k.fingerprint()).expect("key");
        state.model.set(Bucket::Key(fp).to_string(), mark(NOW + 60_000, Reason::PerMinuteQuota, false));
    }
    let mut counts = vec![0u32; 500];
    for seed in 0..10_000u64 {
        match first_choice(&pool, &state, &RequestSettings::default(), seed) {
            Choice::Try(i) => {
                assert!(i >= 450);
                counts[i] += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    let ready = &counts[450..];
    assert!(ready.iter().all(|&c| c > 130 && c < 270), "{:?}", (ready.iter().min(), ready.iter().max()));
}
