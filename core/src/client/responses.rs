//! OpenAI's Responses API (`POST /v1/responses`, what Codex speaks) as a request to Google's
//! native `generateContent` / `streamGenerateContent`. The answer's way back is
//! [`crate::client::responses_answer`].
//!
//! What each field becomes (docs/agents.md has the sources):
//! - `instructions`, and the `system` / `developer` messages that open `input` (Codex sends its
//!   base instructions so) → `systemInstruction`.
//! - `input` (a string, or items) → `contents`. `message` items: `user`, and a `system` or
//!   `developer` message later in the conversation (kept there, so the system prefix stays the
//!   same for Google's implicit cache) → `user`, `assistant` → `model`; `input_text` / `output_text` → text, `input_image` / `input_file` → `inlineData`
//!   (a `data:` URL) or `fileData`. `function_call` → `functionCall` (its `arguments` string
//!   parsed), `function_call_output` → `functionResponse` named by the call of the same
//!   `call_id`; `custom_tool_call` (a freeform tool such as `apply_patch`) → a call with one
//!   `input` argument. A `reasoning` item's `encrypted_content` is the signature of the call
//!   that follows it (ours are marked, so one from another provider is never sent to Google);
//!   other items are not sent. A model turn's first call without one gets Google's placeholder.
//! - `tools`: `function` → a declaration; `custom` → a declaration with one string `input`.
//!   Others (`web_search`, `local_shell`, namespaces) are not sent. `tool_choice` →
//!   `functionCallingConfig`.
//! - `max_output_tokens`, `temperature`, `top_p` (not for Gemini 3.6 and later), `reasoning`
//!   (`effort` → `thinkingLevel`, a `summary` asked → the thoughts' text comes back) and
//!   `text.format` (a JSON schema) → `generationConfig`.
//! - `previous_response_id` is refused: the proxy keeps no responses, so the client sends the
//!   whole conversation (`store: false`, as Codex does).

use crate::client::envelope::ErrorReply;
use crate::client::native::{self, call_part, text_part, Turns};
use crate::client::tools::{clean_schema, ToolNames};
use serde_json::{json, Map, Value};

/// The mark on a signature the proxy handed out as a reasoning item's `encrypted_content`.
pub(crate) const SIGNATURE_MARK: &str = "gemini-signature:";

/// A Responses request, read.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// The model the client asked for (`gpt-5.1-codex`, or a Gemini model).
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
    fields: Map<String, Value>,
}

/// A request refused, in the words OpenAI's API uses.
fn invalid(message: impl Into<String>) -> ErrorReply {
    ErrorReply::bad_request("invalid_request_error", message)
}

