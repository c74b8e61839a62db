//! Resources follow their project: a request naming a resource is pinned to the bucket its
//! record names, tries no key of another project, waits when that project cools, and a success
//! that makes a resource stores its record before the answer goes out.

use gemini_pool_core::{
    named, route, Answer, Caller, CoolingSettings, Finish, Flow, Kind, Machine, Marks, Record, Resource, Step,
};
use std::collections::HashMap;

const NOW: u64 = 1_768_478_400_000;
const DAY_429: &[u8] = br#"{"error":{"code":429,"message":"Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;

fn key(project: &str, n: u32) -> String {
    format!("{project}:AIzaSy{n:0>33}")
}

/// Three projects of three keys each, in two parts.
fn lists() -> [String; 2] {
    let part = |projects: &[&str]| {
        projects.iter().flat_map(|p| (1..=3).map(move |n| key(p, n))).collect::<Vec<_>>().join("\n")
    };
    [part(&["alpha", "beta"]), part(&["gamma"])]
}

fn caller(label: &str) -> Caller {
    Caller { label: label.into(), admin: false }
}

struct Run {
    finish: Finish,
    sent: Vec<String>,
    remembered: Vec<(String, Vec<u8>, u64)>,
    looked: usize,
}

/// Runs a flow for `path` with `body`, records in `records`, Google answering by `answer`.
fn run(
    path: &str,
    body: &str,
    who: &Caller,
    records: &mut HashMap<String, Vec<u8>>,
    mut answer: impl FnMut(&str) -> Answer,
    seed: u64,
) -> Run {
    let routed = route("POST", path, None, true).expect("routes");
    let lists = lists();
    let facts = routed.facts(body.as_bytes()).expect("facts");
    let mut flow = Flow::new(2, facts.model.as_deref(), seed, 32).with_resources(named(&routed, body.as_bytes()), who);
    let mut run = Run { finish: Finish::EmptyPool, sent: Vec::new(), remembered: Vec::new(), looked: 0 };
    let mut items: HashMap<String, Vec<u8>> = HashMap::new();
    for _ in 0..1_000 {
        match flow.step(NOW) {
            Step::Fetch(part) => flow.fetched(part, lists[part].as_bytes()),
            Step::Read(read) => flow.read(marks_of(&items, read)),
            Step::Configure => flow.configured(&CoolingSettings::default()),
            Step::Send(keys) => {
                let secret = keys[0].secret.to_string();
                run.sent.push(keys[0].project.unwrap_or_default().to_string());
                flow.answered(vec![answer(&secret)]);
            }
            Step::Record { writes, read_back } => {
                for write in writes {
                    if let gemini_pool_core::Write::Append { item, bytes } = write {
                        items.entry(item.kv_key()).or_default().extend(bytes);
                    }
                }
                if read_back.is_empty() {
                    flow.written();
                } else {
                    flow.read(marks_of(&items, read_back));
                }
            }
            Step::Look(names) => {
                run.looked += names.len();
                flow.looked(names.iter().map(|n| records.get(n).cloned()).collect());
            }
            Step::Remember { item, record, ttl_secs, .. } => {
                records.insert(item.clone(), record.clone());
                run.remembered.push((item, record, ttl_secs));
            }
            Step::Log(_) | Step::Wait(_) | Step::Rate(_) | Step::Append { .. } => {}
            Step::Done(finish) => {
                run.finish = finish;
                return run;
            }
        }
    }
    panic!("the flow did not end");
}

/// The items as stored (appended bytes).
fn marks_of(
    items: &HashMap<String, Vec<u8>>,
    read: Vec<gemini_pool_core::Item>,
) -> Vec<(gemini_pool_core::Item, Marks)> {
    read.into_iter()
        .map(|i| {
            let marks = items.get(&i.kv_key()).map_or_else(Marks::default, |b| Marks::decode(b.clone(), Some(1)));
            (i, marks)
        })
        .collect()
}

const GENERATE: &str = "/v1beta/models/gemini-3.5-flash:generateContent";

fn with_file(id: &str) -> String {
    format!(
        r#"{{"contents":[{{"parts":[{{"fileData":{{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/{id}"}}}}]}}]}}"#
    )
}

