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
use gemini_pool_core::auth::{caller, client_token, lookup_order, query_param, Caller, Presented, Role};
use gemini_pool_core::envelope::{Dialect, ErrorReply};
use gemini_pool_core::keys::KeyPool;
use gemini_pool_core::route::{may_be_native, route, Access, Endpoint};
use gemini_pool_core::settings::{CoolingSettings, RequestSettings, SettingsReader};
use gemini_pool_core::usage;
use std::cell::{OnceCell, RefCell};
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// How the answer goes out, and the work for after it: one append of usage counts, through
/// the KV store the request already opened.
#[derive(Default)]
pub struct After {
    pub usage: Option<(StateStore, usage::Append)>,
    /// A streamed answer is relayed by the instance and cut at this time
    /// (`max_stream_duration`); any other answer is handed to the host whole.
    pub stream_until: Option<Instant>,
}

/// Bytes a streamed answer is relayed in (each read returns what has arrived, up to this).
const RELAY_CHUNK: usize = 16 * 1024;

impl After {
    /// Sends `response` to the client (relaying a stream within its time limit), then counts
    /// usage: the client already has its answer.
    pub fn deliver(self, response: Response) {
        match self.stream_until {
            Some(until) => relay(response, until),
            None => response.send_to_client(),
        }
        if let Some((kv, append)) = self.usage {
            kv.count_usage(&append);
        }
    }
}

/// Streams Google's answer to the client chunk by chunk (never buffered), and abandons it —
/// the client sees a cut stream, not a complete one — once `until` has passed.
fn relay(mut response: Response, until: Instant) {
    let mut upstream = response.take_body().into_handle();
    let mut client = response.stream_to_client();
    let mut chunk = vec![0u8; RELAY_CHUNK];
    loop {
        if Instant::now() >= until {
            log(format_args!("stream: cut at max_stream_duration"));
            let _ = client.abandon();
            return;
        }
        let read = match upstream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                log(format_args!("stream: reading Google's answer failed: {e}"));
                let _ = client.abandon();
                return;
            }
        };
        if client.write_all(&chunk[..read]).and_then(|()| client.flush()).is_err() {
            return; // the client went away
        }
    }
    let _ = client.finish();
}

/// Looks a knob up in `proxy_settings` by name.
type Lookup<'r> = Box<dyn FnMut(&str) -> Option<String> + 'r>;

/// Reads knobs from `proxy_settings`.
type Knobs<'r> = SettingsReader<Lookup<'r>>;

/// Everything a request needs once it is authenticated.
pub struct Context<'r> {
    pub caller: Caller,
    pub dialect: Dialect,
    pub settings: RequestSettings,
    pub secrets: Secrets,
    pub ops: &'r Ops,
    knobs: RefCell<Knobs<'r>>,
    cooling: OnceCell<CoolingSettings>,
}

impl Context<'_> {
    /// The cooling knobs (read from the config store the first time they are asked for:
    /// only failures, and a request no key can serve, need them).
    pub fn cooling(&self) -> Result<&CoolingSettings, Rejection> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read = self.knobs.borrow_mut().cooling().map_err(|e| Rejection::config(self.dialect, e.into()))?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// `max_stream_duration` (read only for an answer that streams).
    pub fn stream_limit(&self) -> Result<Option<Duration>, Rejection> {
        self.knobs.borrow_mut().stream_limit().map_err(|e| Rejection::config(self.dialect, e.into()))
    }

    /// Every part of the pool (`/v1/status`).
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
    let lookup: Lookup<'_> = Box::new(move |name: &str| store.get(name, ops));
    let mut knobs = SettingsReader::new(lookup);
    let settings = knobs.request().map_err(|e| Rejection::config(dialect, e.into()))?;
    let secrets = Secrets::open(settings.key_secrets, ops).map_err(|e| Rejection::config(dialect, e))?;
    let knobs = RefCell::new(knobs);
    let context = Context { caller, dialect, settings, secrets, ops, knobs, cooling: OnceCell::new() };
    match route.endpoint {
        Endpoint::Status => Ok((admin::status(&context)?, After::default())),
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

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Fresh entropy for this request's choices.
pub fn seed() -> u64 {
    use rand::rngs::SysRng;
    use rand::TryRng;
    SysRng.try_next_u64().unwrap_or_else(|_| now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
