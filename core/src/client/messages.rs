//! Anthropic's Messages API (`POST /v1/messages`, what Claude Code speaks) as a request to
//! Google's native `generateContent` / `streamGenerateContent` — and `count_tokens` as
//! `countTokens`. The answer's way back is [`crate::client::messages_answer`].
//!
//! What each field becomes (docs/coding-agents.md has the sources):
//! - `system` (a string or text blocks) → `systemInstruction`; the per-request
//!   `x-anthropic-billing-header:` block Claude Code puts first is dropped (it would change the
//!   prompt's prefix on every request and defeat Google's implicit cache).
//! - `messages` → `contents`: `user` → `user`, `assistant` → `model`, and a `system` message in
//!   the middle of the conversation is user text. Turns of one role in a row are merged. Blocks:
//!   `text`; `image` and `document` (base64 → `inlineData`, a URL → `fileData`, a plain-text
//!   document → text); `tool_use` → `functionCall`; `tool_result` → `functionResponse` (named
//!   by the `tool_use` of the same id earlier in the request; its images follow as parts);
//!   `thinking` carries its `signature` to the next `functionCall` as Google's
//!   `thoughtSignature` (its text is not sent back); others are dropped. A model turn's first
//!   call without a signature gets Google's documented placeholder (history Gemini never
//!   signed); a last model turn with calls nobody answered is dropped.
//! - `tools` → `functionDeclarations` with `parametersJsonSchema` cleaned and names made
//!   Google's ([`crate::client::tools`]); server tools (`web_search_…`) are not sent.
//!   `tool_choice` → `functionCallingConfig`.
//! - `max_tokens`, `stop_sequences` (Google takes 5), `temperature`, `top_p`, `top_k` (not for
//!   Gemini 3.6 and later, which deprecated them), `thinking` and `output_config` →
//!   `generationConfig`. Other fields (`metadata`, `cache_control`, `context_management`, …)
//!   are ignored, never refused.

use crate::client::envelope::ErrorReply;
use crate::client::native::{self, call_part, text_part, Turns, MAX_STOP_SEQUENCES};
use crate::client::tools::{clean_schema, ToolNames};
use serde_json::{json, Map, Value};

/// The billing line Claude Code sends as its first system block.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";

/// A Messages request, read.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    /// The model the client asked for (`claude-sonnet-4-6`, or a Gemini model).
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
    fields: Map<String, Value>,
}

/// A request refused, in the words Anthropic's API uses.
fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::bad_request("invalid_request_error", message)
}

