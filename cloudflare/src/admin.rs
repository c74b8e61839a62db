//! The proxy's own endpoints on Workers, as on Fastly: `/v1/status`, `POST /v1/keys/check`
//! and the console page.

use crate::context::{now_ms, Cx};
use crate::incoming::Incoming;
use crate::steps::{self, Io};
use crate::stores::StateStore;
use crate::upstream::{Payload, Upstream};
use crate::{config, reply};
use futures_util::future::join_all;
use gemini_pool_core::{
    recent_failures, AdminInput, Answer, ApiKey, Check, Checked, Console, CoolingSettings, ErrorReply, Gate, Policy,
    Reading, StatusInput, Usage, UsageQuery, FAILURES_ITEM,
};
use std::rc::Rc;
use worker::{Headers, Method, Response, Result};

/// The runtime's error, as the configuration error it is for the client.
fn failed(e: worker::Error) -> ErrorReply {
    ErrorReply::config(e)
}

/// `GET /v1/status`.
pub(crate) async fn status(cx: &mut Cx) -> Result<Response, ErrorReply> {
    let cooling = cx.cooling()?;
    let store = StateStore::open(&cx.env);
    let pool = cx.whole_pool()?;
    let (parts, models_omitted) = store.read_all(pool.parts()).await;
    let now = now_ms();
    let day = Usage::day(now, cooling.reset_zone);
    let counts = if cx.caller.admin { Some(store.read_usage(&day).await) } else { None };
    let failures = match cx.caller.admin {
        true => recent_failures(&store.look(&[FAILURES_ITEM.to_string()]).await.pop().flatten().unwrap_or_default()),
        false => Vec::new(),
    };
    let gates = limit_gates(cx, counts.as_ref(), &store, now).await?;
    let input = StatusInput {
        pool: &pool,
        part_names: &config::KEY_VARS,
        parts: &parts,
        models_omitted,
        strategy: cooling.retry.strategy,
        cooling,
        client: &cx.caller.label,
        now_ms: now,
        admin: counts.as_ref().map(|usage| AdminInput { day: &day, usage, failures: &failures }),
        limits: &gates,
    };
    let body = serde_json::to_vec_pretty(&input.report()).unwrap_or_default();
    let calls = store.calls.get();
    drop(pool);
    cx.timing.state_calls += calls;
    reply::json(body).map_err(failed)
}

/// The limits `/v1/status` shows, as on Fastly: a client's own, or (an admin) those of every
/// client in today's usage with limits; each with its limit item as read.
async fn limit_gates(cx: &Cx, usage: Option<&Usage>, store: &StateStore, now: u64) -> Result<Vec<Gate>, ErrorReply> {
    let policies: Vec<(String, Policy)> = match usage {
        Some(usage) => usage
            .client_labels()
            .into_iter()
            .filter_map(|label| config::policy(&cx.env, &label).ok().flatten().map(|p| (label, p)))
            .collect(),
        None => cx.policy.iter().map(|p| (cx.caller.label.clone(), p.clone())).collect(),
    };
    let limited: Vec<(String, Policy)> = policies.into_iter().filter(|(_, p)| p.limits.any()).collect();
    if limited.is_empty() {
        return Ok(Vec::new());
    }
    let limiter = gemini_pool_core::Limiter::Store;
    let mut gates: Vec<Gate> =
        limited.iter().map(|(label, p)| Gate::new(p.limits, limiter, label, now, cx.settings.reset_zone)).collect();
    let items: Vec<String> = gates.iter().filter_map(Gate::store_item).collect();
    let mut read = store.look(&items).await.into_iter();
    for gate in gates.iter_mut().filter(|g| g.store_item().is_some()) {
        gate.store_read(read.next().flatten().as_deref());
    }
    Ok(gates)
}

/// `GET /v1/usage`: past days' counts, grouped as the query asks (as on Fastly).
pub(crate) async fn usage(req: &Incoming, cx: &mut Cx) -> Result<Response, ErrorReply> {
    let query = req.query();
    let accept = req.header("accept").unwrap_or_default();
    let (zone, keep_days) = (cx.settings.reset_zone, cx.settings.history_days);
    let asked = UsageQuery::parse(query, &cx.caller, now_ms(), zone, keep_days, accept.contains("text/csv"))?;
    let store = StateStore::open(&cx.env);
    let read = store.read_items(&asked.items()).await;
    cx.timing.state_calls += store.calls.get();
    let (content_type, body) = asked.answer(&read);
    let headers = Headers::new();
    headers.set("content-type", content_type).map_err(failed)?;
    headers.set("cache-control", "no-store").map_err(failed)?;
    Ok(Response::from_bytes(body).map_err(failed)?.with_headers(headers))
}

/// The key check's I/O: its key lists and knobs; its `Send` probes keys side by side.
struct Prober<'a, 'c> {
    lists: &'a [Rc<str>],
    cx: &'c Cx,
    base: String,
    first_byte_timeout_ms: u64,
}

impl<'a> Io<'a> for Prober<'a, '_> {
    fn fetch(&self, part: usize) -> &'a [u8] {
        self.lists.get(part).map_or(&[][..], |l| l.as_bytes())
    }

    fn cooling(&self) -> Result<CoolingSettings, ErrorReply> {
        self.cx.cooling().cloned()
    }

    fn knob(&self, name: &str) -> Option<String> {
        config::knob(&self.cx.env, name)
    }

    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer> {
        let probes = keys.iter().map(|key| {
            let request = Upstream {
                url: format!("{}{}", self.base, Check::PROBE_PATH),
                method: Method::Get,
                headers: Vec::new(),
                body: Payload::Bytes(Vec::new()),
                native: true,
                first_byte_timeout_ms: self.first_byte_timeout_ms,
                reading: Reading::Nothing,
            };
            async move { request.answer(key.secret).await.0 }
        });
        join_all(probes).await
    }
}

/// `POST /v1/keys/check?cursor=N`: one batch of keys probed side by side, as on Fastly: the
/// core's [`Check`] decides the rest (run by [`steps::run`]).
pub(crate) async fn key_check(req: &Incoming, cx: &mut Cx) -> Result<Response, ErrorReply> {
    let cursor = Check::cursor(req.query())?;
    let store = StateStore::open(&cx.env);
    let lists = std::mem::take(&mut cx.lists);
    let mut check = Check::new(lists.len(), cursor, &config::KEY_VARS);
    let mut timing = std::mem::take(&mut cx.timing);
    let (base, first_byte_timeout_ms) = (config::base_url(&cx.env), cx.first_byte_timeout_ms);
    let mut prober = Prober { lists: &lists, cx, base, first_byte_timeout_ms };
    let checked = steps::run(&mut check, &mut prober, &store, &mut timing).await;
    cx.timing = timing;
    let checked = checked?;
    cx.timing.state_calls += store.calls.get();
    match checked {
        Checked::Answer(body) => reply::json(body).map_err(failed),
        Checked::EmptyPool => Err(ErrorReply::config(config::empty_pool())),
    }
}

/// `GET /`: the console page, the same as on Fastly.
pub(crate) fn console() -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-security-policy", Console::CSP)?;
    for (name, value) in Console::HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::from_html(Console::PAGE)?.with_headers(headers))
}
