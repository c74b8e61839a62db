//! A request for Google's API: body → what it is about → the part of the pool to start in and
//! its cooling state → attempts (the core's state machine, sending through [`upstream`],
//! recording each verdict as it is reached) → the answer, and the usage counts to write once
//! the client has it.

use crate::handler::{now_ms, seed, After, Context, Rejection};
use crate::log::log;
use crate::ops::{bump, Ops};
use crate::reply;
use crate::stores::{ConfigError, Secrets, StateStore};
use crate::upstream::{Answer, Outbound};
use fastly::{Request, Response};
use gemini_pool_core::attempts::{Attempts, Choice};
use gemini_pool_core::ending::{self, ERROR_BODY_LIMIT};
use gemini_pool_core::envelope::ErrorReply;
use gemini_pool_core::keys::{choose_part, KeyPool};
use gemini_pool_core::openai_body::strip_model_prefixes;
use gemini_pool_core::rng::Rng;
use gemini_pool_core::route::Route;
use gemini_pool_core::state::{Change, PoolState};
use gemini_pool_core::usage;
use std::io::Read;

/// How the attempt loop ended (the core's [`Ending`], with Fastly's response).
type Ending<'a> = ending::Ending<'a, Box<Response>>;

/// Reads the body, then sends the request to Google with the keys [`Attempts`] picks,
/// recording each verdict as it is reached, and answers.
pub fn forward(client: &mut Request, route: &Route, cx: &Context<'_>) -> Result<(Response, After), Rejection> {
    let dialect = route.dialect;
    let body = read_body(client, cx.settings.max_body_bytes).map_err(|reply| Rejection::new(dialect, reply))?;
    let facts = route.facts(&body).map_err(|reply| Rejection::new(dialect, reply))?;
    let path = route.upstream_path().unwrap_or_default();
    let outbound = Outbound::new(client, route, &path, body)
        .ok_or_else(|| Rejection::new(dialect, ErrorReply::bad_request("invalid_query", "Invalid query string.")))?;

    let seed = seed();
    let mut rng = Rng::new(seed);
    let pool = starting_pool(&cx.secrets, &mut rng, cx.ops).map_err(|e| Rejection::config(dialect, e))?;
    let kv = StateStore::open();
    let mut state = PoolState::new(pool.parts(), facts.model.as_deref());
    let parts: Vec<usize> = (0..pool.parts()).filter(|&p| pool.has(p)).collect();
    kv.read(&mut state, &parts, cx.ops);
    let mut attempts = Attempts::new(pool, state, seed.rotate_left(32));
    let ending = attempt_loop(&mut attempts, &outbound, &kv, cx)?;
    let now = now_ms();
    let served_ok = ending.is_served();
    let usage = usage_write(&attempts, cx, served_ok, now, &mut rng);
    // Only a served stream reads `max_stream_duration` (a host call the others skip).
    let stream_until = match facts.stream && served_ok {
        true => cx.stream_limit()?.map(|limit| std::time::Instant::now() + limit),
        false => None,
    };
    let after = After { usage: usage.map(|append| (kv, append)), stream_until };
    let response = match ending.into_reply(&attempts, now) {
        Ok(response) => served(*response, route, facts.stream),
        Err(reply) => reply::error(dialect, &reply),
    };
    Ok((response, after))
}

/// The part a request starts in (drawn by size; see `gemini_pool_core::keys`), or the whole
/// pool if that part holds no key.
fn starting_pool<'s>(secrets: &'s Secrets, rng: &mut Rng, ops: &Ops) -> Result<KeyPool<'s>, ConfigError> {
    let part = choose_part(secrets.count(), rng, |part| secrets.size(part, ops));
    KeyPool::starting(secrets.count(), part, |p| secrets.get(p, ops))?.ok_or(ConfigError::EmptyPool)
}

