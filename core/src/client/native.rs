//! Google's native request as both agent translators build it ([`crate::client::messages`],
//! [`crate::client::responses`]): turns of one role merged, the last model turn with calls no
//! one answered dropped, each model turn's first call signed, a tool's declaration, the
//! sampling fields Gemini 3.6 deprecated, and `thinkingConfig` from a level.

use crate::client::tools::{clean_schema, ToolNames};
use serde_json::{json, Value};

/// What Google accepts in place of a signature for a call it did not make (its documented
/// placeholder for history from elsewhere).
pub const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// Google reads at most this many stop sequences.
pub(crate) const MAX_STOP_SEQUENCES: usize = 5;

/// Google's `contents`, turn by turn.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    turns: Vec<(&'static str, Vec<Value>)>,
}

impl Turns {
    /// `parts` said by `role` (`user` or `model`): a turn of their own, or the end of the last
    /// one when it has the same role.
    pub(crate) fn push(&mut self, role: &'static str, parts: Vec<Value>) {
        if parts.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last, have)) if *last == role => have.extend(parts),
            _ => self.turns.push((role, parts)),
        }
    }

    /// The `contents`: a last model turn with calls no one answered (an interrupted tool use)
    /// dropped, and each model turn's first call signed — with Google's signature, or its
    /// placeholder.
    pub(crate) fn contents(mut self) -> Vec<Value> {
        let unanswered = |(role, parts): &(&str, Vec<Value>)| *role == "model" && parts.iter().any(is_call);
        if self.turns.last().is_some_and(unanswered) {
            self.turns.pop();
        }
        for (_, parts) in self.turns.iter_mut().filter(|(role, _)| *role == "model") {
            if let Some(first) = parts.iter_mut().find(|p| is_call(p)) {
                if first.get("thoughtSignature").is_none() {
                    first["thoughtSignature"] = json!(PLACEHOLDER_SIGNATURE);
                }
            }
        }
        self.turns.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect()
    }
}

fn is_call(part: &Value) -> bool {
    part.get("functionCall").is_some()
}

/// A `functionCall` part, with the signature Google gave it when there is one.
pub(crate) fn call_part(name: &str, args: Value, signature: Option<&str>) -> Value {
    let args = if args.is_object() { args } else { json!({}) };
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if let Some(signature) = signature {
        part["thoughtSignature"] = json!(signature);
    }
    part
}

/// A text part; none for empty text.
pub(crate) fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"text": text}))
}

/// A function's declaration: its name made Google's, its schema cleaned.
pub(crate) fn declaration(name: &str, description: Option<&str>, schema: &Value, names: &mut ToolNames) -> Value {
    let mut declaration = json!({"name": names.to_google(name), "parametersJsonSchema": clean_schema(schema)});
    if let Some(description) = description {
        declaration["description"] = json!(description);
    }
    declaration
}

/// Google's `tools` for `declarations`; none when there are none.
pub(crate) fn tools(declarations: Vec<Value>) -> Option<Value> {
    (!declarations.is_empty()).then(|| json!([{ "functionDeclarations": declarations }]))
}

/// Google's `toolConfig` for a mode (`AUTO`, `ANY`, `NONE`), with the only function allowed.
pub(crate) fn tool_config(mode: &str, only: Option<String>) -> Value {
    let mut config = json!({"mode": mode});
    if let Some(name) = only {
        config["allowedFunctionNames"] = json!([name]);
    }
    json!({ "functionCallingConfig": config })
}

/// Gemini 3.6 and later deprecated `temperature`, `topP` and `topK`.
pub(crate) fn drops_sampling(gemini: &str) -> bool {
    let Some(version) = gemini.strip_prefix("gemini-") else { return false };
    let mut numbers = version.split(['.', '-']).map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), _) if major > 3 => true,
        (Some(3), Some(minor)) => minor >= 6,
        _ => false,
    }
}

/// Google's `thinkingConfig` for a `level` (`low`, `medium`, `high`): a level for Gemini 3 and
/// later; for Gemini 2.5 the client's `budget` (at most 24,576), or -1 (as much as the model sees
/// fit). `shown`: the thoughts' text comes back.
pub(crate) fn thinking_config(level: &str, budget: Option<u64>, shown: bool, gemini: &str) -> Value {
    let mut config = json!({"includeThoughts": shown});
    if gemini.starts_with("gemini-2.") {
        config["thinkingBudget"] = budget.map_or(json!(-1), |b| json!(b.min(24_576)));
    } else {
        config["thinkingLevel"] = json!(level);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_merge_sign_and_drop_an_unanswered_last_call() {
        let mut turns = Turns::default();
        turns.push("user", vec![json!({"text": "a"})]);
        turns.push("user", vec![json!({"text": "b"})]);
        turns.push("model", vec![call_part("f", json!({}), None), call_part("g", json!(1), None)]);
        turns.push("user", vec![]);
        turns.push("user", vec![json!({"functionResponse": {"name": "f", "response": {}}})]);
        turns.push("model", vec![call_part("h", json!({}), Some("sig"))]);
        let contents = turns.contents();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[0]["parts"].as_array().map(Vec::len), Some(2));
        assert_eq!(contents[1]["parts"][0]["thoughtSignature"], PLACEHOLDER_SIGNATURE);
        assert!(contents[1]["parts"][1].get("thoughtSignature").is_none());
        assert_eq!(contents[1]["parts"][1]["functionCall"]["args"], json!({}));
    }

    #[test]
    fn sampling_ends_at_gemini_3_6() {
        assert!(!drops_sampling("gemini-3.5-flash"));
        assert!(drops_sampling("gemini-3.6-flash"));
        assert!(drops_sampling("gemini-4-pro"));
        assert!(!drops_sampling("learnlm-2"));
    }
}
