//! What a request carries once it is authenticated ([`Context`]: the caller, its policy, the
//! knobs, the key lists, the counts), and the clock and entropy the core is handed.

use crate::stores::Secrets;
use crate::timing::Timing;
use gemini_pool_core::{AgentModels, Caller, CoolingSettings, ErrorReply, Policy, RequestSettings, SettingsReader};
use std::cell::{OnceCell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Looks a knob up in `proxy_settings` by name.
pub type Lookup<'r> = Box<dyn FnMut(&str) -> Option<String> + 'r>;

/// Reads knobs from `proxy_settings`.
type Knobs<'r> = SettingsReader<Lookup<'r>>;

/// Everything a request needs once it is authenticated.
pub struct Context<'r> {
    pub caller: Caller,
    /// The caller's policy (`client_policies`; admins and clients without one: none).
    pub policy: Option<Policy>,
    pub settings: RequestSettings,
    pub secrets: Secrets,
    pub timing: &'r Timing,
    knobs: RefCell<Knobs<'r>>,
    cooling: OnceCell<CoolingSettings>,
}

impl<'r> Context<'r> {
    pub fn new(
        caller: Caller,
        policy: Option<Policy>,
        settings: RequestSettings,
        secrets: Secrets,
        timing: &'r Timing,
        knobs: RefCell<Knobs<'r>>,
    ) -> Self {
        Context { caller, policy, settings, secrets, timing, knobs, cooling: OnceCell::new() }
    }

    /// The cooling knobs (read from the config store the first time they are asked for:
    /// only failures, and a request no key can serve, need them).
    pub fn cooling(&self) -> Result<&CoolingSettings, ErrorReply> {
        if let Some(cooling) = self.cooling.get() {
            return Ok(cooling);
        }
        let read = self.knobs.borrow_mut().cooling().map_err(ErrorReply::config)?;
        Ok(self.cooling.get_or_init(|| read))
    }

    /// `max_stream_duration` (read only for an answer that streams).
    pub fn stream_limit(&self) -> Result<Option<Duration>, ErrorReply> {
        self.knobs.borrow_mut().stream_limit().map_err(ErrorReply::config)
    }

    /// `agent_models` (read only by the coding agents' routes).
    pub fn agent_models(&self) -> Result<AgentModels, ErrorReply> {
        self.knobs.borrow_mut().agent_models().map_err(ErrorReply::config)
    }

    /// `max_upload_bytes` (read only by uploads).
    pub fn upload_limit(&self) -> Result<u64, ErrorReply> {
        self.knobs.borrow_mut().upload_limit().map_err(ErrorReply::config)
    }

    /// One knob's text, if set (a machine parses it).
    pub fn knob(&self, name: &str) -> Option<String> {
        self.knobs.borrow_mut().raw(name)
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