impl MessagesRequest {
    /// Reads `body` (`count_tokens`: the count's body, which has no `max_tokens`).
    pub fn read(body: &[u8], count_tokens: bool) -> Result<Self, ErrorReply> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else { return Err(invalid("The request body is not a JSON object.")) };
        let model = match fields.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            _ => return Err(invalid("model: Field required")),
        };
        if !matches!(fields.get("messages"), Some(Value::Array(_))) {
            return Err(invalid("messages: Field required"));
        }
        if !count_tokens && !fields.get("max_tokens").is_some_and(Value::is_u64) {
            return Err(invalid("max_tokens: Field required"));
        }
        let stream = fields.get("stream").and_then(Value::as_bool).unwrap_or(false);
        Ok(MessagesRequest { model, stream, fields })
    }

    /// Google's `GenerateContentRequest` for `gemini` (the model the attempts use).
    pub fn to_google(&self, gemini: &str, names: &mut ToolNames) -> Result<Vec<u8>, ErrorReply> {
        let mut request = self.prompt(names)?;
        let config = self.generation_config(gemini);
        if !config.is_empty() {
            request.insert("generationConfig".into(), Value::Object(config));
        }
        if let Some(tool_config) = self.tool_config(names) {
            request.insert("toolConfig".into(), tool_config);
        }
        serde_json::to_vec(&request).map_err(|e| invalid(e.to_string()))
    }

    /// Google's `countTokens` body for `gemini`: the prompt as a `generateContentRequest`.
    pub fn to_count_tokens(&self, gemini: &str) -> Result<Vec<u8>, ErrorReply> {
        let mut request = self.prompt(&mut ToolNames::default())?;
        request.insert("model".into(), Value::String(format!("models/{gemini}")));
        serde_json::to_vec(&json!({"generateContentRequest": request})).map_err(|e| invalid(e.to_string()))
    }

    /// `contents`, `systemInstruction` and `tools`.
    fn prompt(&self, names: &mut ToolNames) -> Result<Map<String, Value>, ErrorReply> {
        let mut request = Map::new();
        let contents = contents(self.fields.get("messages"), names)?;
        if contents.is_empty() {
            return Err(invalid("messages: at least one message with content is required"));
        }
        request.insert("contents".into(), Value::Array(contents));
        if let Some(system) = system_instruction(self.fields.get("system")) {
            request.insert("systemInstruction".into(), system);
        }
        if let Some(tools) = tools(self.fields.get("tools"), names) {
            request.insert("tools".into(), tools);
        }
        Ok(request)
    }

    fn generation_config(&self, gemini: &str) -> Map<String, Value> {
        let mut config = Map::new();
        let field = |name: &str| self.fields.get(name);
        if let Some(max) = field("max_tokens").and_then(Value::as_u64).filter(|&n| n > 0) {
            config.insert("maxOutputTokens".into(), max.into());
        }
        if let Some(Value::Array(stops)) = field("stop_sequences") {
            let stops: Vec<Value> = stops.iter().filter(|s| s.is_string()).take(MAX_STOP_SEQUENCES).cloned().collect();
            if !stops.is_empty() {
                config.insert("stopSequences".into(), Value::Array(stops));
            }
        }
        if !native::drops_sampling(gemini) {
            for (theirs, google) in [("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")] {
                if let Some(n) = field(theirs).filter(|v| v.is_number()) {
                    config.insert(google.into(), n.clone());
                }
            }
        }
        if let Some(thinking) = thinking_config(field("thinking"), field("output_config"), gemini) {
            config.insert("thinkingConfig".into(), thinking);
        }
        let format = field("output_config").and_then(|c| c.get("format"));
        if let Some(schema) = format.and_then(|f| f.get("schema")) {
            config.insert("responseMimeType".into(), "application/json".into());
            config.insert("responseJsonSchema".into(), clean_schema(schema));
        }
        config
    }

    fn tool_config(&self, names: &mut ToolNames) -> Option<Value> {
        let choice = self.fields.get("tool_choice")?;
        let (mode, only) = match choice.get("type").and_then(Value::as_str)? {
            "auto" => ("AUTO", None),
            "any" => ("ANY", None),
            "none" => ("NONE", None),
            "tool" => ("ANY", choice.get("name").and_then(Value::as_str).map(|n| names.to_google(n))),
            _ => return None,
        };
        Some(native::tool_config(mode, only))
    }
}

/// `thinking` (and `output_config.effort`) as Google's `thinkingConfig`: a budget for Gemini
/// 2.5, a level for the later ones. None when the client did not ask for thinking.
fn thinking_config(thinking: Option<&Value>, output: Option<&Value>, gemini: &str) -> Option<Value> {
    let thinking = thinking?;
    let kind = thinking.get("type").and_then(Value::as_str)?;
    let effort = output.and_then(|o| o.get("effort")).and_then(Value::as_str);
    let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
    let level = match (kind, effort, budget) {
        ("disabled", ..) => return None,
        ("enabled", _, Some(budget)) => level_of_budget(budget),
        (_, Some("low"), _) => "low",
        (_, Some("medium"), _) => "medium",
        _ => "high",
    };
    let shown = thinking.get("display").and_then(Value::as_str) != Some("omitted");
    Some(native::thinking_config(level, budget, shown, gemini))
}

/// Budgets in the buckets peers use: 4,096 and up high, 2,048 medium, else low.
fn level_of_budget(budget: u64) -> &'static str {
    match budget {
        4096.. => "high",
        2048.. => "medium",
        _ => "low",
    }
}

/// `system` as Google's `systemInstruction`, without Claude Code's billing line.
fn system_instruction(system: Option<&Value>) -> Option<Value> {
    let parts: Vec<Value> = match system? {
        Value::String(text) => vec![json!({"text": text})],
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .filter(|text| !text.starts_with(BILLING_HEADER))
            .map(|text| json!({"text": text}))
            .collect(),
        _ => Vec::new(),
    };
    let parts: Vec<Value> = parts.into_iter().filter(|p| p["text"].as_str().is_some_and(|t| !t.is_empty())).collect();
    (!parts.is_empty()).then(|| json!({"parts": parts}))
}

/// `tools` as Google's: one entry of function declarations.
fn tools(tools: Option<&Value>, names: &mut ToolNames) -> Option<Value> {
    let Value::Array(tools) = tools? else { return None };
    let declarations = tools
        .iter()
        .filter(|tool| tool.get("type").and_then(Value::as_str).is_none_or(|t| t == "custom"))
        .filter_map(|tool| {
            let name = tool.get("name").and_then(Value::as_str)?;
            let description = tool.get("description").and_then(Value::as_str);
            Some(native::declaration(name, description, tool.get("input_schema").unwrap_or(&Value::Null), names))
        })
        .collect();
    native::tools(declarations)
}

