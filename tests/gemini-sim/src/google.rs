//! Google's error bodies, as captured in 2025 and 2026 (docs/google-errors.md).
//! Native errors are a bare `{"error": …}`; the OpenAI-compatible endpoint wraps it in `[ … ]`.

use serde::Deserialize;
use serde_json::{json, Value};

/// Which year's body layout to answer with.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum Style {
    #[serde(rename = "2025")]
    Y2025,
    #[default]
    #[serde(rename = "2026")]
    Y2026,
}

pub struct GoogleError {
    pub status: u16,
    pub body: Value,
    /// The body exactly as sent, when JSON encoding would not produce it (escapes, no JSON).
    pub raw: Option<String>,
}

fn error(code: u16, status: &str, message: &str, details: Vec<Value>) -> GoogleError {
    let mut inner = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        inner["details"] = Value::Array(details);
    }
    GoogleError { status: code, body: json!({ "error": inner }), raw: None }
}

fn help() -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [
        {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
}

/// 2025 captures carry fractions (`"45.837906927s"`); 2026 ones whole seconds (`"58s"`, the
/// message then holding the fraction).
fn retry_info(seconds: f64, style: Style) -> Value {
    let delay = match style {
        Style::Y2025 => format!("{seconds:.9}s"),
        Style::Y2026 => format!("{}s", seconds.floor() as u64),
    };
    json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
}

fn error_info(reason: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com",
           "metadata": {"service": "generativelanguage.googleapis.com", "consumer": "projects/123456789012"}})
}

const QUOTA_TEXT: &str = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";

/// A 429 for one quota: `per` is "Minute" or "Day".
pub fn quota(style: Style, per: &str, model: &str, limit: u64, retry_s: f64) -> GoogleError {
    let quota_id = format!("GenerateRequestsPer{per}PerProjectPerModel-FreeTier");
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
    match style {
        Style::Y2025 => {
            let violation = json!({"quotaMetric": metric, "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model}, "quotaValue": limit.to_string()});
            error(
                429,
                "RESOURCE_EXHAUSTED",
                QUOTA_TEXT,
                vec![
                    json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}),
                    help(),
                    retry_info(retry_s, style),
                ],
            )
        }
        Style::Y2026 => {
            let message = format!(
                "{QUOTA_TEXT} To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\nPlease retry in {retry_s:.9}s."
            );
            let violation = json!({"quotaMetric": metric, "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model}});
            error(
                429,
                "RESOURCE_EXHAUSTED",
                &message,
                vec![
                    help(),
                    json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}),
                    retry_info(retry_s, style),
                ],
            )
        }
    }
}

pub fn no_free_tier(model: &str) -> GoogleError {
    let message = format!(
        "Gemini {model} doesn't have a free quota tier. Please switch to a model with a free tier for free usage."
    );
    error(429, "RESOURCE_EXHAUSTED", &message, vec![])
}

/// 2026: a model Google is retiring, asked for by a project too young to keep it (older
/// projects are still served). Message as reported in claude-mem #3278 (2026-07).
pub fn retired(model: &str) -> GoogleError {
    let message = format!(
        "This model models/{model} is no longer available to new users. Please update your code to use a newer model for the latest features and improvements."
    );
    error(404, "NOT_FOUND", &message, vec![])
}

pub fn bare_429() -> GoogleError {
    error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", vec![])
}

pub fn key_invalid() -> GoogleError {
    let message = "API key not valid. Please pass a valid API key.";
    error(
        400,
        "INVALID_ARGUMENT",
        message,
        vec![
            error_info("API_KEY_INVALID"),
            json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}),
        ],
    )
}

pub fn key_expired() -> GoogleError {
    let message = "API key expired. Please renew the API key.";
    error(
        400,
        "INVALID_ARGUMENT",
        message,
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}),
            error_info("API_KEY_INVALID"),
        ],
    )
}

