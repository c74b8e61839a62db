//! Error shaping: every error leaves in the envelope of the API the client spoke —
//! OpenAI's `{"error": {"message", "type", "param", "code"}}` for `/v1/...`, Google's
//! `{"error": {"code", "message", "status"}}` for the native API, Anthropic's
//! `{"type": "error", "error": {"type", "message"}}` for `/v1/messages` — with the right status
//! (Anthropic's clients read Google's 503 as its 529, "overloaded").

use crate::google::classify::Outcome;
use crate::google::google_error::GoogleError;
use crate::pool::scrub::scrub;
use serde_json::{json, Value};

/// Which API the client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/...`: OpenAI's envelope.
    OpenAi,
    /// The native API: Google's envelope.
    Google,
    /// Anthropic's Messages API (`/v1/messages`): Anthropic's envelope.
    Anthropic,
}

/// An error the proxy answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    /// HTTP status.
    pub status: u16,
    /// What the client reads.
    pub message: String,
    /// OpenAI's `code` (snake case); Google's envelope uses the canonical status instead.
    pub code: String,
    /// Seconds, for 429 and 503.
    pub retry_after_secs: Option<u64>,
    /// Methods for a 405's `Allow` header.
    pub allow: Option<&'static str>,
    /// Google's own error object, rebuilt and scrubbed, for native clients (their SDKs read
    /// its `details`); `None` for errors of the proxy's own.
    pub google_error: Option<Box<Value>>,
}

