//! What the proxy needs from an OpenAI-style request body — the model and whether it
//! streams — read without copying or re-encoding the body, which is sent on as it came.
//! Also the one answer we do rewrite: model ids lose Google's `models/` prefix.

use crate::client::envelope::ErrorReply;
use crate::client::model::{normalize_model, valid_model};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// What the proxy reads of an OpenAI request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiBody {
    /// Normalised (no `models/` prefix).
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Validates the body as a JSON object naming a model. Every other field is skipped unread.
pub fn peek(body: &[u8]) -> Result<OpenAiBody, ErrorReply> {
    let peeked = peek_native(body)?;
    let Some(model) = peeked.model else {
        return Err(ErrorReply::bad_request("missing_model", "Missing required field `model`."));
    };
    Ok(OpenAiBody { model, stream: peeked.stream })
}

/// What the proxy reads of a native body that may name its model (`interactions`,
/// `cachedContents`): the same fields, the model optional (an interaction may name an agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NativeBody {
    /// Normalised (no `models/` prefix), if named.
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
}

/// Validates the body as a JSON object; reads its model (if any) and `stream`.
pub(crate) fn peek_native(body: &[u8]) -> Result<NativeBody, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ErrorReply::bad_request("invalid_json", "Request body is empty; expected a JSON object."));
    }
    let peek: Peek<'_> = serde_json::from_slice(body)
        .map_err(|e| ErrorReply::bad_request("invalid_json", format!("Request body is not valid JSON: {e}.")))?;
    let model = match peek.model {
        Some(model) => Some(checked_model(&model)?),
        None => None,
    };
    Ok(NativeBody { model, stream: peek.stream.unwrap_or(false) })
}

fn checked_model(model: &str) -> Result<String, ErrorReply> {
    let model = normalize_model(model);
    if !valid_model(model) {
        let shown: String = model.chars().take(80).collect();
        return Err(ErrorReply::bad_request("invalid_model", format!("Invalid model name {shown:?}.")));
    }
    Ok(model.to_string())
}

/// Strips `models/` from `id` in a model object or in each entry of a model list.
/// `None` when the body is not JSON (it is then passed on as it is).
pub fn strip_model_prefixes(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    match value.get_mut("data").and_then(Value::as_array_mut) {
        Some(list) => list.iter_mut().for_each(strip_id),
        None => strip_id(&mut value),
    }
    serde_json::to_vec(&value).ok()
}

fn strip_id(model: &mut Value) {
    if let Some(Value::String(id)) = model.get_mut("id") {
        if let Some(bare) = id.strip_prefix("models/") {
            *id = bare.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_stream() {
        let body = br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:..."}}]}],"model":"models/gemini-3.5-flash","stream":true,"tools":[]}"#;
        assert_eq!(peek(body), Ok(OpenAiBody { model: "gemini-3.5-flash".into(), stream: true }));
        assert_eq!(peek(br#"{"model":"m1"}"#).map(|b| b.stream), Ok(false));
    }

    #[test]
    fn names_the_problem() {
        let code = |body: &[u8]| peek(body).expect_err("error").code;
        assert_eq!(code(b""), "invalid_json");
        assert_eq!(code(b"{\"model\": "), "invalid_json");
        assert_eq!(code(b"[1,2]"), "invalid_json");
        assert_eq!(code(br#"{"messages":[]}"#), "missing_model");
        assert_eq!(code(br#"{"model":"../../etc"}"#), "invalid_model");
        assert_eq!(code(br#"{"model":"m","stream":"yes"}"#), "invalid_json");
        let e = peek(b"{\"model\": ").expect_err("error");
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn strips_prefixes() {
        let list = br#"{"object":"list","data":[{"id":"models/a","object":"model"},{"id":"b"}]}"#;
        let out: Value = serde_json::from_slice(&strip_model_prefixes(list).expect("json")).expect("json");
        assert_eq!(out["data"][0]["id"], "a");
        assert_eq!(out["data"][1]["id"], "b");
        let one: Value =
            serde_json::from_slice(&strip_model_prefixes(br#"{"id":"models/x"}"#).expect("json")).expect("json");
        assert_eq!(one["id"], "x");
        assert_eq!(strip_model_prefixes(b"not json"), None);
    }
}
