//! A request for Google's API: body → what it is about → the core's request flow
//! ([`Flow`], run by [`steps::run`]: key lists, state, attempts, recording) → the answer, and
//! the usage counts to write once the client has it.

use crate::context::{now_ms, seed, Context, Rejection};
use crate::reply::{self, After};
use crate::steps::{self, RequestIo};
use crate::stores::{ConfigError, StateStore};
use crate::upstream::{AnswerBody, Outbound, Payload, Served};
use fastly::{Request, Response};
use gemini_pool_core::{
    proxied_upload_url, strip_model_prefixes, upload_fits, ApiKey, Applied, ErrorReply, Finish, Flow, Gate, Gated,
    Kind, Listed, Listing, Policy, ResourceCall, Route, MAX_UPSTREAM_REQUESTS,
};
use std::io::Read;
use std::time::Instant;

/// Reads the body, runs the request's flow (sending through [`Outbound`]), and answers.
pub fn forward(client: &mut Request, route: &Route, cx: &Context<'_>) -> Result<(Response, After), Rejection> {
    let dialect = route.dialect;
    if let Some(ResourceCall::List(kind)) = route.resource_call() {
        return list(client, route, *kind, cx);
    }
    let mut payload = payload(client, route, cx)?;
    let facts = route.facts(payload.bytes()).map_err(|reply| Rejection::new(dialect, reply))?;
    // The client's policy: its alias resolved (in the path or the body), its models checked.
    let applied = match &cx.policy {
        Some(policy) => policy.apply(route, payload.bytes(), &facts),
        None => Ok(Applied::default()),
    };
    let Applied { route: aliased, body: aliased_body, model, relabel, query } =
        applied.map_err(|reply| Rejection::new(dialect, reply))?;
    let route = aliased.as_ref().unwrap_or(route);
    if let Some(body) = aliased_body {
        payload = Payload::Bytes(body);
    }
    let model = model.or_else(|| facts.model.clone());
    let path = route.upstream_path().unwrap_or_default();
    // A streamed body can be sent once: one attempt.
    let upstream_limit = if matches!(payload, Payload::Stream(_)) { 1 } else { MAX_UPSTREAM_REQUESTS };
    let outbound = Outbound::new(client, route, &path, payload, facts.stream, query)
        .ok_or_else(|| Rejection::new(dialect, ErrorReply::bad_request("invalid_query", "Invalid query string.")))?;

    let kv = StateStore::open();
    let flow = Flow::new(cx.secrets.count(), model.as_deref(), seed(), upstream_limit)
        .with_resources(route, &facts, &cx.caller)
        .within(cx.policy.as_ref().and_then(|p| p.projects.clone()));
    let mut flow = Gated::new(flow, gate(cx)?, seed());
    let mut served = None;
    let mut send = |keys: &[ApiKey<'_>]| {
        keys.iter()
            .map(|key| {
                let (answer, success) = outbound.send(key.secret, cx.ops);
                served = success.or(served.take());
                answer
            })
            .collect()
    };
    let finish = steps::run(&mut flow, &mut RequestIo { cx, send: &mut send }, &kv, cx.ops)?;
    let usage = flow.usage(&cx.caller.label, now_ms(), &cx.settings);
    cx.ops.usage_after.set(usage.is_some());
    let (mut response, body) = match (finish, served) {
        (Finish::Served, Some(served)) => {
            let Served { response, body } = served_response(served, route, facts.stream, client, cx.policy.as_ref());
            (response, Some(body))
        }
        (Finish::Error(reply), _) => (reply::error(dialect, &reply), None),
        (Finish::EmptyPool, _) => return Err(Rejection::config(dialect, ConfigError::EmptyPool)),
        (Finish::Served, None) => (reply::error(dialect, &ErrorReply::upstream_unreachable(false)), None),
    };
    for (name, value) in flow.rate_headers() {
        response.set_header(*name, value);
    }
    // Only a served stream reads `max_stream_duration` (a host call the others skip).
    let success = response.get_status().is_success();
    let streams = facts.stream && success;
    let stream_until = if streams { cx.stream_limit()?.map(|limit| Instant::now() + limit) } else { None };
    let meter = success && usage.is_some() && route.metered();
    let relabel = relabel.filter(|_| success);
    let linger = flow.inner_mut().linger();
    Ok((response, After { store: Some(kv), body, usage, linger, streams, stream_until, meter, relabel }))
}

/// The gate of a client with limits (its policy's `rpm`, `rpd`, `tokens_per_day`).
fn gate(cx: &Context<'_>) -> Result<Option<Gate>, Rejection> {
    let Some(limits) = cx.policy.as_ref().map(|p| p.limits).filter(|l| l.any()) else { return Ok(None) };
    let limiter = if limits.rpm.is_some() { cx.limiter()? } else { Default::default() };
    let zone = cx.settings.reset_zone;
    Ok(Some(Gate::new(limits, limiter, &cx.caller.label, now_ms(), zone)))
}

