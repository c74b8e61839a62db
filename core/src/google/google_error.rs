//! Reading Google's error bodies: the `google.rpc.Status` object, bare (native API) or wrapped
//! in a one-element array (OpenAI-compatible endpoint), with `details` found by `@type`.

use serde_json::Value;

/// The parts of a Google error the classifier and the error shaper need.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GoogleError {
    /// `code` (an HTTP status).
    pub code: Option<u16>,
    /// `code` when it is a word: the Interactions API's error codes (`quota_exceeded`,
    /// `rate_limit_exceeded`, `payment_required`, …) where `generateContent` has a number.
    pub code_name: String,
    /// `message`, as Google wrote it (may quote a key: scrub before showing).
    pub message: String,
    /// `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, …
    pub status: String,
    details: Vec<Value>,
}

/// One `QuotaFailure` violation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Violation {
    /// `quotaId`, e.g. `GenerateRequestsPerDayPerProjectPerModel-FreeTier`.
    pub quota_id: String,
    /// `quotaMetric`.
    pub quota_metric: String,
    /// `quotaValue` (a string on the wire; absent since late 2025).
    pub quota_value: Option<u64>,
    /// `quotaDimensions.model`.
    pub model: Option<String>,
}

impl GoogleError {
    /// Parses either `{"error": {...}}` or `[{"error": {...}}]`; `None` if the body is neither.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let object = match value {
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            other => other,
        };
        let error = object.get("error")?;
        Some(GoogleError {
            code: error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()),
            code_name: error.get("code").and_then(Value::as_str).unwrap_or_default().to_string(),
            message: error.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            status: error.get("status").and_then(Value::as_str).unwrap_or_default().to_string(),
            details: error.get("details").and_then(Value::as_array).cloned().unwrap_or_default(),
        })
    }

    /// The detail entry whose `@type` names `type_name` (e.g. `google.rpc.RetryInfo`).
    pub(crate) fn detail(&self, type_name: &str) -> Option<&Value> {
        self.details.iter().find(|d| d.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with(type_name)))
    }

    /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
    pub(crate) fn reason(&self) -> Option<&str> {
        self.detail("google.rpc.ErrorInfo")?.get("reason")?.as_str()
    }

    /// The message's `Please retry in Xs.` or else `RetryInfo.retryDelay`, in milliseconds.
    /// The message is preferred: Google writes it to the nanosecond (`58.217843437s`) where
    /// `RetryInfo` of the same answer says `58s`.
    pub(crate) fn retry_delay_ms(&self) -> Option<u64> {
        retry_hint_ms(&self.message).or_else(|| {
            self.detail("google.rpc.RetryInfo")
                .and_then(|d| d.get("retryDelay"))
                .and_then(Value::as_str)
                .and_then(parse_duration_ms)
        })
    }

    /// The `QuotaFailure` violations.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        let Some(list) =
            self.detail("google.rpc.QuotaFailure").and_then(|d| d.get("violations")).and_then(Value::as_array)
        else {
            return Vec::new();
        };
        list.iter().map(violation).collect()
    }

    /// Every `limit: N` in the message (one per violation line since late 2025).
    pub(crate) fn message_limits(&self) -> Vec<u64> {
        let mut limits = Vec::new();
        let mut rest = self.message.as_str();
        while let Some(at) = rest.find("limit: ") {
            rest = &rest[at + "limit: ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                limits.push(n);
            }
        }
        limits
    }

    /// The error object as Google sent it, rebuilt from the parsed fields with every string
    /// scrubbed of keys (`used`: the keys the request sent).
    pub(crate) fn rebuilt(&self, used: &[&str]) -> Value {
        let mut error = serde_json::Map::new();
        if let Some(code) = self.code {
            error.insert("code".into(), Value::from(code));
        } else if !self.code_name.is_empty() {
            error.insert("code".into(), Value::from(self.code_name.as_str()));
        }
        error.insert("message".into(), Value::from(self.message.as_str()));
        error.insert("status".into(), Value::from(self.status.as_str()));
        if !self.details.is_empty() {
            error.insert("details".into(), Value::Array(self.details.clone()));
        }
        let mut value = serde_json::json!({ "error": error });
        crate::pool::scrub::scrub_json(&mut value, used);
        value
    }

    /// The first line of the message, for logs and reasons.
    pub(crate) fn headline(&self) -> &str {
        self.message.lines().next().unwrap_or_default().trim()
    }
}

fn violation(v: &Value) -> Violation {
    let text = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let quota_value = match v.get("quotaValue") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    Violation {
        quota_id: text("quotaId"),
        quota_metric: text("quotaMetric"),
        quota_value,
        model: v.get("quotaDimensions").and_then(|d| d.get("model")).and_then(Value::as_str).map(str::to_string),
    }
}

/// A protobuf JSON duration (`"58s"`, `"45.837906927s"`, `"0.5s"`) in milliseconds, rounded up.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let number = text.trim().strip_suffix('s')?;
    seconds_to_ms(number)
}

/// `Please retry in 58.217843437s.` (also `…in 350ms.`) anywhere in a message.
fn retry_hint_ms(message: &str) -> Option<u64> {
    let at = message.find("retry in ")?;
    let rest = &message[at + "retry in ".len()..];
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let unit = &rest[number.len()..];
    if unit.starts_with("ms") {
        let ms: f64 = number.parse().ok()?;
        return Some(ms.ceil() as u64);
    }
    if unit.starts_with('s') {
        return seconds_to_ms(&number);
    }
    None
}

fn seconds_to_ms(number: &str) -> Option<u64> {
    let seconds: f64 = number.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some((seconds * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_fractions() {
        assert_eq!(parse_duration_ms("58s"), Some(58_000));
        assert_eq!(parse_duration_ms("45.837906927s"), Some(45_838));
        assert_eq!(parse_duration_ms("0.5s"), Some(500));
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_duration_ms("-3s"), None);
    }

    #[test]
    fn unwraps_the_compat_array() {
        let body = br#"[{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}]"#;
        let e = GoogleError::parse(body).expect("parses");
        assert_eq!((e.code, e.status.as_str()), (Some(429), "RESOURCE_EXHAUSTED"));
    }

    #[test]
    fn interactions_codes_are_words() {
        let e = GoogleError::parse(br#"{"error":{"code":"quota_exceeded","message":"m"}}"#).expect("parses");
        assert_eq!((e.code, e.code_name.as_str()), (None, "quota_exceeded"));
        assert_eq!(e.rebuilt(&[])["error"]["code"], "quota_exceeded");
    }

    #[test]
    fn not_an_error_body() {
        assert_eq!(GoogleError::parse(b"<html>502</html>"), None);
        assert_eq!(GoogleError::parse(b"[]"), None);
        assert_eq!(GoogleError::parse(br#"{"choices":[]}"#), None);
    }

    #[test]
    fn message_hints() {
        let e = GoogleError {
            message: "x\n* Quota exceeded for metric: m, limit: 5, model: g\n* … limit: 250, model: g\nPlease retry in 58.217843437s.".into(),
            ..GoogleError::default()
        };
        assert_eq!(e.message_limits(), vec![5, 250]);
        assert_eq!(e.retry_delay_ms(), Some(58_218));
        assert_eq!(retry_hint_ms("Please retry in 350ms."), Some(350));
    }
}