impl ResponsesRequest {
    /// Reads `body`.
    pub fn read(body: &[u8]) -> Result<Self, ErrorReply> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("We could not parse the JSON body of your request: {e}")))?;
        let Value::Object(fields) = value else { return Err(invalid("The request body must be a JSON object.")) };
        let model = match fields.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            _ => return Err(invalid("Missing required parameter: 'model'.")),
        };
        if !matches!(fields.get("input"), Some(Value::String(_) | Value::Array(_))) {
            return Err(invalid("Missing required parameter: 'input'."));
        }
        if fields.get("previous_response_id").is_some_and(|id| !id.is_null()) {
            return Err(invalid(
                "previous_response_id is not supported: this proxy keeps no responses; send the whole conversation \
                 (store: false).",
            ));
        }
        let stream = fields.get("stream").and_then(Value::as_bool).unwrap_or(false);
        Ok(ResponsesRequest { model, stream, fields })
    }

    /// Google's `GenerateContentRequest` for `gemini`; `names` learns the tools' names, and
    /// which of them are freeform (`custom`).
    pub fn to_google(&self, gemini: &str, names: &mut ToolNames) -> Result<Vec<u8>, ErrorReply> {
        let mut request = Map::new();
        let mut system: Vec<Value> =
            self.fields.get("instructions").and_then(Value::as_str).and_then(text_part).into_iter().collect();
        let contents = self.contents(&mut system, names);
        if contents.is_empty() {
            return Err(invalid("'input' must hold at least one message with content."));
        }
        request.insert("contents".into(), Value::Array(contents));
        if !system.is_empty() {
            request.insert("systemInstruction".into(), json!({ "parts": system }));
        }
        if let Some(tools) = tools(self.fields.get("tools"), names) {
            request.insert("tools".into(), tools);
        }
        if let Some(config) = self.tool_config(names) {
            request.insert("toolConfig".into(), config);
        }
        let config = self.generation_config(gemini);
        if !config.is_empty() {
            request.insert("generationConfig".into(), Value::Object(config));
        }
        serde_json::to_vec(&request).map_err(|e| invalid(e.to_string()))
    }

    /// `input` as `contents`; the system and developer messages before the conversation's
    /// first item join `system` (the same on every request of a conversation).
    fn contents(&self, system: &mut Vec<Value>, names: &mut ToolNames) -> Vec<Value> {
        let mut turns = Turns::default();
        match self.fields.get("input") {
            Some(Value::String(text)) => turns.push("user", text_part(text).into_iter().collect()),
            Some(Value::Array(items)) => {
                let leading = items.iter().take_while(|item| is_instruction(item)).count();
                system.extend(items[..leading].iter().flat_map(|item| message_parts(item.get("content"))));
                let calls = call_names(items);
                let mut signature: Option<&str> = None;
                for item in &items[leading..] {
                    let (role, parts) = item_parts(item, &calls, &mut signature, names);
                    turns.push(role, parts);
                }
            }
            _ => {}
        }
        turns.contents()
    }

    fn generation_config(&self, gemini: &str) -> Map<String, Value> {
        let mut config = Map::new();
        let field = |name: &str| self.fields.get(name);
        if let Some(max) = field("max_output_tokens").and_then(Value::as_u64).filter(|&n| n > 0) {
            config.insert("maxOutputTokens".into(), max.into());
        }
        if !native::drops_sampling(gemini) {
            for (theirs, google) in [("temperature", "temperature"), ("top_p", "topP")] {
                if let Some(n) = field(theirs).filter(|v| v.is_number()) {
                    config.insert(google.into(), n.clone());
                }
            }
        }
        if let Some(thinking) = thinking_config(field("reasoning"), gemini) {
            config.insert("thinkingConfig".into(), thinking);
        }
        let format = field("text").and_then(|t| t.get("format"));
        if format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("json_schema") {
            if let Some(schema) = format.and_then(|f| f.get("schema")) {
                config.insert("responseMimeType".into(), "application/json".into());
                config.insert("responseJsonSchema".into(), clean_schema(schema));
            }
        }
        config
    }

    fn tool_config(&self, names: &mut ToolNames) -> Option<Value> {
        let (mode, only) = match self.fields.get("tool_choice")? {
            Value::String(choice) => match choice.as_str() {
                "auto" => ("AUTO", None),
                "required" => ("ANY", None),
                "none" => ("NONE", None),
                _ => return None,
            },
            choice => ("ANY", Some(names.to_google(choice.get("name").and_then(Value::as_str)?))),
        };
        Some(native::tool_config(mode, only))
    }
}

/// `reasoning` as `thinkingConfig`: `effort` as a level (`minimal`/`low` low, `medium`, else
/// high; `none`: no thinking asked), the thoughts' text back when a `summary` is asked.
fn thinking_config(reasoning: Option<&Value>, gemini: &str) -> Option<Value> {
    let reasoning = reasoning.filter(|r| r.is_object())?;
    let level = match reasoning.get("effort").and_then(Value::as_str) {
        Some("none") => return None,
        Some("minimal" | "low") => "low",
        Some("medium") => "medium",
        _ => "high",
    };
    let summary = reasoning.get("summary").and_then(Value::as_str);
    let shown = summary.is_some_and(|s| s != "none");
    Some(native::thinking_config(level, None, shown, gemini))
}

/// `tools` as Google's function declarations.
fn tools(tools: Option<&Value>, names: &mut ToolNames) -> Option<Value> {
    let Value::Array(tools) = tools? else { return None };
    let string_input = json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]});
    let declarations = tools
        .iter()
        .filter_map(|tool| {
            let name = tool.get("name").and_then(Value::as_str)?;
            let description = tool.get("description").and_then(Value::as_str);
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => {
                    Some(native::declaration(name, description, tool.get("parameters").unwrap_or(&Value::Null), names))
                }
                Some("custom") => {
                    names.mark_freeform(name);
                    Some(native::declaration(name, description, &string_input, names))
                }
                _ => None,
            }
        })
        .collect();
    native::tools(declarations)
}

