//! The cooling policy: for a classified answer, how long which key stays out, and whether
//! the request moves on to another key. Two profiles; each arm below is one row of the
//! README's tables.

use crate::classify::{DeadReason, Outcome, Verdict};
use crate::settings::{CoolingSettings, Profile};
use crate::state::Reason;
use std::time::Duration;

/// What a cooldown covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The key's quota bucket (its project, or the key alone) for the requested model.
    BucketModel,
    /// This key alone, for the requested model.
    KeyModel,
    /// This key, every model (seed profile).
    Key,
    /// This key is dead until a probation request shows otherwise.
    Dead,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cooldown {
    pub scope: Scope,
    /// Unix ms; `u64::MAX` = forever.
    pub until_ms: u64,
    pub reason: Reason,
    pub strikes: u32,
}

/// The policy's answer for one upstream attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub cooldown: Option<Cooldown>,
    /// Try another key (true), or give this answer to the client (false).
    pub retry: bool,
}

/// Facts about the moment of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub now_ms: u64,
    /// Bare 429s this key already had for this model recently.
    pub previous_strikes: u32,
    /// A random draw in `0..=jitter` (ms) for per-minute cooldowns.
    pub jitter_ms: u64,
}

pub fn decide(verdict: &Verdict, settings: &CoolingSettings, ctx: Context) -> Action {
    match settings.profile {
        Profile::Smart => smart(&verdict.outcome, settings, ctx),
        Profile::Seed => seed(verdict, settings, ctx),
    }
}

/// The `smart` profile: reads what Google said.
fn smart(outcome: &Outcome, s: &CoolingSettings, ctx: Context) -> Action {
    let now = ctx.now_ms;
    match outcome {
        Outcome::Success => deliver(),
        Outcome::KeyDead(why) => retry_with(Scope::Dead, after(now, s.dead_probation), dead_reason(*why)),
        Outcome::DailyQuota => retry_with(Scope::BucketModel, next_reset_ms(s, now), Reason::PerDayQuota),
        Outcome::NoFreeTier => retry_with(Scope::BucketModel, after(now, s.no_free_tier), Reason::NoFreeTier),
        Outcome::MinuteQuota { retry_delay_ms } => {
            let delay = retry_delay_ms.unwrap_or(s.default_retry_delay.as_millis() as u64);
            retry_with(Scope::BucketModel, now + delay + ctx.jitter_ms, Reason::PerMinuteQuota)
        }
        Outcome::Throttled => throttled(s, ctx),
        Outcome::ModelForbidden => {
            retry_with(Scope::BucketModel, after(now, s.model_forbidden), Reason::ModelForbidden)
        }
        Outcome::UpstreamTrouble if s.upstream_trouble.is_zero() => retry(),
        Outcome::UpstreamTrouble => {
            retry_with(Scope::KeyModel, after(now, s.upstream_trouble), Reason::UpstreamTrouble)
        }
        Outcome::ConnectFailure { .. } => {
            retry_with(Scope::KeyModel, after(now, s.connect_failure), Reason::ConnectFailure)
        }
        Outcome::LocationUnsupported | Outcome::NoKeySent | Outcome::ClientError => deliver(),
    }
}

/// The `seed` profile: the original Worker's table, by HTTP status only, whole key.
fn seed(verdict: &Verdict, s: &CoolingSettings, ctx: Context) -> Action {
    let now = ctx.now_ms;
    let d = &s.seed;
    let Some(status) = verdict.status else {
        return retry_with(Scope::Key, after(now, d.gateway), Reason::ConnectFailure);
    };
    let reason = Reason::Http(status);
    match status {
        401 | 403 => match d.auth {
            None => retry_with(Scope::Dead, u64::MAX, reason),
            Some(duration) => retry_with(Scope::Key, after(now, duration), reason),
        },
        429 => retry_with(Scope::Key, after(now, d.too_many_requests), reason),
        503 => retry_with(Scope::Key, after(now, d.unavailable), reason),
        502 | 504 => retry_with(Scope::Key, after(now, d.gateway), reason),
        500..=599 => retry_with(Scope::Key, after(now, d.other_5xx), reason),
        _ => deliver(),
    }
}

/// Bare 429: `base × 2^(n-1)`, capped, where n counts recent repeats.
fn throttled(s: &CoolingSettings, ctx: Context) -> Action {
    let strikes = ctx.previous_strikes.saturating_add(1);
    let factor = 1u64 << (strikes - 1).min(20);
    let backoff = (s.throttle_base.as_millis() as u64).saturating_mul(factor);
    let backoff = backoff.min(s.throttle_max.as_millis() as u64);
    let mut action = retry_with(Scope::KeyModel, ctx.now_ms + backoff, Reason::Throttled);
    if let Some(cooldown) = action.cooldown.as_mut() {
        cooldown.strikes = strikes;
    }
    action
}

fn next_reset_ms(s: &CoolingSettings, now_ms: u64) -> u64 {
    let next = s.reset_zone.next_midnight((now_ms / 1000) as i64);
    (next.max(0) as u64) * 1000
}

fn dead_reason(why: DeadReason) -> Reason {
    match why {
        DeadReason::Invalid => Reason::KeyInvalid,
        DeadReason::Leaked => Reason::KeyLeaked,
        DeadReason::Suspended => Reason::KeySuspended,
        DeadReason::Blocked => Reason::KeyBlocked,
        DeadReason::ServiceDisabled => Reason::ServiceDisabled,
        DeadReason::ProjectDenied => Reason::ProjectDenied,
        DeadReason::Unauthenticated => Reason::Unauthenticated,
    }
}

fn after(now_ms: u64, duration: Duration) -> u64 {
    now_ms.saturating_add(duration.as_millis() as u64)
}

fn deliver() -> Action {
    Action { cooldown: None, retry: false }
}

fn retry() -> Action {
    Action { cooldown: None, retry: true }
}

fn retry_with(scope: Scope, until_ms: u64, reason: Reason) -> Action {
    Action { cooldown: Some(Cooldown { scope, until_ms, reason, strikes: 0 }), retry: true }
}
