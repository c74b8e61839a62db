//! The classifier: what Google's answer means for the key that got it.
//!
//! A pure function from (HTTP status, body) — or a failed connection — to a [`Verdict`].
//! It states *what happened*; the cooling policy ([`crate::decide::cooling`]) decides what to do.
//! The facts behind each rule, with their public sources: `docs/google-errors.md`.
//!
//! **Only what a request cannot write blames a key.** Google's messages quote the request
//! (unknown field names, enum values, model names), so a verdict against a key comes from
//! the HTTP status, `status`, `ErrorInfo.reason` and `QuotaFailure` — fields Google fills in
//! itself — or from a message that *is* one of Google's fixed sentences ([`said`]: the whole
//! message, or anchored at its start), never from a substring of text that may quote the
//! request. A 403 that names no fault of the key is [`Outcome::Forbidden`]: most likely the
//! request's own (a file or cached content another project holds).

use crate::google::google_error::GoogleError;
use crate::google::reason::Reason;
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
    /// 403 "The caller does not have permission" (Google's whole message): this key's project
    /// may not use this model — or the request names something the project cannot see. A
    /// request holds its cooldown until another project serves it ([`crate::decide::attempts`]).
    ModelForbidden,
    /// 404 "This model models/X is no longer available to new users": Google retires a model
    /// per project (by the project's age), so the key's project cannot use it while older
    /// projects may. Cools (project, model); the request moves on to another project.
    ModelRetired,
    /// Any other 403 (e.g. "You do not have permission to access the File … or it may not
    /// exist", "CachedContent not found (or permission denied)"): no fault of the key that
    /// Google names. No cooldown; the request tries one other project, and delivers the
    /// answer if that one refuses too.
    Forbidden,
    /// A 200 with nothing for the client (no candidates or parts, only thoughts): retried on
    /// another key (`retry_empty_answers`), blaming none.
    EmptyAnswer,
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

    /// The verdict on a 200 with nothing in it.
    pub fn empty() -> Self {
        Verdict { status: Some(200), outcome: Outcome::EmptyAnswer, detail: "a 200 with no content".into() }
    }

    /// The verdict on an attempt that got no answer.
    pub fn connect_failure(timeout: bool, detail: impl Into<String>) -> Self {
        Verdict { status: None, outcome: Outcome::ConnectFailure { timeout }, detail: detail.into() }
    }
}

impl Outcome {
    /// Answers in which Google itself names the key or its quota bucket as the fault — by the
    /// status, `ErrorInfo.reason`, `QuotaFailure` or one of its fixed sentences: they take that
    /// key or bucket out for everyone, and the request moves on without spending its budget.
    pub fn names_the_fault(&self) -> bool {
        matches!(
            self,
            Outcome::KeyDead(_)
                | Outcome::DailyQuota
                | Outcome::NoFreeTier
                | Outcome::MinuteQuota { .. }
                | Outcome::BillingDepleted
                | Outcome::ModelRetired
        )
    }

    /// Answers that may be the request's own fault rather than the key's (a 403 about what
    /// the request names): the request tries one key of another project before believing them.
    pub fn may_be_the_requests(&self) -> bool {
        matches!(self, Outcome::ModelForbidden | Outcome::Forbidden)
    }

    /// Answers Google gives when the *request* is wrong (or names what the key's project
    /// cannot see): the model it names is not one Google accepted.
    pub fn refuses_the_request(&self) -> bool {
        matches!(self, Outcome::ClientError | Outcome::Forbidden | Outcome::ModelForbidden)
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
            Outcome::ModelRetired => write!(f, "model retired for this key's project"),
            Outcome::Forbidden => write!(f, "permission denied (no fault of the key named)"),
            Outcome::EmptyAnswer => write!(f, "empty answer"),
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
        402 => classify_402(&error),
        403 => classify_403(&error),
        404 => classify_404(&error),
        408 | 500..=599 => Outcome::UpstreamTrouble,
        // A redirect or an informational answer is nothing Google's API sends: trouble.
        100..=199 | 300..=399 => Outcome::UpstreamTrouble,
        _ => Outcome::ClientError,
    };
    Verdict { status: Some(status), outcome, detail: error.headline().to_string() }
}

/// Is `message` Google's fixed `sentence`? The whole message (its final period optional), or
/// with [`Anchor::Start`] the message's beginning: either way never text in the middle of a
/// message, where Google quotes the request.
pub(crate) fn said(message: &str, sentence: &str, anchor: Anchor) -> bool {
    let message = message.trim();
    match anchor {
        Anchor::Whole => message.trim_end_matches('.') == sentence.trim_end_matches('.'),
        Anchor::Start => message.starts_with(sentence),
    }
}

/// How a fixed sentence must stand in a message ([`said`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The message is the sentence.
    Whole,
    /// The message begins with the sentence (Google appends details of its own).
    Start,
}

