//! The request flow, step by step, against a strict in-memory store: the order of the steps,
//! what is read and written when, widening, recording and its read-back, and the end.

use gemini_pool_core::testing::{Rig, Seen, Store};
use gemini_pool_core::{Answer, Finish, Flow};

/// Usage counted, in UTC, kept 30 days.
fn settings() -> gemini_pool_core::RequestSettings {
    gemini_pool_core::RequestSettings {
        reset_zone: gemini_pool_core::ResetZone::Fixed(0),
        history_days: 30,
        ..Default::default()
    }
}

const NOW: u64 = 1_768_478_400_000;

const MINUTE_429: &[u8] =
    br#"{"error":{"code":429,"message":"q\nPlease retry in 30s.","status":"RESOURCE_EXHAUSTED"}}"#;

/// A status for a 200 the edge found empty.
const EMPTY: u16 = 1;

/// Google's answer for a status and body (`0`: no answer; [`EMPTY`]: an empty 200).
fn answer_of((status, body): (u16, Vec<u8>)) -> Answer {
    match status {
        200 => Answer::Served,
        EMPTY => Answer::Empty,
        0 => Answer::None { timeout: true, detail: "timed out".into() },
        status => Answer::Error { status, body },
    }
}

/// Runs a flow to its end over `store` (given back afterwards): `answer` gives Google's status
/// and body for a key.
fn run(
    lists: &[&str],
    model: &str,
    store: &mut Store,
    mut answer: impl FnMut(&str) -> (u16, Vec<u8>),
    seed: u64,
) -> (Finish, Vec<Seen>, Vec<String>) {
    let bytes: Vec<&[u8]> = lists.iter().map(|l| l.as_bytes()).collect();
    let mut rig = Rig::new(&bytes, NOW);
    rig.store = std::mem::take(store);
    let mut flow = Flow::new(lists.len(), Some(model), seed, 32);
    let finish = rig.drive(&mut flow, |key| answer_of(answer(key.secret)));
    *store = std::mem::take(&mut rig.store);
    assert!(!rig.seen.iter().any(|s| matches!(s, Seen::Wait(_))), "a request never waits before its answer");
    let logs = rig.logs();
    (finish, rig.seen, logs)
}

/// Keys sent, by their last two digits.
fn sent_tail(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| if let Seen::Send(keys) = s { Some(keys[0][keys[0].len() - 2..].to_string()) } else { None })
        .collect()
}

/// Google refuses the first call (a per-minute 429) and serves every other.
fn refused_then_served() -> impl FnMut(&str) -> (u16, Vec<u8>) {
    let mut calls = 0;
    move |_| {
        calls += 1;
        match calls {
            1 => (429, MINUTE_429.to_vec()),
            _ => (200, b"{}".to_vec()),
        }
    }
}

fn key(n: usize) -> String {
    format!("AIzaSyFLOW{n:029}")
}

fn list(keys: &[usize]) -> String {
    keys.iter().map(|&n| key(n)).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_success_at_the_first_key_fetches_one_list_and_reads_two_items() {
    let one = list(&[1, 2, 3]);
    let mut store = Store::default();
    let (finish, seen, _) = run(&[&one], "m", &mut store, |_| (200, b"{}".to_vec()), 1);
    assert_eq!(finish, Finish::Served);
    assert!(matches!(seen.as_slice(), [Seen::Fetch(0), Seen::Read(2), Seen::Send(_)]), "{seen:?}");
    assert_eq!((store.reads, store.writes), (2, 0), "no write on the success path");
}

#[test]
fn a_refusal_is_recorded_read_back_and_the_next_key_serves() {
    let one = list(&[1, 2]);
    let mut store = Store::default();
    let answer = refused_then_served();
    let (finish, seen, logs) = run(&[&one], "m", &mut store, answer, 2);
    assert_eq!(finish, Finish::Served);
    // Configure (a failure needs the cooling knobs), the log line, one append with the
    // read-back of both items, then the other key.
    assert!(matches!(seen[3..6], [Seen::Configure, Seen::Log(_), Seen::Commit(1, 2)]), "{seen:?}");
    assert!(matches!(seen.last(), Some(Seen::Send(_))));
    assert!(logs[0].contains("per-minute quota exceeded") && logs[0].contains("trying another key"), "{logs:?}");
    let stored = &store.items["model/m"].0;
    assert!(String::from_utf8_lossy(stored).contains("per_minute_quota"));
}

#[test]
fn a_write_lost_to_a_concurrent_rewrite_is_written_again() {
    let one = list(&[1, 2]);
    let mut store = Store { lose_appends: 1, ..Store::default() };
    let answer = refused_then_served();
    let (_, seen, _) = run(&[&one], "m", &mut store, answer, 3);
    let records: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Commit(..))).collect();
    assert_eq!(records, [&Seen::Commit(1, 2), &Seen::Commit(1, 2)], "{seen:?}");
    assert!(String::from_utf8_lossy(&store.items["model/m"].0).contains("per_minute_quota"));
}

