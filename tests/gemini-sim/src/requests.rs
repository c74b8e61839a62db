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

/// The fields of the OpenAPI `Schema` a function declaration's `parameters` takes.
const SCHEMA_FIELDS: [&str; 22] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Google's answer to a native `generateContent` / `streamGenerateContent` body it refuses
/// (for `model`).
pub fn check_generate(body: &Value, model: &str) -> Option<GoogleError> {
    let fields = body.as_object()?;
    if let Some(name) = fields.keys().find(|k| !GENERATE_FIELDS.contains(&camel(k).as_str())) {
        return Some(google::unknown_field(name));
    }
    if let Some(refused) = check_tools(body) {
        return Some(refused);
    }
    if let Some(refused) = crate::agent::check_signatures(body, model) {
        return Some(refused);
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

/// Google's answer to function declarations it refuses: a `parameters` schema (the OpenAPI
/// subset, a protobuf message) with a field it does not have — `$schema`,
/// `additionalProperties`, `exclusiveMinimum`: the 400s every agent proxy has reported — and a
/// `parametersJsonSchema` that names its own `$schema` (modelled: Google's wording for it is not
/// published; see docs/agents.md).
fn check_tools(body: &Value) -> Option<GoogleError> {
    let tools = body.get("tools").and_then(Value::as_array)?;
    for (i, tool) in tools.iter().enumerate() {
        let declarations = tool.get("functionDeclarations").or_else(|| tool.get("function_declarations"));
        for (j, declaration) in declarations.and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("tools[{i}].function_declarations[{j}]");
            let json_schema =
                declaration.get("parametersJsonSchema").or_else(|| declaration.get("parameters_json_schema"));
            if let Some(parameters) = declaration.get("parameters") {
                if json_schema.is_some() {
                    return Some(google::bad_request(&format!(
                        "Invalid value at '{at}': parameters and parameters_json_schema are mutually exclusive."
                    )));
                }
                if let Some(name) = unknown_schema_field(parameters, 0) {
                    return Some(google::unknown_field_at(&name, &format!("{at}.parameters")));
                }
            }
            if json_schema.is_some_and(|schema| names_schema_dialect(schema, 0)) {
                return Some(google::unknown_field_at("$schema", &format!("{at}.parameters_json_schema")));
            }
        }
    }
    None
}

/// The first field of an OpenAPI schema (or one inside it) that the `Schema` message lacks.
fn unknown_schema_field(schema: &Value, depth: usize) -> Option<String> {
    let fields = schema.as_object()?;
    if depth > 64 {
        return None;
    }
    for (name, value) in fields {
        if !SCHEMA_FIELDS.contains(&camel(name).as_str()) {
            return Some(name.clone());
        }
        let inner = match name.as_str() {
            "properties" => {
                value.as_object().into_iter().flat_map(|m| m.values()).find_map(|s| unknown_schema_field(s, depth + 1))
            }
            "items" => unknown_schema_field(value, depth + 1),
            "anyOf" | "any_of" => {
                value.as_array().into_iter().flatten().find_map(|s| unknown_schema_field(s, depth + 1))
            }
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
    }
    None
}

/// Does a JSON Schema (or one inside it) name its dialect (`$schema`)?
fn names_schema_dialect(schema: &Value, depth: usize) -> bool {
    let Some(fields) = schema.as_object() else { return false };
    if depth > 64 {
        return false;
    }
    fields.iter().any(|(name, value)| match name.as_str() {
        "$schema" => true,
        "properties" | "$defs" => {
            value.as_object().into_iter().flat_map(|m| m.values()).any(|s| names_schema_dialect(s, depth + 1))
        }
        "items" | "additionalProperties" => names_schema_dialect(value, depth + 1),
        "anyOf" | "oneOf" | "prefixItems" => {
            value.as_array().into_iter().flatten().any(|s| names_schema_dialect(s, depth + 1))
        }
        _ => false,
    })
}
