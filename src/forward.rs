//! A request for Google's API on Fastly: the body read (or an upload's streamed), the core's
//! [`Forward`] prepared, its machine run by [`steps::run`] (sending through [`Upstream`]), and
//! its [`Delivery`] carried out. Every decision is the core's; this is I/O.

use crate::context::{now_ms, seed, Context};
use crate::reply::{self, After};
use crate::steps::{self, RequestIo};
use crate::stores::{StateStore, FIRST_LIST};
use crate::upstream::{AnswerBody, Payload, Served, Upstream};
use fastly::{Request, Response};
use gemini_pool_core::{
    proxied_upload_url, upload_fits, Answering, ApiKey, Ask, Client, ErrorReply, Forward, Passing, ResourceCall, Route,
    Setup, MAX_UPSTREAM_REQUESTS,
};
use std::io::Read;
use std::time::Instant;

/// Reads the body, runs the request's machine, and answers as the core says.
pub fn forward(client: &mut Request, route: &Route, cx: &Context<'_>) -> Result<(Response, After), ErrorReply> {
    let payload = payload(client, route, cx)?;
    let ask = Ask {
        route,
        body: payload.bytes(),
        streamed: matches!(payload, Payload::Stream(_)),
        query: client.get_query_str(),
    };
    let who = Client { caller: &cx.caller, policy: cx.policy.as_ref() };
    let setup = Setup {
        parts: cx.secrets.count(),
        first_list: FIRST_LIST,
        upstream_limit: MAX_UPSTREAM_REQUESTS,
        platform_counter: true,
        // Fastly's KV throttles inserts per item: each verdict gets an entry of its own.
        verdict_entries: true,
        seed: seed(),
        now_ms: now_ms(),
        settings: cx.settings.clone(),
        agent_models: if route.translated() { Some(cx.agent_models()?) } else { None },
    };
    let mut forward = Forward::prepare(ask, who, setup)?;
    let upstream = Upstream::new(client, forward.outgoing(), payload)
        .ok_or_else(|| ErrorReply::bad_request("invalid_query", "Invalid query string."))?;

    let kv = StateStore::open();
    let mut served = None;
    let mut send = |keys: &[ApiKey<'_>]| {
        keys.iter()
            .map(|key| {
                let (answer, success) = upstream.send(key.secret, cx.timing);
                served = success.or(served.take());
                answer
            })
            .collect()
    };
    let ended = steps::run(forward.work(), &mut RequestIo { cx, send: &mut send }, &kv, cx.timing)?;
    let delivery = forward.deliver(ended, served.is_some(), now_ms());
    cx.timing.usage_after.set(delivery.usage.is_some());
    let (mut response, body, passing) = match (delivery.answer, served) {
        (Answering::Served(passing), Some(served)) => {
            let Served { response, body } = passed_on(served, &passing, client);
            (response, Some(body), passing)
        }
        (Answering::Json(body), _) => (reply::json(body), None, Passing::default()),
        (Answering::Error(reply), _) => (reply::error(route.dialect, &reply), None, Passing::default()),
        (Answering::Served(_), None) => {
            (reply::error(route.dialect, &ErrorReply::upstream_unreachable(false)), None, Passing::default())
        }
    };
    for (name, value) in &delivery.rate_headers {
        response.set_header(*name, value);
    }
    // Only a served stream reads `max_stream_duration` (a host call the others skip).
    let stream_until = if passing.stream { cx.stream_limit()?.map(|limit| Instant::now() + limit) } else { None };
    let after = After {
        store: Some(kv),
        body,
        usage: delivery.usage,
        linger: delivery.linger,
        streams: passing.stream,
        stream_until,
        meter: passing.meter,
        transform: passing.transform,
    };
    Ok((response, after))
}

/// Google's success as the client gets it: the upload URL made the proxy's, the body rewritten
/// where the core says, a stream typed as one.
fn passed_on(served: Served, passing: &Passing, client: &Request) -> Served {
    let Served { mut response, mut body } = served;
    // Only a session's start has an upload URL: other answers skip the header read (a host call).
    if passing.upload_url {
        own_upload_url(&mut response, client);
    }
    if let Some(rewrite) = &passing.rewrite {
        body = AnswerBody::bytes(rewrite.apply(body.into_bytes()));
    }
    if passing.stream && response.get_header("content-type").is_none() {
        response.set_header("content-type", "text/event-stream");
    }
    Served { response, body }
}

/// Rewrites `x-goog-upload-url` to the proxy's own origin, rebuilt from the session's id alone.
/// Header values are read as text only if they are (never a panic on bytes from the network).
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
fn payload(client: &mut Request, route: &Route, cx: &Context<'_>) -> Result<Payload, ErrorReply> {
    if let Some(header) = route.upload_size_header() {
        upload_fits(crate::handler::header_text(client, header), cx.upload_limit()?)?;
    }
    if matches!(route.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload)) {
        return Ok(Payload::Stream(std::cell::RefCell::new(Some(client.take_body()))));
    }
    read_body(client, cx.settings.max_body_bytes).map(Payload::Bytes)
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
        return Err(ErrorReply::unreadable_body());
    }
    if body.len() > limit {
        return Err(ErrorReply::body_too_large(limit));
    }
    Ok(body)
}
