//! The classifier: what Google's answer means for the key that got it.
//!
//! A pure function from (HTTP status, body) — or a failed connection — to a [`Verdict`].
//! It states *what happened*; the cooling policy ([`crate::cooling`]) decides what to do.
//! The rules follow `shared/docs/gemini-upstream.md` §3.

use crate::google_error::GoogleError;
use std::fmt;

/// Why a key is considered dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// 400 `API_KEY_INVALID`: "API key not valid" / "API key expired".
    Invalid,
    /// 403 "reported as leaked".
    Leaked,
    /// 403 `CONSUMER_SUSPENDED`.
    Suspended,
    /// 403 `API_KEY_SERVICE_BLOCKED` (and key restrictions that block this API).
    Blocked,
    /// 403 `SERVICE_DISABLED`: the Generative Language API is off in the key's project.
    ServiceDisabled,
    /// 403 "project has been denied access".
    ProjectDenied,
    /// 401 `UNAUTHENTICATED`.
    Unauthenticated,
}

/// What Google's answer says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// The key itself is unusable.
    KeyDead(DeadReason),
    /// A `PerDay` quota of (project, model) is used up.
    DailyQuota,
    /// `limit: 0` or "doesn't have a free quota tier": this tier can never use this model.
    NoFreeTier,
    /// A per-minute quota (or any answer carrying `RetryInfo`): wait `retry_delay_ms`.
    MinuteQuota {
        retry_delay_ms: Option<u64>,
    },
    /// 429 with no details: capacity or shared quota, not this key's fault.
    Throttled,
    /// 403 "The caller does not have permission" on one model.
    ModelForbidden,
    /// 500, 502, 503, 504, 408: Google's trouble, not the key's.
    UpstreamTrouble,
    /// 400 `FAILED_PRECONDITION` "User location is not supported": the edge POP's region.
    LocationUnsupported,
    /// 403 "Method doesn't allow unregistered callers": the proxy sent no key (a bug).
    NoKeySent,
    /// The client's request is wrong (other 400s, 404, 413, …).
    ClientError,
    /// The connection to Google failed or timed out before an answer.
    ConnectFailure {
        timeout: bool,
    },
}

/// The classifier's answer: the outcome, the HTTP status (if any) and Google's own words.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// The first line of Google's message (may quote a key: scrub before showing).
    pub detail: String,
}

impl Verdict {
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Success
    }

    pub fn connect_failure(timeout: bool, detail: impl Into<String>) -> Self {
        Verdict { status: None, outcome: Outcome::ConnectFailure { timeout }, detail: detail.into() }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => write!(f, "success"),
            Outcome::KeyDead(reason) => write!(f, "dead key ({reason})"),
            Outcome::DailyQuota => write!(f, "per-day quota exhausted"),
            Outcome::NoFreeTier => write!(f, "no free quota tier for this model (limit 0)"),
            Outcome::MinuteQuota { retry_delay_ms: Some(ms) } => {
                write!(f, "per-minute quota exceeded, retry in {:.1}s", *ms as f64 / 1000.0)
            }
            Outcome::MinuteQuota { retry_delay_ms: None } => write!(f, "per-minute quota exceeded"),
            Outcome::Throttled => write!(f, "rate limited without details"),
            Outcome::ModelForbidden => write!(f, "key may not use this model"),
            Outcome::UpstreamTrouble => write!(f, "upstream trouble"),
            Outcome::LocationUnsupported => write!(f, "edge location not supported by Gemini"),
            Outcome::NoKeySent => write!(f, "no API key reached Google (proxy bug)"),
            Outcome::ClientError => write!(f, "client error"),
            Outcome::ConnectFailure { timeout: true } => write!(f, "upstream timeout"),
            Outcome::ConnectFailure { timeout: false } => write!(f, "connection failure"),
        }
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeadReason::Invalid => "API key not valid or expired",
            DeadReason::Leaked => "API key reported as leaked",
            DeadReason::Suspended => "consumer suspended",
            DeadReason::Blocked => "API key blocked for this service",
            DeadReason::ServiceDisabled => "Generative Language API disabled in the project",
            DeadReason::ProjectDenied => "project denied access",
            DeadReason::Unauthenticated => "unauthenticated",
        })
    }
}

/// Classifies an HTTP answer from Google (either endpoint).
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let error = GoogleError::parse(body).unwrap_or_default();
    let outcome = match status {
        200..=299 => Outcome::Success,
        429 => classify_429(&error),
        400 => classify_400(&error),
        401 => Outcome::KeyDead(DeadReason::Unauthenticated),
        403 => classify_403(&error),
        408 | 500..=599 => Outcome::UpstreamTrouble,
        _ => Outcome::ClientError,
    };
    Verdict { status: Some(status), outcome, detail: error.headline().to_string() }
}

fn classify_429(error: &GoogleError) -> Outcome {
    let violations = error.violations();
    let no_free_tier = error.message.contains("free quota tier")
        || error.message_limits().contains(&0)
        || violations.iter().any(|v| v.quota_value == Some(0));
    if no_free_tier {
        return Outcome::NoFreeTier;
    }
    if violations.iter().any(|v| v.quota_id.contains("PerDay")) {
        return Outcome::DailyQuota;
    }
    let retry_delay_ms = error.retry_delay_ms();
    let per_minute = violations.iter().any(|v| v.quota_id.contains("PerMinute"));
    if per_minute || retry_delay_ms.is_some() {
        return Outcome::MinuteQuota { retry_delay_ms };
    }
    Outcome::Throttled
}

fn classify_400(error: &GoogleError) -> Outcome {
    let message = error.message.as_str();
    if error.reason() == Some("API_KEY_INVALID")
        || message.contains("API key not valid")
        || message.contains("API key expired")
    {
        return Outcome::KeyDead(DeadReason::Invalid);
    }
    if error.status == "FAILED_PRECONDITION" && message.contains("location is not supported") {
        return Outcome::LocationUnsupported;
    }
    Outcome::ClientError
}

fn classify_403(error: &GoogleError) -> Outcome {
    let message = error.message.as_str();
    let reason = error.reason().unwrap_or_default();
    if message.contains("unregistered callers") {
        return Outcome::NoKeySent;
    }
    let dead = if message.contains("reported as leaked") {
        Some(DeadReason::Leaked)
    } else if reason == "CONSUMER_SUSPENDED" || message.contains("has been suspended") {
        Some(DeadReason::Suspended)
    } else if reason == "API_KEY_SERVICE_BLOCKED" || reason.starts_with("API_KEY_") {
        Some(DeadReason::Blocked)
    } else if reason == "SERVICE_DISABLED" {
        Some(DeadReason::ServiceDisabled)
    } else if message.contains("denied access") {
        Some(DeadReason::ProjectDenied)
    } else {
        None
    };
    // "The caller does not have permission" and unrecognised 403s: scoped to the model, so a
    // key that still serves other models is not thrown away.
    dead.map_or(Outcome::ModelForbidden, Outcome::KeyDead)
}
