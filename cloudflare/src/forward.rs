//! A request for Google's API on Workers: the body read (or an upload's streamed), the core's
//! [`Forward`] prepared, its machine run by [`steps::run`], its [`Delivery`] carried out; what
//! is left after the answer handed to [`crate::held`]. Every decision is the core's; this is I/O.

use crate::config;
use crate::context::{now_ms, seed, Context};
use crate::incoming::Incoming;
use crate::reply;
use crate::reply::Pass;
use crate::steps::{self, Io};
use crate::stores::StateStore;
use crate::upstream::{Payload, Upstream};
use gemini_pool_core::{
    proxied_upload_url, upload_fits, Answer, Answering, ApiKey, Ask, Client, ErrorReply, Forward, Meter, Passing,
    ResourceCall, Route, SettingsReader, Setup,
};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Method, Response};

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
struct RequestIo<'a, 'c> {
    lists: &'a [Rc<str>],
    cx: &'c Context,
    upstream: Upstream,
    served: Option<Response>,
}

impl<'a> Io<'a> for RequestIo<'a, '_> {
    fn env(&self) -> Option<(&'a [Rc<str>], &Context)> {
        Some((self.lists, self.cx))
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

/// A request for Google's API: the same as on Fastly (see `src/forward.rs` there).
pub(crate) async fn forward(
    req: &Incoming,
    routed: &Route,
    cx: &mut Context,
    ctx: &worker::Context,
) -> Result<Response, ErrorReply> {
    let payload = payload(req, routed, cx).await?;
    let store = StateStore::open(&cx.env);
    let streamed = matches!(payload, Payload::Stream(_));
    let ask = Ask { route: routed, body: payload.bytes(), streamed, query: req.query() };
    let setup = Setup {
        parts: cx.lists.len(),
        first_list: config::KEY_VARS[0],
        upstream_limit: attempts_within(cx.subrequests, store.calls_per_batch()),
        // Cloudflare's Rate Limiting binding has one limit per binding, not one per client.
        platform_counter: false,
        // A Durable Object has no per-item write budget: the items alone hold the verdicts.
        verdict_entries: false,
        seed: seed(),
        now_ms: now_ms(),
        settings: cx.settings.clone(),
        agent_models: if routed.translated() { Some(cx.agent_models()?) } else { None },
    };
    let mut forward = Forward::prepare(ask, Client { caller: &cx.caller, policy: cx.policy.as_ref() }, setup)?;
    let outgoing = forward.outgoing();
    let headers = outgoing.headers.iter().filter_map(|n| req.header(n).map(|v| (*n, v))).collect();
    let upstream = Upstream {
        url: format!("{}{}", config::base_url(&cx.env), outgoing.path),
        method: req.method(),
        headers,
        body: match &outgoing.body {
            Some(rewritten) => Payload::Bytes(rewritten.clone()),
            None => payload,
        },
        native: outgoing.native,
        first_byte_timeout_ms: cx.first_byte_timeout_ms,
        reading: outgoing.reading.clone(),
    };

    // The key lists move out of `cx` (which the loop borrows mutably): no copy.
    let lists = std::mem::take(&mut cx.lists);
    let mut timing = std::mem::take(&mut cx.timing);
    let mut io = RequestIo { lists: &lists, cx, upstream, served: None };
    let ended = steps::run(forward.work(), &mut io, &store, &mut timing).await;
    let served = io.served.take();
    cx.timing = timing;
    let delivery = forward.deliver(ended?, served.is_some(), now_ms());
    cx.timing.usage_after = delivery.usage.is_some();
    cx.timing.state_calls += store.calls.get();
    // A metered answer tells the usage count when it has passed (`done` dropped).
    let metered = matches!(&delivery.answer, Answering::Served(passing) if passing.meter);
    let meter = metered.then(|| Rc::new(RefCell::new(Meter::new())));
    let (done, passed) = futures_channel::oneshot::channel::<()>();
    let mut answered = match (delivery.answer, served) {
        (Answering::Served(passing), Some(response)) => {
            let pass = Pass { meter: meter.clone(), transform: passing.transform.clone(), done: Some(done) };
            passed_on(response, &passing, req, cx, pass).await?
        }
        (Answering::Json(body), _) => reply::json(body).map_err(ErrorReply::runtime)?,
        (Answering::Error(refused), _) => reply::error(routed.dialect, &refused).map_err(ErrorReply::runtime)?,
        (Answering::Served(_), None) => {
            reply::error(routed.dialect, &ErrorReply::upstream_unreachable(false)).map_err(ErrorReply::runtime)?
        }
    };
    for (name, value) in &delivery.rate_headers {
        let _ = answered.headers_mut().set(name, value);
    }
    crate::held::after_answer(ctx, &cx.env, delivery.linger, delivery.usage, meter, passed);
    Ok(answered)
}

/// Google's success as the client gets it: the upload URL made the proxy's, the body rewritten
/// where the core says (read whole), a stream cut once it has run `max_stream_duration`;
/// metered and transformed by `pass` as it goes.
async fn passed_on(
    mut response: Response,
    passing: &Passing,
    req: &Incoming,
    cx: &Context,
    pass: Pass,
) -> Result<Response, ErrorReply> {
    if passing.upload_url {
        response = own_upload_url(response, req);
    }
    let rewritten = match &passing.rewrite {
        Some(rewrite) => Some(rewrite.apply(response.bytes().await.map_err(ErrorReply::runtime)?)),
        None => None,
    };
    // Only a served stream reads `max_stream_duration`.
    let limit = if passing.stream { cx.stream_limit()? } else { None };
    reply::passed_on(response, rewritten, passing.stream, limit, pass).map_err(ErrorReply::runtime)
}

/// The request body: an upload's bytes stream through (within `max_upload_bytes`), any other
/// body is read (within `max_body_bytes`) so that a retry can send it again.
async fn payload(req: &Incoming, routed: &Route, cx: &Context) -> Result<Payload, ErrorReply> {
    if let Some(header) = routed.upload_size_header() {
        let limit =
            SettingsReader::new(|name: &str| config::knob(&cx.env, name)).upload_limit().map_err(ErrorReply::config)?;
        upload_fits(req.header(header).as_deref(), limit)?;
    }
    if matches!(routed.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload)) {
        return Ok(Payload::Stream(std::cell::RefCell::new(req.body())));
    }
    if !matches!(req.method(), Method::Post | Method::Patch) {
        return Ok(Payload::Bytes(Vec::new()));
    }
    Ok(Payload::Bytes(req.bytes_within(cx.settings.max_body_bytes).await?))
}

/// Google's upload URL becomes the proxy's own, rebuilt from the session's id alone.
fn own_upload_url(response: Response, req: &Incoming) -> Response {
    let Some(google_url) = response.headers().get("x-goog-upload-url").ok().flatten() else { return response };
    let headers = response.headers().clone();
    match proxied_upload_url(&google_url, req.origin()) {
        Some(own) => {
            let _ = headers.set("x-goog-upload-url", &own);
        }
        None => {
            let _ = headers.delete("x-goog-upload-url");
        }
    }
    response.with_headers(headers)
}
