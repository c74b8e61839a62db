//! Choosing keys under cooling, retries, and what each answer changes.

use gemini_pool_core::{
    classify, ApiKey, Attempts, Bucket, Change, Choice, CoolingSettings, Entry, Item, KeyPool, Mark, MarkName, Marks,
    Outcome, PartState, PoolState, Reason, RetrySettings, Strategy, Verdict, WhenAllCooling,
};
use std::collections::HashMap;

const NOW: u64 = 1_768_478_400_000;

fn keys(n: usize) -> String {
    (0..n).map(|i| format!("AIzaSyTEST{i:020}")).collect::<Vec<_>>().join("\n")
}

fn nth<'a>(pool: &KeyPool<'a>, i: usize) -> ApiKey<'a> {
    pool.iter().nth(i).expect("key")
}

fn index(pool: &KeyPool<'_>, key: &ApiKey<'_>) -> usize {
    pool.iter().position(|k| k.at == key.at).expect("in the pool")
}

/// A one-part pool state for model `m` with these items.
fn state(keys: Marks, model: Marks) -> PoolState {
    PoolState::single(PartState::new(keys, model), Some("m"))
}

fn empty() -> PoolState {
    state(Marks::default(), Marks::default())
}

fn pool_of(list: &str) -> KeyPool<'_> {
    KeyPool::new([list])
}

fn minute_429() -> Verdict {
    Verdict { status: Some(429), outcome: Outcome::MinuteQuota { retry_delay_ms: Some(30_000) }, detail: String::new() }
}

fn mark(until_ms: u64, reason: Reason, dead: bool) -> Entry {
    Entry::Set(Mark { until_ms, reason, dead, strikes: 0, since_ms: NOW })
}

/// A stored model item in which keys `i` cool until the given times.
fn cooling(pool: &KeyPool<'_>, marks: &[(usize, u64)]) -> PoolState {
    let mut model = Marks::default();
    for &(i, until) in marks {
        model.apply(MarkName::key(&nth(pool, i)), mark(until, Reason::PerMinuteQuota, false));
    }
    let (bytes, _) = model.compacted(NOW);
    state(Marks::default(), Marks::decode(bytes, Some(1)))
}

/// Attempts with the knobs past the first key already read.
fn configured<'a>(pool: KeyPool<'a>, state: PoolState, retry: &RetrySettings, seed: u64) -> Attempts<'a> {
    let mut attempts = Attempts::new(pool, state, seed);
    attempts.configure(retry);
    attempts
}

/// The failure knobs, with these retry knobs.
fn knobs(retry: &RetrySettings) -> CoolingSettings {
    CoolingSettings { retry: *retry, ..CoolingSettings::default() }
}

fn first_choice(list: &str, state: &PoolState, settings: &RetrySettings, seed: u64) -> Option<usize> {
    let pool = pool_of(list);
    match configured(pool_of(list), state.clone(), settings, seed).next(NOW) {
        Choice::Try(key) => Some(index(&pool, &key)),
        _ => None,
    }
}

