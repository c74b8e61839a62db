//! Building responses: errors in the client's envelope, CORS on everything (streams and
//! errors included), `Server-Timing`, and the OPTIONS preflight.

use crate::ops::Ops;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use std::time::Instant;

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, x-goog-api-key, x-goog-api-client";
const EXPOSE_HEADERS: &str = "Retry-After, Server-Timing";

pub fn error(dialect: Dialect, reply: &ErrorReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::from_status(status)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(reply.body(dialect));
    if let Some(secs) = reply.retry_after_secs {
        response.set_header("retry-after", secs.to_string());
    }
    if let Some(allow) = reply.allow {
        response.set_header("allow", allow);
    }
    response
}

pub fn json(body: Vec<u8>) -> Response {
    Response::from_status(StatusCode::OK)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_body(body)
}

pub fn preflight(client: &Request) -> Response {
    let requested = client
        .get_header("access-control-request-headers")
        .and_then(|value| value.to_str().ok())
        .filter(|h| h.len() < 1024 && h.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .unwrap_or(ALLOW_HEADERS)
        .to_string();
    Response::from_status(StatusCode::NO_CONTENT)
        .with_header("access-control-allow-methods", ALLOW_METHODS)
        .with_header("access-control-allow-headers", requested)
        .with_header("access-control-max-age", "86400")
}

/// The headers every response gets (Google's own `server-timing` is replaced; its other
/// response headers pass through).
pub fn finish(response: &mut Response, ops: &Ops, started: Instant) {
    response.set_header("access-control-allow-origin", "*");
    response.set_header("access-control-expose-headers", EXPOSE_HEADERS);
    response.set_header("server-timing", ops.server_timing(started));
}
