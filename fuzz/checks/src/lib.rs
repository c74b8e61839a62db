//! The invariants gemini-pool-core keeps on any input, one function per parser or decision.
//!
//! Each function takes arbitrary bytes, feeds them to the core, and panics if an invariant
//! breaks — not only on a panic inside the core. The fuzz targets (`fuzz/fuzz_targets`, run
//! by `make fuzz` on nightly) call them with libFuzzer's inputs; `tests/replay.rs` calls them
//! with every committed input (`fuzz/seeds/<target>/`, `fuzz/corpus/<target>/`) on stable in
//! `make test`.

use gemini_pool_core::testing::{Google, Rig, Seen};
use gemini_pool_core::{
    choose_part, classify, client_token, decide, forwarded_query, peek, query_param, route, scrub as scrub_text,
    strip_model_prefixes, valid_model, Answer, Bucket, Caller, Change, CoolingSettings, Dialect, Entry, ErrorReply,
    Finish, Flow, Gate, Gated, KeyPool, Limiter, Limits, MarkName, Marks, MessagesAnswer, MessagesRequest, Moment,
    Outcome, Pinned, Presented, Profile, Record, Relabel, ResetZone, ResponsesAnswer, ResponsesRequest, RetrySettings,
    Rng, SettingsReader, Strategy, ToolNames, Transform, MAX_DURATION, MAX_UPSTREAM_REQUESTS,
};
use std::collections::HashMap;

/// A key the checks plant in inputs and look for in outputs.
const KEY: &str = "AIzaSyFUZZ00000000000000000000000000042";
/// 2026-01-15 12:00 UTC.
const NOW: u64 = 1_768_478_400_000;

/// Reads an input as a sequence of small choices and byte strings.
struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.bytes.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.bytes = rest;
        first
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    /// Up to the next 0xFF byte (or the end).
    fn field(&mut self) -> &'a [u8] {
        let end = self.bytes.iter().position(|&b| b == 0xFF).unwrap_or(self.bytes.len());
        let (field, rest) = self.bytes.split_at(end);
        self.bytes = rest.get(1..).unwrap_or_default();
        field
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.field()).into_owned()
    }
}

fn contains_key(text: &str) -> bool {
    text.to_ascii_lowercase().contains(&KEY.to_ascii_lowercase())
}

/// Google's answer → classify → decide (both profiles) → the error the client would get.
/// No cooldown ends in the past or beyond [`MAX_DURATION`] (but "forever" of the seed
/// profile); the reply's status is an error status; the key never reaches the reply.
pub fn google_answer(data: &[u8]) {
    let mut input = Input { bytes: data };
    let status = [200, 302, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504, 599][input.below(14)];
    let strikes = u32::from(input.byte());
    let jitter_ms = u64::from(input.byte()) * 1_000_000;
    let body = input.field();
    let verdict = classify(status, body);
    for profile in [Profile::Smart, Profile::Seed] {
        let settings = CoolingSettings { profile, ..CoolingSettings::default() };
        let action = decide(&verdict, &settings, Moment { now_ms: NOW, previous_strikes: strikes, jitter_ms });
        if let Some(cooldown) = action.cooldown {
            let cap = NOW + MAX_DURATION.as_millis() as u64;
            assert!(cooldown.until_ms >= NOW, "a cooldown in the past: {cooldown:?}");
            assert!(cooldown.until_ms <= cap || cooldown.until_ms == u64::MAX, "beyond the cap: {cooldown:?}");
            assert!(cooldown.until_ms != u64::MAX || profile == Profile::Seed);
        }
    }
    let reply = ErrorReply::from_upstream(status, body, &verdict.outcome, &[KEY]);
    assert!((400..=599).contains(&reply.status), "{}", reply.status);
    for dialect in [Dialect::OpenAi, Dialect::Google] {
        let text = String::from_utf8_lossy(&reply.body(dialect)).into_owned();
        let decoded = serde_json::from_str::<serde_json::Value>(&text).map(|v| v.to_string()).unwrap_or(text);
        assert!(!contains_key(&decoded), "the key reached the client: {decoded}");
    }
}