/// `messages` as Google's `contents`.
fn contents(messages: Option<&Value>, names: &mut ToolNames) -> Result<Vec<Value>, ErrorReply> {
    let Some(Value::Array(messages)) = messages else { return Ok(Vec::new()) };
    let calls = call_names(messages);
    let mut turns = Turns::default();
    for (i, message) in messages.iter().enumerate() {
        let role = match message.get("role").and_then(Value::as_str) {
            Some("user" | "system") => "user",
            Some("assistant") => "model",
            _ => return Err(invalid(format!("messages.{i}.role: Input should be 'user' or 'assistant'"))),
        };
        turns.push(role, parts(message.get("content"), role, &calls, names));
    }
    Ok(turns.contents())
}

/// The name of each `tool_use` id in the request, for the results that answer it.
fn call_names(messages: &[Value]) -> Vec<(&str, &str)> {
    messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .filter_map(|b| Some((b.get("id")?.as_str()?, b.get("name")?.as_str()?)))
        .collect()
}

/// One message's content as Google's parts.
fn parts(content: Option<&Value>, role: &str, calls: &[(&str, &str)], names: &mut ToolNames) -> Vec<Value> {
    let blocks = match content {
        Some(Value::String(text)) => return text_part(text).into_iter().collect(),
        Some(Value::Array(blocks)) => blocks,
        _ => return Vec::new(),
    };
    let mut parts = Vec::new();
    let mut signature: Option<&str> = None;
    for block in blocks {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "text" => parts.extend(block.get("text").and_then(Value::as_str).and_then(text_part)),
            "image" | "document" => parts.extend(media_part(block)),
            "thinking" => signature = block.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()),
            "tool_use" if role == "model" => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("tool");
                let args = block.get("input").cloned().unwrap_or(Value::Null);
                parts.push(call_part(&names.to_google(name), args, signature.take()));
            }
            "tool_result" => parts.extend(tool_result(block, calls, names)),
            _ => {}
        }
    }
    parts
}

/// An `image` or `document` block: base64 inline, a URL by reference, plain text as text.
fn media_part(block: &Value) -> Option<Value> {
    let source = block.get("source")?;
    match source.get("type").and_then(Value::as_str)? {
        "base64" => Some(json!({"inlineData": {
            "mimeType": source.get("media_type")?.as_str()?,
            "data": source.get("data")?.as_str()?,
        }})),
        "url" => {
            let mut data = json!({"fileUri": source.get("url")?.as_str()?});
            if block.get("type").and_then(Value::as_str) == Some("document") {
                data["mimeType"] = json!("application/pdf");
            }
            Some(json!({ "fileData": data }))
        }
        "text" => text_part(source.get("data")?.as_str()?),
        _ => None,
    }
}

