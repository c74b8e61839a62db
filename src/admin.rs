//! The proxy's own endpoints: `/v1/status` (any token; admins also see every key and today's
//! usage), `POST /v1/keys/check` (admins: probe a batch of keys) and the console page at `/`.

use crate::handler::{now_ms, Context, Rejection};
use crate::log::log;
use crate::ops::bump;
use crate::reply;
use crate::stores::{StateStore, KEY_ENTRIES};
use crate::upstream;
use fastly::http::StatusCode;
use fastly::{Request, Response};
use gemini_pool_core::classify::{classify, Verdict};
use gemini_pool_core::console;
use gemini_pool_core::keycheck;
use gemini_pool_core::keys::KeyPool;
use gemini_pool_core::state::PoolState;
use gemini_pool_core::status::{rejected_lines, report, AdminInput, StatusInput};
use gemini_pool_core::usage;

/// `GET /v1/status`: the shared state of every part, in the seed's shape.
pub fn status(cx: &Context<'_>) -> Result<Response, Rejection> {
    let cooling = cx.cooling()?;
    let pool = cx.whole_pool()?;
    let kv = StateStore::open();
    let (parts, models_omitted) = kv.read_all(pool.parts(), cx.ops);
    let now = now_ms();
    let day = usage::day(now, cooling.reset_zone);
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
    Ok(reply::json(serde_json::to_vec_pretty(&report(&input)).unwrap_or_default()))
}

/// `POST /v1/keys/check?cursor=N`: probes one batch of keys (in parallel, with a call Google
/// does not bill), records what the answers prove, and says where the next batch starts.
pub fn key_check(client: &Request, cx: &Context<'_>) -> Result<Response, Rejection> {
    let cursor = keycheck::cursor(client.get_query_str()).map_err(|reply| Rejection::new(cx.dialect, reply))?;
    let cooling = cx.cooling()?;
    let pool = cx.whole_pool()?;
    if cursor == 0 {
        log_rejected(&pool);
    }
    let (batch, next) = keycheck::batch(&pool, cursor);
    let kv = StateStore::open();
    let mut state = PoolState::new(pool.parts(), None);
    kv.read(&mut state, &keycheck::parts(&batch), cx.ops);
    let pending: Vec<_> = batch
        .iter()
        .map(|key| {
            bump(&cx.ops.attempts);
            upstream::probe(key.secret, cx.ops)
        })
        .collect();
    let verdicts = pending.into_iter().map(|probe| match probe.wait() {
        Ok((status, body)) => classify(status, &body),
        Err(detail) => Verdict::connect_failure(false, detail),
    });
    let now = now_ms();
    let (findings, changes) = keycheck::judge_all(&batch, verdicts, &state, cooling, now);
    for finding in findings.iter().filter(|f| f.result == "dead") {
        log(format_args!("key check: key {} ({}): {}", finding.key, finding.fingerprint, finding.reason));
    }
    if !changes.is_empty() {
        kv.record(&state, changes, now, cx.ops);
    }
    Ok(reply::json(keycheck::answer(&findings, next, cursor, pool.count())))
}

/// One log line per entry of the key lists that is not a key (where, and why; never its
/// text), at the start of a key check (`/v1/status` lists them too, without logging on every
/// poll of the console).
fn log_rejected(pool: &KeyPool<'_>) {
    for line in rejected_lines(pool, &KEY_ENTRIES, 20) {
        log(format_args!("{line}"));
    }
}

/// `GET /`: the console page ([`gemini_pool_core::console`]).
pub fn console() -> Response {
    let mut response = Response::from_status(StatusCode::OK).with_header("content-security-policy", console::CSP);
    for (name, value) in console::HEADERS {
        response.set_header(name, value);
    }
    response.with_body(console::PAGE)
}