/// Sends to Google with one key after another, as [`Attempts`] decides; after a failure,
/// records the verdict at once and reads the state again before the next attempt.
fn attempt_loop<'a>(
    attempts: &mut Attempts<'a>,
    outbound: &Outbound,
    kv: &StateStore,
    cx: &'a Context<'_>,
) -> Result<Ending<'a>, Rejection> {
    let mut last = Ending::nothing_yet();
    loop {
        let key = match attempts.next(now_ms()) {
            Choice::Try(key) => key,
            Choice::Widen => {
                widen(attempts, &cx.secrets, kv, cx.ops).map_err(|e| Rejection::config(cx.dialect, e))?;
                continue;
            }
            Choice::Configure => {
                attempts.configure(&cx.cooling()?.retry);
                continue;
            }
            Choice::Deliver => return Ok(last),
            refusal => return Ok(Ending::refusal(&refusal, attempts.model()).unwrap_or(last)),
        };
        bump(&cx.ops.attempts);
        let (verdict, ending) = match outbound.send(key.secret, cx.ops) {
            Answer::Response(response) if response.get_status().is_success() => {
                let changes = attempts.succeeded(&key, now_ms());
                record(attempts, kv, changes, cx.ops);
                return Ok(Ending::Served(response));
            }
            Answer::Response(response) => {
                let status = response.get_status().as_u16();
                Ending::upstream(status, error_body(*response), &key)
            }
            Answer::Failed { timeout, detail } => Ending::no_answer(timeout, detail),
        };
        let changes = attempts.failed(&key, &verdict, cx.cooling()?, now_ms());
        log(format_args!("{}", attempts.failure_line(&key, &verdict)));
        last = ending;
        if !changes.is_empty() || !attempts.finished() {
            record(attempts, kv, changes, cx.ops);
        }
    }
}

/// Reads every part not read yet — its secret and its items — and hands them to `attempts`.
fn widen<'a>(attempts: &mut Attempts<'a>, secrets: &'a Secrets, kv: &StateStore, ops: &Ops) -> Result<(), ConfigError> {
    let parts: Vec<usize> = (0..secrets.count()).filter(|&p| !attempts.pool().has(p)).collect();
    let mut state = PoolState::new(secrets.count(), attempts.model());
    kv.read(&mut state, &parts, ops);
    let mut read = Vec::with_capacity(parts.len());
    for part in parts {
        read.push((part, secrets.get(part, ops)?, state.take(part)));
    }
    attempts.widen(read);
    Ok(())
}

/// Records `changes` now and hands the state as read back to `attempts` (the next attempt
/// chooses from what every instance has recorded by now).
fn record(attempts: &mut Attempts<'_>, kv: &StateStore, changes: Vec<Change>, ops: &Ops) {
    if changes.is_empty() && attempts.finished() {
        return;
    }
    let fresh = kv.record(attempts.state(), changes, now_ms(), ops);
    attempts.refresh(fresh);
}

/// This request's usage append, if counting is on (written after the response).
fn usage_write(
    attempts: &Attempts<'_>,
    cx: &Context<'_>,
    served: bool,
    now_ms: u64,
    rng: &mut Rng,
) -> Option<usage::Append> {
    if !cx.settings.usage_counts {
        return None;
    }
    cx.ops.usage_after.set(true);
    let (label, model, zone) = (&cx.caller.label, attempts.counted_model(), cx.settings.reset_zone);
    Some(usage::Append::new(attempts.history(), label, model, served, now_ms, zone, rng))
}

fn served(mut response: Response, route: &Route, stream: bool) -> Response {
    if route.rewrites_model_ids() {
        let body = response.take_body_bytes();
        let rewritten = strip_model_prefixes(&body).unwrap_or(body);
        response.set_body(rewritten);
    }
    if stream && response.get_header("content-type").is_none() {
        response.set_header("content-type", "text/event-stream");
    }
    response
}

/// The first [`ERROR_BODY_LIMIT`] bytes of an error answer (the rest is never read).
pub fn error_body(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = response.take_body().into_handle().take(ERROR_BODY_LIMIT as u64).read_to_end(&mut body);
    body
}

/// The request body, within `limit` bytes (GET requests have none).
fn read_body(client: &mut Request, limit: usize) -> Result<Vec<u8>, ErrorReply> {
    if client.get_method_str() != "POST" {
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