/// Is `item` a system or developer message?
fn is_instruction(item: &Value) -> bool {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    kind == "message" && matches!(item.get("role").and_then(Value::as_str), Some("system" | "developer"))
}

/// The name of each call's `call_id` in the request, for the outputs that answer it.
fn call_names(items: &[Value]) -> Vec<(&str, &str)> {
    items
        .iter()
        .filter(|i| matches!(i.get("type").and_then(Value::as_str), Some("function_call" | "custom_tool_call")))
        .filter_map(|i| Some((i.get("call_id")?.as_str()?, i.get("name")?.as_str()?)))
        .collect()
}

/// One input item as a role's parts; `signature` carries a reasoning item's signature to the
/// call after it.
fn item_parts<'v>(
    item: &'v Value,
    calls: &[(&str, &str)],
    signature: &mut Option<&'v str>,
    names: &mut ToolNames,
) -> (&'static str, Vec<Value>) {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    let field = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or_default();
    match kind {
        "message" => {
            *signature = None;
            let role = if item.get("role").and_then(Value::as_str) == Some("assistant") { "model" } else { "user" };
            (role, message_parts(item.get("content")))
        }
        "reasoning" => {
            let ours =
                item.get("encrypted_content").and_then(Value::as_str).and_then(|c| c.strip_prefix(SIGNATURE_MARK));
            *signature = ours.filter(|s| !s.is_empty());
            ("model", Vec::new())
        }
        "function_call" => {
            let args = serde_json::from_str::<Value>(field("arguments")).unwrap_or(Value::Null);
            ("model", vec![call_part(&names.to_google(field("name")), args, signature.take())])
        }
        "custom_tool_call" => {
            let args = json!({"input": field("input")});
            ("model", vec![call_part(&names.to_google(field("name")), args, signature.take())])
        }
        "function_call_output" | "custom_tool_call_output" => {
            let id = field("call_id");
            let name = calls.iter().find(|(call, _)| *call == id).map_or("tool", |(_, name)| name);
            let (text, media) = output_content(item.get("output"));
            let response = json!({"functionResponse": {"name": names.to_google(name), "response": {"content": text}}});
            ("user", std::iter::once(response).chain(media).collect())
        }
        _ => ("user", Vec::new()),
    }
}

/// A message's content as parts.
fn message_parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) => text_part(text).into_iter().collect(),
        Some(Value::Array(parts)) => parts.iter().filter_map(content_part).collect(),
        _ => Vec::new(),
    }
}

/// One content part: text, an image or a file.
fn content_part(part: &Value) -> Option<Value> {
    let field = |name: &str| part.get(name).and_then(Value::as_str);
    match field("type")? {
        "input_text" | "output_text" | "text" => text_part(field("text")?),
        "input_image" => media(field("image_url")?, None),
        "input_file" => match (field("file_data"), field("file_url")) {
            (Some(data), _) => media(data, Some("application/pdf")),
            (None, Some(url)) => media(url, Some("application/pdf")),
            _ => None,
        },
        _ => None,
    }
}

/// A `data:` URL inline, any other URL by reference.
fn media(url: &str, default_type: Option<&str>) -> Option<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = rest.split_once(";base64,")?;
        return Some(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let mut data = json!({ "fileUri": url });
    if let Some(mime) = default_type {
        data["mimeType"] = json!(mime);
    }
    Some(json!({ "fileData": data }))
}

