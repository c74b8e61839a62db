//! The request handler: route → token and its role → settings and keys → the endpoint
//! ([`forward`] for Google's APIs, [`admin`] for the proxy's own pages) → the headers every
//! answer gets. What must wait until the client has its answer (usage counting) comes back
//! as an [`After`]. All decisions are the core's.

use crate::admin;
use crate::context::{Context, Rejection};
use crate::forward;
use crate::ops::Ops;
use crate::reply::{self, After};
use crate::stores::{self, Secrets, Settings, ADMIN_TOKENS, AUTH_TOKENS};
use crate::warm;
use fastly::{Request, Response};
use gemini_pool_core::{
    caller, client_token, lookup_order, may_be_native, query_param, route, Access, Caller, Dialect, Endpoint,
    Presented, Role, SettingsReader,
};
use std::cell::RefCell;
use std::time::Instant;

pub fn handle(mut client: Request) -> (Response, After) {
    let started = Instant::now();
    let ops = Ops::default();
    ops.sandbox_request.set(warm::begin(started));
    let (mut response, after) = match serve(&mut client, &ops) {
        Ok(done) => done,
        Err(r) => (reply::error(r.dialect, &r.reply), After::default()),
    };
    reply::finish(&mut response, &ops, started);
    (response, after)
}

fn serve(client: &mut Request, ops: &Ops) -> Result<(Response, After), Rejection> {
    // Each header read is a host call: OpenAI-only paths skip the Google-style credentials.
    let native_path = may_be_native(client.get_path());
    let presented = Presented {
        authorization: header_text(client, "authorization"),
        goog_api_key: if native_path { header_text(client, "x-goog-api-key") } else { None },
        query_key: if native_path { query_param(client.get_query_str(), "key") } else { None },
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let route = route(client.get_method_str(), client.get_path(), client.get_query_str(), native_credentials)
        .map_err(|e| Rejection::new(e.dialect, e.reply))?;
    let dialect = route.dialect;
    match route.endpoint {
        Endpoint::Preflight => return Ok((reply::preflight(client), After::default())),
        Endpoint::Console => return Ok((admin::console(), After::default())),
        _ => {}
    }
    let caller = match route.access() {
        // An upload session's bytes: the session's record says whose they are.
        Access::Upload => Caller { label: String::new(), admin: false },
        access => authenticate(presented, dialect, access, ops)?,
    };
    let store = Settings::default();
    let lookup: crate::context::Lookup<'_> = Box::new(move |name: &str| store.get(name, ops));
    let mut knobs = SettingsReader::new(lookup);
    let settings = warm::settings(|| knobs.request()).map_err(|e| Rejection::config(dialect, e.into()))?;
    let secrets = Secrets::open(settings.key_secrets, ops).map_err(|e| Rejection::config(dialect, e))?;
    // Policies are the operator's rules for clients; an admin token has none.
    let policy = match caller.admin || caller.label.is_empty() {
        true => None,
        false => stores::policy(&caller.label, ops).map_err(|e| Rejection::config(dialect, e))?,
    };
    let knobs = RefCell::new(knobs);
    let context = Context::new(caller, policy, dialect, settings, secrets, ops, knobs);
    match route.endpoint {
        Endpoint::Status => Ok((admin::status(&context)?, After::default())),
        Endpoint::Usage => Ok((admin::usage(client, &context)?, After::default())),
        Endpoint::KeyCheck => Ok((admin::key_check(client, &context)?, After::default())),
        _ => forward::forward(client, &route, &context),
    }
}

/// The caller's token, looked up in `auth_tokens` and `admin_tokens` in the order the core
/// gives for `access` (the first store that holds it decides; admin wins where it matters).
fn authenticate(presented: Presented<'_>, dialect: Dialect, access: Access, ops: &Ops) -> Result<Caller, Rejection> {
    let token = client_token(presented, dialect).map_err(|reply| Rejection::new(dialect, reply))?;
    let mut found = None;
    for role in lookup_order(access) {
        let store = match role {
            Role::Client => AUTH_TOKENS,
            Role::Admin => ADMIN_TOKENS,
        };
        let label = stores::token_label(store, &token, ops).map_err(|e| Rejection::config(dialect, e))?;
        if let Some(label) = label {
            found = Some((role, label));
            break;
        }
    }
    caller(access, found).map_err(|reply| Rejection::new(dialect, reply))
}

/// A header's value if it is text (a non-UTF-8 value reads as absent, never as a panic).
pub fn header_text<'r>(client: &'r Request, name: &str) -> Option<&'r str> {
    client.get_header(name).and_then(|value| value.to_str().ok())
}
