//! A request's front and back in the core ([`Forward`]): what goes to Google, the machine behind
//! the client's gate, and what the client gets — the rules both edges used to write each.

use gemini_pool_core::testing::{Rig, Seen};
use gemini_pool_core::{
    route, Answer, Answering, Ask, Caller, Client, Delivery, Forward, Policy, RequestSettings, ResetZone, Setup,
    Transform,
};

const NOW: u64 = 1_768_478_400_000; // 2026-01-15 12:00 UTC
const LIST: &str = "team:AIzaSyFORWARD00000000000000000000000001\nteam:AIzaSyFORWARD00000000000000000000000002";

fn setup(platform_counter: bool) -> Setup<'static> {
    Setup {
        parts: 1,
        first_list: "gemini_keys/keys",
        upstream_limit: 32,
        platform_counter,
        verdict_entries: false,
        seed: 7,
        now_ms: NOW,
        settings: RequestSettings { reset_zone: ResetZone::Fixed(0), history_days: 30, ..Default::default() },
        agent_models: None,
    }
}

fn app() -> Caller {
    Caller { label: "app".into(), admin: false }
}

/// Prepares and runs one request, Google answering every key with `answer`; its delivery.
fn run(method: &str, path: &str, body: &str, policy: Option<&Policy>, rig: &mut Rig<'_>, answer: Answer) -> Delivery {
    let routed = route(method, path, None, path.starts_with("/v1beta/")).expect("routes");
    let caller = app();
    let ask = Ask { route: &routed, body: body.as_bytes(), streamed: false, query: None };
    let mut forward =
        Forward::prepare(ask, Client { caller: &caller, policy }, setup(rig.platform.is_some())).expect("prepared");
    let ended = rig.drive(forward.work(), |_| answer.clone());
    forward.deliver(ended, true, NOW)
}