/// A `tool_result` as a `functionResponse` (and the images it holds, as parts after it).
fn tool_result(block: &Value, calls: &[(&str, &str)], names: &mut ToolNames) -> Vec<Value> {
    let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
    let name = calls.iter().find(|(call, _)| *call == id).map_or("tool", |(_, name)| name);
    let mut text = String::new();
    let mut media = Vec::new();
    match block.get("content") {
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(item.get("text").and_then(Value::as_str).unwrap_or_default());
                    }
                    Some("image" | "document") => media.extend(media_part(item)),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    let is_error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
    let response = if is_error { json!({"error": text}) } else { json!({"content": text}) };
    let mut parts = vec![json!({"functionResponse": {"name": names.to_google(name), "response": response}})];
    parts.extend(media);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google(body: Value) -> Value {
        let request = MessagesRequest::read(body.to_string().as_bytes(), false).expect("reads");
        let bytes = request.to_google("gemini-3.5-flash", &mut ToolNames::default()).expect("translates");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn what_claude_code_sends_becomes_a_native_request() {
        let out = google(json!({
            "model": "claude-sonnet-4-6", "max_tokens": 32000, "stream": true,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=abc;"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {"role": "user", "content": "List the files."},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "", "signature": "c2lnLTE="},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
                {"role": "system", "content": "Reminder: be brief."}
            ],
            "tools": [{"name": "Bash", "description": "Runs a command", "input_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": {"command": {"type": "string"}}, "required": ["command"], "additionalProperties": false}}],
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "high"},
            "metadata": {"user_id": "u"}, "context_management": {"edits": []}
        }));
        assert_eq!(out["systemInstruction"], json!({"parts": [{"text": "You are Claude Code."}]}));
        let contents = out["contents"].as_array().expect("contents");
        assert_eq!(contents.len(), 3, "{contents:?}");
        assert_eq!(contents[1]["parts"][0]["functionCall"], json!({"name": "Bash", "args": {"command": "ls"}}));
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "c2lnLTE=");
        assert_eq!(
            contents[2]["parts"],
            json!([{"functionResponse": {"name": "Bash", "response": {"content": "a.txt"}}}, {"text": "Reminder: be brief."}])
        );
        let declaration = &out["tools"][0]["functionDeclarations"][0];
        assert!(declaration["parametersJsonSchema"].get("$schema").is_none());
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"includeThoughts": false, "thinkingLevel": "high"})
        );
        assert_eq!(out["generationConfig"]["maxOutputTokens"], 32000);
    }

    #[test]
    fn calls_gemini_never_signed_get_the_placeholder_and_an_unanswered_last_call_goes() {
        let out = google(json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "a", "name": "Read", "input": {}},
                {"type": "tool_use", "id": "b", "name": "Read", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "x"}]},
                {"type": "tool_result", "tool_use_id": "b", "content": "y", "is_error": true}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "Read", "input": {}}]}
        ]}));
        let contents = out["contents"].as_array().expect("contents");
        assert_eq!(contents.len(), 3, "the unanswered call is dropped");
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], native::PLACEHOLDER_SIGNATURE);
        assert!(contents[1]["parts"][1].get("thoughtSignature").is_none(), "only a step's first call");
        assert_eq!(contents[2]["parts"][1]["functionResponse"]["response"], json!({"error": "y"}));
    }

    #[test]
    fn images_in_tool_results_follow_the_response_and_tool_choice_is_googles() {
        let out = google(json!({"model": "m", "max_tokens": 10,
        "tools": [{"name": "shot", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "shot"},
        "messages": [
            {"role": "user", "content": "look"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "s", "name": "shot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "s", "content": [
                {"type": "text", "text": "a screenshot"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
            ]}]}
        ]}));
        assert_eq!(
            out["contents"][2]["parts"],
            json!([{"functionResponse": {"name": "shot", "response": {"content": "a screenshot"}}},
                   {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}])
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["shot"]}})
        );
    }

    #[test]
    fn sampling_stops_at_gemini_3_6_and_stop_sequences_at_five() {
        let body = json!({"model": "m", "max_tokens": 5, "temperature": 0.2, "top_k": 3,
            "stop_sequences": ["a", "b", "c", "d", "e", "f"], "messages": [{"role": "user", "content": "x"}]});
        let request = MessagesRequest::read(body.to_string().as_bytes(), false).expect("reads");
        let config = |model: &str| -> Value {
            let bytes = request.to_google(model, &mut ToolNames::default()).expect("translates");
            serde_json::from_slice::<Value>(&bytes).expect("json")["generationConfig"].clone()
        };
        assert_eq!(config("gemini-3.5-flash")["temperature"], 0.2);
        assert!(config("gemini-3.6-flash").get("temperature").is_none());
        assert!(config("gemini-4-pro").get("topK").is_none());
        assert_eq!(config("gemini-3.5-flash")["stopSequences"].as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn a_request_missing_what_anthropic_requires_is_a_400() {
        for body in [
            json!({"max_tokens": 1, "messages": []}),
            json!({"model": "m", "max_tokens": 1}),
            json!({"model": "m", "messages": []}),
            json!([1]),
        ] {
            let refused = MessagesRequest::read(body.to_string().as_bytes(), false).expect_err("refused");
            assert_eq!(refused.status, 400, "{body}");
        }
        assert!(MessagesRequest::read(br#"{"model":"m","messages":[]}"#, true).is_ok(), "a count needs no max_tokens");
        let empty = MessagesRequest::read(br#"{"model":"m","max_tokens":1,"messages":[]}"#, false).expect("reads");
        assert_eq!(empty.to_google("g", &mut ToolNames::default()).map_err(|e| e.status), Err(400));
    }

    #[test]
    fn a_count_wraps_the_prompt_as_google_asks() {
        let request = MessagesRequest::read(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#, true)
            .expect("reads");
        let out: Value =
            serde_json::from_slice(&request.to_count_tokens("gemini-3.5-flash").expect("ok")).expect("json");
        assert_eq!(
            out,
            json!({"generateContentRequest": {"model": "models/gemini-3.5-flash",
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}})
        );
    }
}
