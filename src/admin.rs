//! The proxy's own endpoints: `/v1/status` (any token; admins also see every key and today's
//! usage), `POST /v1/keys/check` (admins: probe a batch of keys) and the console page at `/`.

use crate::context::{now_ms, Context};
use crate::reply;
use crate::steps::{self, RequestIo};
use crate::stores::{ConfigError, StateStore, KEY_ENTRIES};
use crate::upstream;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{
    recent_failures, AdminInput, ApiKey, Check, Checked, Console, ErrorReply, Gate, Policy, StatusInput, Usage,
    UsageQuery, FAILURES_ITEM,
};

/// `GET /v1/status`: the shared state of every part, in the seed's shape.
pub fn status(cx: &Context<'_>) -> Result<Response, ErrorReply> {
    let cooling = cx.cooling()?;
    let pool = cx.whole_pool()?;
    let kv = StateStore::open();
    let (parts, models_omitted) = kv.read_all(pool.parts(), cx.ops);
    let now = now_ms();
    let day = Usage::day(now, cooling.reset_zone);
    let counts = cx.caller.admin.then(|| kv.read_usage(&day, cx.ops));
    let failures = match cx.caller.admin {
        true => recent_failures(&kv.look(&[FAILURES_ITEM.to_string()], cx.ops).pop().flatten().unwrap_or_default()),
        false => Vec::new(),
    };
    let gates = limit_gates(cx, counts.as_ref(), &kv, now)?;
    let input = StatusInput {
        pool: &pool,
        part_names: &KEY_ENTRIES,
        parts: &parts,
        models_omitted,
        strategy: cooling.retry.strategy,
        cooling,
        client: &cx.caller.label,
        now_ms: now,
        admin: counts.as_ref().map(|usage| AdminInput { day: &day, usage, failures: &failures }),
        limits: &gates,
    };
    Ok(reply::json(serde_json::to_vec_pretty(&input.report()).unwrap_or_default()))
}

/// The limits `/v1/status` shows: a client's own, or (an admin) those of every client in
/// today's usage that has a policy with limits; each with its limit item as read.
fn limit_gates(cx: &Context<'_>, usage: Option<&Usage>, kv: &StateStore, now: u64) -> Result<Vec<Gate>, ErrorReply> {
    let policies: Vec<(String, Policy)> = match usage {
        Some(usage) => usage
            .client_labels()
            .into_iter()
            .filter_map(|label| crate::stores::policy(&label, cx.ops).ok().flatten().map(|p| (label, p)))
            .collect(),
        None => cx.policy.iter().map(|p| (cx.caller.label.clone(), p.clone())).collect(),
    };
    let limited: Vec<(String, Policy)> = policies.into_iter().filter(|(_, p)| p.limits.any()).collect();
    if limited.is_empty() {
        return Ok(Vec::new());
    }
    let limiter = cx.limiter()?;
    let mut gates: Vec<Gate> =
        limited.iter().map(|(label, p)| Gate::new(p.limits, limiter, label, now, cx.settings.reset_zone)).collect();
    let items: Vec<String> = gates.iter().filter_map(Gate::store_item).collect();
    let mut read = kv.look(&items, cx.ops).into_iter();
    for gate in gates.iter_mut().filter(|g| g.store_item().is_some()) {
        gate.store_read(read.next().flatten().as_deref());
    }
    Ok(gates)
}

/// `GET /v1/usage`: past days' counts, grouped as the query asks ([`UsageQuery`]); a client
/// token sees its own.
pub fn usage(client: &Request, cx: &Context<'_>) -> Result<Response, ErrorReply> {
    let wants_csv = client.get_header("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    let (zone, keep_days) = (cx.settings.reset_zone, cx.settings.history_days);
    let query = UsageQuery::parse(client.get_query_str(), &cx.caller, now_ms(), zone, keep_days, wants_csv)?;
    let names: Vec<String> = query.items().into_iter().map(|(name, _)| name).collect();
    let kv = StateStore::open();
    let read: Vec<Option<Vec<u8>>> = names.chunks(LOOKUPS_AT_ONCE).flat_map(|names| kv.look(names, cx.ops)).collect();
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
    let mut check = Check::new(cx.secrets.count(), cursor, &KEY_ENTRIES);
    let mut probe = |keys: &[ApiKey<'_>]| {
        let pending: Vec<upstream::Probe> = keys.iter().map(|key| upstream::probe(key.secret, cx.ops)).collect();
        pending.into_iter().map(upstream::Probe::wait).collect()
    };
    match steps::run(&mut check, &mut RequestIo { cx, send: &mut probe }, &kv, cx.ops)? {
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
