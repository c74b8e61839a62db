//! The proxy's own endpoints: `/v1/status` (any token; admins also see every key and today's
//! usage), `POST /v1/keys/check` (admins: probe a batch of keys) and the console page at `/`.

use crate::context::{now_ms, Context};
use crate::reply;
use crate::steps::{self, RequestIo};
use crate::stores::{ConfigError, StateStore, KEY_ENTRIES};
use crate::upstream;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{ApiKey, Check, Checked, Console, ErrorReply, Status, UsageQuery};

/// `GET /v1/status`: the core's [`Status`] reads (key lists, knobs, items; an admin's counts
/// and failures; the limits shown) and reports.
pub fn status(cx: &Context<'_>) -> Result<Response, ErrorReply> {
    let mut status = Status::new(&cx.caller, cx.policy.clone(), &KEY_ENTRIES[..cx.secrets.count()], now_ms(), true);
    let mut nothing = |_: &[ApiKey<'_>]| Vec::new();
    let kv = StateStore::open();
    let body = steps::run(&mut status, &mut RequestIo { cx, send: &mut nothing }, &kv, cx.timing)??;
    Ok(reply::json(body))
}

/// `GET /v1/usage`: past days' counts, grouped as the query asks ([`UsageQuery`]); a client
/// token sees its own.
pub fn usage(client: &Request, cx: &Context<'_>) -> Result<Response, ErrorReply> {
    let wants_csv = client.get_header("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    let (zone, keep_days) = (cx.settings.reset_zone, cx.settings.history_days);
    let query = UsageQuery::parse(client.get_query_str(), &cx.caller, now_ms(), zone, keep_days, wants_csv)?;
    let names: Vec<String> = query.items().into_iter().map(|(name, _)| name).collect();
    let kv = StateStore::open();
    let read: Vec<Option<Vec<u8>>> =
        names.chunks(LOOKUPS_AT_ONCE).flat_map(|names| kv.look(names, cx.timing)).collect();
    let (content_type, body) = query.answer(&read);
    Ok(Response::from_status(StatusCode::OK)
        .with_header("content-type", content_type)
        .with_header("cache-control", "no-store")
        .with_body(body))
}

/// KV lookups a `/v1/usage` query keeps pending at once.
const LOOKUPS_AT_ONCE: usize = 32;

/// `POST /v1/keys/check?cursor=N`: one batch of keys probed side by side with a call Google
/// does not bill; the core's [`Check`] decides the rest (run by [`steps::run`]).
pub fn key_check(client: &Request, cx: &Context<'_>) -> Result<Response, ErrorReply> {
    let cursor = Check::cursor(client.get_query_str())?;
    let kv = StateStore::open();
    let mut check = Check::new(cx.secrets.count(), cursor, &KEY_ENTRIES).verdict_entries(true);
    let mut probe = |keys: &[ApiKey<'_>]| {
        let pending: Vec<upstream::Probe> = keys.iter().map(|key| upstream::probe(key.secret, cx.timing)).collect();
        pending.into_iter().map(upstream::Probe::wait).collect()
    };
    match steps::run(&mut check, &mut RequestIo { cx, send: &mut probe }, &kv, cx.timing)? {
        Checked::Answer(body) => Ok(reply::json(body)),
        Checked::EmptyPool => Err(ConfigError::EmptyPool.into()),
    }
}

/// `GET /`: the console page ([`gemini_pool_core::console`]).
pub fn console() -> Response {
    let mut response = Response::from_status(StatusCode::OK).with_header("content-security-policy", Console::CSP);
    for (name, value) in Console::HEADERS {
        response.set_header(name, value);
    }
    response.with_body(Console::PAGE)
}