/// Method, path, credentials and query → route, client token, forwarded query. Nothing off
/// the allow-list reaches Google; `key` is never forwarded; a token the proxy accepts is one a
/// config-store lookup can take.
pub fn request(data: &[u8]) {
    let mut input = Input { bytes: data };
    let method = ["GET", "POST", "OPTIONS", "DELETE", "PUT", ""][input.below(6)];
    let path = input.text();
    let authorization = input.text();
    let goog = input.text();
    let query = input.text();
    let native_credentials = input.byte().is_multiple_of(2);
    let upload_id = input.byte().is_multiple_of(3).then_some(query.as_str());
    let Ok(route) = route(method, &path, upload_id, native_credentials) else { return };
    if let Some(upstream) = route.upstream_path() {
        let versioned = ["/v1beta/", "/v1/", "/upload/v1beta/", "/upload/v1/"];
        assert!(versioned.iter().any(|v| upstream.starts_with(v)), "{upstream}");
        assert!(!upstream.contains("..") && !upstream.contains('%') && !upstream.contains("//"), "{upstream}");
        assert!(upstream.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:".contains(&b)), "{upstream}");
        if let Some(model) = route.path_model() {
            assert!(valid_model(model), "{model}");
        }
    }
    let forwarded = forwarded_query(Some(&query), route.forwarded_query_params()).unwrap_or_default();
    assert!(forwarded.split('&').all(|p| !p.starts_with("key=") && p != "key"), "{forwarded}");
    let presented = Presented {
        authorization: Some(&authorization),
        goog_api_key: Some(&goog),
        query_key: query_param(Some(&query), "key"),
        api_key: Some(&goog),
    };
    if let Ok(token) = client_token(presented, route.dialect) {
        assert!(!token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic()));
    }
}

/// A request body, as an OpenAI and as a native request: a model the proxy accepts is a valid
/// model name; what a body names is what its plain spelling names (serde_json's own writing of
/// the same JSON: no escapes beyond the needed, no whitespace) — escapes cannot hide a name;
/// rewriting model ids never panics; relabelling gives the same bytes however the body is cut.
pub fn openai_body(data: &[u8]) {
    if let Ok(body) = peek(data) {
        assert!(valid_model(&body.model), "{:?}", body.model);
    }
    let _ = strip_model_prefixes(data);
    for path in ["/v1beta/models/m:generateContent", "/v1beta/interactions", "/v1/chat/completions"] {
        let Ok(route) = route("POST", path, None, true) else { continue };
        let Ok(facts) = route.facts(data) else { continue };
        let models = facts.model.iter().chain(&facts.inner_models).chain(&facts.agent);
        assert!(models.clone().all(|m| valid_model(m)), "{facts:?}");
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { continue };
        let plain = serde_json::to_vec(&value).unwrap_or_default();
        // A key written twice is one key to serde_json's map: the plain spelling names a subset.
        let again = route.facts(&plain).unwrap_or_else(|e| panic!("the plain spelling fails: {e:?}"));
        assert!(again.resources.iter().all(|r| facts.resources.contains(r)), "{facts:?} / {again:?}");
        assert!(again.inner_models.iter().all(|m| facts.inner_models.contains(m)), "{facts:?} / {again:?}");
    }
    let mut whole = Relabel::new("gemini-3.5-flash", "alias");
    let mut once = whole.feed(data);
    once.extend(whole.finish());
    let mut bytewise = Relabel::new("gemini-3.5-flash", "alias");
    let mut cut: Vec<u8> = data.iter().flat_map(|b| bytewise.feed(std::slice::from_ref(b))).collect();
    cut.extend(bytewise.finish());
    assert_eq!(once, cut, "relabelling depends on where the body is cut");
}

