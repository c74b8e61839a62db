//! The proxy's own endpoints on Workers, as on Fastly: `/v1/status`, `POST /v1/keys/check`
//! and the console page.

use crate::context::{now_ms, Context};
use crate::incoming::Incoming;
use crate::steps::{self, Io};
use crate::stores::StateStore;
use crate::upstream::{Payload, Upstream};
use crate::{config, reply};
use futures_util::future::join_all;
use gemini_pool_core::{Answer, ApiKey, Check, Checked, Console, ErrorReply, Reading, Status, UsageQuery};
use std::rc::Rc;
use worker::{Headers, Method, Response, Result};

/// `GET /v1/status`: the core's [`Status`] reads (key lists, knobs, items; an admin's counts
/// and failures; the limits shown) and reports, as on Fastly.
pub(crate) async fn status(cx: &mut Context) -> Result<Response, ErrorReply> {
    let store = StateStore::open(&cx.env);
    let lists = std::mem::take(&mut cx.lists);
    let mut status = Status::new(&cx.caller, cx.policy.clone(), &config::KEY_VARS[..lists.len()], now_ms(), false);
    let mut timing = std::mem::take(&mut cx.timing);
    let body = steps::run(&mut status, &mut StatusIo { lists: &lists, cx }, &store, &mut timing).await;
    cx.timing = timing;
    cx.timing.state_calls += store.calls.get();
    reply::json(body??).map_err(ErrorReply::runtime)
}

/// The I/O of a machine that only reads (key lists, knobs, policies): it calls Google with no key.
struct StatusIo<'a, 'c> {
    lists: &'a [Rc<str>],
    cx: &'c Context,
}

impl<'a> Io<'a> for StatusIo<'a, '_> {
    fn env(&self) -> Option<(&'a [Rc<str>], &Context)> {
        Some((self.lists, self.cx))
    }

    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer> {
        keys.iter().map(|_| Answer::None { timeout: false, detail: "a status calls no one".into() }).collect()
    }
}

/// `GET /v1/usage`: past days' counts, grouped as the query asks (as on Fastly).
pub(crate) async fn usage(req: &Incoming, cx: &mut Context) -> Result<Response, ErrorReply> {
    let query = req.query();
    let accept = req.header("accept").unwrap_or_default();
    let (zone, keep_days) = (cx.settings.reset_zone, cx.settings.history_days);
    let asked = UsageQuery::parse(query, &cx.caller, now_ms(), zone, keep_days, accept.contains("text/csv"))?;
    let store = StateStore::open(&cx.env);
    let names: Vec<String> = asked.items().into_iter().map(|(name, _)| name).collect();
    let read = store.look(&names).await;
    cx.timing.state_calls += store.calls.get();
    let (content_type, body) = asked.answer(&read);
    let headers = Headers::new();
    headers.set("content-type", content_type).map_err(ErrorReply::runtime)?;
    headers.set("cache-control", "no-store").map_err(ErrorReply::runtime)?;
    Ok(Response::from_bytes(body).map_err(ErrorReply::runtime)?.with_headers(headers))
}

/// The key check's I/O: its key lists and knobs; its `Send` probes keys side by side.
struct CheckIo<'a, 'c> {
    lists: &'a [Rc<str>],
    cx: &'c Context,
    base: String,
    first_byte_timeout_ms: u64,
}

impl<'a> Io<'a> for CheckIo<'a, '_> {
    fn env(&self) -> Option<(&'a [Rc<str>], &Context)> {
        Some((self.lists, self.cx))
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
pub(crate) async fn key_check(req: &Incoming, cx: &mut Context) -> Result<Response, ErrorReply> {
    let cursor = Check::cursor(req.query())?;
    let store = StateStore::open(&cx.env);
    let lists = std::mem::take(&mut cx.lists);
    let mut check = Check::new(lists.len(), cursor, &config::KEY_VARS);
    let mut timing = std::mem::take(&mut cx.timing);
    let (base, first_byte_timeout_ms) = (config::base_url(&cx.env), cx.first_byte_timeout_ms);
    let mut io = CheckIo { lists: &lists, cx, base, first_byte_timeout_ms };
    let checked = steps::run(&mut check, &mut io, &store, &mut timing).await;
    cx.timing = timing;
    let checked = checked?;
    cx.timing.state_calls += store.calls.get();
    match checked {
        Checked::Answer(body) => reply::json(body).map_err(ErrorReply::runtime),
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
