//! A request for Google's API on Workers: body → what it is about → the core's request flow
//! ([`Flow`], run by [`steps::run`]) → the answer; usage counted after it (`wait_until`).

use crate::config;
use crate::context::{now_ms, seed, Cx, Rejection};
use crate::incoming::Incoming;
use crate::reply;
use crate::reply::{Pass, Timing};
use crate::steps::{self, Io, StoreOnly};
use crate::stores::StateStore;
use crate::upstream::{Payload, Upstream};
use gemini_pool_core::{
    proxied_upload_url, strip_model_prefixes, upload_fits, Answer, ApiKey, Applied, CoolingSettings, ErrorReply,
    Finish, Flow, Gate, Gated, Kind, Listed, Listing, Meter, Policy, Reading, ResourceCall, Route, SettingsReader,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{Context, Method, Response, Result};

/// State calls outside the attempts: the first read, the read of the other parts (widening),
/// and the usage count after the response (append, check, compaction) — one object each.
const STATE_CALLS_BESIDE_ATTEMPTS: usize = 5;

/// How many keys a request may try within `subrequests`: each attempt costs a fetch and, after
/// a failure, the writes and the read-back (one call per object they touch: `per_batch`).
fn attempts_within(subrequests: usize, per_batch: usize) -> usize {
    subrequests.saturating_sub(STATE_CALLS_BESIDE_ATTEMPTS * per_batch) / (1 + per_batch)
}

/// A request's I/O: its key lists and knobs; it sends the client's request and keeps a
/// success's response to deliver it.
struct Forwarder<'a, 'c> {
    lists: &'a [Rc<str>],
    cx: &'c Cx,
    upstream: Upstream,
    served: Option<Response>,
}

impl<'a> Io<'a> for Forwarder<'a, '_> {
    fn fetch(&self, part: usize) -> &'a [u8] {
        self.lists.get(part).map_or(&[][..], |l| l.as_bytes())
    }

    fn cooling(&self) -> std::result::Result<CoolingSettings, Rejection> {
        self.cx.cooling().cloned()
    }

    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys {
            let (answer, response) = self.upstream.answer(key.secret).await;
            self.served = response.or(self.served.take());
            answers.push(answer);
        }
        answers
    }
}

