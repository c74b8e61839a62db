//! Building responses: errors in the client's envelope, CORS on everything (streams and
//! errors included), `Server-Timing`, the OPTIONS preflight; and sending the answer
//! ([`After`]: a stream relayed within its time limit, then the usage count).

use crate::log::log;
use crate::ops::Ops;
use crate::steps::{self, StoreOnly};
use crate::stores::StateStore;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{Dialect, ErrorReply, Linger, UsageAppend};
use std::io::{Read, Write};
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

/// How the answer goes out, and the work for after it, through the KV store the request
/// already opened: the changes the store refused, written again with a backoff (a
/// [`Linger`]), and one append of usage counts.
#[derive(Default)]
pub struct After {
    pub store: Option<StateStore>,
    pub usage: Option<UsageAppend>,
    pub linger: Option<Linger>,
    /// A streamed answer is relayed by the instance and cut at this time
    /// (`max_stream_duration`); any other answer is handed to the host whole.
    pub stream_until: Option<Instant>,
}

/// Bytes a streamed answer is relayed in (each read returns what has arrived, up to this).
const RELAY_CHUNK: usize = 16 * 1024;

impl After {
    /// Sends `response` to the client (relaying a stream within its time limit), then counts
    /// usage: the client already has its answer.
    pub fn deliver(self, response: Response) {
        match self.stream_until {
            Some(until) => relay(response, until),
            None => response.send_to_client(),
        }
        let Some(kv) = self.store else { return };
        if let Some(mut linger) = self.linger {
            let _ = steps::run(&mut linger, &mut StoreOnly, &kv, &Ops::default());
        }
        if let Some(append) = self.usage {
            kv.count_usage(&append);
        }
    }
}

/// Streams Google's answer to the client chunk by chunk (never buffered), and abandons it —
/// the client sees a cut stream, not a complete one — once `until` has passed.
fn relay(mut response: Response, until: Instant) {
    let mut upstream = response.take_body().into_handle();
    let mut client = response.stream_to_client();
    let mut chunk = vec![0u8; RELAY_CHUNK];
    loop {
        if Instant::now() >= until {
            log(format_args!("stream: cut at max_stream_duration"));
            let _ = client.abandon();
            return;
        }
        let read = match upstream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                log(format_args!("stream: reading Google's answer failed: {e}"));
                let _ = client.abandon();
                return;
            }
        };
        if client.write_all(&chunk[..read]).and_then(|()| client.flush()).is_err() {
            return; // the client went away
        }
    }
    let _ = client.finish();
}
