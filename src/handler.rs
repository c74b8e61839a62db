//! The request handler, in the order a request meets it: route → client token → settings
//! and keys → body → cooling state → attempts (the core's state machine, sending through
//! [`upstream`], recording each verdict as it is reached) → answer. All decisions are the
//! core's.

use crate::log::log;
use crate::ops::{bump, Ops};
use crate::reply;
use crate::stores::{self, ConfigError, Secrets, Settings, StateStore};
use crate::upstream::{Answer, Outbound};
use fastly::{Request, Response};
use gemini_pool_core::attempts::{Attempts, Choice};
use gemini_pool_core::auth::{client_token, query_param, Presented};
use gemini_pool_core::classify::{classify, Verdict};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use gemini_pool_core::keys::{choose_part, ApiKey, KeyPool};
use gemini_pool_core::openai_body::strip_model_prefixes;
use gemini_pool_core::record::{compactions, Confirmed, Recording};
use gemini_pool_core::rng::Rng;
use gemini_pool_core::route::{may_be_native, route, Endpoint, Route};
use gemini_pool_core::scrub::scrub;
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, SettingsReader};
use gemini_pool_core::state::{Change, PoolState};
use gemini_pool_core::status::{report, StatusInput};
use std::io::Read;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// An early answer: an error in the client's dialect.
struct Rejection {
    dialect: Dialect,
    reply: ErrorReply,
}

impl Rejection {
    fn config(dialect: Dialect, e: ConfigError) -> Self {
        log(format_args!("config: {e}"));
        Rejection { dialect, reply: ErrorReply::config(e) }
    }
}

/// How the attempt loop ended.
enum Ending<'a> {
    Served(Box<Response>),
    /// Google's last error answer, with the verdict on it and the key it was sent with.
    Upstream {
        status: u16,
        body: Vec<u8>,
        verdict: Verdict,
        used: &'a str,
    },
    Unreachable {
        timeout: bool,
    },
    Refused(ErrorReply),
}

pub fn handle(mut client: Request) -> Response {
    let started = Instant::now();
    let ops = Ops::default();
    let mut response = serve(&mut client, &ops).unwrap_or_else(|r| reply::error(r.dialect, &r.reply));
    reply::finish(&mut response, &ops, started);
    response
}

fn serve(client: &mut Request, ops: &Ops) -> Result<Response, Rejection> {
    // Each header read is a host call: OpenAI-only paths skip the Google-style credentials.
    let native_path = may_be_native(client.get_path());
    let presented = Presented {
        authorization: header_text(client, "authorization"),
        goog_api_key: if native_path { header_text(client, "x-goog-api-key") } else { None },
        query_key: if native_path { query_param(client.get_query_str(), "key") } else { None },
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let route = route(client.get_method_str(), client.get_path(), native_credentials)
        .map_err(|e| Rejection { dialect: e.dialect, reply: e.reply })?;
    if route.endpoint == Endpoint::Preflight {
        return Ok(reply::preflight(client));
    }
    let label = authenticate(presented, route.dialect, ops)?;

    let dialect = route.dialect;
    let settings_store = Settings::open();
    let mut settings = SettingsReader::new(|name: &str| settings_store.get(name, ops));
    let request_settings = settings.request().map_err(|e| Rejection::config(dialect, e.into()))?;
    let secrets = Secrets::open(request_settings.key_secrets, ops).map_err(|e| Rejection::config(dialect, e))?;
    let mut load_cooling = || settings.cooling().map_err(|e| Rejection::config(dialect, e.into()));
    if route.endpoint == Endpoint::Status {
        let pool = whole_pool(&secrets, ops).map_err(|e| Rejection::config(dialect, e))?;
        return Ok(status(&pool, &request_settings, &load_cooling()?, &label, ops));
    }
    forward(client, &route, &secrets, &request_settings, &mut load_cooling, ops)
}

/// Every part of the pool (`/v1/status`; and a request whose first part holds no key).
fn whole_pool<'s>(secrets: &'s Secrets, ops: &Ops) -> Result<KeyPool<'s>, ConfigError> {
    let mut pool = KeyPool::with_parts(secrets.count());
    for part in 0..secrets.count() {
        pool.add(part, secrets.get(part, ops)?);
    }
    if pool.is_empty() {
        return Err(ConfigError::EmptyPool);
    }
    Ok(pool)
}

/// The part a request starts in (drawn by size; see `gemini_pool_core::keys`), or the whole
/// pool if that part holds no key.
fn starting_pool<'s>(secrets: &'s Secrets, rng: &mut Rng, ops: &Ops) -> Result<KeyPool<'s>, ConfigError> {
    let part = choose_part(secrets.count(), rng, |part| secrets.size(part, ops));
    let mut pool = KeyPool::with_parts(secrets.count());
    pool.add(part, secrets.get(part, ops)?);
    if pool.is_empty() {
        return whole_pool(secrets, ops);
    }
    Ok(pool)
}

