//! Building responses on Workers: errors in the client's envelope, CORS on everything,
//! `Server-Timing`, the OPTIONS preflight, JSON, and Google's streamed answers passed on.

use crate::chunks::Chunks;
use futures_channel::oneshot;
use futures_util::future::{select, Either};
use futures_util::Stream;
use gemini_pool_core::{Dialect, ErrorReply, Meter, Transform};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{Delay, Headers, Response, ResponseBody, Result};

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, x-goog-api-key, x-goog-api-client";
const EXPOSE_HEADERS: &str = "Retry-After, Server-Timing, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

/// Counts for `Server-Timing`.
#[derive(Default)]
pub struct Timing {
    pub state_calls: u32,
    pub attempts: u32,
    pub usage_after: bool,
}

pub fn error(dialect: Dialect, reply: &ErrorReply) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    if let Some(secs) = reply.retry_after_secs {
        headers.set("retry-after", &secs.to_string())?;
    }
    if let Some(allow) = reply.allow {
        headers.set("allow", allow)?;
    }
    Ok(Response::from_bytes(reply.body(dialect))?.with_status(reply.status_in(dialect)).with_headers(headers))
}

pub fn json(body: Vec<u8>) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_bytes(body)?.with_headers(headers))
}

pub fn preflight(requested: Option<String>) -> Result<Response> {
    let requested = requested
        .filter(|h| h.len() < 1024 && h.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .unwrap_or_else(|| ALLOW_HEADERS.to_string());
    let headers = Headers::new();
    headers.set("access-control-allow-methods", ALLOW_METHODS)?;
    headers.set("access-control-allow-headers", &requested)?;
    headers.set("access-control-max-age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// What the Worker does to a success's body as it passes: its tokens read (`meter`, shared
/// with the usage count), the client's alias put back or its dialect made (`transform`). `done` is dropped once the
/// body has passed — or the client went away — which tells the usage count to go on.
#[derive(Default)]
pub struct Pass {
    pub meter: Option<Rc<RefCell<Meter>>>,
    pub transform: Option<Transform>,
    /// Held only to be dropped when the body has passed.
    #[allow(dead_code)]
    pub done: Option<oneshot::Sender<()>>,
}

impl Pass {
    fn touches(&self) -> bool {
        self.meter.is_some() || self.transform.is_some()
    }

    fn chunk(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if let Some(meter) = &self.meter {
            meter.borrow_mut().feed(&chunk);
        }
        match self.transform.as_mut() {
            Some(transform) => transform.feed(&chunk),
            None => chunk,
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.transform.as_mut().map(Transform::finish).unwrap_or_default()
    }
}

/// Google's answer with fresh, mutable headers (a fetched response's are immutable); the body
/// streams through untouched — or through a relay when it is metered, transformed, or a stream
/// with a `limit` (cut with an error, so the client sees it end unfinished, once the limit has
/// passed).
pub fn passed_on(
    upstream: Response,
    body: Option<Vec<u8>>,
    stream: bool,
    limit: Option<Duration>,
    mut pass: Pass,
) -> Result<Response> {
    let status = upstream.status_code();
    // A copy in one call (a fetched response's headers cannot be changed).
    let headers = upstream.headers().clone();
    if body.is_some() || pass.transform.is_some() {
        headers.delete("content-length")?;
    }
    if stream && !headers.has("content-type")? {
        headers.set("content-type", "text/event-stream")?;
    }
    let limit = limit.filter(|_| stream);
    let body = match body {
        Some(bytes) => ResponseBody::Body(bytes),
        None => upstream.into_parts().1,
    };
    let response = match body {
        ResponseBody::Body(bytes) if pass.touches() => {
            let mut bytes = pass.chunk(bytes);
            bytes.extend(pass.finish());
            Response::from_bytes(bytes)?
        }
        ResponseBody::Stream(chunks) if limit.is_some() || pass.touches() => {
            Response::from_stream(relay(Chunks::of(&chunks), limit, pass))?
        }
        body => Response::from_body(body)?,
    };
    Ok(response.with_status(status).with_headers(headers))
}

/// `chunks` as they come, through `pass`; ended with an error once `limit` (if any) has
/// passed since the first call.
fn relay(chunks: Chunks, limit: Option<Duration>, pass: Pass) -> impl Stream<Item = Result<Vec<u8>>> {
    let now = worker::Date::now().as_millis();
    let deadline = limit.map(|l| now.saturating_add(u64::try_from(l.as_millis()).unwrap_or(u64::MAX)));
    futures_util::stream::unfold(Some((chunks, pass)), move |state| async move {
        let (mut chunks, mut pass) = state?;
        let next = match deadline {
            None => chunks.next().await,
            Some(deadline) => {
                let left = deadline.saturating_sub(worker::Date::now().as_millis());
                match select(std::pin::pin!(chunks.next()), Delay::from(Duration::from_millis(left))).await {
                    Either::Left((next, _)) => next,
                    Either::Right(_) => {
                        worker::console_log!("stream: cut at max_stream_duration");
                        return Some((Err(worker::Error::RustError("max_stream_duration".into())), None));
                    }
                }
            }
        };
        match next {
            Some(Ok(chunk)) => Some((Ok(pass.chunk(chunk)), Some((chunks, pass)))),
            Some(Err(e)) => Some((Err(e), None)),
            None => Some(pass.finish()).filter(|rest| !rest.is_empty()).map(|rest| (Ok(rest), None)),
        }
    })
}

/// The headers every response gets.
pub fn finish(mut response: Response, timing: &Timing, started_ms: f64) -> Result<Response> {
    let total = worker::Date::now().as_millis() as f64 - started_ms;
    let usage =
        if timing.usage_after { ", usage;desc=\"held, appended with the isolate's others within 1 s\"" } else { "" };
    let headers = response.headers_mut();
    headers.set("access-control-allow-origin", "*")?;
    headers.set("access-control-expose-headers", EXPOSE_HEADERS)?;
    headers.set(
        "server-timing",
        &format!(
            "state;desc=\"{} calls\", attempts;desc=\"{}\", total;dur={total:.0}{usage}",
            timing.state_calls, timing.attempts
        ),
    )?;
    Ok(response)
}
