//! What a request carries once it is authenticated ([`Context`]: the caller, its policy, the knobs,
//! the key lists, the counts), and the clock and entropy the core is handed.

use crate::config;
use crate::reply::Timing;
use gemini_pool_core::{AgentModels, Caller, CoolingSettings, ErrorReply, Policy, RequestSettings, SettingsReader};
use std::cell::OnceCell;
use std::time::Duration;
use worker::{js_sys, Env};

/// Everything a request needs once it is authenticated.
pub struct Context {
    pub(crate) env: Env,
    pub(crate) caller: Caller,
    /// The caller's policy (`CLIENT_POLICIES`; admins and clients without one: none).
    pub(crate) policy: Option<Policy>,
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

impl Context {
    /// The cooling knobs (read the first time they are asked for).
    pub(crate) fn cooling(&self) -> Result<&CoolingSettings, ErrorReply> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read =
            SettingsReader::new(|name: &str| config::knob(&self.env, name)).cooling().map_err(ErrorReply::config)?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// `max_stream_duration` (read only for an answer that streams).
    pub(crate) fn stream_limit(&self) -> Result<Option<Duration>, ErrorReply> {
        SettingsReader::new(|name: &str| config::knob(&self.env, name)).stream_limit().map_err(ErrorReply::config)
    }

    /// `agent_models` (read only by the coding agents' routes).
    pub(crate) fn agent_models(&self) -> Result<AgentModels, ErrorReply> {
        SettingsReader::new(|name: &str| config::knob(&self.env, name)).agent_models().map_err(ErrorReply::config)
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
