//! Resources follow their project: a request naming a resource is pinned to the bucket its
//! record names, tries no key of another project, waits when that project cools, and a success
//! that makes a resource stores its record before the answer goes out.

use gemini_pool_core::testing::{Rig, Seen, Store};
use gemini_pool_core::{route, Answer, Caller, Finish, Flow, Kind, Record, Resource};

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
    /// The records stored (their items).
    remembered: Vec<String>,
    looked: usize,
}

/// Runs a flow for `method path` with `body`, records in `store`, Google answering by `answer`.
fn run_as(
    method: &str,
    path: &str,
    body: &str,
    who: &Caller,
    store: &mut Store,
    answer: impl FnMut(&str) -> Answer,
    seed: u64,
) -> Run {
    let routed = route(method, path, None, true).expect("routes");
    let lists = lists();
    let mut rig = Rig::new(&[lists[0].as_bytes(), lists[1].as_bytes()], NOW);
    rig.store = std::mem::take(store);
    let facts = routed.facts(body.as_bytes()).expect("facts");
    let mut flow = Flow::new(2, facts.model.as_deref(), seed, 32).with_resources(&routed, &facts, who);
    let mut answer = answer;
    let mut sent = Vec::new();
    let finish = rig.drive(&mut flow, |key| {
        sent.push(key.project.unwrap_or_default().to_string());
        answer(key.secret)
    });
    *store = std::mem::take(&mut rig.store);
    let remembered = rig.seen.iter().filter_map(|s| if let Seen::Remember(i) = s { Some(i.clone()) } else { None });
    let looked = rig.seen.iter().map(|s| if let Seen::Look(names) = s { names.len() } else { 0 }).sum();
    Run { finish, sent, remembered: remembered.collect(), looked }
}

fn run(path: &str, body: &str, who: &Caller, store: &mut Store, answer: impl FnMut(&str) -> Answer, seed: u64) -> Run {
    run_as("POST", path, body, who, store, answer, seed)
}

/// Stores a record as the proxy would have.
fn keep(store: &mut Store, item: &str, record: &Record) {
    store.items.insert(item.to_string(), (record.encode(), 1));
}

const GENERATE: &str = "/v1beta/models/gemini-3.5-flash:generateContent";

fn with_file(id: &str) -> String {
    format!(
        r#"{{"contents":[{{"parts":[{{"fileData":{{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/{id}"}}}}]}}]}}"#
    )
}

#[test]
fn a_made_resource_is_recorded_and_its_follow_ups_stay_in_its_project() {
    let mut records = Store::default();
    let made = Resource::new(Kind::Cache, "c1").expect("id");
    let body = r#"{"model":"models/gemini-3.5-flash","contents":[]}"#;
    let create = run("/v1beta/cachedContents", body, &caller("app"), &mut records, |_| Answer::Made(made.clone()), 1);
    assert_eq!(create.finish, Finish::Served);
    assert_eq!(create.remembered, ["res/cachedContents/c1"]);
    let record = Record::decode(records.get("res/cachedContents/c1").expect("stored")).expect("decodes");
    let project = create.sent[0].clone();
    let line = format!("cachedContents c1 p:{project} 0 {}\n", NOW / 1000 + Kind::Cache.ttl_secs());
    assert_eq!(records.text("own/app"), line, "the maker's index lists it, with its end");
    assert_eq!(record.client, "app");
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
    let mut records = Store::default();
    let file = Resource::new(Kind::File, "f1").expect("id");
    let lists = lists();
    let pool = gemini_pool_core::KeyPool::new(lists.iter().map(String::as_bytes));
    let beta = pool.iter().find(|k| k.project == Some("beta")).expect("beta");
    keep(&mut records, &file.item(), &Record::new(&beta, "app"));
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
    let mut records = Store::default();
    let lists = lists();
    let pool = gemini_pool_core::KeyPool::new(lists.iter().map(String::as_bytes));
    let alpha = pool.iter().find(|k| k.project == Some("alpha")).expect("alpha");
    let gamma = pool.iter().find(|k| k.project == Some("gamma")).expect("gamma");
    keep(&mut records, "res/files/a", &Record::new(&alpha, "app"));
    keep(&mut records, "res/cachedContents/g", &Record::new(&gamma, "app"));
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
    let mut records = Store::default();
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

/// Every JSON spelling of a body — escapes in keys and values, key order, whitespace — names the
/// same resources as the plain one (a spelling the pre-scan missed once let a client use another
/// client's file).
#[test]
fn every_spelling_of_a_body_pins_the_same() {
    let plain = [
        ("fileUri", "files/a"),
        ("file_uri", "https://generativelanguage.googleapis.com/v1beta/files/a"),
        ("cachedContent", "cachedContents/g"),
        ("previous_interaction_id", "v1_i"),
        ("fileName", "files/a"),
    ];
    let mut rng = gemini_pool_core::Rng::new(7);
    for round in 0..400 {
        let (field, value) = plain[round % plain.len()];
        let body = format!(r#"{{"contents":[{{"parts":[{{"x":{{"{field}":"{value}"}}}}]}}],"n":1}}"#);
        let want =
            route("POST", GENERATE, None, true).expect("routes").facts(body.as_bytes()).expect("reads").resources;
        assert_eq!(want.len(), 1, "{body}");
        let spelled = respell(&body, &mut rng);
        let got = route("POST", GENERATE, None, true).expect("routes").facts(spelled.as_bytes());
        assert_eq!(got.map(|f| f.resources), Ok(want), "{spelled}");
    }
}

/// `body` written another way JSON allows: characters of strings as `\uXXXX` escapes or `\/`,
/// whitespace between tokens, the top object's fields in another order.
fn respell(body: &str, rng: &mut gemini_pool_core::Rng) -> String {
    let mut out = String::new();
    let mut in_string = false;
    for c in body.chars() {
        match c {
            '"' => {
                in_string = !in_string;
                out.push(c);
            }
            '/' if in_string && rng.below(2) == 0 => out.push_str("\\/"),
            c if in_string && rng.below(3) == 0 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if in_string => out.push(c),
            c => {
                if rng.below(3) == 0 {
                    out.push_str([" ", "\n", "\t", "\r\n"][rng.below(4)]);
                }
                out.push(c);
            }
        }
    }
    if rng.below(2) == 0 {
        // The top object's two fields swapped.
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).expect("json");
        let mut fields: Vec<(String, serde_json::Value)> = value.into_iter().collect();
        fields.reverse();
        let swapped: Vec<String> =
            fields.iter().map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.clone()))).collect();
        return format!("{{ {} }}", swapped.join(" , "));
    }
    out
}

