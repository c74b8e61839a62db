//! The request handler: the route first, then the request served — the token and its role, the
//! settings and keys, the endpoint ([`forward`] for Google's APIs, [`admin`] for the proxy's
//! own pages) — as a `Result` whose error is put in the route's dialect here, once. What must
//! wait until the client has its answer (usage counting) comes back as an [`After`]. All
//! decisions are the core's.

use crate::admin;
use crate::context::Context;
use crate::forward;
use crate::log::log;
use crate::reply::{self, After};
use crate::stores::{self, Secrets, Settings, ADMIN_TOKENS, AUTH_TOKENS};
use crate::timing::Timing;
use crate::warm;
use fastly::{Request, Response};
use gemini_pool_core::{
    caller, client_token, lookup_order, may_be_anthropic, may_be_native, query_param, route, Access, Caller, Endpoint,
    ErrorReply, Presented, Role, Route, SettingsReader,
};
use std::cell::RefCell;
use std::time::Instant;

pub fn handle(mut client: Request) -> (Response, After) {
    let started = Instant::now();
    let timing = Timing::default();
    timing.sandbox_request.set(warm::begin(started));
    // Each header read is a host call: OpenAI-only paths skip the Google-style credentials.
    let native_path = may_be_native(client.get_path());
    let presented = Presented {
        authorization: header_text(&client, "authorization"),
        goog_api_key: if native_path { header_text(&client, "x-goog-api-key") } else { None },
        query_key: if native_path { query_param(client.get_query_str(), "key") } else { None },
        api_key: if may_be_anthropic(client.get_path()) { header_text(&client, "x-api-key") } else { None },
    };
    let native_credentials = presented.goog_api_key.is_some() || presented.query_key.is_some();
    let (mut response, after) =
        match route(client.get_method_str(), client.get_path(), client.get_query_str(), native_credentials) {
            Err(e) => (reply::error(e.dialect, &e.reply), After::default()),
            Ok(routed) => {
                let routed = routed.for_anthropic(|| {
                    presented.api_key.is_some() || header_text(&client, "anthropic-version").is_some()
                });
                let served =
                    who(presented, &routed, &timing).and_then(|caller| serve(&mut client, &routed, caller, &timing));
                match served {
                    Ok(done) => done,
                    Err(refused) => {
                        if refused.is_service_fault() {
                            log(format_args!("config: {}", refused.message));
                        }
                        (reply::error(routed.dialect, &refused), After::default())
                    }
                }
            }
        };
    reply::finish(&mut response, &timing, started);
    (response, after)
}

/// The caller: none for the endpoints anyone may call (and an upload's bytes, whose session's
/// record says whose they are), else the token's holder.
fn who(presented: Presented<'_>, routed: &Route, timing: &Timing) -> Result<Caller, ErrorReply> {
    match routed.access() {
        Access::Anyone | Access::Upload => Ok(Caller { label: String::new(), admin: false }),
        access => authenticate(presented, routed, access, timing),
    }
}

fn serve(
    client: &mut Request,
    routed: &Route,
    caller: Caller,
    timing: &Timing,
) -> Result<(Response, After), ErrorReply> {
    match routed.endpoint {
        Endpoint::Preflight => return Ok((reply::preflight(client), After::default())),
        Endpoint::Console => return Ok((admin::console(), After::default())),
        _ => {}
    }
    let store = Settings::default();
    let lookup: crate::context::Lookup<'_> = Box::new(move |name: &str| store.get(name, timing));
    let mut knobs = SettingsReader::new(lookup);
    let settings = warm::settings(|| knobs.request()).map_err(ErrorReply::config)?;
    let secrets = Secrets::open(settings.key_secrets, timing)?;
    // Policies are the operator's rules for clients; an admin token has none.
    let policy = match caller.admin || caller.label.is_empty() {
        true => None,
        false => stores::policy(&caller.label, timing)?,
    };
    let cx = Context::new(caller, policy, settings, secrets, timing, RefCell::new(knobs));
    match routed.endpoint {
        Endpoint::Status => Ok((admin::status(&cx)?, After::default())),
        Endpoint::Usage => Ok((admin::usage(client, &cx)?, After::default())),
        Endpoint::KeyCheck => Ok((admin::key_check(client, &cx)?, After::default())),
        Endpoint::AnthropicModels => {
            Ok((reply::json(cx.agent_models()?.anthropic_list(cx.policy.as_ref())), After::default()))
        }
        _ => forward::forward(client, routed, &cx),
    }
}

/// The caller's token, looked up in `auth_tokens` and `admin_tokens` in the order the core
/// gives for `access` (the first store that holds it decides; admin wins where it matters).
fn authenticate(
    presented: Presented<'_>,
    routed: &Route,
    access: Access,
    timing: &Timing,
) -> Result<Caller, ErrorReply> {
    let token = client_token(presented, routed.dialect)?;
    let mut found = None;
    for role in lookup_order(access) {
        let store = match role {
            Role::Client => AUTH_TOKENS,
            Role::Admin => ADMIN_TOKENS,
        };
        if let Some(label) = stores::token_label(store, &token, timing)? {
            found = Some((role, label));
            break;
        }
    }
    caller(access, found)
}

/// A header's value if it is text (a non-UTF-8 value reads as absent, never as a panic).
pub fn header_text<'r>(client: &'r Request, name: &str) -> Option<&'r str> {
    client.get_header(name).and_then(|value| value.to_str().ok())
}