/// The client's token, checked against `auth_tokens`; its label.
fn authenticate(presented: Presented<'_>, dialect: Dialect, ops: &Ops) -> Result<String, Rejection> {
    let token = client_token(presented, dialect).map_err(|reply| Rejection { dialect, reply })?;
    stores::token_label(&token, ops)
        .map_err(|e| Rejection::config(dialect, e))?
        .ok_or(Rejection { dialect, reply: ErrorReply::invalid_token() })
}

/// Reads the body, then sends the request to Google with the keys [`Attempts`] picks,
/// recording each verdict as it is reached, and answers.
fn forward(
    client: &mut Request,
    route: &Route,
    secrets: &Secrets,
    settings: &RequestSettings,
    load_cooling: &mut dyn FnMut() -> Result<CoolingSettings, Rejection>,
    ops: &Ops,
) -> Result<Response, Rejection> {
    let dialect = route.dialect;
    let body = read_body(client, settings.max_body_bytes).map_err(|reply| Rejection { dialect, reply })?;
    let facts = route.facts(&body).map_err(|reply| Rejection { dialect, reply })?;
    let path = route.upstream_path().unwrap_or_default();
    let outbound = Outbound::new(client, route, &path, body).ok_or_else(|| Rejection {
        dialect,
        reply: ErrorReply::bad_request("invalid_query", "Invalid query string."),
    })?;

    let seed = seed();
    let pool = starting_pool(secrets, &mut Rng::new(seed), ops).map_err(|e| Rejection::config(dialect, e))?;
    let kv = StateStore::open();
    let mut state = PoolState::new(pool.parts(), facts.model.as_deref());
    let parts: Vec<usize> = (0..pool.parts()).filter(|&p| pool.has(p)).collect();
    kv.read(&mut state, &parts, ops);
    let mut attempts = Attempts::new(pool, state, settings, seed.rotate_left(32));
    let ending =
        attempt_loop(&mut attempts, &outbound, secrets, &kv, load_cooling, ops).map_err(|e| e.in_dialect(dialect))?;
    let retry_after_ms = match ending {
        Ending::Upstream { status: 429, .. } => attempts.retry_after_ms(now_ms()),
        _ => None,
    };
    Ok(answer(ending, route, facts.stream, retry_after_ms))
}

/// Sends to Google with one key after another, as [`Attempts`] decides; after a failure,
/// records the verdict at once and reads the state again before the next attempt.
fn attempt_loop<'a>(
    attempts: &mut Attempts<'a>,
    outbound: &Outbound,
    secrets: &'a Secrets,
    kv: &StateStore,
    load_cooling: &mut dyn FnMut() -> Result<CoolingSettings, Rejection>,
    ops: &Ops,
) -> Result<Ending<'a>, LoopError> {
    let mut cooling: Option<CoolingSettings> = None;
    let mut last = Ending::Unreachable { timeout: false };
    loop {
        let key = match attempts.next(now_ms()) {
            Choice::Try(key) => key,
            Choice::Widen => {
                widen(attempts, secrets, kv, ops)?;
                continue;
            }
            Choice::Deliver => return Ok(last),
            Choice::AllCooling { retry_after_ms } => {
                return Ok(Ending::Refused(ErrorReply::all_cooling(attempts.model(), retry_after_ms)))
            }
            Choice::AllDead => return Ok(Ending::Refused(ErrorReply::all_dead())),
        };
        bump(&ops.attempts);
        let (verdict, ending) = match outbound.send(key.secret, ops) {
            Answer::Response(response) if response.get_status().is_success() => {
                let changes = attempts.succeeded(&key, now_ms());
                record(attempts, kv, changes, ops);
                return Ok(Ending::Served(response));
            }
            Answer::Response(mut response) => {
                let status = response.get_status().as_u16();
                let body = response.take_body_bytes();
                let verdict = classify(status, &body);
                (verdict.clone(), Ending::Upstream { status, body, verdict, used: key.secret })
            }
            Answer::Failed { timeout, detail } => {
                (Verdict::connect_failure(timeout, detail), Ending::Unreachable { timeout })
            }
        };
        if cooling.is_none() {
            cooling = Some(load_cooling().map_err(LoopError::Rejected)?);
        }
        let settings = cooling.get_or_insert_with(CoolingSettings::default);
        let changes = attempts.failed(&key, &verdict, settings, now_ms());
        log_failure(attempts, &key, &verdict);
        last = ending;
        if !changes.is_empty() || !attempts.finished() {
            record(attempts, kv, changes, ops);
        }
    }
}

/// Why the attempt loop stopped without an answer to give.
enum LoopError {
    Rejected(Rejection),
    Config(ConfigError),
}

impl LoopError {
    fn in_dialect(self, dialect: Dialect) -> Rejection {
        match self {
            LoopError::Rejected(rejection) => rejection,
            LoopError::Config(e) => Rejection::config(dialect, e),
        }
    }
}

