//! Why a key or a quota bucket is out of rotation: one table gives each reason its stored
//! code and its description.

use std::fmt;

/// Why a mark was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A `PerDay` quota of (project, model) is used up.
    PerDayQuota,
    /// A per-minute quota, or an answer carrying a retry delay.
    PerMinuteQuota,
    /// `limit: 0` or "doesn't have a free quota tier".
    NoFreeTier,
    /// 403 "The caller does not have permission" on one model.
    ModelForbidden,
    /// 429 without details (growing backoff).
    Throttled,
    /// 429 "Your prepayment credits are depleted": the project's billing.
    BillingDepleted,
    /// 500/502/503/504 with `cool_upstream_trouble` set.
    UpstreamTrouble,
    /// No answer: connection failure or timeout.
    ConnectFailure,
    /// 400 `API_KEY_INVALID`: "API key not valid" / "API key expired".
    KeyInvalid,
    /// 403 "reported as leaked".
    KeyLeaked,
    /// 403 `CONSUMER_SUSPENDED`.
    KeySuspended,
    /// 403 `API_KEY_SERVICE_BLOCKED` (and key restrictions that block this API).
    KeyBlocked,
    /// 403 `SERVICE_DISABLED`: the Generative Language API is off in the key's project.
    ServiceDisabled,
    /// 403 "project has been denied access".
    ProjectDenied,
    /// 401 `UNAUTHENTICATED` (also `ACCESS_TOKEN_TYPE_UNSUPPORTED`).
    Unauthenticated,
    /// 401 `CREDENTIALS_MISSING`: "API keys are not supported by this API".
    KeyNotSupported,
    /// 404 "This model models/X is no longer available to new users": the key's project is
    /// too young for a model Google is retiring (older projects may still be served).
    ModelRetired,
    /// The seed profile cools by HTTP status alone.
    Http(u16),
}

/// Each reason without data: (reason, stored code, description). A reason's row number is
/// stored in binary records ([`Reason::number`]): add rows at the end, never reorder.
const TABLE: [(Reason, &str, &str); 17] = [
    (Reason::PerDayQuota, "per_day_quota", "per-day quota exhausted (until the daily reset)"),
    (Reason::PerMinuteQuota, "per_minute_quota", "per-minute quota exceeded"),
    (Reason::NoFreeTier, "no_free_tier", "no quota for this model on this key's tier (limit 0)"),
    (Reason::ModelForbidden, "model_forbidden", "key may not use this model"),
    (Reason::Throttled, "throttled", "rate limited without details (backoff)"),
    (Reason::BillingDepleted, "billing_depleted", "prepayment credits depleted (the project's billing)"),
    (Reason::UpstreamTrouble, "upstream_trouble", "upstream trouble"),
    (Reason::ConnectFailure, "connect_failure", "connection failure or timeout"),
    (Reason::KeyInvalid, "key_invalid", "API key not valid or expired"),
    (Reason::KeyLeaked, "key_leaked", "API key reported as leaked"),
    (Reason::KeySuspended, "key_suspended", "consumer suspended"),
    (Reason::KeyBlocked, "key_blocked", "API key blocked for this service"),
    (Reason::ServiceDisabled, "service_disabled", "Generative Language API disabled in the project"),
    (Reason::ProjectDenied, "project_denied", "project denied access"),
    (Reason::Unauthenticated, "unauthenticated", "unauthenticated (401)"),
    (Reason::KeyNotSupported, "key_not_supported", "API keys not supported for this API (401)"),
    (Reason::ModelRetired, "model_retired", "model no longer available to this project (retired for new users)"),
];

impl Reason {
    fn row(self) -> Option<&'static (Reason, &'static str, &'static str)> {
        TABLE.iter().find(|(r, ..)| *r == self)
    }

    /// The code stored in KV lines.
    pub fn code(self) -> String {
        match self {
            Reason::Http(status) => format!("http_{status}"),
            other => other.row().map_or("unknown", |row| row.1).to_string(),
        }
    }

    /// Reads a stored code back.
    pub fn from_code(code: &str) -> Option<Self> {
        if let Some(status) = code.strip_prefix("http_") {
            return status.parse().ok().filter(|s| (100..=599).contains(s)).map(Reason::Http);
        }
        TABLE.iter().find(|row| row.1 == code).map(|row| row.0)
    }

    /// The number stored in binary records: the reason's row in the table, or
    /// `0x8000 | status` for [`Reason::Http`].
    pub fn number(self) -> u16 {
        match self {
            Reason::Http(status) => 0x8000 | (status & 0x7FFF),
            other => TABLE.iter().position(|row| row.0 == other).map_or(u16::MAX, |i| i as u16),
        }
    }

    /// Reads a stored number back.
    pub fn from_number(number: u16) -> Option<Self> {
        if number & 0x8000 != 0 {
            return Some(number & 0x7FFF).filter(|s| (100..=599).contains(s)).map(Reason::Http);
        }
        TABLE.get(usize::from(number)).map(|row| row.0)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Http(status) => write!(f, "HTTP {status} (seed profile)"),
            other => f.write_str(other.row().map_or("unknown", |row| row.2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back() {
        for (reason, code, ..) in TABLE {
            assert_eq!(reason.code(), code);
            assert_eq!(Reason::from_code(code), Some(reason));
        }
        assert_eq!(Reason::from_code("http_503"), Some(Reason::Http(503)));
        for reason in TABLE.map(|row| row.0).into_iter().chain([Reason::Http(429)]) {
            assert_eq!(Reason::from_number(reason.number()), Some(reason));
        }
        assert_eq!(Reason::from_code("nonsense"), None);
        // Only real HTTP statuses (found by fuzzing: `http_39585` did not survive a round trip).
        assert_eq!(Reason::from_code("http_39585"), None);
        assert_eq!(Reason::from_number(0x8000 | 39585 & 0x7FFF), None);
    }
}