/// Up to four key lists. Every key read back from its position is the same key; a draw and a
/// walk give only keys of the pool; no mask shows more than four characters; the starting part
/// exists.
pub fn key_list(data: &[u8]) {
    let lists: Vec<&[u8]> = data.split(|&b| b == 0xFF).take(4).collect();
    let pool = KeyPool::new(lists.iter().copied());
    let keys: Vec<_> = pool.iter().collect();
    for key in keys.iter().take(64) {
        assert_eq!(pool.key_at(key.at).as_ref(), Some(key));
        assert!(key.mask().chars().count() <= 5);
        assert!(!key.secret.is_empty() && key.secret.bytes().all(|b| b.is_ascii_graphic()));
        let walked: Vec<_> = pool.walk(key.at).take(keys.len() + 1).collect();
        assert_eq!(walked.len(), keys.len() - 1, "a walk visits every other key once");
        let _ = MarkName::of(Bucket::of(key));
    }
    let mut rng = Rng::new(data.len() as u64);
    for _ in 0..16 {
        if let Some(key) = pool.draw(&mut rng, &[]) {
            assert!(keys.contains(&key), "drew a key outside the pool: {key:?}");
        }
    }
    let part = choose_part(lists.len(), &mut rng, |p| lists[p].len());
    assert!(part < lists.len().max(1));
}

/// Knob values: whatever is accepted is within its bounds.
pub fn settings(data: &[u8]) {
    let mut input = Input { bytes: data };
    let mut map = HashMap::new();
    for name in [
        "strategy",
        "max_attempts",
        "max_body_bytes",
        "when_all_cooling",
        "cool_jitter_ms",
        "key_secrets",
        "cooling_profile",
        "daily_reset_zone",
        "cool_default_retry_delay",
        "cool_no_free_tier",
        "cool_model_forbidden",
        "cool_throttle_base",
        "cool_throttle_max",
        "cool_connect_failure",
        "cool_upstream_trouble",
        "dead_probation",
        "cool_billing_depleted",
        "seed_cool_401_403",
        "seed_cool_429",
        "seed_cool_503",
        "seed_cool_502_504",
        "seed_cool_5xx",
    ] {
        if input.byte().is_multiple_of(3) {
            map.insert(name, input.text());
        }
    }
    let mut reader = SettingsReader::new(|name: &str| map.get(name).cloned());
    if let Ok(r) = reader.request() {
        assert!((1..=4).contains(&r.key_secrets) && r.max_body_bytes >= 1024);
    }
    if let Ok(c) = reader.cooling() {
        assert!((1..=32).contains(&c.retry.max_attempts));
        assert!(c.retry.jitter <= MAX_DURATION);
        let durations = [
            c.default_retry_delay,
            c.no_free_tier,
            c.model_forbidden,
            c.throttle_base,
            c.throttle_max,
            c.connect_failure,
            c.upstream_trouble,
            c.dead_probation,
            c.billing_depleted,
            c.seed.too_many_requests,
            c.seed.unavailable,
            c.seed.gateway,
            c.seed.other_5xx,
        ];
        assert!(durations.iter().chain(c.seed.auth.iter()).all(|d| *d <= MAX_DURATION));
    }
}

/// A stored item: listing and lookup agree; compaction keeps every mark and reads back; the
/// TTL is one the store accepts.
pub fn state_item(data: &[u8]) {
    let marks = Marks::decode(data.to_vec(), Some(1));
    let all = marks.all();
    let (compacted, ttl) = marks.compacted(0);
    assert!((60..=u64::from(u32::MAX)).contains(&ttl) || ttl == 3600, "{ttl}");
    let again = Marks::decode(compacted, Some(2));
    assert_eq!(again.all(), all, "a compaction reads back as the same marks");
    let text = String::from_utf8_lossy(data);
    for name in text.split(['\n', ' ']).filter_map(MarkName::parse).take(32) {
        let mark = marks.get(&name);
        assert_eq!(again.get(&name), mark, "lookup after compaction: {name}");
        if let Some(mark) = mark {
            assert!(all.iter().any(|(_, m)| *m == mark), "listing misses {name}");
            assert!(marks.covers(&name, &Entry::Set(mark)), "a stored mark covers itself");
        }
    }
}

