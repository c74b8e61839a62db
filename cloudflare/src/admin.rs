//! The proxy's own endpoints on Workers, as on Fastly: `/v1/status`, `POST /v1/keys/check`
//! and the console page.

use crate::store::StateStore;
use crate::{config, now_ms, reply, Cx, NoAnswer, Rejection, Upstream};
use futures_util::future::join_all;
use gemini_pool_core::classify::{classify, Verdict};
use gemini_pool_core::console;
use gemini_pool_core::keycheck;
use gemini_pool_core::state::PoolState;
use gemini_pool_core::status::{rejected_lines, report, AdminInput, StatusInput};
use gemini_pool_core::usage;
use worker::{Headers, Method, Request, Response, Result};

fn failed(cx: &Cx) -> impl Fn(worker::Error) -> Rejection + '_ {
    move |e| Rejection::config(cx.dialect, e)
}

/// `GET /v1/status`.
pub async fn status(cx: &mut Cx) -> std::result::Result<Response, Rejection> {
    let cooling = cx.cooling()?;
    let store = StateStore::open(&cx.env);
    let pool = cx.whole_pool()?;
    let (parts, models_omitted) = store.read_all(pool.parts()).await;
    let now = now_ms();
    let day = usage::day(now, cooling.reset_zone);
    let counts = if cx.caller.admin { Some(store.read_usage(&day).await) } else { None };
    let input = StatusInput {
        pool: &pool,
        part_names: &config::KEY_VARS,
        parts: &parts,
        models_omitted,
        strategy: cooling.retry.strategy,
        cooling,
        client: &cx.caller.label,
        now_ms: now,
        admin: counts.as_ref().map(|usage| AdminInput { day: &day, usage }),
    };
    let body = serde_json::to_vec_pretty(&report(&input)).unwrap_or_default();
    let calls = store.calls.get();
    drop(pool);
    cx.timing.state_calls += calls;
    reply::json(body).map_err(failed(cx))
}

/// `POST /v1/keys/check?cursor=N`: one batch of probes in parallel, as on Fastly.
pub async fn key_check(req: &Request, cx: &mut Cx) -> std::result::Result<Response, Rejection> {
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let cursor = keycheck::cursor(query.as_deref()).map_err(|reply| Rejection::new(cx.dialect, reply))?;
    let cooling = cx.cooling()?;
    let base = config::base_url(&cx.env);
    let store = StateStore::open(&cx.env);
    let pool = cx.whole_pool()?;
    if cursor == 0 {
        // Where the entries that are not keys are, and why (never their text).
        for line in rejected_lines(&pool, &config::KEY_VARS, 20) {
            worker::console_log!("{line}");
        }
    }
    let (batch, next) = keycheck::batch(&pool, cursor);
    let mut state = PoolState::new(pool.parts(), None);
    store.read(&mut state, &keycheck::parts(&batch)).await;
    let timeout_ms = cx.first_byte_timeout_ms;
    let answers = join_all(batch.iter().map(|key| probe(&base, key.secret, timeout_ms))).await;
    let verdicts = answers.into_iter().map(|answer| match answer {
        Ok((status, body)) => classify(status, &body),
        Err(NoAnswer { timeout, detail }) => Verdict::connect_failure(timeout, detail),
    });
    let now = now_ms();
    let (findings, changes) = keycheck::judge_all(&batch, verdicts, &state, cooling, now);
    for finding in findings.iter().filter(|f| f.result == "dead") {
        worker::console_log!("key check: key {} ({}): {}", finding.key, finding.fingerprint, finding.reason);
    }
    if !changes.is_empty() {
        store.record(&state, changes, now).await;
    }
    let body = keycheck::answer(&findings, next, cursor, pool.count());
    let calls = store.calls.get();
    let attempts = batch.len() as u32;
    drop(pool);
    cx.timing.state_calls += calls;
    cx.timing.attempts += attempts;
    reply::json(body).map_err(failed(cx))
}

async fn probe(base: &str, key: &str, first_byte_timeout_ms: u64) -> std::result::Result<(u16, Vec<u8>), NoAnswer> {
    let request = Upstream {
        url: format!("{base}{}", keycheck::PROBE_PATH),
        method: Method::Get,
        content_type: None,
        body: Vec::new(),
        native: true,
        first_byte_timeout_ms,
    };
    let response = request.send(key).await?;
    Ok((response.status_code(), crate::error_body(response).await))
}

/// `GET /`: the console page, the same as on Fastly.
pub fn console() -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-security-policy", console::CSP)?;
    for (name, value) in console::HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::from_html(console::PAGE)?.with_headers(headers))
}
