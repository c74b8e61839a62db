//! What a request carries once it is authenticated ([`Context`]: the caller, its dialect,
//! the knobs, the key lists, the counts), the early answer ([`Rejection`]), and the clock and
//! entropy the core is handed.

use crate::log::log;
use crate::ops::Ops;
use crate::stores::{ConfigError, Secrets};
use gemini_pool_core::{
    Caller, CoolingSettings, Dialect, ErrorReply, KeyPool, Limiter, Policy, RequestSettings, SettingsReader,
};
use std::cell::{OnceCell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Looks a knob up in `proxy_settings` by name.
pub type Lookup<'r> = Box<dyn FnMut(&str) -> Option<String> + 'r>;

/// Reads knobs from `proxy_settings`.
type Knobs<'r> = SettingsReader<Lookup<'r>>;

/// Everything a request needs once it is authenticated.
pub struct Context<'r> {
    pub caller: Caller,
    /// The caller's policy (`client_policies`; admins and clients without one: none).
    pub policy: Option<Policy>,
    pub dialect: Dialect,
    pub settings: RequestSettings,
    pub secrets: Secrets,
    pub ops: &'r Ops,
    knobs: RefCell<Knobs<'r>>,
    cooling: OnceCell<CoolingSettings>,
}

impl<'r> Context<'r> {
    pub fn new(
        caller: Caller,
        policy: Option<Policy>,
        dialect: Dialect,
        settings: RequestSettings,
        secrets: Secrets,
        ops: &'r Ops,
        knobs: RefCell<Knobs<'r>>,
    ) -> Self {
        Context { caller, policy, dialect, settings, secrets, ops, knobs, cooling: OnceCell::new() }
    }

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

    /// `max_upload_bytes` (read only by uploads).
    pub fn upload_limit(&self) -> Result<u64, Rejection> {
        self.knobs.borrow_mut().upload_limit().map_err(|e| Rejection::config(self.dialect, e.into()))
    }

    /// `rate_limiter` (read only for a client with `rpm`).
    pub fn limiter(&self) -> Result<Limiter, Rejection> {
        self.knobs.borrow_mut().limiter().map_err(|e| Rejection::config(self.dialect, e.into()))
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

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Fresh entropy for this request's choices.
pub fn seed() -> u64 {
    use rand::rngs::SysRng;
    use rand::TryRng;
    SysRng.try_next_u64().unwrap_or_else(|_| now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