fn spread(strategy: Strategy) -> Vec<u32> {
    let list = keys(10);
    let settings = RetrySettings { strategy, ..RetrySettings::default() };
    let mut counts = vec![0u32; 10];
    for request in 0..10_000u64 {
        // Each request is a fresh instance with fresh entropy.
        let seed = request.wrapping_mul(0x9E37_79B9) ^ 0xABCD;
        let i = first_choice(&list, &empty(), &settings, seed).expect("a key");
        counts[i] += 1;
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
    let list = keys(5);
    let settings = RetrySettings { max_attempts: 4, ..RetrySettings::default() };
    let mut attempts = configured(pool_of(&list), empty(), &settings, 1);
    let cooling = knobs(&settings);
    let mut seen = Vec::new();
    let trouble =
        classify(503, br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#);
    while let Choice::Try(key) = attempts.next(NOW) {
        assert!(!seen.contains(&key.at));
        seen.push(key.at);
        // 503s bench nobody.
        assert!(attempts.failed(&key, &trouble, &cooling, NOW).is_empty());
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

#[test]
fn round_robin_retries_walk_in_pool_order() {
    let list = keys(6);
    let pool = pool_of(&list);
    let settings = RetrySettings { max_attempts: 3, ..RetrySettings::default() };
    for seed in 0..20 {
        let mut attempts = configured(pool_of(&list), empty(), &settings, seed);
        let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
        attempts.failed(&first, &minute_429(), &knobs(&settings), NOW);
        let Choice::Try(second) = attempts.next(NOW) else { panic!("no key") };
        assert_eq!(index(&pool, &second), (index(&pool, &first) + 1) % 6);
    }
}

#[test]
fn quota_verdicts_move_on_without_spending_the_budget() {
    let list = keys(5);
    let settings = RetrySettings { max_attempts: 1, ..RetrySettings::default() };
    let cooling = knobs(&settings);
    let mut attempts = configured(pool_of(&list), empty(), &settings, 11);
    let mut tried = 0;
    // Four keys answer with their own quota 429: the request still reaches the fifth.
    while let Choice::Try(key) = attempts.next(NOW) {
        tried += 1;
        if tried == 5 {
            attempts.succeeded(&key, NOW);
            break;
        }
        assert!(!attempts.failed(&key, &minute_429(), &cooling, NOW).is_empty());
    }
    assert_eq!(tried, 5);
    // A 503 spends the budget of one.
    let mut attempts = configured(pool_of(&list), empty(), &settings, 11);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("no key") };
    attempts.failed(&key, &classify(503, b""), &cooling, NOW);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

#[test]
fn a_client_error_is_delivered_at_once() {
    let list = keys(3);
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 2);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("no key") };
    attempts.failed(&key, &classify(404, b""), &CoolingSettings::default(), NOW);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

const FOREIGN_FILE: &[u8] = br#"{"error":{"code":403,"message":"You do not have permission to access the File abc or it may not exist.","status":"PERMISSION_DENIED"}}"#;
const CALLER: &[u8] =
    br#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#;

/// Three projects of two keys each.
fn projects() -> String {
    (0..6).map(|i| format!("team{}:AIzaSyTEST{i:020}", i % 3)).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_403_about_what_the_request_names_is_delivered_after_one_other_project() {
    let list = projects();
    let cooling = CoolingSettings::default();
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 4);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    assert_eq!(attempts.failed(&first, &classify(403, FOREIGN_FILE), &cooling, NOW), vec![]);
    let Choice::Try(second) = attempts.next(NOW) else { panic!("one other project is asked") };
    assert_ne!(Bucket::of(&second), Bucket::of(&first), "never the same project");
    assert_eq!(attempts.failed(&second, &classify(403, FOREIGN_FILE), &cooling, NOW), vec![]);
    assert_eq!(attempts.next(NOW), Choice::Deliver, "two projects refused it: the request's own fault");
    assert_eq!(attempts.counted_model(), Some(gemini_pool_core::OTHER_MODEL));
}

#[test]
fn a_model_forbidden_for_one_project_is_recorded_once_another_serves() {
    let list = projects();
    let cooling = CoolingSettings::default();
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 5);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    assert_eq!(attempts.failed(&first, &classify(403, CALLER), &cooling, NOW), vec![], "held, not committed yet");
    let Choice::Try(second) = attempts.next(NOW) else { panic!("another project") };
    let changes = attempts.succeeded(&second, NOW);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].item.model.as_deref(), &changes[0].name), (Some("m"), &MarkName::of(Bucket::of(&first))));
    assert!(matches!(changes[0].entry, Entry::Set(Mark { reason: Reason::ModelForbidden, .. })));
    assert_eq!(attempts.counted_model(), Some("m"));
}

