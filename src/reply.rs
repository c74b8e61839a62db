//! Building responses: errors in the client's envelope, CORS on everything (streams and
//! errors included), `Server-Timing`, the OPTIONS preflight; and sending the answer
//! ([`After`]: a stream relayed within its time limit, then the usage count).

use crate::log::log;
use crate::steps::{self, StoreOnly};
use crate::stores::StateStore;
use crate::timing::Timing;
use crate::upstream::AnswerBody;
use fastly::http::body::StreamingBody;
use fastly::http::header::{self, HeaderName, HeaderValue};
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{Dialect, ErrorReply, Linger, Meter, Tokens, Transform, UsageAppend};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::Instant;

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, x-goog-api-key, x-goog-api-client";
/// The headers a browser's script may read. A `HeaderValue` checked when this is compiled,
/// not at every response (the check walks each byte).
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("Retry-After, Server-Timing, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");

pub fn error(dialect: Dialect, reply: &ErrorReply) -> Response {
    let status = StatusCode::from_u16(reply.status_in(dialect)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
pub fn finish(response: &mut Response, timing: &Timing, started: Instant) {
    response.set_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    response.set_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    response.set_header(SERVER_TIMING, timing.server_timing(started));
}

/// How the answer goes out, and the work for after it, through the KV store the request
/// already opened: the changes the store refused, written again with a backoff (a
/// [`Linger`]), and one append of usage counts.
#[derive(Default)]
pub struct After {
    pub store: Option<StateStore>,
    /// A served answer's body (its head read already); `None`: the response's own body.
    pub body: Option<AnswerBody>,
    pub usage: Option<UsageAppend>,
    pub linger: Option<Linger>,
    /// The answer is a stream: relayed by the instance, each chunk sent on at once.
    pub streams: bool,
    /// A streamed answer is cut at this time (`max_stream_duration`).
    pub stream_until: Option<Instant>,
    /// The answer's tokens are read as it passes (it is relayed by the instance).
    pub meter: bool,
    /// The answer carries the client's alias back (it is relayed by the instance).
    pub transform: Option<Transform>,
}

/// Bytes a streamed answer is relayed in (each read returns what has arrived, up to this).
const RELAY_CHUNK: usize = 16 * 1024;

impl After {
    /// Sends `response` to the client — handed to the host whole, or relayed by the instance
    /// when it streams, is metered or is transformed — then counts usage: the client already has
    /// its answer.
    pub fn deliver(self, mut response: Response) {
        let relayed = self.streams || self.meter || self.transform.is_some();
        let tokens = match (relayed, self.body) {
            (false, None) => {
                response.send_to_client();
                Tokens::default()
            }
            (false, Some(body)) => {
                response.set_body(body.whole());
                response.send_to_client();
                Tokens::default()
            }
            (true, body) => {
                let body = body.unwrap_or_else(|| AnswerBody::unread(response.take_body()));
                let relay =
                    Relay { streams: self.streams, meter: self.meter.then(Meter::new), transform: self.transform };
                relay.run(response, body, self.stream_until.filter(|_| self.streams))
            }
        };
        let Some(kv) = self.store else { return };
        if let Some(mut linger) = self.linger {
            let _ = steps::run(&mut linger, &mut StoreOnly, &kv, &Timing::default());
        }
        if let Some(mut usage) = self.usage {
            usage.tokens = tokens;
            crate::held::count(&kv, usage.appends());
        }
    }
}

/// Google's answer relayed to the client by the instance, chunk by chunk (never buffered),
/// through the `meter` and the `transform` if any; a stream's chunks each sent on at once.
struct Relay {
    streams: bool,
    meter: Option<Meter>,
    transform: Option<Transform>,
}

impl Relay {
    /// Relays `body` — the head the instance read, then the rest as it comes — and abandons it
    /// (the client sees a cut stream, not a complete one) once `until` has passed. Returns the
    /// tokens the meter read.
    fn run(mut self, mut response: Response, body: AnswerBody, until: Option<Instant>) -> Tokens {
        let AnswerBody { head, rest } = body;
        // A transformed answer (relabelled or translated) changes length: the host frames it anew.
        if self.transform.is_some() {
            response.remove_header("content-length");
        }
        let Some(mut upstream) = rest else {
            // The head is the whole answer: it goes out in one piece.
            response.set_body(self.whole(head));
            response.send_to_client();
            return self.tokens();
        };
        let mut client = response.stream_to_client();
        if self.send(&mut client, &head).is_err() {
            return self.tokens(); // the client went away
        }
        let mut chunk = vec![0u8; RELAY_CHUNK];
        loop {
            if until.is_some_and(|until| Instant::now() >= until) {
                log(format_args!("stream: cut at max_stream_duration"));
                let _ = client.abandon();
                return self.tokens();
            }
            let read = match upstream.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) => {
                    log(format_args!("stream: reading Google's answer failed: {e}"));
                    let _ = client.abandon();
                    return self.tokens();
                }
            };
            if self.send(&mut client, &chunk[..read]).is_err() {
                return self.tokens(); // the client went away
            }
        }
        if let Some(rest) = self.transform.as_mut().map(Transform::finish) {
            let _ = client.write_all(&rest);
        }
        let _ = client.finish();
        self.tokens()
    }

    /// `bytes` metered, and transformed (an alias put back, a translation).
    fn pass<'b>(&mut self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        if let Some(meter) = self.meter.as_mut() {
            meter.feed(bytes);
        }
        match self.transform.as_mut() {
            Some(transform) => Cow::Owned(transform.feed(bytes)),
            None => Cow::Borrowed(bytes),
        }
    }

    /// A whole answer, metered and transformed.
    fn whole(&mut self, body: Vec<u8>) -> Vec<u8> {
        let transformed = match self.pass(&body) {
            Cow::Owned(out) => Some(out),
            Cow::Borrowed(_) => None,
        };
        let mut out = transformed.unwrap_or(body);
        if let Some(rest) = self.transform.as_mut().map(Transform::finish) {
            out.extend(rest);
        }
        out
    }

    /// Passes `bytes` and writes them to the client. A stream's chunk goes out at once; an
    /// answer that is not a stream goes out as the host sends it (one host call fewer a chunk).
    fn send(&mut self, client: &mut StreamingBody, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let out = self.pass(bytes);
        client.write_all(&out)?;
        if self.streams {
            client.flush()?;
        }
        Ok(())
    }

    fn tokens(&self) -> Tokens {
        self.meter.as_ref().map(Meter::tokens).unwrap_or_default()
    }
}