/// A call's output: its text (a string, or the text of its parts) and the images it holds.
fn output_content(output: Option<&Value>) -> (String, Vec<Value>) {
    match output {
        Some(Value::String(text)) => (text.clone(), Vec::new()),
        Some(Value::Array(parts)) => {
            let mut text = Vec::new();
            let mut media = Vec::new();
            for part in parts.iter().filter_map(content_part) {
                match part.get("text").and_then(Value::as_str) {
                    Some(t) => text.push(t.to_string()),
                    None => media.push(part),
                }
            }
            (text.join("\n"), media)
        }
        _ => (String::new(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::native::PLACEHOLDER_SIGNATURE;

    fn google(body: Value) -> (Value, ToolNames) {
        let request = ResponsesRequest::read(body.to_string().as_bytes()).expect("reads");
        let mut names = ToolNames::default();
        let bytes = request.to_google("gemini-3.5-flash", &mut names).expect("translates");
        (serde_json::from_slice(&bytes).expect("json"), names)
    }

    #[test]
    fn what_codex_sends_becomes_a_native_request() {
        let (out, names) = google(json!({
            "model": "gpt-5.1-codex", "instructions": "You are Codex.", "stream": true, "store": false,
            "include": ["reasoning.encrypted_content"], "parallel_tool_calls": false,
            "reasoning": {"effort": "medium", "summary": "auto"}, "prompt_cache_key": "k",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: none"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "write a.txt"}]},
                {"type": "message", "role": "developer", "content": "later rules"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gemini-signature:U0lH"},
                {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "from-openai"},
                {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "call_2", "output": "done"}
            ],
            "tools": [
                {"type": "function", "name": "exec_command", "description": "Runs", "strict": false,
                 "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "additionalProperties": false}},
                {"type": "custom", "name": "apply_patch", "description": "Patch", "format": {"type": "grammar"}},
                {"type": "web_search"}
            ],
            "tool_choice": "auto"
        }));
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "You are Codex."}, {"text": "sandbox: none"}]}),
            "the developer message before the conversation is an instruction"
        );
        let contents = out["contents"].as_array().expect("contents");
        assert_eq!(contents.len(), 5, "{contents:?}");
        assert_eq!(contents[0]["parts"], json!([{"text": "write a.txt"}, {"text": "later rules"}]));
        assert_eq!(contents[1]["parts"][0]["functionCall"], json!({"name": "exec_command", "args": {"cmd": "ls"}}));
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "U0lH");
        assert_eq!(contents[2]["parts"][0]["functionResponse"]["name"], "exec_command");
        assert_eq!(contents[3]["parts"][0]["functionCall"]["args"], json!({"input": "*** Begin Patch"}));
        assert_eq!(
            contents[3]["parts"][0]["thoughtSignature"], PLACEHOLDER_SIGNATURE,
            "another provider's is not sent"
        );
        let declarations = out["tools"][0]["functionDeclarations"].as_array().expect("declarations");
        assert_eq!(declarations.len(), 2);
        assert!(names.is_freeform("apply_patch") && !names.is_freeform("exec_command"));
        assert_eq!(out["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"includeThoughts": true, "thinkingLevel": "medium"})
        );
    }

    #[test]
    fn a_string_input_images_and_a_schema() {
        let (out, _) = google(json!({"model": "m", "input": "hi", "max_output_tokens": 9,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object", "$schema": "s"}}}}));
        assert_eq!(out["contents"], json!([{"role": "user", "parts": [{"text": "hi"}]}]));
        assert_eq!(out["generationConfig"]["maxOutputTokens"], 9);
        assert_eq!(out["generationConfig"]["responseJsonSchema"], json!({"type": "object"}));
        let (out, _) = google(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            {"type": "input_image", "image_url": "https://example.com/a.png"}]}]}));
        assert_eq!(out["contents"][0]["parts"][0]["inlineData"], json!({"mimeType": "image/png", "data": "AAAA"}));
        assert_eq!(out["contents"][0]["parts"][1]["fileData"]["fileUri"], "https://example.com/a.png");
    }

    #[test]
    fn what_the_proxy_cannot_do_is_a_400() {
        for body in [
            json!({"input": "x"}),
            json!({"model": "m"}),
            json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
            json!("x"),
        ] {
            let refused = ResponsesRequest::read(body.to_string().as_bytes()).expect_err("refused");
            assert_eq!(refused.status, 400, "{body}");
        }
        let empty = ResponsesRequest::read(br#"{"model":"m","input":[]}"#).expect("reads");
        assert_eq!(empty.to_google("g", &mut ToolNames::default()).map_err(|e| e.status), Err(400));
    }
}
