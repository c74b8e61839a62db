//! A scripted model for coding agents' tests, and Gemini 3's thought signatures.
//!
//! **The script.** A conversation whose user text holds `[[sim-agent file=PATH text=WORDS]]`
//! (WORDS to the closing brackets) is answered as a model that uses its tools would: first a
//! call that writes WORDS to PATH, then, once that call's result is in the conversation, a call
//! that reads PATH back, then a final text quoting what the read returned. The calls use the
//! tools the request declares: `Write` / `Read` (Claude Code), else a shell tool
//! (`exec_command` or `shell`, Codex; `Bash`, Claude Code).
//!
//! **Signatures.** Gemini 3 models sign their function calls (`thoughtSignature` on the first
//! call of a step) and refuse a request whose current turn replays a call without its
//! signature — the turn that starts at the last user content with text (a function's response
//! does not start one) — with Google's 400 (docs/coding-agents.md, reported verbatim by many).

use crate::google::{self, GoogleError};
use serde_json::{json, Value};

/// The signature the simulator puts on calls (opaque to clients, as Google's are).
pub const SIGNATURE: &str = "c2ltLXRob3VnaHQtc2lnbmF0dXJl";

/// Does `model` sign its calls (Gemini 3 and later)?
pub fn signs(model: &str) -> bool {
    model.strip_prefix("gemini-").and_then(|v| v.split(['.', '-']).next()).and_then(|m| m.parse::<u32>().ok())
        >= Some(3)
}

/// The task a conversation sets the script, if it sets one: (path, words).
fn task(contents: &[Value]) -> Option<(String, String)> {
    let texts = contents
        .iter()
        .filter(|c| c.get("role").and_then(Value::as_str) != Some("model"))
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str));
    for text in texts {
        let Some(start) = text.find("[[sim-agent ") else { continue };
        let rest = &text[start + "[[sim-agent ".len()..];
        let end = rest.find("]]")?;
        let spec = &rest[..end];
        let file = spec.strip_prefix("file=")?.split_whitespace().next()?.to_string();
        let words = spec.split_once(" text=")?.1.trim().to_string();
        return Some((file, words));
    }
    None
}

/// The script's next part for a conversation that sets it a task: a call, or the final text.
pub fn next_part(body: &Value, model: &str) -> Option<Value> {
    let contents = body.get("contents").and_then(Value::as_array)?;
    let (file, words) = task(contents)?;
    let responses: Vec<&Value> = contents
        .iter()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("functionResponse"))
        .collect();
    let tools = declared(body);
    let mut part = match responses.len() {
        0 => write_call(&tools, &file, &words),
        1 => read_call(&tools, &file),
        _ => {
            let read = responses.last().map(|r| r["response"].to_string()).unwrap_or_default();
            return Some(json!({"text": format!("Done. The file says: {read}")}));
        }
    };
    if signs(model) {
        part["thoughtSignature"] = json!(SIGNATURE);
    }
    Some(part)
}

/// The names of the functions a request declares.
fn declared(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn call(name: &str, args: Value) -> Value {
    json!({"functionCall": {"name": name, "args": args}})
}

fn shell(tools: &[String], script: String) -> Value {
    if tools.iter().any(|t| t == "exec_command") {
        return call("exec_command", json!({"cmd": script}));
    }
    if tools.iter().any(|t| t == "shell") {
        return call("shell", json!({"command": ["bash", "-lc", script]}));
    }
    call("Bash", json!({"command": script}))
}

fn write_call(tools: &[String], file: &str, words: &str) -> Value {
    if tools.iter().any(|t| t == "Write") {
        return call("Write", json!({"file_path": file, "content": words}));
    }
    shell(tools, format!("printf '%s' '{words}' > '{file}'"))
}

fn read_call(tools: &[String], file: &str) -> Value {
    if tools.iter().any(|t| t == "Read") {
        return call("Read", json!({"file_path": file}));
    }
    shell(tools, format!("cat '{file}'"))
}

/// Google's 400 for a request whose current turn replays a call without its signature
/// (models that sign only).
pub fn check_signatures(body: &Value, model: &str) -> Option<GoogleError> {
    if !signs(model) {
        return None;
    }
    let contents = body.get("contents").and_then(Value::as_array)?;
    let starts_turn = |c: &Value| {
        c.get("role").and_then(Value::as_str) == Some("user")
            && c.get("parts")
                .and_then(Value::as_array)
                .is_some_and(|parts| parts.iter().any(|p| p.get("text").is_some()))
    };
    let turn = contents.iter().rposition(starts_turn).unwrap_or(0);
    for (position, content) in contents.iter().enumerate().skip(turn) {
        if content.get("role").and_then(Value::as_str) != Some("model") {
            continue;
        }
        let parts = content.get("parts").and_then(Value::as_array);
        let Some(first) = parts.into_iter().flatten().find(|p| p.get("functionCall").is_some()) else { continue };
        if first.get("thoughtSignature").and_then(Value::as_str).is_none_or(str::is_empty) {
            let name = first.pointer("/functionCall/name").and_then(Value::as_str).unwrap_or_default();
            return Some(google::bad_request(&format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work \
                 correctly, and missing thought_signature may lead to degraded model performance. Additional data, \
                 function call `default_api:{name}` , position {}. Please refer to \
                 https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                position + 1
            )));
        }
    }
    None
}
