//! The request handler on Workers: route → token and its role → settings and keys → the
//! endpoint ([`crate::forward`] for Google's APIs, [`crate::admin`] for the proxy's own
//! pages). All decisions are the core's.

use crate::context::{Cx, Rejection};
use crate::incoming::Incoming;
use crate::reply::Timing;
use crate::{admin, config, forward, reply};
use gemini_pool_core::{
    caller, client_token, lookup_order, may_be_native, query_param, route, Access, Caller, Dialect, Endpoint,
    ErrorReply, Presented, Role,
};
use std::cell::OnceCell;
use worker::{Context, Env, Response};

pub(crate) async fn serve(
    req: &Incoming,
    env: Env,
    ctx: &Context,
    timing: &mut Timing,
) -> std::result::Result<Response, Rejection> {
    let (path, query) = (req.path(), req.query());
    let header = |name: &str| req.header(name);
    let native_path = may_be_native(path);
    let (authorization, goog) = (header("authorization"), if native_path { header("x-goog-api-key") } else { None });
    let presented = Presented {
        authorization: authorization.as_deref(),
        goog_api_key: goog.as_deref(),
        query_key: if native_path { query_param(query, "key") } else { None },
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let method = req.method();
    let routed =
        route(method.as_ref(), path, query, native_credentials).map_err(|e| Rejection::new(e.dialect, e.reply))?;
    let dialect = routed.dialect;
    let fail = |e: worker::Error| Rejection::new(dialect, ErrorReply::new(500, "worker_error", e.to_string()));
    match routed.endpoint {
        Endpoint::Preflight => return reply::preflight(header("access-control-request-headers")).map_err(fail),
        Endpoint::Console => return admin::console().map_err(fail),
        _ => {}
    }
    let caller = match routed.access() {
        // An upload session's bytes: the session's record says whose they are.
        Access::Upload => Caller { label: String::new(), admin: false },
        access => authenticate(&env, presented, dialect, access)?,
    };
    let settings = config::request_settings(&env).map_err(|e| Rejection::config(dialect, e))?;
    let mut lists = Vec::new();
    for name in config::KEY_VARS.iter().take(settings.key_secrets) {
        lists.push(
            config::shared_text(&env, name)
                .ok_or_else(|| Rejection::config(dialect, format!("secret `{name}` is missing")))?,
        );
    }
    let subrequests = config::subrequest_limit(&env).map_err(|e| Rejection::config(dialect, e))?;
    let first_byte_timeout_ms = config::first_byte_timeout_ms(&env).map_err(|e| Rejection::config(dialect, e))?;
    // Policies are the operator's rules for clients; an admin token has none.
    let policy = match caller.admin || caller.label.is_empty() {
        true => None,
        false => config::policy(&env, &caller.label).map_err(|e| Rejection::config(dialect, e))?,
    };
    let mut cx = Cx {
        env,
        caller,
        policy,
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
        Endpoint::Usage => admin::usage(req, &mut cx).await,
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
    let clients = config::shared_text(env, "VALID_AUTH_TOKENS");
    if clients.is_none() {
        return Err(Rejection::config(dialect, "variable `VALID_AUTH_TOKENS` is missing"));
    }
    let admins = config::shared_text(env, "ADMIN_TOKENS");
    let found = lookup_order(access).into_iter().find_map(|role| {
        let list = match role {
            Role::Client => clients.as_deref(),
            Role::Admin => admins.as_deref(),
        };
        config::token_label(list, &token).map(|label| (role, label))
    });
    caller(access, found).map_err(|reply| Rejection::new(dialect, reply))
}
