//! Building responses on Workers: errors in the client's envelope, CORS on everything,
//! `Server-Timing`, the OPTIONS preflight, JSON, and Google's streamed answers passed on.

use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt};
use gemini_pool_core::{Dialect, ErrorReply};
use std::time::Duration;
use worker::{ByteStream, Delay, Headers, Response, ResponseBody, Result};

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, x-goog-api-key, x-goog-api-client";
const EXPOSE_HEADERS: &str = "Retry-After, Server-Timing";

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
    Ok(Response::from_bytes(reply.body(dialect))?.with_status(reply.status).with_headers(headers))
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

/// Google's answer with fresh, mutable headers (a fetched response's are immutable); the body
/// streams through untouched — a stream with a `limit` through a relay that cuts it (an
/// error, so the client sees it end unfinished) once the limit has passed.
pub fn passed_on(upstream: Response, body: Option<Vec<u8>>, stream: bool, limit: Option<Duration>) -> Result<Response> {
    let status = upstream.status_code();
    let headers = Headers::new();
    for (name, value) in upstream.headers() {
        if name != "content-length" || body.is_none() {
            headers.set(&name, &value)?;
        }
    }
    if stream && !headers.has("content-type")? {
        headers.set("content-type", "text/event-stream")?;
    }
    let response = match (body, limit) {
        (Some(bytes), _) => Response::from_bytes(bytes)?,
        (None, Some(limit)) if stream => {
            let mut upstream = upstream;
            Response::from_stream(cut_after(upstream.stream()?, limit))?
        }
        (None, _) => Response::from_body(match upstream.into_parts().1 {
            ResponseBody::Stream(stream) => ResponseBody::Stream(stream),
            other => other,
        })?,
    };
    Ok(response.with_status(status).with_headers(headers))
}

/// `chunks` as they come, ended with an error once `limit` has passed since the first call.
fn cut_after(chunks: ByteStream, limit: Duration) -> impl Stream<Item = Result<Vec<u8>>> {
    let deadline = worker::Date::now().as_millis().saturating_add(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
    futures_util::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        let left = deadline.saturating_sub(worker::Date::now().as_millis());
        let timer = Delay::from(Duration::from_millis(left));
        match select(chunks.next(), timer).await {
            Either::Left((Some(chunk), _)) => Some((chunk, Some(chunks))),
            Either::Left((None, _)) => None,
            Either::Right(_) => {
                worker::console_log!("stream: cut at max_stream_duration");
                Some((Err(worker::Error::RustError("max_stream_duration".into())), None))
            }
        }
    })
}

/// The headers every response gets.
pub fn finish(mut response: Response, timing: &Timing, started_ms: f64) -> Result<Response> {
    let total = worker::Date::now().as_millis() as f64 - started_ms;
    let usage = if timing.usage_after { ", usage;desc=\"1 state append after the response\"" } else { "" };
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
