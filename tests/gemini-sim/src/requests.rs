//! What Google checks in a request body before it spends quota on it, with Google's answers:
//! unknown fields (native and OpenAI-compatible), enum values, and the files and cached
//! contents a request names — which live in the project of the key that made them (the
//! simulator holds none yet, so every one named is another project's, or gone).

use crate::google::{self, GoogleError};
use serde_json::Value;

/// Fields of `GenerateContentRequest` (protobuf JSON takes camelCase and snake_case alike).
const GENERATE_FIELDS: [&str; 10] = [
    "model",
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
    "labels",
    "store",
];

/// Fields of a chat completion request that Google's OpenAI-compatible endpoint takes.
const CHAT_FIELDS: [&str; 24] = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "response_format",
    "reasoning_effort",
    "seed",
    "logprobs",
    "top_logprobs",
    "extra_body",
    "modalities",
    "audio",
    "user",
    "parallel_tool_calls",
];

/// `HarmCategory` values.
const HARM_CATEGORIES: [&str; 12] = [
    "HARM_CATEGORY_UNSPECIFIED",
    "HARM_CATEGORY_DEROGATORY",
    "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE",
    "HARM_CATEGORY_SEXUAL",
    "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];

/// `snake_case` → `camelCase`.
fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Google's answer to a native `generateContent` / `streamGenerateContent` body it refuses.
pub fn check_generate(body: &Value) -> Option<GoogleError> {
    let fields = body.as_object()?;
    if let Some(name) = fields.keys().find(|k| !GENERATE_FIELDS.contains(&camel(k).as_str())) {
        return Some(google::unknown_field(name));
    }
    let settings = fields.get("safetySettings").or_else(|| fields.get("safety_settings"));
    for (i, setting) in settings.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let category = setting.get("category").and_then(Value::as_str).unwrap_or("HARM_CATEGORY_UNSPECIFIED");
        if !HARM_CATEGORIES.contains(&category) {
            return Some(google::invalid_enum(&format!("safety_settings[{i}].category"), "HarmCategory", category));
        }
    }
    // Files and cached contents named: [`crate::resources::Resources::check_refs`].
    None
}

/// Google's answer to a chat completion body it refuses (unknown top-level fields).
pub fn check_chat(body: &Value) -> Option<GoogleError> {
    let fields = body.as_object()?;
    fields.keys().find(|k| !CHAT_FIELDS.contains(&k.as_str())).map(|name| google::unknown_field(name))
}