#[test]
fn a_made_resource_is_recorded_and_its_follow_ups_stay_in_its_project() {
    let mut records = HashMap::new();
    let made = Resource::new(Kind::Cache, "c1").expect("id");
    let body = r#"{"model":"models/gemini-3.5-flash","contents":[]}"#;
    let create = run("/v1beta/cachedContents", body, &caller("app"), &mut records, |_| Answer::Made(made.clone()), 1);
    assert_eq!(create.finish, Finish::Served);
    let (item, bytes, ttl) = create.remembered.first().expect("a record").clone();
    assert_eq!((item.as_str(), ttl), ("res/cachedContents/c1", Kind::Cache.ttl_secs()));
    let record = Record::decode(&bytes).expect("decodes");
    assert_eq!(record.client, "app");
    let project = create.sent[0].clone();
    // Many seeds: a follow-up never reaches another project.
    for seed in 0..60 {
        let follow = r#"{"contents":[],"cachedContent":"cachedContents/c1"}"#;
        let used = run(GENERATE, follow, &caller("app"), &mut records, |_| Answer::Served, seed);
        assert_eq!((used.finish, used.looked), (Finish::Served, 1));
        assert_eq!(used.sent, std::slice::from_ref(&project), "seed {seed}");
    }
}

#[test]
fn the_owning_project_cooling_means_a_wait_not_another_project() {
    let mut records = HashMap::new();
    let file = Resource::new(Kind::File, "f1").expect("id");
    let lists = lists();
    let pool = gemini_pool_core::KeyPool::new(lists.iter().map(String::as_bytes));
    let beta = pool.iter().find(|k| k.project == Some("beta")).expect("beta");
    records.insert(file.item(), Record::new(&beta, "app").encode());
    // Beta's three keys share one daily quota: the first 429 cools the bucket.
    let run = run(
        GENERATE,
        &with_file("f1"),
        &caller("app"),
        &mut records,
        |_| Answer::Error { status: 429, body: DAY_429.to_vec() },
        3,
    );
    assert_eq!(run.sent, ["beta"]);
    match run.finish {
        Finish::Error(reply) => assert_eq!((reply.status, reply.retry_after_secs.is_some()), (429, true), "{reply:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_clients_resource_is_not_found_and_two_projects_are_refused() {
    let mut records = HashMap::new();
    let lists = lists();
    let pool = gemini_pool_core::KeyPool::new(lists.iter().map(String::as_bytes));
    let alpha = pool.iter().find(|k| k.project == Some("alpha")).expect("alpha");
    let gamma = pool.iter().find(|k| k.project == Some("gamma")).expect("gamma");
    records.insert("res/files/a".into(), Record::new(&alpha, "app").encode());
    records.insert("res/cachedContents/g".into(), Record::new(&gamma, "app").encode());
    let theirs = run(GENERATE, &with_file("a"), &caller("other"), &mut records, |_| Answer::Served, 1);
    let missing = run(GENERATE, &with_file("zz"), &caller("other"), &mut records, |_| Answer::Served, 1);
    for refused in [&theirs, &missing] {
        assert!(refused.sent.is_empty());
        assert!(matches!(&refused.finish, Finish::Error(r) if r.status == 404), "{:?}", refused.finish);
    }
    let both = r#"{"cachedContent":"cachedContents/g","contents":[{"parts":[{"fileData":{"fileUri":"files/a"}}]}]}"#;
    let mixed = run(GENERATE, both, &caller("app"), &mut records, |_| Answer::Served, 1);
    assert!(matches!(&mixed.finish, Finish::Error(r) if r.status == 400), "{:?}", mixed.finish);
    assert!(mixed.sent.is_empty());
}

#[test]
fn a_plain_request_reads_no_record() {
    let mut records = HashMap::new();
    let plain = run(
        GENERATE,
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        &caller("app"),
        &mut records,
        |_| Answer::Served,
        1,
    );
    assert_eq!((plain.finish, plain.looked, plain.remembered.len()), (Finish::Served, 0, 0));
}