/// A request for Google's API: the same flow as on Fastly (see `src/forward.rs` there).
pub(crate) async fn forward(
    req: &Incoming,
    routed: &Route,
    cx: &mut Cx,
    ctx: &Context,
) -> std::result::Result<Response, Rejection> {
    let dialect = routed.dialect;
    if let Some(ResourceCall::List(kind)) = routed.resource_call() {
        return list(routed, *kind, cx).await;
    }
    let mut payload = payload(req, routed, cx).await?;
    let facts = routed.facts(payload.bytes()).map_err(|reply| Rejection::new(dialect, reply))?;
    // The client's policy: its alias resolved (in the path or the body), its models checked.
    let applied = match &cx.policy {
        Some(policy) => policy.apply(routed, payload.bytes(), &facts),
        None => Ok(Applied::default()),
    };
    let Applied { route: aliased, body: aliased_body, model, relabel, query: instead } =
        applied.map_err(|reply| Rejection::new(dialect, reply))?;
    let routed = aliased.as_ref().unwrap_or(routed);
    if let Some(body) = aliased_body {
        payload = Payload::Bytes(body);
    }
    let model = model.or_else(|| facts.model.clone());
    let forwarded = match instead {
        Some(query) => Some(query.to_string()),
        None => gemini_pool_core::forwarded_query(req.query(), routed.forwarded_query_params()),
    };
    let path = routed.upstream_path().unwrap_or_default();
    let url = match forwarded {
        Some(q) => format!("{}{path}?{q}", config::base_url(&cx.env)),
        None => format!("{}{path}", config::base_url(&cx.env)),
    };
    let headers = routed.forwarded_headers().iter().filter_map(|n| req.header(n).map(|v| (*n, v))).collect();
    let first_byte_timeout_ms = cx.first_byte_timeout_ms;
    // A streamed body can be sent once: one attempt.
    let streamed = matches!(payload, Payload::Stream(_));
    let upstream = Upstream {
        url,
        method: req.method(),
        headers,
        body: payload,
        native: routed.is_native(),
        first_byte_timeout_ms,
        reading: routed.reading(facts.stream),
    };

    // The key lists move out of `cx` (which the loop borrows mutably): no copy.
    let lists = std::mem::take(&mut cx.lists);
    let store = StateStore::open(&cx.env);
    let attempts = if streamed { 1 } else { attempts_within(cx.subrequests, store.calls_per_batch()) };
    let flow = Flow::new(lists.len(), model.as_deref(), seed(), attempts)
        .with_resources(routed, &facts, &cx.caller)
        .within(cx.policy.as_ref().and_then(|p| p.projects.clone()));
    let mut flow = Gated::new(flow, gate(cx)?, seed());
    let mut timing = std::mem::take(&mut cx.timing);
    let mut forwarder = Forwarder { lists: &lists, cx, upstream, served: None };
    let finish = steps::run(&mut flow, &mut forwarder, &store, &mut timing).await;
    let served = forwarder.served.take();
    cx.timing = timing;
    let finish = finish?;
    let usage = flow.usage(&cx.caller.label, now_ms(), &cx.settings);
    cx.timing.usage_after = usage.is_some();
    cx.timing.state_calls += store.calls.get();
    // A metered answer tells the usage count when it has passed (`done` dropped).
    let meter = (usage.is_some() && routed.metered()).then(|| Rc::new(RefCell::new(Meter::new())));
    let (done, mut passed) = futures_channel::oneshot::channel::<()>();
    let mut done = Some(done);
    let answered = match (finish, served) {
        (Finish::Served, Some(response)) => {
            // Only a served stream reads `max_stream_duration`.
            let limit = if facts.stream { cx.stream_limit()? } else { None };
            let response = match routed.resource_call() {
                Some(ResourceCall::StartUpload) => own_upload_url(response, req),
                _ => response,
            };
            let pass = Pass { meter: meter.clone(), relabel, done: done.take() };
            served_response(response, routed, facts.stream, limit, cx.policy.as_ref(), pass).await
        }
        (Finish::Error(reply), _) => reply::error(dialect, &reply),
        (Finish::EmptyPool, _) => return Err(Rejection::config(dialect, config::empty_pool())),
        (Finish::Served, None) => reply::error(dialect, &ErrorReply::upstream_unreachable(false)),
    };
    drop(done);
    let mut answered = answered.map_err(|e| Rejection::config(dialect, e))?;
    for (name, value) in flow.rate_headers() {
        let _ = answered.headers_mut().set(name, value);
    }
    // An answer that has passed already (read whole, or nothing to meter) has its counts
    // handed to the isolate's batch now: most requests then leave nothing to do after the answer.
    let mut usage = usage;
    let passed_now = meter.is_none() || !matches!(passed.try_recv(), Ok(None));
    let held = match usage.take_if(|_| passed_now) {
        Some(mut counted) => {
            if let Some(meter) = &meter {
                counted.tokens = meter.borrow().tokens();
            }
            Some(crate::held::take(counted.appends())).filter(|held| !held.is_empty())
        }
        None => None,
    };
    // After the answer: the changes the store refused, then the counts (once a metered answer
    // has passed).
    let linger = flow.inner_mut().linger();
    if linger.is_some() || usage.is_some() || held.is_some() {
        let env = cx.env.clone();
        ctx.wait_until(async move {
            let store = StateStore::open(&env);
            if let Some(mut linger) = linger {
                let _ = steps::run(&mut linger, &mut StoreOnly, &store, &mut Timing::default()).await;
            }
            if let Some(held) = held {
                return crate::held::write(&store, held).await;
            }
            let Some(mut usage) = usage else { return };
            if let Some(meter) = meter {
                let _ = passed.await;
                usage.tokens = meter.borrow().tokens();
            }
            crate::held::count(&store, usage.appends()).await;
        });
    }
    Ok(answered)
}

/// The gate of a client with limits (its policy's `rpm`, `rpd`, `tokens_per_day`).
fn gate(cx: &Cx) -> std::result::Result<Option<Gate>, Rejection> {
    let Some(limits) = cx.policy.as_ref().map(|p| p.limits).filter(|l| l.any()) else { return Ok(None) };
    let limiter = if limits.rpm.is_some() { cx.limiter()? } else { Default::default() };
    Ok(Some(Gate::new(limits, limiter, &cx.caller.label, now_ms(), cx.settings.reset_zone)))
}

