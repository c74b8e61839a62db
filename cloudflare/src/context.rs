//! What a request carries once it is authenticated ([`Cx`]: the caller, its dialect, the
//! knobs, the key lists, the counts), the early answer ([`Rejection`]), and the clock and
//! entropy the core is handed.

use crate::config;
use crate::reply::Timing;
use gemini_pool_core::{
    Caller, CoolingSettings, Dialect, ErrorReply, KeyPool, Limiter, Policy, RequestSettings, SettingsReader,
};
use std::cell::OnceCell;
use std::time::Duration;
use worker::{js_sys, Env};

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
    /// The caller's policy (`CLIENT_POLICIES`; admins and clients without one: none).
    pub(crate) policy: Option<Policy>,
    pub(crate) dialect: Dialect,
    pub(crate) settings: RequestSettings,
    pub(crate) lists: Vec<std::rc::Rc<str>>,
    /// Subrequests one request may make (`SUBREQUEST_LIMIT`; 50 on the free plan).
    pub(crate) subrequests: usize,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    pub(crate) first_byte_timeout_ms: u64,
    pub(crate) timing: Timing,
    /// The cooling knobs, once read.
    pub(crate) cooling: OnceCell<CoolingSettings>,
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

    /// `rate_limiter`: Workers count `rpm` in the state object. Cloudflare's Rate Limiting
    /// binding takes its limit from the Worker's configuration, not per client, so
    /// `platform` is a configuration error here.
    pub(crate) fn limiter(&self) -> std::result::Result<Limiter, Rejection> {
        let limiter = SettingsReader::new(|name: &str| config::knob(&self.env, name))
            .limiter()
            .map_err(|e| Rejection::config(self.dialect, e))?;
        match limiter {
            Limiter::Store => Ok(limiter),
            Limiter::Platform => Err(Rejection::config(
                self.dialect,
                "rate_limiter = platform: Cloudflare's Rate Limiting binding has one limit per binding, \
                 not one per client; use store",
            )),
        }
    }

    /// Every part of the pool.
    pub(crate) fn whole_pool(&self) -> std::result::Result<KeyPool<'_>, Rejection> {
        let pool = KeyPool::new(self.lists.iter().map(|list| &**list));
        if pool.is_empty() {
            return Err(Rejection::config(self.dialect, config::empty_pool()));
        }
        Ok(pool)
    }
}

pub(crate) fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Entropy for this request's choices.
pub(crate) fn seed() -> u64 {
    let part = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (part() << 32) ^ part() ^ now_ms()
}
