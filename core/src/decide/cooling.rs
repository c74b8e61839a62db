//! The cooling policy: for a classified answer, how long which key stays out, and whether
//! the request moves on to another key. Two profiles; each arm below is one row of the
//! README's tables.

use crate::google::classify::{Outcome, Verdict};
use crate::google::reason::Reason;
use crate::settings::{CoolingSettings, Profile, MAX_DURATION};
use crate::state::items::MAX_STRIKES;
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
    /// The key's quota bucket, every model (the project's billing).
    Bucket,
    /// This key is dead until a probation request shows otherwise.
    Dead,
}

/// A cooldown the policy orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Cooldown {
    /// What it covers.
    pub scope: Scope,
    /// Unix ms; `u64::MAX` = forever.
    pub until_ms: u64,
    /// Why.
    pub reason: Reason,
    /// Consecutive bare 429s, this one included (0 for other reasons).
    pub strikes: u32,
}

/// The policy's answer for one upstream attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What to cool, if anything.
    pub cooldown: Option<Cooldown>,
    /// Try another key (true), or give this answer to the client (false).
    pub retry: bool,
}

/// Facts about the moment of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Unix ms.
    pub now_ms: u64,
    /// Bare 429s this key already had for this model recently.
    pub previous_strikes: u32,
    /// A random draw in `0..=jitter` (ms) for per-minute cooldowns.
    pub jitter_ms: u64,
}

/// The policy's answer to a verdict, under the configured profile.
pub fn decide(verdict: &Verdict, settings: &CoolingSettings, ctx: Moment) -> Action {
    match settings.profile {
        Profile::Smart => smart(&verdict.outcome, settings, ctx),
        Profile::Seed => seed(verdict, settings, ctx),
    }
}

/// The `smart` profile: reads what Google said.
fn smart(outcome: &Outcome, s: &CoolingSettings, ctx: Moment) -> Action {
    let now = ctx.now_ms;
    match outcome {
        Outcome::Success => deliver(),
        Outcome::KeyDead(why) => retry_with(Scope::Dead, after(now, s.dead_probation), *why),
        Outcome::DailyQuota => retry_with(Scope::BucketModel, next_reset_ms(s, now), Reason::PerDayQuota),
        Outcome::NoFreeTier => retry_with(Scope::BucketModel, after(now, s.no_free_tier), Reason::NoFreeTier),
        Outcome::MinuteQuota { retry_delay_ms } => {
            let delay = retry_delay_ms.map_or(s.default_retry_delay, Duration::from_millis);
            let until = after(now, delay).saturating_add(ctx.jitter_ms).min(after(now, MAX_DURATION));
            retry_with(Scope::BucketModel, until, Reason::PerMinuteQuota)
        }
        Outcome::Throttled => throttled(s, ctx),
        Outcome::BillingDepleted => retry_with(Scope::Bucket, after(now, s.billing_depleted), Reason::BillingDepleted),
        Outcome::ModelForbidden => {
            retry_with(Scope::BucketModel, after(now, s.model_forbidden), Reason::ModelForbidden)
        }
        Outcome::ModelRetired => retry_with(Scope::BucketModel, after(now, s.model_retired), Reason::ModelRetired),
        Outcome::Forbidden => retry(),
        Outcome::EmptyAnswer if s.retry_empty_answers => retry(),
        Outcome::EmptyAnswer => deliver(),
        Outcome::UpstreamTrouble if s.upstream_trouble.is_zero() => retry(),
        Outcome::UpstreamTrouble => {
            retry_with(Scope::KeyModel, after(now, s.upstream_trouble), Reason::UpstreamTrouble)
        }
        Outcome::ConnectFailure { .. } => {
            retry_with(Scope::KeyModel, after(now, s.connect_failure), Reason::ConnectFailure)
        }
        Outcome::LocationUnsupported | Outcome::ProxyFault | Outcome::ClientError => deliver(),
    }
}

/// The `seed` profile: the original Worker's table, by HTTP status only, whole key — except
/// that a 403 naming no fault of the key ([`Outcome::Forbidden`]) is not taken as the key's
/// (the seed would have killed every key for one request naming another project's file).
fn seed(verdict: &Verdict, s: &CoolingSettings, ctx: Moment) -> Action {
    let now = ctx.now_ms;
    let d = &s.seed;
    if verdict.outcome == Outcome::Forbidden {
        return retry();
    }
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
fn throttled(s: &CoolingSettings, ctx: Moment) -> Action {
    let strikes = ctx.previous_strikes.saturating_add(1).min(MAX_STRIKES);
    let factor = 1u64 << (strikes - 1).min(20);
    let backoff = millis(s.throttle_base).saturating_mul(factor).min(millis(s.throttle_max));
    let mut action = retry_with(Scope::KeyModel, after(ctx.now_ms, Duration::from_millis(backoff)), Reason::Throttled);
    if let Some(cooldown) = action.cooldown.as_mut() {
        cooldown.strikes = strikes;
    }
    action
}

fn next_reset_ms(s: &CoolingSettings, now_ms: u64) -> u64 {
    let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX / 2);
    let next = u64::try_from(s.reset_zone.next_midnight(now_s)).unwrap_or(0);
    next.saturating_mul(1000).max(now_ms)
}

/// `now_ms` plus `duration`, the duration cut to [`MAX_DURATION`]: no hint or knob can make a
/// cooldown wrap around or end in the past.
fn after(now_ms: u64, duration: Duration) -> u64 {
    now_ms.saturating_add(millis(duration.min(MAX_DURATION)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