#[test]
fn a_store_that_keeps_losing_is_given_up_on_and_logged() {
    let one = list(&[1, 2]);
    let mut store = Store { lose_appends: usize::MAX, ..Store::default() };
    let answer = refused_then_served();
    let (finish, _, logs) = run(&[&one], "m", &mut store, answer, 4);
    assert_eq!(finish, Finish::Served, "the request is served all the same");
    assert!(logs.iter().any(|l| l.contains("keeps losing writes")), "{logs:?}");
}

#[test]
fn a_part_without_keys_makes_the_flow_fetch_every_part() {
    let (empty, other) = ("# nothing here\n".to_string(), list(&[7]));
    let mut store = Store::default();
    // Seeds that start in the empty part fetch the other and serve from it.
    for seed in 0..20 {
        let (finish, seen, _) = run(&[&empty, &other], "m", &mut store, |_| (200, b"{}".to_vec()), seed);
        assert_eq!(finish, Finish::Served);
        assert!(sent_tail(&seen).contains(&"07".to_string()), "{seen:?}");
    }
    let (finish, _, _) = run(&[&empty, &empty], "m", &mut store, |_| (200, b"{}".to_vec()), 1);
    assert_eq!(finish, Finish::EmptyPool);
}

#[test]
fn a_part_with_nothing_left_widens_to_the_others() {
    // Two parts of one key each; whichever is drawn first refuses, the other serves.
    let (a, b) = (list(&[1]), list(&[2]));
    let mut store = Store::default();
    let answer = refused_then_served();
    let (finish, seen, _) = run(&[&a, &b], "m", &mut store, answer, 5);
    assert_eq!(finish, Finish::Served);
    let sends: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Send(_))).collect();
    assert_eq!(sends.len(), 2, "{seen:?}");
    // The second part was fetched and read only after the first had nothing left.
    let fetches: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Fetch(_))).collect();
    assert_eq!(fetches.len(), 2, "{seen:?}");
}

#[test]
fn every_key_cooling_ends_with_a_429_and_no_call() {
    let one = list(&[1, 2]);
    let mut store = Store::default();
    let _ = run(&[&one], "m", &mut store, |_| (429, MINUTE_429.to_vec()), 6);
    let before = store.writes;
    let mut called = false;
    let (finish, _, _) = run(
        &[&one],
        "m",
        &mut store,
        |_| {
            called = true;
            (200, b"{}".to_vec())
        },
        7,
    );
    assert!(!called && store.writes == before);
    let Finish::Error(reply) = finish else { panic!("{finish:?}") };
    assert_eq!((reply.status, reply.code.as_str()), (429, "all_keys_cooling"));
    assert!(reply.retry_after_secs.is_some());
}

#[test]
fn a_client_error_is_delivered_with_one_call_and_no_write() {
    let one = list(&[1, 2, 3]);
    let mut store = Store::default();
    let body = br#"{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}"#.to_vec();
    let (finish, seen, _) = run(&[&one], "m", &mut store, |_| (404, body.clone()), 8);
    let Finish::Error(reply) = finish else { panic!("{finish:?}") };
    assert_eq!(reply.status, 404);
    assert_eq!(seen.iter().filter(|s| matches!(s, Seen::Send(_))).count(), 1);
    assert_eq!(store.writes, 0);
}

#[test]
fn usage_counts_every_key_tried() {
    let one = list(&[1, 2]);
    let mut rig = Rig::new(&[one.as_bytes()], NOW);
    let mut flow = Flow::new(1, Some("m"), 9, 32);
    let mut tried = 0;
    let finish = rig.drive(&mut flow, |_| {
        tried += 1;
        match tried {
            1 => Answer::Error { status: 429, body: MINUTE_429.to_vec() },
            _ => Answer::Served,
        }
    });
    assert_eq!(finish, Finish::Served);
    let append = flow.usage("app", NOW, &settings(), None).expect("counted");
    assert_eq!(append.lines().lines().count(), 3, "{}", append.lines());
    assert!(append.lines().ends_with("c app m 1 0\n"), "{}", append.lines());
}