#[test]
fn a_one_project_pool_delivers_a_403_about_the_request_at_once() {
    let list = (0..4).map(|i| format!("solo:AIzaSyTEST{i:020}")).collect::<Vec<_>>().join("\n");
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 6);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("no key") };
    attempts.failed(&key, &classify(403, FOREIGN_FILE), &CoolingSettings::default(), NOW);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

#[test]
fn a_key_listed_twice_is_tried_once() {
    let list = format!("{}\n{}", keys(1), keys(1));
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 7);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("no key") };
    attempts.failed(&key, &classify(503, b""), &CoolingSettings::default(), NOW);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

#[test]
fn the_budget_never_exceeds_the_pool() {
    let list = keys(2);
    let settings = RetrySettings { max_attempts: 10, ..RetrySettings::default() };
    let mut attempts = configured(pool_of(&list), empty(), &settings, 3);
    let mut n = 0;
    while let Choice::Try(key) = attempts.next(NOW) {
        attempts.failed(&key, &minute_429(), &knobs(&settings), NOW);
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn cooling_keys_are_skipped_for_their_model_only() {
    let list = keys(3);
    let pool = pool_of(&list);
    let state = cooling(&pool, &[(0, NOW + 30_000), (2, NOW + 30_000)]);
    for seed in 0..50 {
        assert_eq!(first_choice(&list, &state, &RetrySettings::default(), seed), Some(1));
    }
    // The same keys serve another model: its item has no marks.
    let other = empty();
    let picks: std::collections::HashSet<_> =
        (0..50).map(|s| first_choice(&list, &other, &RetrySettings::default(), s)).collect();
    assert_eq!(picks.len(), 3);
}

#[test]
fn a_per_minute_verdict_cools_the_whole_project_whatever_its_name() {
    for project in ["team", "my team", "équipe", "a/b"] {
        let list =
            format!("{project}:AIzaSyAAAAAAAAAAAAAAAAAAAAAAAAA1\n{project}:AIzaSyBBBBBBBBBBBBBBBBBBBBBBBBB2\nAIzaSyCCCCCCCCCCCCCCCCCCCCCCCCC3");
        let pool = pool_of(&list);
        let settings = RetrySettings { strategy: Strategy::Random, ..RetrySettings::default() };
        let fresh = PoolState::single(PartState::default(), Some("gemini-3.5-flash"));
        for seed in 0..20 {
            let mut attempts = configured(pool_of(&list), fresh.clone(), &settings, seed);
            let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
            if index(&pool, &first) == 2 {
                continue;
            }
            let changes = attempts.failed(&first, &minute_429(), &knobs(&settings), NOW);
            let [Change { item, name, entry: Entry::Set(mark) }] = &changes[..] else { panic!("one change") };
            assert_eq!(item, &Item::model(0, "gemini-3.5-flash"));
            assert_eq!(name, &MarkName::of(Bucket::Project(project)));
            assert_eq!((mark.reason, mark.dead), (Reason::PerMinuteQuota, false));
            assert!(mark.until_ms >= NOW + 30_000 && mark.until_ms <= NOW + 31_000);
            // The other key of the project is skipped: only the unrelated key is left.
            assert_eq!(attempts.next(NOW).key_index(&pool), Some(2), "{project}");
        }
    }
}

#[test]
fn a_refresh_brings_in_what_others_recorded() {
    let list = keys(3);
    let pool = pool_of(&list);
    let settings = RetrySettings { strategy: Strategy::Random, ..RetrySettings::default() };
    let mut attempts = configured(pool_of(&list), empty(), &settings, 8);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    let own = attempts.failed(&first, &minute_429(), &knobs(&settings), NOW);
    // Meanwhile another instance cooled a second key: the fresh state shows it, and this
    // request's own change stays applied on top of it.
    let other = (0..3).map(|i| nth(&pool, i)).find(|k| k.at != first.at).expect("another key");
    let mut text = String::new();
    for change in own.iter().filter(|c| c.item == Item::keys(0)) {
        text.push_str(&change.line());
    }
    let stored = format!("{} {} per_minute_quota 0 0 {NOW}\n", MarkName::key(&other), NOW + 60_000);
    let fresh = state(Marks::decode(text.into_bytes(), Some(1)), Marks::decode(stored.into_bytes(), Some(2)));
    attempts.refresh(fresh);
    let Choice::Try(third) = attempts.next(NOW) else { panic!("the last key") };
    assert!(third.at != first.at && third.at != other.at);
    assert_eq!(attempts.next(NOW), Choice::Deliver, "{:?}", attempts.state());
}

#[test]
fn all_cooling_answers_with_the_soonest_recovery() {
    let list = keys(3);
    let pool = pool_of(&list);
    let state = cooling(&pool, &[(0, NOW + 50_000), (1, NOW + 20_000), (2, NOW + 90_000)]);
    let first = configured(pool_of(&list), state.clone(), &RetrySettings::default(), 5).next(NOW);
    assert_eq!(first, Choice::AllCooling { retry_after_ms: 20_000, retired: false });
    let shortest = RetrySettings { when_all_cooling: WhenAllCooling::ShortestCooldown, ..RetrySettings::default() };
    assert_eq!(first_choice(&list, &state, &shortest, 5), Some(1));
    // Within the jitter of its end, a cooldown does not make the client wait.
    let later = configured(pool_of(&list), state, &RetrySettings::default(), 5).next(NOW + 19_500);
    assert_eq!(later.key_index(&pool), Some(1));
}

#[test]
fn the_knobs_past_the_first_key_are_asked_for_only_when_needed() {
    let list = keys(3);
    let pool = pool_of(&list);
    // A key that can serve needs no knobs.
    assert!(matches!(Attempts::new(pool_of(&list), empty(), 5).next(NOW), Choice::Try(_)));
    // With every key cooling, what happens depends on `when_all_cooling`: the edge is asked.
    let state = cooling(&pool, &[(0, NOW + 50_000), (1, NOW + 20_000), (2, NOW + 90_000)]);
    let mut attempts = Attempts::new(pool_of(&list), state, 5);
    assert_eq!(attempts.next(NOW), Choice::Configure);
    attempts
        .configure(&RetrySettings { when_all_cooling: WhenAllCooling::ShortestCooldown, ..RetrySettings::default() });
    assert_eq!(attempts.next(NOW).key_index(&pool), Some(1));
    // A failure brings its own: `max_attempts` 1 ends the request after one 503.
    let mut attempts = Attempts::new(pool_of(&list), empty(), 5);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("a key") };
    let cooling = knobs(&RetrySettings { max_attempts: 1, ..RetrySettings::default() });
    attempts.failed(&key, &classify(503, b""), &cooling, NOW);
    assert_eq!(attempts.next(NOW), Choice::Deliver);
}

#[test]
fn all_dead_and_probation() {
    let list = keys(2);
    let pool = pool_of(&list);
    let mut keys = Marks::default();
    for i in 0..2 {
        keys.apply(MarkName::key(&nth(&pool, i)), mark(NOW + 1000 * (i as u64 + 1), Reason::KeyInvalid, true));
    }
    let state = state(keys, Marks::default());
    assert_eq!(configured(pool_of(&list), state.clone(), &RetrySettings::default(), 1).next(NOW), Choice::AllDead);
    // After key 0's probation time, it gets one request; a success revives it.
    let mut attempts = configured(pool_of(&list), state, &RetrySettings::default(), 1);
    let Choice::Try(key) = attempts.next(NOW + 1000) else { panic!("probation") };
    assert_eq!(index(&pool, &key), 0);
    let changes = attempts.succeeded(&key, NOW + 1000);
    assert_eq!(changes, [Change { item: Item::keys(0), name: MarkName::key(&key), entry: Entry::Clear(NOW + 1000) }]);
}

#[test]
fn a_dead_verdict_marks_the_key_and_moves_on() {
    let list = keys(2);
    let pool = pool_of(&list);
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 4);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    let dead = classify(400, br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#);
    let changes = attempts.failed(&first, &dead, &CoolingSettings::default(), NOW);
    assert!(
        matches!(&changes[..], [Change { item, name, entry: Entry::Set(m) }] if *item == Item::keys(0) && *name == MarkName::key(&first) && m.dead)
    );
    assert_eq!(attempts.next(NOW).key_index(&pool), Some(1 - index(&pool, &first)));
}

#[test]
fn repeated_bare_429s_grow() {
    let list = keys(1);
    let throttled = classify(429, br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#);
    let mut stored = String::new();
    let mut lengths = Vec::new();
    let mut now = NOW;
    for _ in 0..3 {
        let state = state(Marks::default(), Marks::decode(stored.clone().into_bytes(), Some(1)));
        let mut attempts = configured(pool_of(&list), state, &RetrySettings::default(), 1);
        let Choice::Try(key) = attempts.next(now) else { panic!("no key at {now}") };
        let changes = attempts.failed(&key, &throttled, &CoolingSettings::default(), now);
        let Some(Change { entry: Entry::Set(mark), .. }) = changes.first() else { panic!("no change") };
        lengths.push(mark.until_ms - now);
        now = mark.until_ms;
        stored.push_str(&changes[0].line());
    }
    assert_eq!(lengths, [5_000, 10_000, 20_000]);
}

#[test]
fn ninety_percent_cooling_still_picks_uniformly() {
    let list = keys(500);
    let pool = pool_of(&list);
    let cooled: Vec<(usize, u64)> = (0..450).map(|i| (i, NOW + 60_000)).collect();
    let state = cooling(&pool, &cooled);
    let mut counts: HashMap<usize, u32> = HashMap::new();
    for seed in 0..10_000u64 {
        let i = first_choice(&list, &state, &RetrySettings::default(), seed).expect("a key");
        assert!(i >= 450);
        *counts.entry(i).or_default() += 1;
    }
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|&c| c > 130 && c < 270), "{:?}", (counts.values().min(), counts.values().max()));
}

