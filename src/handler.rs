//! The request handler: route → token and its role → settings and keys → the endpoint
//! ([`forward`] for Google's APIs, [`admin`] for the proxy's own pages) → the headers every
//! answer gets. What must wait until the client has its answer (usage counting) comes back
//! as an [`After`]. All decisions are the core's.

use crate::admin;
use crate::forward;
use crate::log::log;
use crate::ops::Ops;
use crate::reply;
use crate::stores::{self, ConfigError, Secrets, Settings, StateStore, ADMIN_TOKENS, AUTH_TOKENS};
use fastly::{Request, Response};
use gemini_pool_core::auth::{client_token, query_param, Presented};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use gemini_pool_core::keys::KeyPool;
use gemini_pool_core::route::{may_be_native, route, Access, Endpoint};
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, SettingsReader};
use gemini_pool_core::usage;
use std::cell::{OnceCell, RefCell};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// An early answer: an error in the client's dialect.
pub struct Rejection {
    pub dialect: Dialect,
    pub reply: ErrorReply,
}

impl Rejection {
    pub fn new(dialect: Dialect, reply: ErrorReply) -> Self {
        Rejection { dialect, reply }
    }

    pub fn config(dialect: Dialect, e: ConfigError) -> Self {
        log(format_args!("config: {e}"));
        Rejection { dialect, reply: ErrorReply::config(e) }
    }
}

/// Who is calling: the label of their token, and whether it is an admin token.
pub struct Caller {
    pub label: String,
    pub admin: bool,
}

/// Work for after the response: one append of usage counts, through the KV store the
/// request already opened.
#[derive(Default)]
pub struct After {
    pub usage: Option<(StateStore, usage::Append)>,
}

impl After {
    /// Runs after `send_to_client`: the client already has its answer.
    pub fn run(self) {
        if let Some((kv, append)) = self.usage {
            kv.count_usage(&append);
        }
    }
}

/// Everything a request needs once it is authenticated.
pub struct Context<'r> {
    pub caller: Caller,
    pub dialect: Dialect,
    pub settings: RequestSettings,
    pub secrets: Secrets,
    pub ops: &'r Ops,
    read_cooling: RefCell<Box<dyn FnMut() -> Result<CoolingSettings, Rejection> + 'r>>,
    cooling: OnceCell<CoolingSettings>,
}

impl Context<'_> {
    /// The cooling knobs (read from the config store the first time they are asked for:
    /// only failures, and a request no key can serve, need them).
    pub fn cooling(&self) -> Result<&CoolingSettings, Rejection> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read = (self.read_cooling.borrow_mut())()?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// Every part of the pool (`/v1/status`, the key check; and a request whose first part
    /// holds no key).
    pub fn whole_pool(&self) -> Result<KeyPool<'_>, Rejection> {
        let mut pool = KeyPool::with_parts(self.secrets.count());
        for part in 0..self.secrets.count() {
            pool.add(part, self.secrets.get(part, self.ops).map_err(|e| Rejection::config(self.dialect, e))?);
        }
        if pool.is_empty() {
            return Err(Rejection::config(self.dialect, ConfigError::EmptyPool));
        }
        Ok(pool)
    }
}

pub fn handle(mut client: Request) -> (Response, After) {
    let started = Instant::now();
    let ops = Ops::default();
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
    let route = route(client.get_method_str(), client.get_path(), native_credentials)
        .map_err(|e| Rejection::new(e.dialect, e.reply))?;
    let dialect = route.dialect;
    match route.endpoint {
        Endpoint::Preflight => return Ok((reply::preflight(client), After::default())),
        Endpoint::Console => return Ok((admin::console(), After::default())),
        _ => {}
    }
    let caller = authenticate(presented, dialect, route.access(), ops)?;
    let store = Settings::open();
    let mut reader = SettingsReader::new(move |name: &str| store.get(name, ops));
    let settings = reader.request().map_err(|e| Rejection::config(dialect, e.into()))?;
    let secrets = Secrets::open(settings.key_secrets, ops).map_err(|e| Rejection::config(dialect, e))?;
    let read_cooling =
        RefCell::new(Box::new(move || reader.cooling().map_err(|e| Rejection::config(dialect, e.into())))
            as Box<dyn FnMut() -> Result<CoolingSettings, Rejection>>);
    let context = Context { caller, dialect, settings, secrets, ops, read_cooling, cooling: OnceCell::new() };
    match route.endpoint {
        Endpoint::Status => Ok((admin::status(&context)?, After::default())),
        Endpoint::KeyCheck => Ok((admin::key_check(client, &context)?, After::default())),
        _ => forward::forward(client, &route, &context),
    }
}

/// The caller's token, checked against `auth_tokens` and `admin_tokens` as `access` needs.
fn authenticate(presented: Presented<'_>, dialect: Dialect, access: Access, ops: &Ops) -> Result<Caller, Rejection> {
    let token = client_token(presented, dialect).map_err(|reply| Rejection::new(dialect, reply))?;
    let lookup = |store| stores::token_label(store, &token, ops).map_err(|e| Rejection::config(dialect, e));
    // A client token is the common case: one lookup. Admin tokens work wherever a client
    // token does.
    let order = match access {
        Access::Admin => [(ADMIN_TOKENS, true), (AUTH_TOKENS, false)],
        _ => [(AUTH_TOKENS, false), (ADMIN_TOKENS, true)],
    };
    for (store, admin) in order {
        if let Some(label) = lookup(store)? {
            if access == Access::Admin && !admin {
                return Err(Rejection::new(dialect, ErrorReply::admin_required()));
            }
            return Ok(Caller { label, admin });
        }
    }
    Err(Rejection::new(dialect, ErrorReply::invalid_token()))
}

/// A header's value if it is text (a non-UTF-8 value reads as absent, never as a panic).
pub fn header_text<'r>(client: &'r Request, name: &str) -> Option<&'r str> {
    client.get_header(name).and_then(|value| value.to_str().ok())
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Fresh entropy for this request's choices.
pub fn seed() -> u64 {
    use rand::rngs::SysRng;
    use rand::TryRng;
    SysRng.try_next_u64().unwrap_or_else(|_| now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