#[test]
fn a_chosen_file_name_another_request_holds_is_a_conflict_before_and_after_google() {
    let mut records = Store::default();
    let lists = lists();
    let pool = gemini_pool_core::KeyPool::new(lists.iter().map(String::as_bytes));
    let alpha = pool.iter().find(|k| k.project == Some("alpha")).expect("alpha");
    keep(&mut records, "res/files/report-2026", &Record::new(&alpha, "b"));
    // A start that names a taken id: refused before Google is asked.
    let start = run(
        "/upload/v1beta/files",
        r#"{"file":{"name":"files/report-2026"}}"#,
        &caller("a"),
        &mut records,
        |_| Answer::Served,
        1,
    );
    assert!(start.sent.is_empty());
    assert!(
        matches!(&start.finish, Finish::Error(r) if (r.status, r.code.as_str()) == (409, "already_exists")),
        "{:?}",
        start.finish
    );
    // A file made under a name taken meanwhile (a multipart upload, a race): the record is not
    // overwritten and the client is told, not served a file it could not reach.
    let made = Resource::new(Kind::File, "report-2026").expect("id");
    let multipart = route("POST", "/upload/v1beta/files", Some("uploadType=multipart"), true).expect("routes");
    let facts = multipart.facts(b"").expect("streamed");
    let mut rig = Rig::new(&[lists[0].as_bytes(), lists[1].as_bytes()], NOW);
    rig.store = records;
    let mut flow = Flow::new(2, None, 1, 1).with_resources(&multipart, &facts, &caller("a"));
    let finish = rig.drive(&mut flow, |_| Answer::Made(made.clone()));
    assert!(matches!(&finish, Finish::Error(r) if r.status == 409), "{finish:?}");
    assert_eq!(
        Record::decode(rig.store.get("res/files/report-2026").expect("kept")).map(|r| r.client),
        Some("b".into())
    );
}

#[test]
fn a_delete_removes_the_record_and_strikes_the_index_line() {
    let mut records = Store::default();
    let made = Resource::new(Kind::Cache, "c9").expect("id");
    let body = r#"{"model":"models/gemini-3.5-flash","contents":[]}"#;
    let create = run("/v1beta/cachedContents", body, &caller("app"), &mut records, |_| Answer::Made(made.clone()), 1);
    assert_eq!(create.finish, Finish::Served);
    // Another client's DELETE is a 404 and changes nothing; an admin's removes it from its maker's index.
    let other =
        run_as("DELETE", "/v1beta/cachedContents/c9", "", &caller("other"), &mut records, |_| Answer::Served, 2);
    assert!(matches!(&other.finish, Finish::Error(r) if r.status == 404));
    assert!(records.get("res/cachedContents/c9").is_some());
    let admin = Caller { label: "root".into(), admin: true };
    let deleted = run_as("DELETE", "/v1beta/cachedContents/c9", "", &admin, &mut records, |_| Answer::Served, 3);
    assert_eq!(deleted.finish, Finish::Served);
    assert!(records.get("res/cachedContents/c9").is_none(), "the record is gone");
    assert!(records.text("own/app").ends_with("- cachedContents c9\n"), "{}", records.text("own/app"));
    assert_eq!(records.text("own/root"), "", "nothing in the admin's index");
    // The name is free again.
    let again = run("/v1beta/cachedContents", body, &caller("app"), &mut records, |_| Answer::Made(made.clone()), 4);
    assert_eq!(again.finish, Finish::Served);
}