#[test]
fn a_final_429_says_when_to_come_back() {
    let list = keys(2);
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 6);
    while let Choice::Try(key) = attempts.next(NOW) {
        attempts.failed(&key, &minute_429(), &CoolingSettings::default(), NOW);
    }
    let wait = attempts.retry_after_ms(NOW).expect("a hint");
    assert!((30_000..=31_000).contains(&wait), "{wait}");
}

/// The index in the pool of the key a choice tries.
trait KeyIndex {
    fn key_index(&self, pool: &KeyPool<'_>) -> Option<usize>;
}

impl KeyIndex for Choice<'_> {
    fn key_index(&self, pool: &KeyPool<'_>) -> Option<usize> {
        match self {
            Choice::Try(key) => Some(index(pool, key)),
            _ => None,
        }
    }
}

#[test]
fn a_request_reads_other_parts_only_when_its_part_has_nothing_left() {
    let (one, two) = (keys(2), "AIzaSyTESTSECONDPART00000000000000001".to_string());
    let mut pool = KeyPool::with_parts(2);
    pool.add(0, one.as_bytes());
    // Both keys of part 1 cool for the model; part 2 is not read yet.
    let first_part = pool_of(&one);
    let cooled = cooling(&first_part, &[(0, NOW + 60_000), (1, NOW + 60_000)]);
    let mut state = PoolState::new(2, Some("m"));
    state.set(0, PartState::new(Marks::default(), cooled.marks(&Item::model(0, "m")).clone()));
    let mut attempts = configured(pool, state, &RetrySettings::default(), 3);
    assert_eq!(attempts.next(NOW), Choice::Widen);
    attempts.widen(vec![(1, two.as_bytes(), PartState::default())]);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("a key of part 2") };
    assert_eq!((key.at.list, key.secret), (1, two.as_str()));
    // A verdict on it goes to part 2's items.
    let changes = attempts.failed(&key, &minute_429(), &CoolingSettings::default(), NOW);
    assert_eq!(changes[0].item, Item::model(1, "m"));
    assert_eq!(changes[0].item.kv_key(), "model/m@2");
    assert!(matches!(attempts.next(NOW), Choice::Deliver));
}