#[test]
fn an_alias_rewrites_what_goes_to_google_and_comes_back_in_the_envelope() {
    let policy = Policy::parse("app", r#"{"aliases":{"gpt-4o":"gemini-3.5-flash"},"rpd":10}"#).expect("reads");
    let routed = route("POST", "/v1/chat/completions", None, false).expect("routes");
    let body = br#"{"model":"gpt-4o","stream":true,"messages":[]}"#;
    let caller = app();
    let ask = Ask { route: &routed, body, streamed: false, query: None };
    let forward =
        Forward::prepare(ask, Client { caller: &caller, policy: Some(&policy) }, setup(true)).expect("prepared");
    let outgoing = forward.outgoing();
    assert_eq!(outgoing.path, "/v1beta/openai/chat/completions");
    assert!(!outgoing.native && outgoing.headers == ["content-type"]);
    let sent: serde_json::Value = serde_json::from_slice(outgoing.body.as_deref().expect("rewritten")).expect("json");
    assert_eq!(sent["model"], "gemini-3.5-flash");

    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let delivery = run(
        "POST",
        "/v1/chat/completions",
        std::str::from_utf8(body).unwrap_or_default(),
        Some(&policy),
        &mut rig,
        Answer::Served,
    );
    let Answering::Served(passing) = delivery.answer else { panic!("served") };
    assert!(
        passing.stream
            && passing.meter
            && matches!(passing.transform, Some(Transform::Relabel(_)))
            && passing.rewrite.is_none()
    );
    assert!(delivery
        .rate_headers
        .iter()
        .any(|(name, value)| *name == "x-ratelimit-remaining-requests" && value == "9"));
    assert!(delivery.usage.is_some(), "counted after the answer");
}

#[test]
fn a_list_passes_the_gate_and_answers_json_the_proxy_made() {
    let policy = Policy::parse("app", r#"{"rpd":1}"#).expect("reads");
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let first = run("GET", "/v1beta/files", "", Some(&policy), &mut rig, Answer::Page(b"{}".to_vec()));
    assert!(matches!(first.answer, Answering::Json(ref body) if body == br#"{"files":[]}"#));
    let second = run("GET", "/v1beta/files", "", Some(&policy), &mut rig, Answer::Page(b"{}".to_vec()));
    assert!(matches!(second.answer, Answering::Error(ref e) if e.status == 429));
    assert!(second.rate_headers.iter().any(|(name, _)| *name == "x-ratelimit-limit-requests"));
}

#[test]
fn what_is_done_to_a_success_on_its_way_is_the_routes() {
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let start = run("POST", "/upload/v1beta/files", "{}", None, &mut rig, Answer::Served);
    assert!(matches!(start.answer, Answering::Served(ref p) if p.upload_url && !p.meter));
    let models = run("GET", "/v1/models", "", None, &mut rig, Answer::Served);
    let Answering::Served(passing) = models.answer else { panic!("served") };
    let rewritten = passing.rewrite.expect("model ids lose models/").apply(br#"{"data":[{"id":"models/m"}]}"#.to_vec());
    assert_eq!(rewritten, br#"{"data":[{"id":"m"}]}"#);
    let restricted = Policy::parse("app", r#"{"models":["gemini-3.5-*"]}"#).expect("reads");
    let native = run("GET", "/v1beta/models", "", Some(&restricted), &mut rig, Answer::Served);
    let Answering::Served(passing) = native.answer else { panic!("served") };
    let kept = passing.rewrite.expect("kept to the policy").apply(
        br#"{"models":[{"name":"models/gemini-3.5-flash"},{"name":"models/gemini-2.5-pro"}],"nextPageToken":"x"}"#
            .to_vec(),
    );
    assert_eq!(kept, br#"{"models":[{"name":"models/gemini-3.5-flash"}]}"#);
}

#[test]
fn the_gate_reads_where_rpm_counts_and_an_edge_without_a_counter_refuses_platform() {
    let policy = Policy::parse("app", r#"{"rpm":5}"#).expect("reads");
    // Workers (no per-client counter): `platform` is the operator's error, named.
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    rig.knobs.insert("rate_limiter", "platform".into());
    let refused = run("POST", "/v1/chat/completions", r#"{"model":"m"}"#, Some(&policy), &mut rig, Answer::Served);
    let Answering::Error(reply) = refused.answer else { panic!("a configuration error") };
    assert_eq!((reply.status, reply.code.as_str()), (500, "config_error"));
    assert!(reply.message.contains("rate_limiter = platform"), "{}", reply.message);
    assert!(refused.usage.is_none());
    // Fastly: the platform's counter is asked, the store is not.
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    rig.knobs.insert("rate_limiter", "platform".into());
    rig.platform = Some(2);
    let served = run("POST", "/v1/chat/completions", r#"{"model":"m"}"#, Some(&policy), &mut rig, Answer::Served);
    assert!(matches!(served.answer, Answering::Served(_)));
    assert!(rig.seen.iter().any(|s| matches!(s, Seen::Rate(_))));
    assert!(!rig.seen.iter().any(|s| matches!(s, Seen::Claim(_))), "{:?}", rig.seen);
    // A client without `rpm` reads no knob.
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let daily = Policy::parse("app", r#"{"rpd":5}"#).expect("reads");
    let _ = run("POST", "/v1/chat/completions", r#"{"model":"m"}"#, Some(&daily), &mut rig, Answer::Served);
    assert!(!rig.seen.iter().any(|s| matches!(s, Seen::Knob(_))));
}

#[test]
fn an_empty_pool_and_an_unserved_success_are_the_proxys_own_errors() {
    let mut rig = Rig::new(&[b"# no keys\n"], NOW);
    let empty = run("POST", "/v1/chat/completions", r#"{"model":"m"}"#, None, &mut rig, Answer::Served);
    let Answering::Error(reply) = empty.answer else { panic!("an error") };
    assert_eq!(reply.status, 500);
    assert!(reply.message.contains("gemini_keys/keys"), "{}", reply.message);
    // Served, but the edge holds no response (it could not keep it): unreachable.
    let routed = route("POST", "/v1/chat/completions", None, false).expect("routes");
    let caller = app();
    let ask = Ask { route: &routed, body: br#"{"model":"m"}"#, streamed: false, query: None };
    let mut forward = Forward::prepare(ask, Client { caller: &caller, policy: None }, setup(true)).expect("prepared");
    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let ended = rig.drive(forward.work(), |_| Answer::Served);
    let delivery = forward.deliver(ended, false, NOW);
    assert!(matches!(delivery.answer, Answering::Error(ref e) if e.status == 502));
}

#[test]
fn a_messages_request_goes_to_google_native_and_its_answer_is_translated_back() {
    let policy = Policy::parse("app", r#"{"aliases":{"claude-fast":"gemini-3.6-flash"},"models":["gemini-3*"]}"#)
        .expect("reads");
    let routed = route("POST", "/v1/messages", Some("beta=true"), false).expect("routes");
    let caller = app();
    let prepare = |body: &'static str, policy: Option<&Policy>| {
        let ask = Ask { route: &routed, body: body.as_bytes(), streamed: false, query: Some("beta=true") };
        Forward::prepare(ask, Client { caller: &caller, policy }, setup(false))
    };
    let body =
        r#"{"model":"claude-sonnet-4-6","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let forward = prepare(body, Some(&policy)).expect("prepared");
    let outgoing = forward.outgoing();
    assert_eq!(outgoing.path, "/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse");
    assert!(outgoing.native);
    let sent: serde_json::Value = serde_json::from_slice(outgoing.body.as_deref().expect("translated")).expect("json");
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "hi");
    // The client's alias comes first; the policy's model list holds for what the agents ask.
    let aliased =
        prepare(r#"{"model":"claude-fast","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#, Some(&policy));
    assert_eq!(aliased.expect("prepared").outgoing().path, "/v1beta/models/gemini-3.6-flash:generateContent");
    let refused = prepare(
        r#"{"model":"gemini-2.5-flash","max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#,
        Some(&policy),
    );
    assert!(matches!(refused, Err(ref e) if e.status == 403), "the policy's model list");
    let unreadable = prepare(r#"{"model":"claude-sonnet-4-6","messages":[]}"#, None);
    assert!(matches!(unreadable, Err(ref e) if e.status == 400), "max_tokens is required");
    let routed_count = route("POST", "/v1/messages/count_tokens", None, false).expect("routes");
    let ask = Ask {
        route: &routed_count,
        body: br#"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}"#,
        streamed: false,
        query: None,
    };
    let counting = Forward::prepare(ask, Client { caller: &caller, policy: None }, setup(false)).expect("prepared");
    assert_eq!(counting.outgoing().path, "/v1beta/models/gemini-3.5-flash-lite:countTokens");

    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let delivery = run("POST", "/v1/messages", body, None, &mut rig, Answer::Served);
    let Answering::Served(passing) = delivery.answer else { panic!("served") };
    assert!(passing.stream && passing.meter);
    let Some(Transform::Messages(mut answer)) = passing.transform else { panic!("translated") };
    let mut out = answer.feed(
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
    );
    out.extend(answer.finish());
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with("event: message_start\n")
            && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    assert!(text.contains(r#""model":"claude-sonnet-4-6""#), "the client's model name");
}

#[test]
fn a_responses_request_goes_to_google_native_and_its_answer_is_translated_back() {
    let policy = Policy::parse("app", r#"{"aliases":{"gpt-5.1-codex":"gemini-3.1-pro-preview"}}"#).expect("reads");
    let routed = route("POST", "/v1/responses", None, false).expect("routes");
    assert_eq!(routed.dialect, gemini_pool_core::Dialect::OpenAi, "errors in OpenAI's envelope");
    let caller = app();
    let body = r#"{"model":"gpt-5.1-codex","stream":true,"input":"hi","store":false}"#;
    let prepare = |policy: Option<&Policy>| {
        let ask = Ask { route: &routed, body: body.as_bytes(), streamed: false, query: None };
        Forward::prepare(ask, Client { caller: &caller, policy }, setup(false)).expect("prepared")
    };
    assert_eq!(prepare(None).outgoing().path, "/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(
        prepare(Some(&policy)).outgoing().path,
        "/v1beta/models/gemini-3.1-pro-preview:streamGenerateContent?alt=sse",
        "the client's alias comes before agent_models"
    );

    let mut rig = Rig::new(&[LIST.as_bytes()], NOW);
    let delivery = run("POST", "/v1/responses", body, None, &mut rig, Answer::Served);
    let Answering::Served(passing) = delivery.answer else { panic!("served") };
    assert!(passing.stream && passing.meter);
    let Some(Transform::Responses(mut answer)) = passing.transform else { panic!("translated") };
    let mut out = answer.feed(
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
    );
    out.extend(answer.finish());
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("event: response.completed\n"), "{text}");
    assert!(text.contains(r#""model":"gpt-5.1-codex""#), "the client's model name");
}
