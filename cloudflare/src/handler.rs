//! The request handler on Workers: route → token and its role → settings and keys → the
//! endpoint ([`crate::forward`] for Google's APIs, [`crate::admin`] for the proxy's own
//! pages). All decisions are the core's.

use crate::reply::Timing;
use crate::{admin, config, forward, reply};
use gemini_pool_core::auth::{caller, client_token, lookup_order, query_param, Caller, Presented, Role};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use gemini_pool_core::keys::KeyPool;
use gemini_pool_core::route::{may_be_native, route, Access, Endpoint};
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, SettingError, SettingsReader};
use std::cell::OnceCell;
use std::time::Duration;
use worker::{js_sys, Context, Env, Request, Response};

/// An early answer: an error in the client's dialect.
pub struct Rejection {
    pub(crate) dialect: Dialect,
    pub(crate) reply: ErrorReply,
}

impl Rejection {
    pub(crate) fn new(dialect: Dialect, reply: ErrorReply) -> Self {
        Rejection { dialect, reply }
    }

    pub(crate) fn config(dialect: Dialect, what: impl std::fmt::Display) -> Self {
        worker::console_error!("config: {what}");
        Rejection { dialect, reply: ErrorReply::config(what) }
    }
}

/// Everything a request needs once it is authenticated.
pub struct Cx {
    pub(crate) env: Env,
    pub(crate) caller: Caller,
    pub(crate) dialect: Dialect,
    pub(crate) settings: RequestSettings,
    pub(crate) lists: Vec<String>,
    /// Subrequests one request may make (`SUBREQUEST_LIMIT`; 50 on the free plan).
    pub(crate) subrequests: usize,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    pub(crate) first_byte_timeout_ms: u64,
    pub(crate) timing: Timing,
    /// The cooling knobs, once read.
    cooling: OnceCell<CoolingSettings>,
}

impl Cx {
    /// The cooling knobs (read the first time they are asked for).
    pub(crate) fn cooling(&self) -> std::result::Result<&CoolingSettings, Rejection> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read = SettingsReader::new(|name: &str| config::knob(&self.env, name))
            .cooling()
            .map_err(|e| Rejection::config(self.dialect, e))?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// `max_stream_duration` (read only for an answer that streams).
    pub(crate) fn stream_limit(&self) -> std::result::Result<Option<Duration>, Rejection> {
        SettingsReader::new(|name: &str| config::knob(&self.env, name))
            .stream_limit()
            .map_err(|e| Rejection::config(self.dialect, e))
    }

    /// Every part of the pool.
    pub(crate) fn whole_pool(&self) -> std::result::Result<KeyPool<'_>, Rejection> {
        let pool = KeyPool::new(self.lists.iter());
        if pool.is_empty() {
            return Err(Rejection::config(self.dialect, config::empty_pool()));
        }
        Ok(pool)
    }
}

pub(crate) async fn serve(
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
        _ => forward::forward(req, &routed, &mut cx, ctx).await,
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

pub(crate) fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Entropy for this request's choices.
pub(crate) fn seed() -> u64 {
    let part = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (part() << 32) ^ part() ^ now_ms()
}