/// Reads every part not read yet — its secret and its items — and hands them to `attempts`.
fn widen<'a>(attempts: &mut Attempts<'a>, secrets: &'a Secrets, kv: &StateStore, ops: &Ops) -> Result<(), LoopError> {
    let parts: Vec<usize> = (0..secrets.count()).filter(|&p| !attempts.pool().has(p)).collect();
    let mut state = PoolState::new(secrets.count(), attempts.model());
    kv.read(&mut state, &parts, ops);
    let mut read = Vec::with_capacity(parts.len());
    for part in parts {
        let bytes = secrets.get(part, ops).map_err(LoopError::Config)?;
        read.push((part, bytes, state.take(part)));
    }
    attempts.widen(read);
    Ok(())
}

/// Writes `changes` now (what the stored state does not already say), reads the state back —
/// the next attempt chooses from it — and writes again whatever a concurrent rewrite lost
/// ([`gemini_pool_core::record`]). KV trouble is logged, never fatal.
fn record(attempts: &mut Attempts<'_>, kv: &StateStore, changes: Vec<Change>, ops: &Ops) {
    let mut recording = Recording::new(changes, attempts.state());
    if recording.is_done() && attempts.finished() {
        return;
    }
    loop {
        if !recording.is_done() {
            kv.execute(recording.writes(attempts.state(), now_ms()), ops);
        }
        let mut fresh = PoolState::new(attempts.pool().parts(), attempts.model());
        kv.read(&mut fresh, &attempts.state().read_parts(), ops);
        let confirmed = recording.confirm(&fresh);
        attempts.refresh(fresh);
        match confirmed {
            Confirmed::Done => break,
            Confirmed::WriteAgain => continue,
            Confirmed::GaveUp => {
                let names: Vec<String> = recording.unconfirmed().iter().map(|n| n.to_string()).collect();
                log(format_args!("kv: the store keeps losing writes to {}; gave up", names.join(", ")));
                break;
            }
        }
    }
    kv.execute(compactions(attempts.state(), now_ms()), ops);
}

fn log_failure(attempts: &Attempts<'_>, key: &ApiKey<'_>, verdict: &Verdict) {
    let status = verdict.status.map_or("no answer".to_string(), |s| format!("HTTP {s}"));
    let next = if attempts.finished() { "answering the client" } else { "trying another key" };
    // The model name came from the client and Google's words may quote our key: both scrubbed.
    log(format_args!(
        "attempt {}: key {} ({}) model {}: {status}: {} [{}]; {next}",
        attempts.made(),
        key.mask(),
        key.fingerprint,
        scrub(attempts.model().unwrap_or("-"), &[key.secret]),
        verdict.outcome,
        scrub(&verdict.detail, &[key.secret]),
    ));
}

fn answer(ending: Ending<'_>, route: &Route, stream: bool, retry_after_ms: Option<u64>) -> Response {
    let dialect = route.dialect;
    match ending {
        Ending::Served(response) => served(*response, route, stream),
        Ending::Refused(reply) => reply::error(dialect, &reply),
        Ending::Unreachable { timeout } => reply::error(dialect, &ErrorReply::upstream_unreachable(timeout)),
        Ending::Upstream { status, body, verdict, used } => {
            let mut reply = ErrorReply::from_upstream(status, &body, &verdict.outcome, &[used]);
            if let Some(ms) = retry_after_ms.filter(|_| reply.status == 429) {
                reply = reply.with_retry_after_ms(ms);
            }
            reply::error(dialect, &reply)
        }
    }
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

fn status(
    pool: &KeyPool<'_>,
    settings: &RequestSettings,
    cooling: &CoolingSettings,
    label: &str,
    ops: &Ops,
) -> Response {
    let kv = StateStore::open();
    let parts = kv.read_all(pool.parts(), ops);
    let input =
        StatusInput { pool, parts: &parts, strategy: settings.strategy, cooling, client: label, now_ms: now_ms() };
    reply::json(serde_json::to_vec_pretty(&report(&input)).unwrap_or_default())
}

/// The request body, within `limit` bytes (GET requests have none).
fn read_body(client: &mut Request, limit: usize) -> Result<Vec<u8>, ErrorReply> {
    if client.get_method_str() != "POST" {
        return Ok(Vec::new());
    }
    if client.get_content_length().is_some_and(|len| len > limit) {
        return Err(ErrorReply::body_too_large(limit));
    }
    let mut body = Vec::new();
    let read = client.take_body().take(limit as u64 + 1).read_to_end(&mut body);
    if read.is_err() {
        return Err(ErrorReply::bad_request("unreadable_body", "The request body could not be read."));
    }
    if body.len() > limit {
        return Err(ErrorReply::body_too_large(limit));
    }
    Ok(body)
}

/// A header's value if it is text (a non-UTF-8 value reads as absent, never as a panic).
fn header_text<'r>(client: &'r Request, name: &str) -> Option<&'r str> {
    client.get_header(name).and_then(|value| value.to_str().ok())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Fresh entropy for this request's choices.
fn seed() -> u64 {
    use rand::rngs::SysRng;
    use rand::TryRng;
    SysRng.try_next_u64().unwrap_or_else(|_| now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