/// A 429 blames the key's quota bucket by its status alone: quota enforcement answers it, and
/// no text of the request can make Google send one. The message only tells which quota.
///
/// The Interactions API names the quota in its `code` instead: `quota_exceeded` (the daily
/// quota) or `rate_limit_exceeded` (per minute or second, its delay in the message).
fn classify_429(error: &GoogleError) -> Outcome {
    if said(&error.message, "Your prepayment credits are depleted", Anchor::Start) {
        return Outcome::BillingDepleted;
    }
    match error.code_name.as_str() {
        "quota_exceeded" => return Outcome::DailyQuota,
        "rate_limit_exceeded" => return Outcome::MinuteQuota { retry_delay_ms: error.retry_delay_ms() },
        _ => {}
    }
    let violations = error.violations();
    let no_free_tier = error.message.contains("doesn't have a free quota tier")
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

/// Google's sentences for a dead key on a 400 (the same answer carries
/// `ErrorInfo.reason = API_KEY_INVALID`).
const KEY_INVALID: [&str; 2] =
    ["API key not valid. Please pass a valid API key.", "API key expired. Please renew the API key."];

fn classify_400(error: &GoogleError) -> Outcome {
    let message = error.message.as_str();
    if error.reason() == Some("API_KEY_INVALID") || KEY_INVALID.iter().any(|s| said(message, s, Anchor::Whole)) {
        return Outcome::KeyDead(Reason::KeyInvalid);
    }
    if error.status == "FAILED_PRECONDITION" && said(message, "User location is not supported", Anchor::Start) {
        return Outcome::LocationUnsupported;
    }
    if said(message, "Multiple authentication credentials received", Anchor::Start) {
        return Outcome::ProxyFault;
    }
    Outcome::ClientError
}

/// 401: the key's type or the key itself is refused (`ACCESS_TOKEN_TYPE_UNSUPPORTED`,
/// `CREDENTIALS_MISSING` "API keys are not supported by this API", plain `UNAUTHENTICATED`).
/// The status alone says so: the proxy sends Google nothing of the client's credentials.
fn classify_401(error: &GoogleError) -> Outcome {
    let not_supported = error.reason() == Some("CREDENTIALS_MISSING")
        || said(&error.message, "API keys are not supported by this API", Anchor::Start);
    Outcome::KeyDead(if not_supported { Reason::KeyNotSupported } else { Reason::Unauthenticated })
}

/// 402 `payment_required` (Interactions API): the project's prepaid credit is used up — the
/// twin of `generateContent`'s billing 429. Any other 402 is the request's.
fn classify_402(error: &GoogleError) -> Outcome {
    match error.code_name.as_str() {
        "payment_required" => Outcome::BillingDepleted,
        _ => Outcome::ClientError,
    }
}

/// 404: the request names something that does not exist — except Google's sentence for a
/// model retired for the key's project ("This model models/X is no longer available to new
/// users."). The model name between the fixed words is one the request wrote, but a name with
/// a space is no model (refused by the route), so no request can make Google say it falsely.
fn classify_404(error: &GoogleError) -> Outcome {
    let message = error.message.trim();
    let retired = message
        .strip_prefix("This model models/")
        .and_then(|rest| rest.split_once(' '))
        .is_some_and(|(_, rest)| said(rest, "is no longer available to new users", Anchor::Start));
    if retired {
        Outcome::ModelRetired
    } else {
        Outcome::ClientError
    }
}

fn classify_403(error: &GoogleError) -> Outcome {
    let message = error.message.as_str();
    if said(message, "Method doesn't allow unregistered callers", Anchor::Start) {
        return Outcome::ProxyFault;
    }
    if let Some(dead) = dead_key_403(error.reason().unwrap_or_default(), message) {
        return Outcome::KeyDead(dead);
    }
    if said(message, "The caller does not have permission", Anchor::Whole) {
        return Outcome::ModelForbidden;
    }
    Outcome::Forbidden
}

/// A 403 that says the key or its project is unusable: by `ErrorInfo.reason`, or by one of
/// Google's fixed sentences.
fn dead_key_403(reason: &str, message: &str) -> Option<Reason> {
    let suspended = said(message, "Permission denied: Consumer '", Anchor::Start)
        && message.trim().ends_with("' has been suspended.");
    if said(message, "Your API key was reported as leaked. Please use another API key.", Anchor::Whole) {
        Some(Reason::KeyLeaked)
    } else if reason == "CONSUMER_SUSPENDED" || suspended {
        Some(Reason::KeySuspended)
    } else if reason.starts_with("API_KEY_") {
        // API_KEY_SERVICE_BLOCKED, and the key restrictions (referrer, IP, app) that block it here.
        Some(Reason::KeyBlocked)
    } else if reason == "SERVICE_DISABLED" {
        Some(Reason::ServiceDisabled)
    } else if said(message, "Your project has been denied access", Anchor::Start) {
        Some(Reason::ProjectDenied)
    } else {
        None
    }
}
