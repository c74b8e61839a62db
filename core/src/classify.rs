//! The classifier: what Google's answer means for the key that got it.
//!
//! A pure function from (HTTP status, body) — or a failed connection — to a [`Verdict`].
//! It states *what happened*; the cooling policy ([`crate::cooling`]) decides what to do.
//! The facts behind each rule, with their public sources: `docs/google-errors.md`.

use crate::google_error::GoogleError;
use crate::reason::Reason;
use std::fmt;

/// What Google's answer says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// The key itself is unusable (the reason is one of the dead-key [`Reason`]s).
    KeyDead(Reason),
    /// A `PerDay` quota of (project, model) is used up.
    DailyQuota,
    /// `limit: 0` or "doesn't have a free quota tier": this tier can never use this model.
    NoFreeTier,
    /// A per-minute quota (or any answer carrying `RetryInfo`): wait `retry_delay_ms`.
    MinuteQuota {
        /// Google's delay, if it gave one.
        retry_delay_ms: Option<u64>,
    },
    /// 429 with no details: capacity or shared quota, not this key's fault.
    Throttled,
    /// 429 "Your prepayment credits are depleted": the project's billing, every model, until
    /// someone pays.
    BillingDepleted,
    /// 403 "The caller does not have permission" on one model.
    ModelForbidden,
    /// 500, 502, 503, 504, 408: Google's trouble, not the key's.
    UpstreamTrouble,
    /// 400 `FAILED_PRECONDITION` "User location is not supported": the edge POP's region.
    LocationUnsupported,
    /// 403 "Method doesn't allow unregistered callers" (no key sent) or 400 "Multiple
    /// authentication credentials received": the proxy's own fault, never the key's.
    ProxyFault,
    /// The client's request is wrong (other 400s, 404, 413, …).
    ClientError,
    /// The connection to Google failed or timed out before an answer.
    ConnectFailure {
        /// It was a timeout (not a refused or broken connection).
        timeout: bool,
    },
}

/// The classifier's answer: the outcome, the HTTP status (if any) and Google's own words.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Google's HTTP status (`None`: no answer).
    pub status: Option<u16>,
    /// What it means.
    pub outcome: Outcome,
    /// The first line of Google's message (may quote a key: scrub before showing).
    pub detail: String,
}

impl Verdict {
    /// Was the answer a success?
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Success
    }

    /// The verdict on an attempt that got no answer.
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
            Outcome::BillingDepleted => write!(f, "prepayment credits depleted"),
            Outcome::ModelForbidden => write!(f, "key may not use this model"),
            Outcome::UpstreamTrouble => write!(f, "upstream trouble"),
            Outcome::LocationUnsupported => write!(f, "edge location not supported by Gemini"),
            Outcome::ProxyFault => write!(f, "the proxy sent the wrong credentials (a bug)"),
            Outcome::ClientError => write!(f, "client error"),
            Outcome::ConnectFailure { timeout: true } => write!(f, "upstream timeout"),
            Outcome::ConnectFailure { timeout: false } => write!(f, "connection failure"),
        }
    }
}

/// Classifies an HTTP answer from Google (either endpoint).
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let error = GoogleError::parse(body).unwrap_or_default();
    let outcome = match status {
        200..=299 => Outcome::Success,
        429 => classify_429(&error),
        400 => classify_400(&error),
        401 => classify_401(&error),
        403 => classify_403(&error),
        408 | 500..=599 => Outcome::UpstreamTrouble,
        // A redirect or an informational answer is nothing Google's API sends: trouble.
        100..=199 | 300..=399 => Outcome::UpstreamTrouble,
        _ => Outcome::ClientError,
    };
    Verdict { status: Some(status), outcome, detail: error.headline().to_string() }
}

fn classify_429(error: &GoogleError) -> Outcome {
    if error.message.contains("prepayment credits are depleted") {
        return Outcome::BillingDepleted;
    }
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
        return Outcome::KeyDead(Reason::KeyInvalid);
    }
    if error.status == "FAILED_PRECONDITION" && message.contains("location is not supported") {
        return Outcome::LocationUnsupported;
    }
    if message.contains("Multiple authentication credentials") {
        return Outcome::ProxyFault;
    }
    Outcome::ClientError
}

/// 401: the key's type or the key itself is refused (`ACCESS_TOKEN_TYPE_UNSUPPORTED`,
/// `CREDENTIALS_MISSING` "API keys are not supported by this API", plain `UNAUTHENTICATED`).
fn classify_401(error: &GoogleError) -> Outcome {
    let not_supported =
        error.reason() == Some("CREDENTIALS_MISSING") || error.message.contains("API keys are not supported");
    Outcome::KeyDead(if not_supported { Reason::KeyNotSupported } else { Reason::Unauthenticated })
}

fn classify_403(error: &GoogleError) -> Outcome {
    let message = error.message.as_str();
    let reason = error.reason().unwrap_or_default();
    if message.contains("unregistered callers") {
        return Outcome::ProxyFault;
    }
    let dead = if message.contains("reported as leaked") {
        Some(Reason::KeyLeaked)
    } else if reason == "CONSUMER_SUSPENDED" || message.contains("has been suspended") {
        Some(Reason::KeySuspended)
    } else if reason == "API_KEY_SERVICE_BLOCKED" || reason.starts_with("API_KEY_") {
        Some(Reason::KeyBlocked)
    } else if reason == "SERVICE_DISABLED" {
        Some(Reason::ServiceDisabled)
    } else if message.contains("denied access") {
        Some(Reason::ProjectDenied)
    } else {
        None
    };
    // "The caller does not have permission" and unrecognised 403s: scoped to the model, so a
    // key that still serves other models is not thrown away.
    dead.map_or(Outcome::ModelForbidden, Outcome::KeyDead)
}
