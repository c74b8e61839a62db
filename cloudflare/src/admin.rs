//! The proxy's own endpoints on Workers, as on Fastly: `/v1/status`, `POST /v1/keys/check`
//! and the console page.

use crate::store::StateStore;
use crate::{config, now_ms, reply, Cx, NoAnswer, Rejection, Upstream};
use futures_util::future::join_all;
use gemini_pool_core::auth::query_param;
use gemini_pool_core::classify::{classify, Verdict};
use gemini_pool_core::console;
use gemini_pool_core::envelope::ErrorReply;
use gemini_pool_core::keycheck::{self, Finding};
use gemini_pool_core::state::PoolState;
use gemini_pool_core::status::{report, AdminInput, StatusInput};
use gemini_pool_core::usage;
use serde_json::json;
use worker::{Headers, Method, Request, Response, Result};

fn failed(cx: &Cx) -> impl Fn(worker::Error) -> Rejection + '_ {
    move |e| Rejection::config(cx.dialect, e)
}

/// `GET /v1/status`.
pub async fn status(cx: &mut Cx) -> std::result::Result<Response, Rejection> {
    let cooling = cx.cooling()?;
    let store = StateStore::open(&cx.env);
    let pool = cx.whole_pool()?;
    let parts = store.read_all(pool.parts()).await;
    let now = now_ms();
    let day = usage::day(now, cooling.reset_zone);
    let counts = if cx.caller.admin { Some(store.read_usage(&day).await) } else { None };
    let input = StatusInput {
        pool: &pool,
        parts: &parts,
        strategy: cx.settings.strategy,
        cooling: &cooling,
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
    let dialect = cx.dialect;
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let cursor = match query_param(query.as_deref(), "cursor") {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            Rejection::new(dialect, ErrorReply::bad_request("invalid_cursor", "`cursor` must be a whole number."))
        })?,
    };
    let cooling = cx.cooling()?;
    let base = config::base_url(&cx.env);
    let store = StateStore::open(&cx.env);
    let pool = cx.whole_pool()?;
    let (batch, next) = keycheck::batch(&pool, cursor);
    let mut parts: Vec<usize> = batch.iter().map(|k| k.at.list).collect();
    parts.dedup();
    let mut state = PoolState::new(pool.parts(), None);
    store.read(&mut state, &parts).await;
    let timeout_ms = cx.first_byte_timeout_ms;
    let probes = batch.iter().map(|key| probe(&base, key.secret, timeout_ms));
    let answers = join_all(probes).await;
    let now = now_ms();
    let mut findings: Vec<Finding> = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    for (key, answer) in batch.iter().zip(answers) {
        let verdict = match answer {
            Ok((status, body)) => classify(status, &body),
            Err(NoAnswer { timeout, detail }) => Verdict::connect_failure(timeout, detail),
        };
        let (finding, change) = keycheck::judge(key, &verdict, &state, &cooling, now);
        findings.push(finding);
        changes.extend(change);
    }
    if !changes.is_empty() {
        store.record(&state, changes, now).await;
    }
    let body = json!({"results": findings, "next": next, "checked": cursor + batch.len(), "total": pool.count()});
    let calls = store.calls.get();
    let attempts = batch.len() as u32;
    drop(pool);
    cx.timing.state_calls += calls;
    cx.timing.attempts += attempts;
    reply::json(serde_json::to_vec(&body).unwrap_or_default()).map_err(failed(cx))
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
    let mut response = request.send(key).await?;
    Ok((response.status_code(), response.bytes().await.unwrap_or_default()))
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