/// Google's answers an attempt may get, real and hostile: the structured verdicts, and the
/// 400s and 403s that quote the request's own text (a field or safety category named like
/// Google's dead-key sentences, another project's file or cache).
const ANSWERS: [(u16, &[u8]); 24] = [
    (200, b"{}"),
    (429, br#"{"error":{"code":429,"message":"x\nPlease retry in 99999999999999999999s.","status":"RESOURCE_EXHAUSTED"}}"#),
    (429, br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#),
    (400, br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#),
    (503, br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#),
    (404, b""),
    (429, br#"{"error":{"code":429,"message":"Your prepayment credits are depleted.","status":"RESOURCE_EXHAUSTED"}}"#),
    (429, br#"[{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel"}]}]}}]"#),
    (400, br#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"API key not valid. Please pass a valid API key.\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"description":"Invalid JSON payload received. Unknown name \"API key not valid. Please pass a valid API key.\": Cannot find field."}]}]}}"#),
    (400, br#"[{"error":{"code":400,"message":"Invalid value at 'safety_settings[0].category' (type.googleapis.com/google.ai.generativelanguage.v1beta.HarmCategory), \"API key expired. Please renew the API key.\"","status":"INVALID_ARGUMENT"}}]"#),
    (403, br#"{"error":{"code":403,"message":"You do not have permission to access the File doesnotexist1 or it may not exist.","status":"PERMISSION_DENIED"}}"#),
    (403, br#"{"error":{"code":403,"message":"CachedContent not found (or permission denied)","status":"PERMISSION_DENIED"}}"#),
    (403, br#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#),
    (403, br#"{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.","status":"PERMISSION_DENIED"}}"#),
    (403, br#"{"error":{"code":403,"message":"You do not have permission to access the File Your API key was reported as leaked. Please use another API key. or it may not exist.","status":"PERMISSION_DENIED"}}"#),
    (401, br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#),
    (500, b"<html>"),
    (403, br#"{"error":{"code":403,"message":"Generative Language API has not been used in project 1","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED"}]}}"#),
    (0, b"timeout"),
    (400, br#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"x\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#),
    (1, b"an empty 200"),
    (404, br#"{"error":{"code":404,"message":"This model models/m is no longer available to new users. Please update your code to use a newer model for the latest features and improvements.","status":"NOT_FOUND"}}"#),
    (404, br#"{"error":{"code":404,"message":"models/This model models/m is no longer available to new users is not found.","status":"NOT_FOUND"}}"#),
    (429, br#"{"error":{"code":"rate_limit_exceeded","message":"Please retry in 7s."}}"#),
];

/// A request's whole flow ([`Flow`], the machine both edges run) against a strict in-memory
/// store and a pool of one to three parts whose keys answer as the input says. No key is tried
/// twice (nor a key listed twice), no more attempts than the pool or 32, every cooldown within
/// bounds, every change the flow made is in the store at the end — and the blast radius
/// (`gemini_pool_core::attempts`): answers that quote the request never kill a key; an answer
/// of the request's own fault changes nothing; two 403s that may be the request's, from two
/// projects, end the request; and at most `max_attempts + 1` changes rest on anything but an
/// answer in which Google names the key or its bucket. As the input says, the flow sits behind
/// a client's gate (a per-minute limit, with claims already in its item: a refused request
/// tries no key, an admitted one is never refused by it) and names a file another request made
/// (its record pins it: it tries only keys of the record's bucket; another client's file is
/// refused with no key tried).
pub fn attempt_loop(data: &[u8]) {
    let mut input = Input { bytes: data };
    let n = 1 + input.below(40);
    let projects = input.below(5);
    let entry = |i: usize| match (projects, i % 4) {
        (0, _) | (_, 3) => format!("AIzaSyLOOP{i:029}\n"),
        (p, _) => format!("team{}:AIzaSyLOOP{i:029}\n", i % p),
    };
    let parts = 1 + input.below(3);
    let mut lists: Vec<String> = vec![String::new(); parts];
    for i in 0..n {
        lists[i % parts].push_str(&entry(i));
    }
    if input.byte().is_multiple_of(4) {
        lists[parts - 1].push_str(&entry(0)); // a key listed twice
    }
    let retry = RetrySettings {
        max_attempts: 1 + input.below(32),
        strategy: if input.byte().is_multiple_of(2) { Strategy::Random } else { Strategy::RoundRobin },
        ..RetrySettings::default()
    };
    let cooling = CoolingSettings {
        retry,
        profile: if input.byte().is_multiple_of(4) { Profile::Seed } else { Profile::Smart },
        ..Default::default()
    };
    let pool = KeyPool::new(lists.iter());
    let pool_keys = pool.count();
    let bytes: Vec<&[u8]> = lists.iter().map(String::as_bytes).collect();
    let mut rig = Rig::new(&bytes, NOW);
    rig.cooling = cooling.clone();
    let flow = Flow::new(parts, Some("m"), u64::from(input.byte()), MAX_UPSTREAM_REQUESTS);
    let (flow, pin) = pinned(flow, &mut input, &pool, &mut rig);
    let (gate, claimed) = gate(&mut input, &mut rig);
    let mut flow = Gated::new(flow, gate, 1);
    let mut tried = Vec::new();
    let (mut unproven, mut counted, mut names_fault) = (0, 0, true);
    let mut request_faults = Vec::new();
    let bound = cooling.retry.max_attempts + 1;
    let finish = loop {
        tally(flow.inner(), (&mut counted, &mut unproven), names_fault, rig.now_ms, bound);
        let google: &mut Google<'_, '_> = &mut |key| {
            assert!(request_faults.len() < 2, "tried on after two projects refused the request");
            assert!(!tried.contains(&key.fingerprint), "a key tried twice");
            assert!(pin.as_ref().is_none_or(|pin| pin == &Some(Pinned::of(key))), "a key outside the pin");
            tried.push(key.fingerprint);
            assert!(tried.len() <= pool_keys.min(MAX_UPSTREAM_REQUESTS), "more attempts than allowed");
            let (status, body) = ANSWERS[input.below(ANSWERS.len())];
            let verdict = classify(status.max(200), body);
            names_fault = status > 200 && verdict.outcome.names_the_fault();
            let quoting = std::str::from_utf8(body).is_ok_and(|b| b.contains("\\\"API key") || b.contains("File Your"));
            assert!(!(quoting && matches!(verdict.outcome, Outcome::KeyDead(_))), "a quote killed a key: {verdict:?}");
            if status > 200 && verdict.outcome.may_be_the_requests() {
                let bucket = Bucket::of(key);
                assert!(!request_faults.contains(&bucket), "the same project asked twice");
                request_faults.push(bucket);
            }
            match status {
                200 => Answer::Served,
                1 => Answer::Empty,
                0 => Answer::None { timeout: true, detail: "t".into() },
                _ => Answer::Error { status, body: body.to_vec() },
            }
        };
        if let Some(finish) = rig.turn(&mut flow, google) {
            break finish;
        }
        rig.now_ms += u64::from(input.byte()) * 100;
    };
    tally(flow.inner(), (&mut counted, &mut unproven), names_fault, rig.now_ms, bound);
    let waited = rig.seen.iter().any(|s| matches!(s, Seen::Wait(_)));
    assert!(!waited || pin.is_some(), "only a pinned request waits (for its project) before its answer");
    let refused = |code: &str| matches!(&finish, Finish::Error(reply) if reply.code == code);
    if let Some((claims, rpm)) = claimed {
        assert_eq!(refused("client_rate_limited"), claims >= rpm, "{claims} claims against rpm {rpm}: {finish:?}");
    }
    if refused("client_rate_limited") || pin == Some(None) {
        assert!(tried.is_empty(), "a refused request tried a key");
    }
    for line in rig.logs() {
        assert!(!contains_key(&line), "a key in a log line: {line}");
    }
    if let Finish::Error(reply) = &finish {
        assert!((400..=599).contains(&reply.status), "{reply:?}");
    }
    for change in flow.inner().changes() {
        let marks = rig.store.marks(&change.item);
        assert!(marks.covers(&change.name, &change.entry) || superseded(&marks, change), "lost: {change:?}");
    }
}

/// As the input says, `flow` names file `fz1`, recorded as made through one of the pool's keys
/// by client `app`, or by another client. Returns the flow and, if it names the file, the bucket
/// it may use (`None`: none, the file is another client's).
fn pinned<'a>(
    flow: Flow<'a>,
    input: &mut Input<'_>,
    pool: &KeyPool<'_>,
    rig: &mut Rig<'_>,
) -> (Flow<'a>, Option<Option<Pinned>>) {
    let choice = input.byte();
    let Some(key) = pool.iter().nth(usize::from(choice) % 8).filter(|_| choice >= 128) else {
        return (flow, None);
    };
    let owner = if choice % 16 == 15 { "someone-else" } else { "app" };
    let record = Record::new(&key, owner);
    rig.store.items.insert("res/files/fz1".into(), (record.encode(), 1));
    let body = br#"{"contents":[{"parts":[{"fileData":{"fileUri":"files/fz1"}}]}]}"#;
    let routed = route("POST", "/v1beta/models/m:generateContent", None, true).expect("a route");
    let facts = routed.facts(body).expect("facts");
    let caller = Caller { label: "app".into(), admin: false };
    let allowed = (owner == "app").then_some(record.bucket);
    (flow.with_resources(&routed, &facts, &caller), Some(allowed))
}

/// As the input says, a gate of client `app` with a per-minute limit and claims already in its
/// item this minute. Returns the gate and, if there is one, (claims, limit).
fn gate(input: &mut Input<'_>, rig: &mut Rig<'_>) -> (Option<Gate>, Option<(u64, u64)>) {
    let choice = input.byte();
    if choice < 128 {
        return (None, None);
    }
    let (rpm, claims) = (1 + u64::from(choice % 4), u64::from(choice / 4 % 6));
    let minute = NOW / 60_000;
    let lines: String = (0..claims).map(|n| format!("r {minute} c{n}\n")).collect();
    rig.store.append("limit/2026-01-15/app", lines.as_bytes());
    let limits = Limits { rpm: Some(rpm), ..Limits::default() };
    let gate = Gate::new(limits, Limiter::Store, "app", NOW, ResetZone::Fixed(0));
    (Some(gate), Some((claims, rpm)))
}

/// Checks the changes the flow made since the last tally (the verdict that made them names the
/// fault, or not): cooldowns within bounds, and at most `bound` unproven ones in all.
fn tally(flow: &Flow<'_>, (counted, unproven): (&mut usize, &mut usize), names_fault: bool, now: u64, bound: usize) {
    for change in &flow.changes()[*counted..] {
        if let Entry::Set(mark) = change.entry {
            let (set, cap) = (mark.since_ms, mark.since_ms + MAX_DURATION.as_millis() as u64);
            assert!(set <= now && mark.until_ms >= set, "{mark:?}");
            assert!(mark.until_ms <= cap || mark.until_ms == u64::MAX, "{mark:?}");
            *unproven += usize::from(!names_fault);
        }
    }
    *counted = flow.changes().len();
    assert!(*unproven <= bound, "{unproven} changes on unproven verdicts");
}

/// A change the store no longer says because a later one of the same request replaced it.
fn superseded(marks: &Marks, change: &Change) -> bool {
    matches!(change.entry, Entry::Clear(_)) && marks.get(&change.name).is_some_and(|m| m.dead)
}

/// Text with the key planted in it — as it is, in other cases, JSON-escaped then decoded —
/// comes out of the scrub without the key.
pub fn scrub(data: &[u8]) {
    let mut input = Input { bytes: data };
    let form = input.byte();
    let at = usize::from(input.byte());
    let text = input.text();
    let planted = match form % 4 {
        0 => KEY.to_string(),
        1 => KEY.to_ascii_lowercase(),
        2 => KEY.to_ascii_uppercase(),
        _ => {
            let escaped: String = KEY.chars().map(|c| format!("\\u{:04x}", u32::from(c))).collect();
            serde_json::from_str::<String>(&format!("\"{escaped}\"")).unwrap_or_default()
        }
    };
    let cut = (0..=at.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let mixed = format!("{}{planted}{}", &text[..cut], &text[cut..]);
    let out = scrub_text(&mixed, &[KEY]);
    assert!(!contains_key(&out), "{out}");
    assert_eq!(scrub_text(&out, &[KEY]), out, "scrubbing twice changes nothing");
}

/// An Anthropic Messages request body: reading it never panics; a request read becomes a
/// native request Google takes — a JSON object with contents, each model turn's first call
/// signed, no `$schema` in a declaration's schema, at most 5 stop sequences — and a count.
pub fn messages_request(data: &[u8]) {
    let Ok(request) = MessagesRequest::read(data, false) else { return };
    let mut names = ToolNames::default();
    let Ok(bytes) = request.to_google("gemini-3.5-flash", &mut names) else { return };
    google_takes(&bytes);
    let _ = request.to_count_tokens("gemini-3.5-flash");
}

/// An OpenAI Responses request body: reading it never panics; a request read becomes a native
/// request Google takes, as [`messages_request`] holds it.
pub fn responses_request(data: &[u8]) {
    let Ok(request) = ResponsesRequest::read(data) else { return };
    let Ok(bytes) = request.to_google("gemini-3.5-flash", &mut ToolNames::default()) else { return };
    google_takes(&bytes);
}

/// A translated request is one Google takes: a JSON object with contents, no turn without
/// parts, each model turn's first call signed, declarations with valid names and no `$schema`,
/// at most 5 stop sequences.
fn google_takes(bytes: &[u8]) {
    let google: serde_json::Value = serde_json::from_slice(bytes).expect("Google's request is JSON");
    let contents = google["contents"].as_array().expect("contents");
    assert!(!contents.is_empty());
    for turn in contents {
        let parts = turn["parts"].as_array().expect("parts");
        assert!(!parts.is_empty(), "a turn with no parts: {turn}");
        if turn["role"] == "model" {
            let first = parts.iter().find(|p| p.get("functionCall").is_some());
            assert!(first.is_none_or(|p| p["thoughtSignature"].is_string()), "an unsigned first call: {turn}");
        }
    }
    let declared = google["tools"][0]["functionDeclarations"].as_array().cloned().unwrap_or_default();
    for declaration in declared {
        let name = declaration["name"].as_str().expect("a name");
        assert!(name.len() <= 64 && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'), "{name}");
        assert!(!declaration["parametersJsonSchema"].to_string().contains("\"$schema\":\""), "{declaration}");
    }
    let stops = google["generationConfig"]["stopSequences"].as_array().map_or(0, Vec::len);
    assert!(stops <= 5);
}

/// Google's answer — the input's bytes as a stream's events, cut where the input says — as
/// Anthropic's: never a panic; every delta inside a block started before it and not yet
/// stopped; indices in order; exactly one end (`message_stop` or `error`), last; the same
/// events however the bytes are cut.
pub fn messages_answer(data: &[u8]) {
    let text =
        translated_stream(data, || Transform::Messages(MessagesAnswer::new("claude-x", ToolNames::default(), true, 1)));
    let mut open: Option<u64> = None;
    let mut next = 0;
    let mut ends = 0;
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    for (i, event) in events.iter().enumerate() {
        let (kind, data) = event.split_once("\ndata: ").expect("event and data");
        let data: serde_json::Value = serde_json::from_str(data).expect("JSON data");
        match kind.trim_start_matches("event: ") {
            "content_block_start" => {
                assert!(open.is_none(), "a block started inside another");
                assert_eq!(data["index"], next);
                open = Some(next);
                next += 1;
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open, "a delta outside its block"),
            "content_block_stop" => assert_eq!(open.take(), data["index"].as_u64()),
            "message_stop" | "error" => {
                ends += 1;
                assert_eq!(i + 1, events.len(), "the end is the last event");
            }
            _ => {}
        }
    }
    assert_eq!(ends, 1, "one end: {text}");
}

/// Google's answer — the input's bytes as a stream's events, cut where the input says — as the
/// Responses API's: never a panic; `response.created` first; sequence numbers 0, 1, 2, …; each
/// event named for its type; every delta inside the item added before it and not yet done;
/// output indices in order; exactly one end (`response.completed`, `response.incomplete` or
/// `response.failed`), last, whose output (unless failed) is every item done; the same events
/// however the bytes are cut.
pub fn responses_answer(data: &[u8]) {
    let text = translated_stream(data, || {
        Transform::Responses(ResponsesAnswer::new("gpt-x", ToolNames::default(), true, 1, 0))
    });
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let mut open: Option<(u64, serde_json::Value)> = None;
    let mut done = 0;
    let mut ends = 0;
    for (i, event) in events.iter().enumerate() {
        let (kind, data) = event.split_once("\ndata: ").expect("event and data");
        let kind = kind.trim_start_matches("event: ");
        let data: serde_json::Value = serde_json::from_str(data).expect("JSON data");
        assert_eq!(data["type"], kind, "the event names its type");
        assert_eq!(data["sequence_number"], i as u64, "sequence numbers in order");
        assert_eq!(i == 0, kind == "response.created", "response.created comes first, once");
        match kind {
            "response.created" => {}
            "response.output_item.added" => {
                assert!(open.is_none(), "an item added inside another");
                assert_eq!(data["output_index"], done);
                open = Some((done, data["item"]["id"].clone()));
            }
            "response.output_item.done" => {
                let (index, id) = open.take().expect("an item done that was not added");
                assert_eq!((data["output_index"].as_u64(), &data["item"]["id"]), (Some(index), &id));
                done += 1;
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                ends += 1;
                assert_eq!(i + 1, events.len(), "the end is the last event");
                if kind != "response.failed" {
                    assert!(open.is_none(), "an item left open at the end");
                    assert_eq!(data["response"]["output"].as_array().map(Vec::len), Some(done as usize));
                }
            }
            _ => {
                let (index, id) = open.as_ref().expect("a delta outside an item");
                assert_eq!((data["output_index"].as_u64(), &data["item_id"]), (Some(*index), id), "{kind}");
            }
        }
    }
    assert_eq!(ends, 1, "one end: {text}");
}

/// The input (its first byte: where to cut; the rest: Google's stream) through a fresh
/// `transform`, cut there and whole: the same events either way, as UTF-8 text.
fn translated_stream(data: &[u8], transform: impl Fn() -> Transform) -> String {
    let mut input = Input { bytes: data };
    let step = 1 + input.below(64);
    let google = input.bytes;
    let run = |cut: usize| {
        let mut answer = transform();
        let mut out: Vec<u8> = google.chunks(cut).flat_map(|piece| answer.feed(piece)).collect();
        out.extend(answer.finish());
        out
    };
    let out = run(step);
    assert_eq!(out, run(google.len().max(1)), "the events depend on where the answer is cut");
    String::from_utf8(out).expect("UTF-8 events")
}