pub fn leaked() -> GoogleError {
    error(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key.", vec![])
}

/// Google quotes the key in this one, which is why the proxy scrubs upstream messages.
pub fn suspended(key: &str) -> GoogleError {
    let message = format!("Permission denied: Consumer 'api_key:{key}' has been suspended.");
    error(403, "PERMISSION_DENIED", &message, vec![error_info("CONSUMER_SUSPENDED")])
}

pub fn service_blocked() -> GoogleError {
    error(403, "PERMISSION_DENIED",
        "Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.",
        vec![error_info("API_KEY_SERVICE_BLOCKED")])
}

pub fn service_disabled() -> GoogleError {
    error(403, "PERMISSION_DENIED",
        "Generative Language API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456789012 then retry.",
        vec![help(), error_info("SERVICE_DISABLED")])
}

pub fn project_denied() -> GoogleError {
    error(403, "PERMISSION_DENIED", "Your project has been denied access. Please contact support.", vec![])
}

pub fn caller_permission() -> GoogleError {
    error(403, "PERMISSION_DENIED", "The caller does not have permission", vec![])
}

pub fn unregistered() -> GoogleError {
    error(403, "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        vec![])
}

pub fn unauthenticated() -> GoogleError {
    error(401, "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        vec![])
}

pub fn location() -> GoogleError {
    error(400, "FAILED_PRECONDITION", "User location is not supported for the API use.", vec![])
}

pub fn overloaded() -> GoogleError {
    error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", vec![])
}

pub fn high_demand() -> GoogleError {
    error(503, "UNAVAILABLE",
        "This model is currently experiencing high demand. Spikes in demand are usually temporary. Please try again later.",
        vec![])
}

pub fn internal() -> GoogleError {
    error(500, "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        vec![])
}

pub fn deadline() -> GoogleError {
    error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", vec![])
}

pub fn not_found_model(model: &str, version: &str, method: &str) -> GoogleError {
    let message = format!(
        "models/{model} is not found for API version {version}, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
    );
    error(404, "NOT_FOUND", &message, vec![])
}

pub fn bad_request(message: &str) -> GoogleError {
    error(400, "INVALID_ARGUMENT", message, vec![])
}

pub fn not_found_path() -> GoogleError {
    error(404, "NOT_FOUND", "Requested entity was not found.", vec![])
}

/// 2026: the project's prepaid credits ran out (no details, also on the compat surface).
pub fn billing_depleted() -> GoogleError {
    error(429, "RESOURCE_EXHAUSTED",
        "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing.",
        vec![])
}

/// 2026: the key's type is refused (seen natively on accounts restricted to `AQ.` keys).
pub fn access_token_type_unsupported() -> GoogleError {
    error(401, "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        vec![error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED")])
}

/// 2026: a Cloud key that cannot be used for Gemini.
pub fn credentials_missing() -> GoogleError {
    error(401, "UNAUTHENTICATED",
        "API keys are not supported by this API. Expected OAuth2 access token or other authentication credentials that assert a principal. See https://cloud.google.com/docs/authentication",
        vec![error_info("CREDENTIALS_MISSING")])
}

/// 2026: two credentials at once — the caller's fault, never the key's.
pub fn multiple_credentials() -> GoogleError {
    error(400, "INVALID_ARGUMENT", "Multiple authentication credentials received. Please pass only one.", vec![])
}

/// Not something Google's API sends: a redirect (a hostile or broken path in between).
pub fn redirect() -> GoogleError {
    GoogleError { status: 302, body: Value::Null, raw: Some(String::new()) }
}

/// A 400 quoting the key three ways a byte-level scrub misses: JSON-escaped character by
/// character, lower-cased, and cut to a prefix (a client error: the proxy relays it).
pub fn key_quoted_escaped(key: &str) -> GoogleError {
    let escaped: String = key.chars().map(|c| format!("\\u{:04X}", u32::from(c))).collect();
    let lower = key.to_lowercase();
    let prefix: String = key.chars().take(20).collect();
    let raw = format!(
        r#"{{"error":{{"code":400,"message":"Invalid argument for api_key:{escaped} (key {lower}, {prefix}).","status":"INVALID_ARGUMENT","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"BAD_REQUEST","domain":"googleapis.com","metadata":{{"consumer":"api_key:{escaped}"}}}}]}}}}"#
    );
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    GoogleError { status: 400, body, raw: Some(raw) }
}

/// 400 for a field the request type does not have; Google quotes the name as sent.
pub fn unknown_field(name: &str) -> GoogleError {
    let message = format!("Invalid JSON payload received. Unknown name {}: Cannot find field.", json!(name));
    let violation =
        json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": message}]});
    error(400, "INVALID_ARGUMENT", &message, vec![violation])
}

/// 400 for a field a message inside the request does not have, where Google says which.
pub fn unknown_field_at(name: &str, at: &str) -> GoogleError {
    let message = format!("Invalid JSON payload received. Unknown name {} at '{at}': Cannot find field.", json!(name));
    let violation = json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": at, "description": message}]});
    error(400, "INVALID_ARGUMENT", &message, vec![violation])
}

/// 400 for an enum value the API does not have; Google quotes the value as sent.
pub fn invalid_enum(field: &str, enum_type: &str, value: &str) -> GoogleError {
    let message = format!(
        "Invalid value at '{field}' (type.googleapis.com/google.ai.generativelanguage.v1beta.{enum_type}), {}",
        json!(value)
    );
    let violation = json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": message}]});
    error(400, "INVALID_ARGUMENT", &message, vec![violation])
}

/// 403 for a file the key's project does not hold (another project's, or none at all).
pub fn file_denied(id: &str) -> GoogleError {
    let message = format!("You do not have permission to access the File {id} or it may not exist.");
    error(403, "PERMISSION_DENIED", &message, vec![])
}

/// 404 for an entity the key's project does not hold (batches, operations).
/// 409: a resource of this name exists in the project already.
pub fn already_exists(name: &str) -> GoogleError {
    error(409, "ALREADY_EXISTS", &format!("Resource {name} already exists."), vec![])
}

pub fn not_found_entity() -> GoogleError {
    error(404, "NOT_FOUND", "Requested entity was not found.", vec![])
}

/// 403 for a cached content the key's project does not hold.
pub fn cache_denied() -> GoogleError {
    error(403, "PERMISSION_DENIED", "CachedContent not found (or permission denied)", vec![])
}

/// A 400 whose body is `bytes` long (a broken or hostile path in between; Google's are small).
pub fn huge(bytes: usize) -> GoogleError {
    let padding = "x".repeat(bytes.saturating_sub(80));
    let raw = format!(r#"{{"error":{{"code":400,"message":"{padding}","status":"INVALID_ARGUMENT"}}}}"#);
    GoogleError { status: 400, body: Value::Null, raw: Some(raw) }
}