#[test]
fn a_request_starts_in_its_part_and_falls_back_to_the_whole_pool_only_when_that_part_is_empty() {
    let lists = ["AQ.first-part-key-000000000000000001", "# only a comment\n", "AIza-third-part-key-0000000000000003"];
    let mut reads = Vec::new();
    let mut read = |p: usize| {
        reads.push(p);
        Ok::<_, ()>(lists[p].as_bytes())
    };
    let pool = KeyPool::starting(3, 0, &mut read).unwrap().unwrap();
    assert_eq!((pool.has(0), pool.has(1), pool.has(2)), (true, false, false));
    assert_eq!(reads, [0], "a part with keys: no other secret is read");

    reads.clear();
    let mut read = |p: usize| {
        reads.push(p);
        Ok::<_, ()>(lists[p].as_bytes())
    };
    let pool = KeyPool::starting(3, 1, &mut read).unwrap().unwrap();
    assert!(pool.is_whole());
    assert_eq!(reads, [1, 0, 2]);

    let empty = ["", "# nothing\n"];
    assert!(KeyPool::starting(2, 1, |p| Ok::<_, ()>(empty[p].as_bytes())).unwrap().is_none());
    assert_eq!(KeyPool::starting(2, 0, |_| Err::<&[u8], _>("unreadable")).err(), Some("unreadable"));
}

