//! The request flow, step by step, against a strict in-memory store: the order of the steps,
//! what is read and written when, widening, recording and its read-back, and the end.

use gemini_pool_core::{Answer, CoolingSettings, Finish, Flow, Item, Machine, Marks, Step, Write};
use std::collections::HashMap;

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

/// A strict store: what is written is read back at once. `lose_appends`: that many appends are
/// acknowledged and then overwritten by a concurrent rewrite (the generation moves on).
#[derive(Default)]
struct Store {
    items: HashMap<String, (Vec<u8>, u64)>,
    reads: usize,
    writes: usize,
    lose_appends: usize,
}

impl Store {
    fn read(&mut self, items: &[Item]) -> Vec<(Item, Marks)> {
        self.reads += items.len();
        items
            .iter()
            .map(|item| {
                let marks = match self.items.get(&item.kv_key()) {
                    Some((bytes, generation)) => Marks::decode(bytes.clone(), Some(*generation)),
                    None => Marks::default(),
                };
                (item.clone(), marks)
            })
            .collect()
    }

    fn write(&mut self, writes: Vec<Write>) {
        for write in writes {
            self.writes += 1;
            match write {
                Write::Append { item, bytes } => {
                    let entry = self.items.entry(item.kv_key()).or_default();
                    entry.1 += 1;
                    if self.lose_appends > 0 {
                        self.lose_appends -= 1;
                    } else {
                        entry.0.extend(bytes);
                    }
                }
                Write::Replace { item, bytes, generation, .. } => {
                    let current = self.items.get(&item.kv_key()).map(|(_, g)| *g);
                    if current == generation {
                        self.items.insert(item.kv_key(), (bytes, current.unwrap_or(0) + 1));
                    }
                }
            }
        }
    }
}

/// What happened, step by step.
#[derive(Debug, PartialEq)]
enum Seen {
    Fetch(usize),
    Read(usize),
    Configure,
    Send(String),
    Record(usize, usize),
    Log,
}

/// A status for a 200 the edge found empty.
const EMPTY: u16 = 1;

/// Runs a flow to its end: `answer` gives Google's status and body for a key (`0`: no
/// answer; [`EMPTY`]: an empty 200).
fn run(
    lists: &[&str],
    model: &str,
    store: &mut Store,
    mut answer: impl FnMut(&str) -> (u16, Vec<u8>),
    seed: u64,
) -> (Finish, Vec<Seen>, Vec<String>) {
    let mut flow = Flow::new(lists.len(), Some(model), seed, 32);
    let cooling = CoolingSettings::default();
    let mut seen = Vec::new();
    let mut logs = Vec::new();
    for _ in 0..1_000 {
        match flow.step(NOW) {
            Step::Fetch(part) => {
                seen.push(Seen::Fetch(part));
                flow.fetched(part, lists[part].as_bytes());
            }
            Step::Read(items) => {
                seen.push(Seen::Read(items.len()));
                flow.read(store.read(&items));
            }
            Step::Configure => {
                seen.push(Seen::Configure);
                flow.configured(&cooling);
            }
            Step::Send(keys) => {
                let key = keys[0];
                seen.push(Seen::Send(key.secret[key.secret.len() - 2..].to_string()));
                let answer = match answer(key.secret) {
                    (200, _) => Answer::Served,
                    (EMPTY, _) => Answer::Empty,
                    (0, _) => Answer::None { timeout: true, detail: "timed out".into() },
                    (status, body) => Answer::Error { status, body },
                };
                flow.answered(vec![answer]);
            }
            Step::Record { writes, read_back } => {
                seen.push(Seen::Record(writes.len(), read_back.len()));
                store.write(writes);
                if read_back.is_empty() {
                    flow.written();
                } else {
                    flow.read(store.read(&read_back));
                }
            }
            Step::Log(line) => {
                seen.push(Seen::Log);
                logs.push(line);
            }
            Step::Wait(_) => panic!("a request never waits before its answer"),
            Step::Look(_) | Step::Remember { .. } | Step::Rate(_) | Step::Append { .. } => {
                panic!("these requests name no resource and have no limits")
            }
            Step::Done(finish) => return (finish, seen, logs),
        }
    }
    panic!("the flow did not end: {seen:?}");
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
    assert_eq!(seen[3..6], [Seen::Configure, Seen::Log, Seen::Record(1, 2)], "{seen:?}");
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
    let records: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Record(..))).collect();
    assert_eq!(records, [&Seen::Record(1, 2), &Seen::Record(1, 2)], "{seen:?}");
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
        assert!(seen.contains(&Seen::Send("07".into())), "{seen:?}");
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
    let lists = [one.as_str()];
    let mut flow = Flow::new(1, Some("m"), 9, 32);
    let mut store = Store::default();
    let mut tried = 0;
    loop {
        match flow.step(NOW) {
            Step::Fetch(p) => flow.fetched(p, lists[p].as_bytes()),
            Step::Read(items) => flow.read(store.read(&items)),
            Step::Configure => flow.configured(&CoolingSettings::default()),
            Step::Send(_) => {
                tried += 1;
                let answer = match tried {
                    1 => Answer::Error { status: 429, body: MINUTE_429.to_vec() },
                    _ => Answer::Served,
                };
                flow.answered(vec![answer]);
            }
            Step::Record { writes, read_back } => {
                store.write(writes);
                flow.read(store.read(&read_back));
            }
            Step::Log(_)
            | Step::Wait(_)
            | Step::Look(_)
            | Step::Remember { .. }
            | Step::Rate(_)
            | Step::Append { .. } => {}
            Step::Done(finish) => {
                assert_eq!(finish, Finish::Served);
                break;
            }
        }
    }
    let append = flow.usage("app", NOW, &settings()).expect("counted");
    assert_eq!(append.lines().lines().count(), 3, "{}", append.lines());
    assert!(append.lines().ends_with("c app m 1 0\n"), "{}", append.lines());
}

