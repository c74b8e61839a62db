//! Every body form of docs/google-errors.md, in the 2025 and the 2026 style,
//! native (bare) and OpenAI-compatible (wrapped in an array).

use gemini_pool_core::{classify, Outcome, Reason};

fn wrapped(body: &str) -> String {
    format!("[{body}]")
}

/// Classifies the body both bare and array-wrapped; both must agree.
fn outcome(status: u16, body: &str) -> Outcome {
    let bare = classify(status, body.as_bytes()).outcome;
    let compat = classify(status, wrapped(body).as_bytes()).outcome;
    assert_eq!(bare, compat, "bare and wrapped forms disagree for {body}");
    bare
}

const PER_DAY_2025: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"200"}]},
 {"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#;

const PER_DAY_2026: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, model: gemini-3-flash\nPlease retry in 22.431907188s.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-3-flash"}}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#;

const PER_MINUTE_2025: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"10"}]},
 {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"45.837906927s"}]}}"#;

const PER_MINUTE_2026: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 250000, model: gemini-3-flash\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5, model: gemini-3-flash\nPlease retry in 58.217843437s.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count","quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier","quotaDimensions":{"location":"global","model":"gemini-3-flash"}},{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-3-flash"}}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"58s"}]}}"#;

const RETRY_HINT_ONLY: &str =
    r#"{"error":{"code":429,"message":"Quota exceeded.\nPlease retry in 7.5s.","status":"RESOURCE_EXHAUSTED"}}"#;

const LIMIT_ZERO_2026: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 0, model: gemini-2.5-pro\nPlease retry in 31.4s.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-pro"}}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"31s"}]}}"#;

const LIMIT_ZERO_2025: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-pro"},"quotaValue":"0"}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"40s"}]}}"#;

const NO_FREE_TIER: &str = r#"{"error":{"code":429,"message":"Gemini 2.5 Pro Preview doesn't have a free quota tier. Please switch to Gemini 2.5 Pro Experimental (models/gemini-2.5-pro-exp-03-25) for free usage.","status":"RESOURCE_EXHAUSTED"}}"#;

const BARE_429: &str = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;

const KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[
 {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},
 {"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#;

const KEY_EXPIRED: &str = r#"{"error":{"code":400,"message":"API key expired. Please renew the API key.","status":"INVALID_ARGUMENT","details":[
 {"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key expired. Please renew the API key."},
 {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

const LEAKED: &str = r#"{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.","status":"PERMISSION_DENIED"}}"#;

const SUSPENDED: &str = r#"{"error":{"code":403,"message":"Permission denied: Consumer 'api_key:AIzaSyFAKEFAKEFAKE' has been suspended.","status":"PERMISSION_DENIED","details":[
 {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"CONSUMER_SUSPENDED","domain":"googleapis.com","metadata":{"consumer":"projects/123456789","service":"generativelanguage.googleapis.com"}}]}}"#;

const SERVICE_BLOCKED: &str = r#"{"error":{"code":403,"message":"Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.","status":"PERMISSION_DENIED","details":[
 {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_SERVICE_BLOCKED","domain":"googleapis.com","metadata":{"consumer":"projects/123","service":"generativelanguage.googleapis.com"}}]}}"#;

const SERVICE_DISABLED: &str = r#"{"error":{"code":403,"message":"Generative Language API has not been used in project 123 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123 then retry.","status":"PERMISSION_DENIED","details":[
 {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
 {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"consumer":"projects/123","service":"generativelanguage.googleapis.com"}}]}}"#;

const PROJECT_DENIED: &str = r#"{"error":{"code":403,"message":"Your project has been denied access. Please contact support.","status":"PERMISSION_DENIED"}}"#;

const CALLER_NO_PERMISSION: &str =
    r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#;

const UNREGISTERED: &str = r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#;

const UNAUTHENTICATED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.","status":"UNAUTHENTICATED"}}"#;

const LOCATION: &str = r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#;

const BAD_ARGUMENT: &str = r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"foo\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"description":"Invalid JSON payload received. Unknown name \"foo\": Cannot find field."}]}]}}"#;

const NOT_FOUND: &str = r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.","status":"NOT_FOUND"}}"#;

const OVERLOADED: &str =
    r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#;
const HIGH_DEMAND: &str = r#"{"error":{"code":503,"message":"This model is currently experiencing high demand. Spikes in demand are usually temporary. Please try again later.","status":"UNAVAILABLE"}}"#;
const INTERNAL: &str = r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#;
const DEADLINE: &str = r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#;

#[test]
fn per_day_ignores_the_short_retry_delay() {
    assert_eq!(outcome(429, PER_DAY_2025), Outcome::DailyQuota);
    assert_eq!(outcome(429, PER_DAY_2026), Outcome::DailyQuota);
}