#[test]
fn the_key_check_is_a_machine_the_same_loop_drives() {
    use gemini_pool_core::{Check, Checked};
    let lists = [format!("{}\nAIza\n{}", key(1), key(2)), key(3)];
    let mut rig = Rig::new(&[lists[0].as_bytes(), lists[1].as_bytes()], NOW);
    let mut check = Check::new(2, 0, &["keys", "keys_2"]);
    // The second key is dead, the others answer.
    let dead = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
    let answer = rig.drive(&mut check, |k| match k.secret == key(2) {
        true => Answer::Error { status: 400, body: dead.to_vec() },
        false => Answer::Served,
    });
    let Checked::Answer(body) = answer else { panic!("{answer:?}") };
    let answer = String::from_utf8(body).unwrap_or_default();
    assert_eq!(rig.seen.iter().filter(|s| matches!(s, Seen::Send(_))).count(), 1, "the whole pool, side by side");
    assert_eq!(rig.sent(), [key(1), key(2), key(3)]);
    assert!(answer.contains(r#""checked":3"#) && answer.contains(r#""total":3"#), "{answer}");
    let logs = rig.logs();
    assert!(logs.iter().any(|l| l.starts_with("key list keys, line 2: not a key")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("…0002") && l.contains("API key not valid")), "{logs:?}");
    assert!(rig.store.text("keys").contains("key_invalid"), "the dead mark is stored");
}

#[test]
fn a_write_the_store_refuses_goes_out_again_and_lingers_after_the_answer() {
    let one = list(&[1, 2, 3]);
    let mut rig = Rig::new(&[one.as_bytes()], NOW);
    rig.store.refuse_writes = true; // the store refuses every write while the request runs
    let mut flow = Flow::new(1, Some("m"), 11, 32);
    let mut sent = 0;
    let finish = rig.drive(&mut flow, |_| {
        sent += 1;
        match sent {
            1 | 2 => Answer::Error { status: 429, body: MINUTE_429.to_vec() },
            _ => Answer::Served,
        }
    });
    assert_eq!(finish, Finish::Served);
    let records: Vec<&Seen> = rig.seen.iter().filter(|s| matches!(s, Seen::Commit(..))).collect();
    assert!(records.iter().all(|r| !matches!(r, Seen::Commit(0, _))), "each round carries every change not stored yet");
    assert!(!rig.seen.iter().any(|s| matches!(s, Seen::Wait(_))), "no wait before the answer");
    assert!(rig.store.items.is_empty(), "nothing stored while refusing");
    let mut linger = flow.linger(NOW).expect("two verdicts left to write");
    // After the answer: a rig of its own (a linger owns its data), the same store, which takes
    // writes again after the second wait.
    let mut rig = Rig { store: std::mem::take(&mut rig.store), ..Rig::new(&[], NOW) };
    let mut waited = Vec::new();
    let mut google = |_: &gemini_pool_core::ApiKey<'_>| Answer::Served;
    loop {
        if rig.turn(&mut linger, &mut google).is_some() {
            break;
        }
        if let Some(Seen::Wait(ms)) = rig.seen.last() {
            waited.push(*ms);
            rig.store.refuse_writes = waited.len() < 2;
        }
    }
    assert!(
        waited.len() == 2 && (1_000..=2_000).contains(&waited[0]) && (2_000..=4_000).contains(&waited[1]),
        "{waited:?}"
    );
    let stored = rig.store.text("model/m");
    assert_eq!(stored.matches("per_minute_quota").count(), 2, "{stored}");
}

#[test]
fn an_empty_answer_moves_on_writing_nothing_and_beats_a_later_error() {
    let three = list(&[1, 2, 3]);
    let mut store = Store::default();
    let mut calls = 0;
    let (finish, seen, logs) = run(
        &[&three],
        "m",
        &mut store,
        |_| {
            calls += 1;
            if calls == 1 {
                (EMPTY, vec![])
            } else {
                (200, b"{}".to_vec())
            }
        },
        3,
    );
    assert_eq!(finish, Finish::Served);
    assert_eq!(seen.iter().filter(|s| matches!(s, Seen::Send(_))).count(), 2, "{seen:?}");
    assert_eq!(store.writes, 0, "an empty answer blames no key");
    assert!(logs[0].contains("empty answer"), "{logs:?}");
    // Empty, then Google's trouble on every other key: the client gets the empty answer.
    let mut store = Store::default();
    let mut calls = 0;
    let (finish, ..) = run(
        &[&three],
        "m",
        &mut store,
        |_| {
            calls += 1;
            if calls == 1 {
                (EMPTY, vec![])
            } else {
                (503, vec![])
            }
        },
        4,
    );
    assert_eq!(finish, Finish::Served);
}