#[test]
fn the_last_429_reaches_the_client_scrubbed_and_with_the_pools_retry_after() {
    use gemini_pool_core::Ending;
    let list = keys(2);
    let settings = RetrySettings::default();
    let mut attempts = configured(pool_of(&list), empty(), &settings, 3);
    let cooling = CoolingSettings::default();
    let mut last: Ending<'_> = Ending::nothing_yet();
    while let Choice::Try(key) = attempts.next(NOW) {
        let body = format!(
            r#"{{"error":{{"code":429,"message":"Quota exceeded for {}. Please retry in 12s.","status":"RESOURCE_EXHAUSTED"}}}}"#,
            key.secret
        );
        let (verdict, ending) = Ending::upstream(429, body.into_bytes(), &key);
        attempts.failed(&key, &verdict, &cooling, NOW);
        last = ending;
    }
    assert!(!matches!(last, Ending::Served));
    let reply = last.into_reply(&attempts, NOW).unwrap_err();
    assert_eq!(reply.status, 429);
    assert!(list.lines().all(|k| !reply.message.contains(k)), "{}", reply.message);
    let secs = reply.retry_after_secs.unwrap();
    assert!((12..=13).contains(&secs), "{secs}");

    let (verdict, timeout) = Ending::no_answer(true, "no answer within 10 ms");
    assert!(verdict.status.is_none());
    assert_eq!(timeout.into_reply(&attempts, NOW).unwrap_err().status, 504);
    let refused = Ending::refusal(&Choice::AllDead, Some("gemini-3.5-flash")).unwrap();
    assert_eq!(refused.into_reply(&attempts, NOW).unwrap_err().status, 503);
    assert!(Ending::refusal(&Choice::Deliver, None).is_none());
}

#[test]
fn the_failure_log_line_names_the_key_by_mask_and_never_quotes_it() {
    let list = keys(2);
    let settings = RetrySettings::default();
    let first = list.lines().next().unwrap_or_default().to_string();
    let state = PoolState::single(PartState::default(), Some(&first));
    let mut attempts = configured(pool_of(&list), state, &settings, 5);
    let Choice::Try(key) = attempts.next(NOW) else { panic!("a key to try") };
    let body = format!(
        r#"{{"error":{{"code":400,"message":"API key not valid: {}","status":"INVALID_ARGUMENT","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}}]}}}}"#,
        key.secret
    );
    let verdict = classify(400, body.as_bytes());
    attempts.failed(&key, &verdict, &CoolingSettings::default(), NOW);
    let line = attempts.failure_line(&key, &verdict);
    assert!(list.lines().all(|k| !line.contains(k)), "{line}");
    assert!(line.contains(&key.mask()) && line.contains("HTTP 400") && line.contains("trying another key"), "{line}");
}

