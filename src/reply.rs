//! Building responses: errors in the client's envelope, CORS on everything (streams and
//! errors included), `Server-Timing`, the OPTIONS preflight; and sending the answer
//! ([`After`]: a stream relayed within its time limit, then the usage count).

use crate::log::log;
use crate::ops::Ops;
use crate::steps::{self, StoreOnly};
use crate::stores::StateStore;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{Dialect, ErrorReply, Linger, Meter, Relabel, Tokens, UsageAppend};
use std::io::{Read, Write};
use std::time::Instant;

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, x-goog-api-key, x-goog-api-client";
const EXPOSE_HEADERS: &str = "Retry-After, Server-Timing, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

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
    /// The answer is a stream: relayed by the instance, each chunk sent on at once.
    pub streams: bool,
    /// A streamed answer is cut at this time (`max_stream_duration`).
    pub stream_until: Option<Instant>,
    /// The answer's tokens are read as it passes (it is relayed by the instance).
    pub meter: bool,
    /// The answer carries the client's alias back (it is relayed by the instance).
    pub relabel: Option<Relabel>,
}

/// Bytes a streamed answer is relayed in (each read returns what has arrived, up to this).
const RELAY_CHUNK: usize = 16 * 1024;

impl After {
    /// Sends `response` to the client — handed to the host whole, or relayed by the instance
    /// when it streams, is metered or is relabelled — then counts usage: the client already has
    /// its answer.
    pub fn deliver(self, response: Response) {
        let mut relabel = self.relabel;
        let tokens = match (self.streams, self.meter, &mut relabel) {
            (false, false, None) => {
                response.send_to_client();
                Tokens::default()
            }
            (streams, meter, relabel) => {
                let cut = self.stream_until.filter(|_| streams);
                relay(response, streams, cut, meter.then(Meter::new), relabel.as_mut())
            }
        };
        let Some(kv) = self.store else { return };
        if let Some(mut linger) = self.linger {
            let _ = steps::run(&mut linger, &mut StoreOnly, &kv, &Ops::default());
        }
        if let Some(mut usage) = self.usage {
            usage.tokens = tokens;
            usage.appends().iter().for_each(|append| kv.count(append));
        }
    }
}

/// Relays Google's answer to the client chunk by chunk (never buffered) through the `meter`
/// and the `relabel` if any — a stream's chunks each sent on at once — and abandons it (the
/// client sees a cut stream, not a complete one) once `until` has passed. Returns the tokens
/// the meter read.
fn relay(
    mut response: Response,
    streams: bool,
    until: Option<Instant>,
    mut meter: Option<Meter>,
    mut relabel: Option<&mut Relabel>,
) -> Tokens {
    let mut upstream = response.take_body().into_handle();
    // A relabelled answer changes length: the host frames it anew.
    if relabel.is_some() {
        response.remove_header("content-length");
    }
    let mut client = response.stream_to_client();
    let mut chunk = vec![0u8; RELAY_CHUNK];
    let tokens = |meter: &Option<Meter>| meter.as_ref().map(Meter::tokens).unwrap_or_default();
    loop {
        if until.is_some_and(|until| Instant::now() >= until) {
            log(format_args!("stream: cut at max_stream_duration"));
            let _ = client.abandon();
            return tokens(&meter);
        }
        let read = match upstream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                log(format_args!("stream: reading Google's answer failed: {e}"));
                let _ = client.abandon();
                return tokens(&meter);
            }
        };
        let bytes = &chunk[..read];
        if let Some(meter) = meter.as_mut() {
            meter.feed(bytes);
        }
        let relabelled = relabel.as_mut().map(|r| r.feed(bytes));
        let out = relabelled.as_deref().unwrap_or(bytes);
        // A stream's chunk goes out at once; an answer that is not a stream goes out as the host
        // sends it (one host call fewer a chunk).
        let sent = client.write_all(out).and_then(|()| if streams { client.flush() } else { Ok(()) });
        if sent.is_err() {
            return tokens(&meter); // the client went away
        }
    }
    if let Some(rest) = relabel.map(Relabel::finish) {
        let _ = client.write_all(&rest);
    }
    let _ = client.finish();
    tokens(&meter)
}
