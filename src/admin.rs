//! The proxy's own endpoints: `/v1/status` (any token; admins also see every key and today's
//! usage), `POST /v1/keys/check` (admins: probe a batch of keys) and the console page at `/`.

use crate::context::{now_ms, Context, Rejection};
use crate::reply;
use crate::steps::{self, RequestIo};
use crate::stores::{ConfigError, StateStore, KEY_ENTRIES};
use crate::upstream;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::{AdminInput, ApiKey, Check, Checked, Console, StatusInput, Usage};

/// `GET /v1/status`: the shared state of every part, in the seed's shape.
pub fn status(cx: &Context<'_>) -> Result<Response, Rejection> {
    let cooling = cx.cooling()?;
    let pool = cx.whole_pool()?;
    let kv = StateStore::open();
    let (parts, models_omitted) = kv.read_all(pool.parts(), cx.ops);
    let now = now_ms();
    let day = Usage::day(now, cooling.reset_zone);
    let counts = cx.caller.admin.then(|| kv.read_usage(&day, cx.ops));
    let input = StatusInput {
        pool: &pool,
        part_names: &KEY_ENTRIES,
        parts: &parts,
        models_omitted,
        strategy: cooling.retry.strategy,
        cooling,
        client: &cx.caller.label,
        now_ms: now,
        admin: counts.as_ref().map(|usage| AdminInput { day: &day, usage }),
    };
    Ok(reply::json(serde_json::to_vec_pretty(&input.report()).unwrap_or_default()))
}

/// `POST /v1/keys/check?cursor=N`: one batch of keys probed side by side with a call Google
/// does not bill; the core's [`Check`] decides the rest (run by [`steps::run`]).
pub fn key_check(client: &Request, cx: &Context<'_>) -> Result<Response, Rejection> {
    let cursor = Check::cursor(client.get_query_str()).map_err(|reply| Rejection::new(cx.dialect, reply))?;
    let kv = StateStore::open();
    let mut check = Check::new(cx.secrets.count(), cursor, &KEY_ENTRIES);
    let mut probe = |keys: &[ApiKey<'_>]| {
        let pending: Vec<upstream::Probe> = keys.iter().map(|key| upstream::probe(key.secret, cx.ops)).collect();
        pending.into_iter().map(upstream::Probe::wait).collect()
    };
    match steps::run(&mut check, &mut RequestIo { cx, send: &mut probe }, &kv, cx.ops)? {
        Checked::Answer(body) => Ok(reply::json(body)),
        Checked::EmptyPool => Err(Rejection::config(cx.dialect, ConfigError::EmptyPool)),
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
