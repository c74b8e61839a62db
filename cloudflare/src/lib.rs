//! gemini-edge-pool on Cloudflare Workers: the thin I/O layer around `gemini-pool-core`,
//! the same core the Fastly edge uses, unchanged.
//!
//! - this file — routing, tokens and roles, settings; a request for Google's API (attempts,
//!   recording, answering); usage counting after the response (`wait_until`);
//! - [`admin`] — `/v1/status`, the key check, the console page;
//! - [`store`] — the shared state: a Durable Object holding the same items as Fastly's KV;
//! - [`config`] — the environment: keys, tokens, knobs, Google's address;
//! - [`reply`] — response headers, errors, preflight.

mod admin;
mod config;
mod reply;
mod store;

use futures_util::future::{select, Either};
use gemini_pool_core::attempts::{Attempts, Choice};
use gemini_pool_core::auth::{caller, client_token, lookup_order, query_param, Caller, Presented, Role};
use gemini_pool_core::ending::{self, ERROR_BODY_LIMIT};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use gemini_pool_core::keys::{choose_part, KeyPool};
use gemini_pool_core::openai_body::strip_model_prefixes;
use gemini_pool_core::rng::Rng;
use gemini_pool_core::route::{may_be_native, route, Access, Endpoint, Route};
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, SettingError, SettingsReader};
use gemini_pool_core::state::PoolState;
use gemini_pool_core::usage;
use reply::Timing;
use std::cell::OnceCell;
use std::pin::pin;
use std::time::Duration;
use store::StateStore;
use worker::{
    event, js_sys, AbortController, Context, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
    Response, Result,
};

/// Calls to the state object outside the attempts: the first read, the read of the other
/// parts (widening), and the usage count after the response (append, check, compaction).
const STATE_CALLS_BESIDE_ATTEMPTS: usize = 5;

/// How many keys a request may try within `subrequests`: each attempt costs a fetch and, after
/// a failure, one call to the state object (the writes and the read-back in one batch).
fn attempts_within(subrequests: usize) -> usize {
    subrequests.saturating_sub(STATE_CALLS_BESIDE_ATTEMPTS) / 2
}

/// An early answer: an error in the client's dialect.
pub struct Rejection {
    dialect: Dialect,
    reply: ErrorReply,
}

impl Rejection {
    fn new(dialect: Dialect, reply: ErrorReply) -> Self {
        Rejection { dialect, reply }
    }

    fn config(dialect: Dialect, what: impl std::fmt::Display) -> Self {
        worker::console_error!("config: {what}");
        Rejection { dialect, reply: ErrorReply::config(what) }
    }
}

/// Everything a request needs once it is authenticated.
pub struct Cx {
    env: Env,
    caller: Caller,
    dialect: Dialect,
    settings: RequestSettings,
    lists: Vec<String>,
    /// Subrequests one request may make (`SUBREQUEST_LIMIT`; 50 on the free plan).
    subrequests: usize,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    first_byte_timeout_ms: u64,
    timing: Timing,
    /// The cooling knobs, once read.
    cooling: OnceCell<CoolingSettings>,
}

impl Cx {
    /// The cooling knobs (read the first time they are asked for).
    fn cooling(&self) -> std::result::Result<&CoolingSettings, Rejection> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read = SettingsReader::new(|name: &str| config::knob(&self.env, name))
            .cooling()
            .map_err(|e| Rejection::config(self.dialect, e))?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// `max_stream_duration` (read only for an answer that streams).
    fn stream_limit(&self) -> std::result::Result<Option<Duration>, Rejection> {
        SettingsReader::new(|name: &str| config::knob(&self.env, name))
            .stream_limit()
            .map_err(|e| Rejection::config(self.dialect, e))
    }

    /// Every part of the pool.
    fn whole_pool(&self) -> std::result::Result<KeyPool<'_>, Rejection> {
        let pool = KeyPool::new(self.lists.iter());
        if pool.is_empty() {
            return Err(Rejection::config(self.dialect, config::empty_pool()));
        }
        Ok(pool)
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    let started = worker::Date::now().as_millis() as f64;
    let mut timing = Timing::default();
    let answer = serve(&mut req, env, &ctx, &mut timing).await;
    let response = match answer {
        Ok(response) => response,
        Err(r) => reply::error(r.dialect, &r.reply)?,
    };
    reply::finish(response, &timing, started)
}

