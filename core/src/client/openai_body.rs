//! What the proxy needs from an OpenAI-style request body — the model and whether it
//! streams — read without copying or re-encoding the body, which is sent on as it came.
//! Also the one answer we do rewrite: model ids lose Google's `models/` prefix.

use crate::client::envelope::ErrorReply;
use serde_json::Value;

/// What the proxy reads of an OpenAI request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiBody {
    /// Normalised (no `models/` prefix).
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
}

/// Validates the body as a JSON object naming a model ([`crate::client::body`]).
pub fn peek(body: &[u8]) -> Result<OpenAiBody, ErrorReply> {
    let read = crate::client::body::read(body, false)?;
    let Some(model) = read.model else {
        return Err(ErrorReply::bad_request("missing_model", "Missing required field `model`."));
    };
    Ok(OpenAiBody { model, stream: read.stream })
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