/// A list of stateful resources, behind the client's gate: the core's [`Listing`] asks each
/// project holding the caller's, and merges the pages.
fn list(client: &Request, route: &Route, kind: Kind, cx: &Context<'_>) -> Result<(Response, After), Rejection> {
    let path = route.upstream_path().unwrap_or_default();
    let outbound = Outbound::new(client, route, &path, Payload::Bytes(Vec::new()), false, None).ok_or_else(|| {
        Rejection::new(route.dialect, ErrorReply::bad_request("invalid_query", "Invalid query string."))
    })?;
    let mut send = |keys: &[ApiKey<'_>]| keys.iter().map(|key| outbound.send(key.secret, cx.ops).0).collect();
    let listing = Listing::new(kind, &cx.caller, cx.secrets.count(), now_ms());
    let mut listing = Gated::new(listing, gate(cx)?, seed());
    let kv = StateStore::open();
    let listed = steps::run(&mut listing, &mut RequestIo { cx, send: &mut send }, &kv, cx.ops)?;
    let mut response = match listed {
        Listed::Answer(body) => reply::json(body),
        Listed::Error(reply) => reply::error(route.dialect, &reply),
    };
    for (name, value) in listing.rate_headers() {
        response.set_header(*name, value);
    }
    Ok((response, After::default()))
}

/// A success as the client gets it: the upload URL made the proxy's, a model list rewritten.
fn served_response(served: Served, route: &Route, stream: bool, client: &Request, policy: Option<&Policy>) -> Served {
    let Served { mut response, mut body } = served;
    // Google's upload URL becomes the proxy's own, rebuilt from the session's id alone. Only
    // a session's start has one: other answers skip the header read (a host call).
    if matches!(route.resource_call(), Some(ResourceCall::StartUpload)) {
        own_upload_url(&mut response, client);
    }
    if route.rewrites_model_ids() {
        let bytes = body.into_bytes();
        body = AnswerBody::bytes(strip_model_prefixes(&bytes).unwrap_or(bytes));
    }
    // A client whose policy limits its models sees only those (and its aliases) listed.
    if let Some(policy) = policy.filter(|p| route.lists_models() && p.restricts()) {
        let bytes = body.into_bytes();
        body = AnswerBody::bytes(policy.model_list(&bytes).unwrap_or(bytes));
    }
    if stream && response.get_header("content-type").is_none() {
        response.set_header("content-type", "text/event-stream");
    }
    Served { response, body }
}

/// Rewrites `x-goog-upload-url` to the proxy's own origin. Header values are read as text only
/// if they are (never a panic on bytes from the network).
fn own_upload_url(response: &mut Response, client: &Request) {
    let Some(google_url) = response.get_header("x-goog-upload-url").and_then(|v| v.to_str().ok()) else { return };
    let host = client.get_header("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin = format!("{}://{host}", client.get_url().scheme());
    match proxied_upload_url(google_url, &origin) {
        Some(own) => response.set_header("x-goog-upload-url", own),
        None => {
            response.remove_header("x-goog-upload-url");
        }
    }
}

/// The request body: an upload's bytes stream through (within `max_upload_bytes`), any other
/// body is read (within `max_body_bytes`) so that a retry can send it again.
fn payload(client: &mut Request, route: &Route, cx: &Context<'_>) -> Result<Payload, Rejection> {
    let dialect = route.dialect;
    if let Some(header) = route.upload_size_header() {
        let announced = crate::handler::header_text(client, header);
        upload_fits(announced, cx.upload_limit()?).map_err(|reply| Rejection::new(dialect, reply))?;
    }
    if matches!(route.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload)) {
        return Ok(Payload::Stream(std::cell::RefCell::new(Some(client.take_body()))));
    }
    read_body(client, cx.settings.max_body_bytes).map(Payload::Bytes).map_err(|reply| Rejection::new(dialect, reply))
}

/// The request body, within `limit` bytes (GET requests have none).
fn read_body(client: &mut Request, limit: usize) -> Result<Vec<u8>, ErrorReply> {
    if !matches!(client.get_method_str(), "POST" | "PATCH") {
        return Ok(Vec::new());
    }
    let announced = client.get_content_length().unwrap_or(0);
    if announced > limit {
        return Err(ErrorReply::body_too_large(limit));
    }
    // Straight from the body handle into a buffer of the announced size: fastly's `Body`
    // reader would first zero an 8 KB buffer of its own.
    let mut body = Vec::with_capacity(announced.saturating_add(1));
    let read = client.take_body().into_handle().take(limit as u64 + 1).read_to_end(&mut body);
    if read.is_err() {
        return Err(ErrorReply::bad_request("unreadable_body", "The request body could not be read."));
    }
    if body.len() > limit {
        return Err(ErrorReply::body_too_large(limit));
    }
    Ok(body)
}