async fn serve(
    req: &mut Request,
    env: Env,
    ctx: &Context,
    timing: &mut Timing,
) -> std::result::Result<Response, Rejection> {
    let path = req.path();
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let native_path = may_be_native(&path);
    let (authorization, goog) = (header("authorization"), if native_path { header("x-goog-api-key") } else { None });
    let query_key = if native_path { query_param(query.as_deref(), "key").map(str::to_string) } else { None };
    let presented = Presented {
        authorization: authorization.as_deref(),
        goog_api_key: goog.as_deref(),
        query_key: query_key.as_deref(),
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let method = req.method().to_string();
    let routed = route(&method, &path, native_credentials).map_err(|e| Rejection::new(e.dialect, e.reply))?;
    let dialect = routed.dialect;
    let fail = |e: worker::Error| Rejection::new(dialect, ErrorReply::new(500, "worker_error", e.to_string()));
    match routed.endpoint {
        Endpoint::Preflight => return reply::preflight(header("access-control-request-headers")).map_err(fail),
        Endpoint::Console => return admin::console().map_err(fail),
        _ => {}
    }
    let caller = authenticate(&env, presented, dialect, routed.access())?;
    let settings = SettingsReader::new(|name: &str| config::knob(&env, name))
        .request()
        .map_err(|e: SettingError| Rejection::config(dialect, e))?;
    let mut lists = Vec::new();
    for name in config::KEY_VARS.iter().take(settings.key_secrets) {
        lists.push(
            config::text(&env, name)
                .ok_or_else(|| Rejection::config(dialect, format!("secret `{name}` is missing")))?,
        );
    }
    let subrequests = config::subrequest_limit(&env).map_err(|e| Rejection::config(dialect, e))?;
    let first_byte_timeout_ms = config::first_byte_timeout_ms(&env).map_err(|e| Rejection::config(dialect, e))?;
    let mut cx = Cx {
        env,
        caller,
        dialect,
        settings,
        lists,
        subrequests,
        first_byte_timeout_ms,
        timing: Timing::default(),
        cooling: OnceCell::new(),
    };
    let answer = match routed.endpoint {
        Endpoint::Status => admin::status(&mut cx).await,
        Endpoint::KeyCheck => admin::key_check(req, &mut cx).await,
        _ => forward(req, &routed, &mut cx, ctx).await,
    };
    *timing = std::mem::take(&mut cx.timing);
    answer
}

/// The caller's token, looked up in `VALID_AUTH_TOKENS` and `ADMIN_TOKENS` in the order the
/// core gives for `access` (the first list that holds it decides; admin wins where it matters).
fn authenticate(
    env: &Env,
    presented: Presented<'_>,
    dialect: Dialect,
    access: Access,
) -> std::result::Result<Caller, Rejection> {
    let token = client_token(presented, dialect).map_err(|reply| Rejection::new(dialect, reply))?;
    let clients = config::text(env, "VALID_AUTH_TOKENS");
    if clients.is_none() {
        return Err(Rejection::config(dialect, "variable `VALID_AUTH_TOKENS` is missing"));
    }
    let admins = config::text(env, "ADMIN_TOKENS");
    let found = lookup_order(access).into_iter().find_map(|role| {
        let list = match role {
            Role::Client => clients.as_deref(),
            Role::Admin => admins.as_deref(),
        };
        config::token_label(list, &token).map(|label| (role, label))
    });
    caller(access, found).map_err(|reply| Rejection::new(dialect, reply))
}

/// How the attempt loop ended (the core's [`Ending`], with a Workers response).
type Ending<'a> = ending::Ending<'a, Response>;

/// A request for Google's API: the same flow as on Fastly (see `src/forward.rs` there).
async fn forward(
    req: &mut Request,
    routed: &Route,
    cx: &mut Cx,
    ctx: &Context,
) -> std::result::Result<Response, Rejection> {
    let dialect = routed.dialect;
    let body = if req.method() == Method::Post { req.bytes().await.unwrap_or_default() } else { Vec::new() };
    if body.len() > cx.settings.max_body_bytes {
        return Err(Rejection::new(dialect, ErrorReply::body_too_large(cx.settings.max_body_bytes)));
    }
    let facts = routed.facts(&body).map_err(|reply| Rejection::new(dialect, reply))?;
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let forwarded = gemini_pool_core::auth::forwarded_query(query.as_deref(), routed.forwarded_query_params());
    let path = routed.upstream_path().unwrap_or_default();
    let url = match forwarded {
        Some(q) => format!("{}{path}?{q}", config::base_url(&cx.env)),
        None => format!("{}{path}", config::base_url(&cx.env)),
    };
    let content_type = req.headers().get("content-type").ok().flatten();

    let seed = seed();
    let mut rng = Rng::new(seed);
    // The key lists move out of `cx` (which the attempt loop borrows mutably): no copy.
    let lists = std::mem::take(&mut cx.lists);
    let part = choose_part(lists.len(), &mut rng, |p| lists[p].len());
    let read = |p: usize| Ok::<_, std::convert::Infallible>(lists[p].as_bytes());
    let pool = match KeyPool::starting(lists.len(), part, read) {
        Ok(Some(pool)) => pool,
        _ => return Err(Rejection::config(dialect, config::empty_pool())),
    };
    let state_store = StateStore::open(&cx.env);
    let mut state = PoolState::new(pool.parts(), facts.model.as_deref());
    let parts: Vec<usize> = (0..pool.parts()).filter(|&p| pool.has(p)).collect();
    state_store.read(&mut state, &parts).await;
    let mut attempts = Attempts::new(pool, state, seed.rotate_left(32));
    attempts.limit_upstream(attempts_within(cx.subrequests));
    let first_byte_timeout_ms = cx.first_byte_timeout_ms;
    let upstream =
        Upstream { url, method: req.method(), content_type, body, native: routed.is_native(), first_byte_timeout_ms };
    let ending = attempt_loop(&mut attempts, &upstream, &state_store, &lists, cx).await?;
    let served = ending.is_served();
    if cx.settings.usage_counts {
        let (label, model, zone) = (&cx.caller.label, attempts.counted_model(), cx.settings.reset_zone);
        let append = usage::Append::new(attempts.history(), label, model, served, now_ms(), zone, &mut rng);
        let env = cx.env.clone();
        cx.timing.usage_after = true;
        ctx.wait_until(async move { StateStore::open(&env).count_usage(&append).await });
    }
    cx.timing.state_calls += state_store.calls.get();
    // Only a served stream reads `max_stream_duration`.
    let stream_limit = if facts.stream && served { cx.stream_limit()? } else { None };
    let answered = match ending.into_reply(&attempts, now_ms()) {
        Ok(response) => served_response(response, routed, facts.stream, stream_limit).await,
        Err(reply) => reply::error(dialect, &reply),
    };
    answered.map_err(|e| Rejection::config(dialect, e))
}

/// The first [`ERROR_BODY_LIMIT`] bytes of an error answer (the rest is never read).
pub(crate) async fn error_body(mut response: Response) -> Vec<u8> {
    use futures_util::StreamExt;
    let Ok(mut chunks) = response.stream() else { return Vec::new() };
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = ERROR_BODY_LIMIT - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    body
}

/// One request for Google, ready to be sent with any key.
pub(crate) struct Upstream {
    pub(crate) url: String,
    pub(crate) method: Method,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The key goes in `x-goog-api-key` (Google's native API) rather than `authorization`.
    pub(crate) native: bool,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    pub(crate) first_byte_timeout_ms: u64,
}

impl Upstream {
    /// Sends the request with `key`; gives up when Google has not answered (headers) within
    /// `first_byte_timeout_ms`. A redirect comes back as it is (Google does not redirect its
    /// API; following one would send the key elsewhere): the core calls it upstream trouble.
    pub(crate) async fn send(&self, key: &str) -> std::result::Result<Response, NoAnswer> {
        let failed = |e: worker::Error| NoAnswer { timeout: false, detail: e.to_string() };
        let headers = Headers::new();
        if self.native {
            headers.set("x-goog-api-key", key).map_err(failed)?;
        } else {
            headers.set("authorization", &format!("Bearer {key}")).map_err(failed)?;
        }
        if self.method == Method::Post {
            let content_type = self.content_type.as_deref().unwrap_or("application/json");
            headers.set("content-type", content_type).map_err(failed)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method.clone()).with_headers(headers).with_redirect(RequestRedirect::Manual);
        if self.method == Method::Post {
            init.with_body(Some(js_sys::Uint8Array::from(self.body.as_slice()).into()));
        }
        let request = Request::new_with_init(&self.url, &init).map_err(failed)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let sending = Fetch::Request(request);
        let fetch = pin!(sending.send_with_signal(&signal));
        let timer = pin!(Delay::from(Duration::from_millis(self.first_byte_timeout_ms)));
        match select(fetch, timer).await {
            Either::Left((answer, _)) => answer.map_err(failed),
            Either::Right(_) => {
                controller.abort();
                let detail = format!("no answer within {} ms", self.first_byte_timeout_ms);
                Err(NoAnswer { timeout: true, detail })
            }
        }
    }
}

/// Google did not answer: the connection failed, or the first byte took too long.
pub(crate) struct NoAnswer {
    pub(crate) timeout: bool,
    pub(crate) detail: String,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

async fn attempt_loop<'a>(
    attempts: &mut Attempts<'a>,
    upstream: &Upstream,
    state_store: &StateStore,
    lists: &'a [String],
    cx: &mut Cx,
) -> std::result::Result<Ending<'a>, Rejection> {
    let mut last = Ending::nothing_yet();
    loop {
        let key = match attempts.next(now_ms()) {
            Choice::Try(key) => key,
            Choice::Widen => {
                let parts: Vec<usize> = (0..lists.len()).filter(|&p| !attempts.pool().has(p)).collect();
                let mut state = PoolState::new(lists.len(), attempts.model());
                state_store.read(&mut state, &parts).await;
                attempts.widen(parts.into_iter().map(|p| (p, lists[p].as_bytes(), state.take(p))).collect());
                continue;
            }
            Choice::Configure => {
                attempts.configure(&cx.cooling()?.retry);
                continue;
            }
            Choice::Deliver => return Ok(last),
            refusal => return Ok(Ending::refusal(&refusal, attempts.model()).unwrap_or(last)),
        };
        cx.timing.attempts += 1;
        let (verdict, ending) = match upstream.send(key.secret).await {
            Ok(response) if (200..300).contains(&response.status_code()) => {
                let changes = attempts.succeeded(&key, now_ms());
                if !changes.is_empty() {
                    let fresh = state_store.record(attempts.state(), changes, now_ms()).await;
                    attempts.refresh(fresh);
                }
                return Ok(Ending::Served(response));
            }
            Ok(response) => {
                let status = response.status_code();
                Ending::upstream(status, error_body(response).await, &key)
            }
            Err(NoAnswer { timeout, detail }) => Ending::no_answer(timeout, detail),
        };
        let changes = attempts.failed(&key, &verdict, cx.cooling()?, now_ms());
        worker::console_log!("{}", attempts.failure_line(&key, &verdict));
        last = ending;
        if !changes.is_empty() || !attempts.finished() {
            let fresh = state_store.record(attempts.state(), changes, now_ms()).await;
            attempts.refresh(fresh);
        }
    }
}

/// Google's response on its way to the client (model ids rewritten where the route says so;
/// a stream cut once it has run `stream_limit`).
async fn served_response(
    mut response: Response,
    routed: &Route,
    stream: bool,
    stream_limit: Option<Duration>,
) -> Result<Response> {
    let rewritten = if routed.rewrites_model_ids() {
        let body = response.bytes().await?;
        Some(strip_model_prefixes(&body).unwrap_or(body))
    } else {
        None
    };
    reply::passed_on(response, rewritten, stream, stream_limit)
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Entropy for this request's choices.
fn seed() -> u64 {
    let part = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (part() << 32) ^ part() ^ now_ms()
}

pub use store::StateObject;
