//! The request handler on Workers, as on Fastly: the route first, then the request served —
//! the token and its role, the settings and keys, the endpoint ([`crate::forward`] for Google's
//! APIs, [`crate::admin`] for the proxy's own pages) — as a `Result` whose error is put in the
//! route's dialect here, once. All decisions are the core's.

use crate::context::Context;
use crate::incoming::Incoming;
use crate::reply::Timing;
use crate::{admin, config, forward, reply};
use gemini_pool_core::{
    caller, client_token, lookup_order, may_be_anthropic, may_be_native, query_param, route, Access, Caller, Dialect,
    Endpoint, ErrorReply, Presented, Role, Route,
};
use std::cell::OnceCell;
use worker::{Env, Response};

pub(crate) async fn serve(
    req: &Incoming,
    env: Env,
    ctx: &worker::Context,
    timing: &mut Timing,
) -> worker::Result<Response> {
    let (path, query) = (req.path(), req.query());
    let header = |name: &str| req.header(name);
    let native_path = may_be_native(path);
    let (authorization, goog) = (header("authorization"), if native_path { header("x-goog-api-key") } else { None });
    let api_key = if may_be_anthropic(path) { header("x-api-key") } else { None };
    let presented = Presented {
        authorization: authorization.as_deref(),
        goog_api_key: goog.as_deref(),
        query_key: if native_path { query_param(query, "key") } else { None },
        api_key: api_key.as_deref(),
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let routed = match route(req.method().as_ref(), path, query, native_credentials) {
        Ok(routed) => routed.for_anthropic(|| presented.api_key.is_some() || header("anthropic-version").is_some()),
        Err(e) => return reply::error(e.dialect, &e.reply),
    };
    let served = match who(&env, presented, &routed) {
        Ok(caller) => endpoint(req, &routed, env, caller, ctx, timing).await,
        Err(refused) => Err(refused),
    };
    match served {
        Ok(response) => Ok(response),
        Err(refused) => {
            if refused.is_service_fault() {
                worker::console_error!("config: {}", refused.message);
            }
            reply::error(routed.dialect, &refused)
        }
    }
}

/// The caller: none for the endpoints anyone may call (and an upload's bytes, whose session's
/// record says whose they are), else the token's holder.
fn who(env: &Env, presented: Presented<'_>, routed: &Route) -> Result<Caller, ErrorReply> {
    match routed.access() {
        Access::Anyone | Access::Upload => Ok(Caller { label: String::new(), admin: false }),
        access => authenticate(env, presented, routed.dialect, access),
    }
}

/// The endpoint, once the caller is known: its settings and keys, then the work.
async fn endpoint(
    req: &Incoming,
    routed: &Route,
    env: Env,
    caller: Caller,
    ctx: &worker::Context,
    timing: &mut Timing,
) -> Result<Response, ErrorReply> {
    match routed.endpoint {
        Endpoint::Preflight => {
            return reply::preflight(req.header("access-control-request-headers")).map_err(ErrorReply::runtime)
        }
        Endpoint::Console => return admin::console().map_err(ErrorReply::runtime),
        _ => {}
    }
    let settings = config::request_settings(&env).map_err(ErrorReply::config)?;
    let mut lists = Vec::new();
    for name in config::KEY_VARS.iter().take(settings.key_secrets) {
        lists.push(
            config::shared_text(&env, name).ok_or_else(|| ErrorReply::config(format!("secret `{name}` is missing")))?,
        );
    }
    let subrequests = config::subrequest_limit(&env).map_err(ErrorReply::config)?;
    let first_byte_timeout_ms = config::first_byte_timeout_ms(&env).map_err(ErrorReply::config)?;
    // Policies are the operator's rules for clients; an admin token has none.
    let policy = match caller.admin || caller.label.is_empty() {
        true => None,
        false => config::policy(&env, &caller.label).map_err(ErrorReply::config)?,
    };
    let mut cx = Context {
        env,
        caller,
        policy,
        settings,
        lists,
        subrequests,
        first_byte_timeout_ms,
        timing: Timing::default(),
        cooling: OnceCell::new(),
    };
    let answer = match routed.endpoint {
        Endpoint::Status => admin::status(&mut cx).await,
        Endpoint::Usage => admin::usage(req, &mut cx).await,
        Endpoint::KeyCheck => admin::key_check(req, &mut cx).await,
        Endpoint::AnthropicModels => cx
            .agent_models()
            .and_then(|models| reply::json(models.anthropic_list(cx.policy.as_ref())).map_err(ErrorReply::runtime)),
        _ => forward::forward(req, routed, &mut cx, ctx).await,
    };
    *timing = std::mem::take(&mut cx.timing);
    answer
}

/// The caller's token, looked up in `VALID_AUTH_TOKENS` and `ADMIN_TOKENS` in the order the
/// core gives for `access` (the first list that holds it decides; admin wins where it matters).
fn authenticate(env: &Env, presented: Presented<'_>, dialect: Dialect, access: Access) -> Result<Caller, ErrorReply> {
    let token = client_token(presented, dialect)?;
    let clients = config::shared_text(env, "VALID_AUTH_TOKENS");
    if clients.is_none() {
        return Err(ErrorReply::config("variable `VALID_AUTH_TOKENS` is missing"));
    }
    let admins = config::shared_text(env, "ADMIN_TOKENS");
    let found = lookup_order(access).into_iter().find_map(|role| {
        let list = match role {
            Role::Client => clients.as_deref(),
            Role::Admin => admins.as_deref(),
        };
        config::token_label(list, &token).map(|label| (role, label))
    });
    caller(access, found)
}