impl ErrorReply {
    /// An error with a status, an OpenAI-style code and a message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ErrorReply {
            status,
            message: message.into(),
            code: code.to_string(),
            retry_after_secs: None,
            allow: None,
            google_error: None,
        }
    }

    /// Adds `Retry-After`: whole seconds, rounded up, at least 1 (the one place it is rounded).
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_secs = Some(ms.div_ceil(1000).max(1));
        self
    }

    /// 401: no client token, and where to send one.
    pub fn missing_token(dialect: Dialect) -> Self {
        let how = match dialect {
            Dialect::OpenAi => "send `Authorization: Bearer <token>`",
            Dialect::Google => "send it as the API key (`x-goog-api-key` header or `?key=`)",
            Dialect::Anthropic => "send `x-api-key: <token>` or `Authorization: Bearer <token>`",
        };
        ErrorReply::new(401, "missing_token", format!("Missing client token: {how}."))
    }

    /// 401: a token that is not in `auth_tokens`.
    pub fn invalid_token() -> Self {
        ErrorReply::new(401, "invalid_token", "Invalid authorization token.")
    }

    /// 403: a client token where an admin token is needed.
    pub fn admin_required() -> Self {
        ErrorReply::new(403, "admin_required", "This needs an admin token (config store `admin_tokens`).")
    }

    /// 404: a path off the allow-list.
    pub fn not_found(path: &str) -> Self {
        let shown: String = path.chars().take(200).collect();
        ErrorReply::new(404, "not_found", format!("Unknown path {shown:?}."))
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        let shown: String = method.chars().take(20).collect();
        let mut reply =
            ErrorReply::new(405, "method_not_allowed", format!("Method {shown} not allowed here; use {allow}."));
        reply.allow = Some(allow);
        reply
    }

    /// 413.
    pub fn body_too_large(limit: usize) -> Self {
        ErrorReply::new(413, "body_too_large", format!("Request body is larger than {limit} bytes."))
    }

    /// 400: the request's body could not be read (the connection failed while it came).
    pub fn unreadable_body() -> Self {
        ErrorReply::bad_request("unreadable_body", "The request body could not be read.")
    }

    /// The service's own fault (500 `config_error` or `runtime_error`)? The edge logs it.
    pub fn is_service_fault(&self) -> bool {
        matches!(self.code.as_str(), "config_error" | "runtime_error")
    }

    /// 400 with a code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ErrorReply::new(400, code, message)
    }

    /// 500 "Service configuration error" naming what is missing or wrong (never a key).
    pub fn config(what: impl std::fmt::Display) -> Self {
        ErrorReply::new(500, "config_error", format!("Service configuration error: {what}."))
    }

    /// 500 `runtime_error`: the edge's runtime failed at something it should not (building a
    /// response, a header).
    pub fn runtime(what: impl std::fmt::Display) -> Self {
        ErrorReply::new(500, "runtime_error", format!("The edge runtime failed: {what}."))
    }

    /// 429 with `Retry-After`: every key cools for the model.
    pub fn all_cooling(model: Option<&str>, retry_after_ms: u64) -> Self {
        let secs = retry_after_ms.div_ceil(1000).max(1);
        let what = model.map_or(String::new(), |m| format!(" for model {m}"));
        ErrorReply::new(
            429,
            "all_keys_cooling",
            format!("All API keys are cooling{what}; the first one is available again in {secs} s."),
        )
        .with_retry_after_ms(retry_after_ms)
    }

    /// 403: the client's policy does not allow `model`.
    pub fn model_not_allowed(model: &str) -> Self {
        let shown: String = model.chars().take(128).collect();
        ErrorReply::new(403, "model_not_allowed", format!("This client token may not use model {shown}."))
    }

    /// 403: the resource lives in a project the client's policy no longer lets it use.
    pub fn resource_outside_projects() -> Self {
        ErrorReply::new(
            403,
            "project_not_allowed",
            "This resource lives in a project this client token may no longer use.",
        )
    }

    /// 429 with `Retry-After`: the client is over its own limit `what` (`rpm`, `rpd`,
    /// `tokens_per_day`) of `limit`, until the window ends in `retry_after_ms`.
    pub fn over_limit(what: &str, limit: u64, retry_after_ms: u64) -> Self {
        let secs = retry_after_ms.div_ceil(1000).max(1);
        ErrorReply::new(
            429,
            "client_rate_limited",
            format!("This client token is over its limit {what} = {limit}; try again in {secs} s."),
        )
        .with_retry_after_ms(retry_after_ms)
    }

    /// 429: so many of a client's requests took places in its limit together that this one
    /// found none free in time (limits counted in entries: [`crate::decide::limits`]).
    pub fn contended() -> Self {
        ErrorReply::new(
            429,
            "client_rate_limited",
            "Too many of this client token's requests arrived at once to count them; try again in 1 s.",
        )
        .with_retry_after_ms(1_000)
    }

    /// 404: Google retired `model` for every project of the pool that it asked (its answer
    /// "no longer available to new users" cools each such project for the model).
    pub fn model_retired(model: Option<&str>) -> Self {
        let model = model.unwrap_or_default();
        ErrorReply::new(
            404,
            "model_not_found",
            format!(
                "Model {model} is no longer available to any project in this pool (Google retired it for new users)."
            ),
        )
    }

    /// 503: every key is dead.
    pub fn all_dead() -> Self {
        ErrorReply::new(
            503,
            "all_keys_failed",
            "All API keys failed: Google rejects every key in the pool (see /v1/status).",
        )
    }

    /// When the last answer was about *our* key (dead, or none sent), Google's words would
    /// mislead the client ("API key not valid" is not about its token): say what happened.
    pub fn instead_of_upstream(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::KeyDead(why) => Some(ErrorReply::new(
                503,
                "all_keys_failed",
                format!("No API key in the pool was accepted by Google (last: {why}); see /v1/status."),
            )),
            Outcome::ProxyFault => Some(ErrorReply::new(
                502,
                "proxy_error",
                "The proxy sent Google the wrong credentials (a bug in the proxy, not your request).",
            )),
            _ => None,
        }
    }

    /// Google's last error answer, for the client: Google's status and scrubbed message in
    /// the client's envelope (native clients get Google's object rebuilt from its parsed
    /// fields), or the proxy's own words when Google's were about our key. An answer that is
    /// not an error status (a redirect) is a 502. `used`: the keys this request sent.
    pub fn from_upstream(status: u16, body: &[u8], outcome: &Outcome, used: &[&str]) -> Self {
        if let Some(reply) = ErrorReply::instead_of_upstream(outcome) {
            return reply;
        }
        let error = GoogleError::parse(body);
        let relayable = (400..=599).contains(&status);
        let (message, code) = match &error {
            Some(e) if relayable && !e.message.is_empty() => (scrub(&e.message, used), e.status.to_ascii_lowercase()),
            _ => (format!("Gemini API answered HTTP {status}."), "upstream_error".to_string()),
        };
        let code = if code.is_empty() { "upstream_error".to_string() } else { code };
        let mut reply = ErrorReply::new(if relayable { status } else { 502 }, &code, message);
        if *outcome == Outcome::LocationUnsupported {
            reply.message.push_str(
                " (Gemini refuses the region of the edge location that served this request; see DEPLOYMENT_GUIDE.md, shielding.)",
            );
        }
        reply.google_error = error.filter(|_| relayable).map(|e| Box::new(e.rebuilt(used)));
        reply
    }

    /// 502 / 504: no answer from Google.
    pub fn upstream_unreachable(timeout: bool) -> Self {
        if timeout {
            ErrorReply::new(504, "upstream_timeout", "Gemini API did not answer in time.")
        } else {
            ErrorReply::new(502, "upstream_unreachable", "Could not connect to the Gemini API.")
        }
    }

    /// The HTTP status in the client's dialect: Anthropic's clients read an overloaded
    /// service as 529.
    pub fn status_in(&self, dialect: Dialect) -> u16 {
        match (dialect, self.status) {
            (Dialect::Anthropic, 503) => 529,
            (_, status) => status,
        }
    }

    /// The JSON body in the client's dialect.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let value = match dialect {
            Dialect::Anthropic => json!({"type": "error", "error": {
                "type": anthropic_type(self.status),
                "message": self.message,
            }}),
            Dialect::OpenAi => json!({"error": {
                "message": self.message,
                "type": openai_type(self.status),
                "param": null,
                "code": self.code,
            }}),
            Dialect::Google => match &self.google_error {
                Some(error) => (**error).clone(),
                None => json!({"error": {
                    "code": self.status,
                    "message": self.message,
                    "status": google_status(self.status),
                }}),
            },
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's error type for an HTTP status (Google's or the proxy's).
pub(crate) fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// google.rpc canonical status names for HTTP statuses.
fn google_status(status: u16) -> &'static str {
    match status {
        400 | 405 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        411 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn openai_envelope() {
        let v = parse(&ErrorReply::invalid_token().body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["code"], "invalid_token");
        assert_eq!(v["error"]["message"], "Invalid authorization token.");
    }

    #[test]
    fn google_envelope() {
        let v = parse(&ErrorReply::all_cooling(Some("gemini-3.1-pro-preview"), 41_200).body(Dialect::Google));
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("gemini-3.1-pro-preview") && m.contains("42 s")));
    }

    #[test]
    fn answers_about_our_keys_are_not_relayed() {
        use crate::google::reason::Reason;
        let reply = ErrorReply::instead_of_upstream(&Outcome::KeyDead(Reason::KeyInvalid)).expect("replaced");
        assert_eq!((reply.status, reply.code.as_str()), (503, "all_keys_failed"));
        assert!(reply.message.contains("API key not valid or expired"));
        assert_eq!(ErrorReply::instead_of_upstream(&Outcome::ClientError), None);
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(ErrorReply::all_cooling(None, 1).retry_after_secs, Some(1));
        assert_eq!(ErrorReply::all_cooling(None, 58_001).retry_after_secs, Some(59));
    }

    #[test]
    fn upstream_errors_keep_status_and_scrub() {
        let body = br#"{"error":{"code":403,"message":"Consumer 'api_key:AIzaSECRET' has been suspended.","status":"PERMISSION_DENIED"}}"#;
        let reply = ErrorReply::from_upstream(403, body, &Outcome::ModelForbidden, &["AIzaSECRET"]);
        assert_eq!(reply.status, 403);
        assert_eq!(reply.code, "permission_denied");
        assert!(!reply.message.contains("AIzaSECRET"));
        let native = String::from_utf8(reply.body(Dialect::Google)).expect("utf-8");
        assert!(native.contains("PERMISSION_DENIED") && !native.contains("AIzaSECRET"), "{native}");
        let bare = ErrorReply::from_upstream(502, b"<html>", &Outcome::UpstreamTrouble, &[]);
        assert_eq!((bare.status, bare.code.as_str()), (502, "upstream_error"));
    }

    #[test]
    fn a_redirect_is_not_relayed() {
        let reply = ErrorReply::from_upstream(302, b"", &Outcome::UpstreamTrouble, &[]);
        assert_eq!((reply.status, reply.code.as_str()), (502, "upstream_error"));
        assert!(reply.google_error.is_none());
    }
}