#[test]
fn per_minute_reads_the_delay_with_fractions() {
    assert_eq!(outcome(429, PER_MINUTE_2025), Outcome::MinuteQuota { retry_delay_ms: Some(45_838) });
    // The message's precise hint wins over RetryInfo's whole seconds when both are present.
    assert_eq!(outcome(429, PER_MINUTE_2026), Outcome::MinuteQuota { retry_delay_ms: Some(58_218) });
    assert_eq!(outcome(429, RETRY_HINT_ONLY), Outcome::MinuteQuota { retry_delay_ms: Some(7_500) });
}

#[test]
fn limit_zero_and_no_free_tier() {
    assert_eq!(outcome(429, LIMIT_ZERO_2026), Outcome::NoFreeTier);
    assert_eq!(outcome(429, LIMIT_ZERO_2025), Outcome::NoFreeTier);
    assert_eq!(outcome(429, NO_FREE_TIER), Outcome::NoFreeTier);
}

#[test]
fn bare_429_is_throttling() {
    assert_eq!(outcome(429, BARE_429), Outcome::Throttled);
    assert_eq!(outcome(429, ""), Outcome::Throttled);
    assert_eq!(outcome(429, "<html>Too Many Requests</html>"), Outcome::Throttled);
}

#[test]
fn dead_keys() {
    assert_eq!(outcome(400, KEY_INVALID), Outcome::KeyDead(Reason::KeyInvalid));
    assert_eq!(outcome(400, KEY_EXPIRED), Outcome::KeyDead(Reason::KeyInvalid));
    assert_eq!(outcome(403, LEAKED), Outcome::KeyDead(Reason::KeyLeaked));
    assert_eq!(outcome(403, SUSPENDED), Outcome::KeyDead(Reason::KeySuspended));
    assert_eq!(outcome(403, SERVICE_BLOCKED), Outcome::KeyDead(Reason::KeyBlocked));
    assert_eq!(outcome(403, SERVICE_DISABLED), Outcome::KeyDead(Reason::ServiceDisabled));
    assert_eq!(outcome(403, PROJECT_DENIED), Outcome::KeyDead(Reason::ProjectDenied));
    assert_eq!(outcome(401, UNAUTHENTICATED), Outcome::KeyDead(Reason::Unauthenticated));
}

const ACCESS_TOKEN_TYPE_UNSUPPORTED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ACCESS_TOKEN_TYPE_UNSUPPORTED","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com","method":"google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent"}}]}}"#;

const CREDENTIALS_MISSING: &str = r#"{"error":{"code":401,"message":"API keys are not supported by this API. Expected OAuth2 access token or other authentication credentials that assert a principal. See https://cloud.google.com/docs/authentication","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"CREDENTIALS_MISSING","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

const MULTIPLE_CREDENTIALS: &str = r#"{"error":{"code":400,"message":"Multiple authentication credentials received. Please pass only one.","status":"INVALID_ARGUMENT"}}"#;

const BILLING_DEPLETED: &str = r#"{"error":{"code":429,"message":"Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your project and billing.","status":"RESOURCE_EXHAUSTED"}}"#;

#[test]
fn auth_answers_of_2026() {
    assert_eq!(outcome(401, ACCESS_TOKEN_TYPE_UNSUPPORTED), Outcome::KeyDead(Reason::Unauthenticated));
    assert_eq!(outcome(401, CREDENTIALS_MISSING), Outcome::KeyDead(Reason::KeyNotSupported));
    assert_eq!(outcome(400, MULTIPLE_CREDENTIALS), Outcome::ProxyFault);
}

#[test]
fn depleted_prepayment_is_the_projects_billing() {
    assert_eq!(outcome(429, BILLING_DEPLETED), Outcome::BillingDepleted);
}

#[test]
fn model_scoped_and_proxy_problems() {
    assert_eq!(outcome(403, CALLER_NO_PERMISSION), Outcome::ModelForbidden);
    assert_eq!(outcome(403, UNREGISTERED), Outcome::ProxyFault);
    assert_eq!(outcome(400, LOCATION), Outcome::LocationUnsupported);
}

#[test]
fn client_errors_are_not_the_keys_fault() {
    assert_eq!(outcome(400, BAD_ARGUMENT), Outcome::ClientError);
    assert_eq!(outcome(404, NOT_FOUND), Outcome::ClientError);
    assert_eq!(outcome(413, ""), Outcome::ClientError);
}

#[test]
fn upstream_trouble() {
    for (status, body) in [(503, OVERLOADED), (503, HIGH_DEMAND), (500, INTERNAL), (504, DEADLINE), (502, "<html>")] {
        assert_eq!(outcome(status, body), Outcome::UpstreamTrouble, "{status} {body}");
    }
}

