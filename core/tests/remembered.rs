//! What an instance remembers of keys found cooling between its requests
//! (`pool::remembered`): a remembered key is passed over while its cooldown lasts — even where
//! the store says otherwise — never at or past its end, and a dead key is never remembered, so
//! a key check's revival is seen by the next request.

use gemini_pool_core::testing::{Rig, Store};
use gemini_pool_core::{Answer, Finish, Flow, Remembered};
use std::collections::BTreeSet;

const NOW: u64 = 1_768_478_400_000;
const MINUTE_429: &[u8] =
    br#"{"error":{"code":429,"message":"q\nPlease retry in 30s.","status":"RESOURCE_EXHAUSTED"}}"#;
const INVALID: &[u8] =
    br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;

fn key(n: usize) -> String {
    format!("AIzaSyMEMO{n:029}")
}

/// One request at `now` with what the instance remembers; Google answers with `answer`. The
/// keys sent, by number, and what to remember next.
fn request(
    list: &str,
    store: &mut Store,
    remembered: Remembered,
    now: u64,
    seed: u64,
    answer: &dyn Fn(usize) -> Answer,
) -> (Vec<usize>, Remembered) {
    let mut rig = Rig::new(&[list.as_bytes()], now);
    rig.store = std::mem::take(store);
    let mut flow = Flow::new(1, Some("m"), seed, 32).remembering(remembered);
    let finish = rig.drive(&mut flow, |k| answer(number(k.secret)));
    assert!(matches!(finish, Finish::Served | Finish::Error(_)), "{finish:?}");
    *store = std::mem::take(&mut rig.store);
    let sent = rig.sent().iter().map(|secret| number(secret)).collect();
    (sent, flow.remembered(now).expect("handed back"))
}

fn number(secret: &str) -> usize {
    secret[secret.len() - 2..].parse().unwrap_or(0)
}

/// Keys 1–4 refuse for the minute, the others serve; 1–4 cooling in the store and in memory.
fn cooling_four(list: &str, store: &mut Store) -> Remembered {
    let refuse = |n: usize| match n {
        1..=4 => Answer::Error { status: 429, body: MINUTE_429.to_vec() },
        _ => Answer::Served,
    };
    let mut remembered = Remembered::new();
    for seed in 0..40 {
        remembered = request(list, store, remembered, NOW, seed, &refuse).1;
    }
    for seed in 40..200 {
        if remembered.len() == 4 {
            break;
        }
        remembered = request(list, store, remembered, NOW + 1_000, seed, &refuse).1;
    }
    assert_eq!(remembered.len(), 4, "the four found cooling are remembered");
    remembered
}

#[test]
fn a_remembered_key_is_passed_over_until_its_cooldown_ends_and_never_after() {
    let list = (1..=8).map(key).collect::<Vec<_>>().join("\n");
    let mut store = Store::default();
    let mut remembered = cooling_four(&list, &mut store);
    let ends: Vec<u64> =
        store.marks(&gemini_pool_core::Item::model(0, "m")).all().into_iter().map(|(_, m)| m.until_ms).collect();
    let (first, end) = (ends.iter().min().copied(), ends.iter().max().copied());
    let (Some(first), Some(end)) = (first, end) else { panic!("the cooldowns are stored") };
    // The store forgets them (wiped); the instance does not: until the first end, none is drawn.
    let mut store = Store::default();
    let mut sent = BTreeSet::new();
    for seed in 200..300 {
        let (keys, kept) = request(&list, &mut store, remembered, first - 1, seed, &|_| Answer::Served);
        (remembered, sent) = (kept, sent.into_iter().chain(keys).collect());
    }
    assert!(sent.iter().all(|&n| n > 4), "remembered keys are passed over: {sent:?}");
    // At the last end every one is drawn again, by requests that each start from what was
    // remembered before it.
    let mut sent = BTreeSet::new();
    for seed in 300..400 {
        let (keys, _) = request(&list, &mut store, remembered.clone(), end, seed, &|_| Answer::Served);
        sent.extend(keys);
    }
    assert!((1..=4).all(|n| sent.contains(&n)), "drawn again once ended: {sent:?}");
    let (_, after) = request(&list, &mut store, remembered, end, 400, &|_| Answer::Served);
    assert_eq!(after.len(), 0, "and forgotten");
}

#[test]
fn a_dead_key_is_never_remembered_so_its_revival_is_seen_at_once() {
    let list = (1..=4).map(key).collect::<Vec<_>>().join("\n");
    let mut store = Store::default();
    let dead_one = |n: usize| match n {
        1 => Answer::Error { status: 400, body: INVALID.to_vec() },
        _ => Answer::Served,
    };
    let mut remembered = Remembered::new();
    for seed in 0..60 {
        remembered = request(&list, &mut store, remembered, NOW, seed, &dead_one).1;
    }
    assert!(store.text("keys").contains("key_invalid"), "key 1 is dead in the store");
    assert_eq!(remembered.len(), 0, "a dead key is not remembered");
    // A key check revives it: a `clear` line for its mark.
    let text = store.text("keys");
    let name = text.lines().find(|l| l.contains("key_invalid")).and_then(|l| l.split(' ').next()).expect("its mark");
    store.append("keys", format!("{name} clear {}\n", NOW + 1_000).as_bytes());
    let mut sent = BTreeSet::new();
    for seed in 60..160 {
        let (keys, kept) = request(&list, &mut store, remembered, NOW + 2_000, seed, &|_| Answer::Served);
        (remembered, sent) = (kept, sent.into_iter().chain(keys).collect());
    }
    assert!(sent.contains(&1), "the revived key serves again: {sent:?}");
}