#[test]
fn the_key_check_is_a_machine_the_same_loop_drives() {
    use gemini_pool_core::{Check, Checked};
    let lists = [format!("{}\nAIza\n{}", key(1), key(2)), key(3)];
    let mut store = Store::default();
    let mut check = Check::new(2, 0, &["keys", "keys_2"]);
    let (mut logs, mut sent) = (Vec::new(), Vec::new());
    let answer = loop {
        match check.step(NOW) {
            Step::Fetch(p) => check.fetched(p, lists[p].as_bytes()),
            Step::Read(items) => check.read(store.read(&items)),
            Step::Configure => check.configured(&CoolingSettings::default()),
            Step::Send(keys) => {
                sent = keys.iter().map(|k| k.secret.to_string()).collect();
                // The second key is dead, the others answer.
                let answers = keys
                    .iter()
                    .map(|k| match k.secret == key(2) {
                        true => Answer::Error {
                            status: 400,
                            body: br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#.to_vec(),
                        },
                        false => Answer::Served,
                    })
                    .collect();
                check.answered(answers);
            }
            Step::Record { writes, read_back } => {
                store.write(writes);
                if read_back.is_empty() {
                    check.written();
                } else {
                    check.read(store.read(&read_back));
                }
            }
            Step::Log(line) => logs.push(line),
            Step::Wait(_) | Step::Look(_) | Step::Remember { .. } | Step::Rate(_) | Step::Append { .. } => {}
            Step::Done(Checked::Answer(body)) => break String::from_utf8(body).unwrap_or_default(),
            Step::Done(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(sent, [key(1), key(2), key(3)], "the whole pool, side by side");
    assert!(answer.contains(r#""checked":3"#) && answer.contains(r#""total":3"#), "{answer}");
    assert!(logs.iter().any(|l| l.starts_with("key list keys, line 2: not a key")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("…0002") && l.contains("API key not valid")), "{logs:?}");
    assert!(String::from_utf8_lossy(&store.items["keys"].0).contains("key_invalid"), "the dead mark is stored");
}

#[test]
fn a_write_the_store_refuses_goes_out_again_and_lingers_after_the_answer() {
    use gemini_pool_core::Linger;
    let one = list(&[1, 2, 3]);
    let lists = [one.as_str()];
    let mut store = Store::default();
    let mut flow = Flow::new(1, Some("m"), 11, 32);
    let mut refusing = true; // the store refuses every write while the request runs
    let mut sent = 0;
    loop {
        match flow.step(NOW) {
            Step::Fetch(p) => flow.fetched(p, lists[p].as_bytes()),
            Step::Read(items) => flow.read(store.read(&items)),
            Step::Configure => flow.configured(&CoolingSettings::default()),
            Step::Send(_) => {
                sent += 1;
                let answer = match sent {
                    1 | 2 => Answer::Error { status: 429, body: MINUTE_429.to_vec() },
                    _ => Answer::Served,
                };
                flow.answered(vec![answer]);
            }
            Step::Record { writes, read_back } => {
                // Each round carries every change not stored yet (one append per item).
                assert!(!writes.is_empty());
                flow.refused((0..writes.len()).collect());
                flow.read(store.read(&read_back));
            }
            Step::Log(_) | Step::Look(_) | Step::Remember { .. } | Step::Rate(_) | Step::Append { .. } => {}
            Step::Wait(_) => panic!("no wait before the answer"),
            Step::Done(finish) => {
                assert_eq!(finish, Finish::Served);
                break;
            }
        }
    }
    assert!(store.items.is_empty(), "nothing stored while refusing");
    let mut linger: Linger = flow.linger().expect("two verdicts left to write");
    let mut waited = Vec::new();
    loop {
        match linger.step(NOW) {
            Step::Wait(ms) => {
                waited.push(ms);
                refusing = waited.len() < 2; // the store takes writes again after the second wait
            }
            Step::Read(items) => linger.read(store.read(&items)),
            Step::Record { writes, read_back } => {
                if refusing {
                    linger.refused((0..writes.len()).collect());
                } else {
                    store.write(writes);
                }
                match read_back.is_empty() {
                    true => linger.written(),
                    false => linger.read(store.read(&read_back)),
                }
            }
            Step::Done(()) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        waited.len() == 2 && (1_000..=2_000).contains(&waited[0]) && (2_000..=4_000).contains(&waited[1]),
        "{waited:?}"
    );
    let stored = String::from_utf8_lossy(&store.items["model/m"].0).to_string();
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