#[test]
fn a_usage_append_names_its_shard_for_the_quota_day_and_counts_every_attempt() {
    use gemini_pool_core::ResetZone;
    use gemini_pool_core::Rng;
    use gemini_pool_core::{Usage, UsageAppend};
    let list = keys(2);
    let pool = pool_of(&list);
    let tried = [(nth(&pool, 0), false), (nth(&pool, 1), true)];
    let zone = ResetZone::Pacific;
    let mut append = UsageAppend::new(&tried, "app a", Some("gemini-3.5-flash"), true, NOW, zone, 30, &mut Rng::new(7));
    assert!(append.shard < Usage::SHARDS);
    assert_eq!(append.day, Usage::day(NOW, zone));
    assert_eq!(append.item(), Usage::item(&append.day, append.shard));
    assert_eq!(append.lines().lines().count(), 3, "a line per key tried, and the client's");
    assert!(append.lines().ends_with("c app%20a gemini-3.5-flash 1 0\n"), "{}", append.lines());
    assert_eq!(append.ttl_secs, 30 * 86_400, "kept for the history");
    // Tokens go on the serving key's line and the client's, never on a failed attempt's.
    append.tokens = gemini_pool_core::Tokens { prompt: 8, completion: 5, thinking: 0, cached: 0 };
    let lines = append.lines();
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines[0].ends_with(" 0 1"), "{}", lines[0]);
    assert!(lines[1].ends_with(" 1 0 8 5 0 0") && lines[2].ends_with(" 1 0 8 5 0 0"), "{lines:?}");
    assert_eq!(append.appends().len(), 1, "no limit item without a token limit");
}

const RETIRED: &[u8] = br#"{"error":{"code":404,"message":"This model models/m is no longer available to new users. Please update your code to use a newer model for the latest features and improvements.","status":"NOT_FOUND"}}"#;

#[test]
fn a_model_retired_for_one_project_moves_the_request_to_another() {
    let list = projects();
    let cooling = CoolingSettings::default();
    let mut attempts = configured(pool_of(&list), empty(), &RetrySettings::default(), 7);
    let Choice::Try(first) = attempts.next(NOW) else { panic!("no key") };
    let changes = attempts.failed(&first, &classify(404, RETIRED), &cooling, NOW);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].name, MarkName::of(Bucket::of(&first)), "the project, for this model");
    let Choice::Try(second) = attempts.next(NOW) else { panic!("another project") };
    assert_ne!(Bucket::of(&second), Bucket::of(&first));
}

#[test]
fn a_model_retired_everywhere_is_a_404_not_a_wait() {
    let list = projects();
    // One attempt of budget: Google names the project each time, so the walk is free.
    let settings = RetrySettings { max_attempts: 1, ..RetrySettings::default() };
    let cooling = knobs(&settings);
    let mut walk = configured(pool_of(&list), empty(), &settings, 8);
    let mut own = Vec::new();
    while let Choice::Try(key) = walk.next(NOW) {
        own.extend(walk.failed(&key, &classify(404, RETIRED), &cooling, NOW));
    }
    assert_eq!(own.len(), 3, "each project once: {own:?}");
    let mut state = empty();
    own.iter().for_each(|change| state.apply(change));
    let next = configured(pool_of(&list), state, &RetrySettings::default(), 9).next(NOW + 1_000);
    assert!(matches!(next, Choice::AllCooling { retired: true, .. }), "{next:?}");
}