/// A list of stateful resources, behind the client's gate: the core's [`Listing`] asks each
/// project holding the caller's, and merges the pages.
async fn list(routed: &Route, kind: Kind, cx: &mut Cx) -> std::result::Result<Response, Rejection> {
    let dialect = routed.dialect;
    let url = format!("{}{}", config::base_url(&cx.env), routed.upstream_path().unwrap_or_default());
    let upstream = Upstream {
        url,
        method: Method::Get,
        headers: Vec::new(),
        body: Payload::Bytes(Vec::new()),
        native: true,
        first_byte_timeout_ms: cx.first_byte_timeout_ms,
        reading: Reading::Page,
    };
    let lists = std::mem::take(&mut cx.lists);
    let store = StateStore::open(&cx.env);
    let listing = Listing::new(kind, &cx.caller, lists.len(), now_ms());
    let mut listing = Gated::new(listing, gate(cx)?, seed());
    let mut timing = std::mem::take(&mut cx.timing);
    let mut forwarder = Forwarder { lists: &lists, cx, upstream, served: None };
    let listed = steps::run(&mut listing, &mut forwarder, &store, &mut timing).await;
    cx.timing = timing;
    cx.timing.state_calls += store.calls.get();
    let mut answered = match listed? {
        Listed::Answer(body) => reply::json(body).map_err(|e| Rejection::config(dialect, e))?,
        Listed::Error(reply) => reply::error(dialect, &reply).map_err(|e| Rejection::config(dialect, e))?,
    };
    for (name, value) in listing.rate_headers() {
        let _ = answered.headers_mut().set(name, value);
    }
    Ok(answered)
}

/// The request body: an upload's bytes stream through (within `max_upload_bytes`), any other
/// body is read (within `max_body_bytes`) so that a retry can send it again.
async fn payload(req: &Incoming, routed: &Route, cx: &Cx) -> std::result::Result<Payload, Rejection> {
    let dialect = routed.dialect;
    if let Some(header) = routed.upload_size_header() {
        let announced = req.header(header);
        let limit = SettingsReader::new(|name: &str| config::knob(&cx.env, name))
            .upload_limit()
            .map_err(|e| Rejection::config(dialect, e))?;
        upload_fits(announced.as_deref(), limit).map_err(|reply| Rejection::new(dialect, reply))?;
    }
    if matches!(routed.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload)) {
        return Ok(Payload::Stream(std::cell::RefCell::new(req.body())));
    }
    if !matches!(req.method(), Method::Post | Method::Patch) {
        return Ok(Payload::Bytes(Vec::new()));
    }
    let body = req.bytes_within(cx.settings.max_body_bytes).await.map_err(|reply| Rejection::new(dialect, reply))?;
    Ok(Payload::Bytes(body))
}

/// Google's upload URL becomes the proxy's own, rebuilt from the session's id alone.
fn own_upload_url(response: Response, req: &Incoming) -> Response {
    let Some(google_url) = response.headers().get("x-goog-upload-url").ok().flatten() else { return response };
    let origin = req.origin();
    let headers = response.headers().clone();
    match proxied_upload_url(&google_url, origin) {
        Some(own) => {
            let _ = headers.set("x-goog-upload-url", &own);
        }
        None => {
            let _ = headers.delete("x-goog-upload-url");
        }
    }
    response.with_headers(headers)
}

/// Google's response on its way to the client (model ids rewritten where the route says so,
/// model lists kept to what the client's policy allows; a stream cut once it has run
/// `stream_limit`; metered and relabelled by `pass`).
async fn served_response(
    mut response: Response,
    routed: &Route,
    stream: bool,
    stream_limit: Option<Duration>,
    policy: Option<&Policy>,
    pass: Pass,
) -> Result<Response> {
    let policy = policy.filter(|p| routed.lists_models() && p.restricts());
    let rewritten = if routed.rewrites_model_ids() || policy.is_some() {
        let mut body = response.bytes().await?;
        if routed.rewrites_model_ids() {
            body = strip_model_prefixes(&body).unwrap_or(body);
        }
        if let Some(policy) = policy {
            body = policy.model_list(&body).unwrap_or(body);
        }
        Some(body)
    } else {
        None
    };
    reply::passed_on(response, rewritten, stream, stream_limit, pass)
}