#[test]
fn success() {
    assert!(classify(200, br#"{"choices":[]}"#).is_success());
}

#[test]
fn the_verdict_keeps_googles_headline() {
    let v = classify(429, PER_DAY_2026.as_bytes());
    assert!(v.detail.starts_with("You exceeded your current quota"), "{}", v.detail);
    assert_eq!(v.status, Some(429));
}

/// Google's 400s quote the request: a field or safety category named like Google's dead-key
/// sentences must not kill the key (only `ErrorInfo.reason` or the whole sentence can).
#[test]
fn quoted_request_text_never_kills_a_key() {
    let quotes = [
        r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"API key not valid. Please pass a valid API key.\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"description":"Invalid JSON payload received. Unknown name \"API key not valid. Please pass a valid API key.\": Cannot find field."}]}]}}"#,
        r#"{"error":{"code":400,"message":"Invalid value at 'safety_settings[0].category' (type.googleapis.com/google.ai.generativelanguage.v1beta.HarmCategory), \"API key expired. Please renew the API key.\"","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"safety_settings[0].category","description":"Invalid value"}]}]}}"#,
        r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"API_KEY_INVALID\": Cannot find field.","status":"INVALID_ARGUMENT"}}"#,
        r#"{"error":{"code":400,"message":"Invalid value at 'x' \"Multiple authentication credentials received\"","status":"INVALID_ARGUMENT"}}"#,
    ];
    for body in quotes {
        assert_eq!(outcome(400, body), Outcome::ClientError, "{body}");
    }
    // A 403 quoting a dead-key sentence inside its own is no verdict on the key either.
    let quoted_403 = r#"{"error":{"code":403,"message":"You do not have permission to access the File Your API key was reported as leaked. Please use another API key. or it may not exist.","status":"PERMISSION_DENIED"}}"#;
    assert_eq!(outcome(403, quoted_403), Outcome::Forbidden);
}

/// Another project's file or cached content: a 403 about what the request names.
#[test]
fn a_403_about_a_resource_is_not_the_keys() {
    let file = r#"{"error":{"code":403,"message":"You do not have permission to access the File doesnotexist1 or it may not exist.","status":"PERMISSION_DENIED"}}"#;
    let cache = r#"{"error":{"code":403,"message":"CachedContent not found (or permission denied)","status":"PERMISSION_DENIED"}}"#;
    for body in [file, cache, "", "<html>forbidden</html>"] {
        let o = outcome(403, body);
        assert_eq!(o, Outcome::Forbidden, "{body}");
        assert!(o.may_be_the_requests() && o.refuses_the_request() && !o.names_the_fault());
    }
    // The whole sentence, trailing period or not.
    assert_eq!(
        outcome(
            403,
            r#"{"error":{"code":403,"message":"The caller does not have permission.","status":"PERMISSION_DENIED"}}"#
        ),
        Outcome::ModelForbidden
    );
}

/// Google's answer when a model is retired for the key's project (claude-mem #3278, 2026-07).
const RETIRED: &str = r#"{"error":{"code":404,"message":"This model models/gemini-2.5-pro is no longer available to new users. Please update your code to use a newer model for the latest features and improvements.","status":"NOT_FOUND"}}"#;

#[test]
fn a_model_retired_for_new_users_is_the_projects() {
    assert_eq!(outcome(404, RETIRED), Outcome::ModelRetired);
    assert!(Outcome::ModelRetired.names_the_fault());
    // Any other 404 is the request's, and a sentence not at the start quotes the request.
    let unknown = r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.","status":"NOT_FOUND"}}"#;
    assert_eq!(outcome(404, unknown), Outcome::ClientError);
    let quoted = r#"{"error":{"code":404,"message":"File x said: This model models/m is no longer available to new users.","status":"NOT_FOUND"}}"#;
    assert_eq!(outcome(404, quoted), Outcome::ClientError);
}

/// The Interactions API's errors: a word for `code` (ai.google.dev, api-errors, 2026).
fn interactions(code: &str, message: &str) -> String {
    format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
}

#[test]
fn interactions_codes_read_like_their_generate_content_twins() {
    assert_eq!(outcome(429, &interactions("quota_exceeded", "Daily quota exceeded.")), Outcome::DailyQuota);
    assert_eq!(
        outcome(429, &interactions("rate_limit_exceeded", "Rate limit exceeded. Please retry in 12s.")),
        Outcome::MinuteQuota { retry_delay_ms: Some(12_000) }
    );
    assert_eq!(outcome(402, &interactions("payment_required", "Prepaid credit depleted.")), Outcome::BillingDepleted);
    assert_eq!(outcome(402, &interactions("invalid_request", "x")), Outcome::ClientError);
    assert_eq!(
        outcome(401, &interactions("authentication", "API key expired.")),
        Outcome::KeyDead(Reason::Unauthenticated)
    );
    assert_eq!(outcome(403, &interactions("permission_denied", "No access to interaction x.")), Outcome::Forbidden);
    assert_eq!(outcome(404, &interactions("not_found", "Interaction x not found.")), Outcome::ClientError);
    assert_eq!(outcome(503, &interactions("service_unavailable", "Try again.")), Outcome::UpstreamTrouble);
}
