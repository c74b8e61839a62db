//! Tools as Google takes them, from the coding agents' dialects (Anthropic's Messages API,
//! OpenAI's Responses API): a tool's JSON Schema cleaned to the keywords Google's
//! `parametersJsonSchema` supports, and its name made one Google accepts — with the way back,
//! so the client reads its own names in the calls Google makes.
//!
//! Google documents the keywords `parametersJsonSchema` supports (`$id`, `$defs`, `$ref`,
//! `$anchor`, `type`, `format`, `title`, `description`, `enum`, `items`, `prefixItems`,
//! `minItems`, `maxItems`, `minimum`, `maximum`, `anyOf`, `oneOf`, `properties`,
//! `additionalProperties`, `required`, `propertyOrdering`); the agents' schemas carry more
//! (`$schema`, `exclusiveMinimum`, `maxLength`, `default`, `const`, `allOf`, …). A schema keeps
//! the supported ones; `const` becomes a one-value `enum`; `allOf`'s properties and required
//! names are merged into the schema; the rest goes. Only schemas are cleaned: property names
//! (the keys of `properties`, `$defs`) are kept whatever they are.
//!
//! A function name Google accepts starts with a letter or `_` and holds letters, digits, `_`,
//! `.`, `:` and `-`, at most 64 of them. Other names are rewritten (a byte it refuses becomes
//! `_`; a long name keeps its head and a hash of the whole) and remembered in [`ToolNames`].

use crate::pool::keys::Fingerprint;
use serde_json::{Map, Value};

/// The keywords a schema keeps.
const KEPT: [&str; 21] = [
    "$id",
    "$defs",
    "$ref",
    "$anchor",
    "type",
    "format",
    "title",
    "description",
    "enum",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "anyOf",
    "oneOf",
    "properties",
    "additionalProperties",
    "required",
    "propertyOrdering",
];

/// Deeper than this a schema is cut (`{}`: anything): agents' schemas are a few levels deep.
const MAX_SCHEMA_DEPTH: usize = 32;

/// The longest function name Google accepts.
const MAX_NAME: usize = 64;

/// `schema` with only what Google's `parametersJsonSchema` supports. Not an object (a client's
/// `true`, or nothing): an object schema with no properties.
pub fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(_) => clean(schema, 0),
        _ => serde_json::json!({"type": "object", "properties": {}}),
    }
}

fn clean(schema: &Value, depth: usize) -> Value {
    let Value::Object(fields) = schema else {
        // `true` / `false` schemas (allowed by JSON Schema) and anything else: anything.
        return Value::Object(Map::new());
    };
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Object(Map::new());
    }
    let mut out = Map::new();
    for (keyword, value) in fields {
        let cleaned = match keyword.as_str() {
            "properties" | "$defs" => each_property(value, depth),
            "items" | "additionalProperties" if value.is_object() => clean(value, depth + 1),
            "prefixItems" | "anyOf" | "oneOf" => each_schema(value, depth),
            "const" => {
                out.entry("enum").or_insert_with(|| Value::Array(vec![value.clone()]));
                continue;
            }
            "allOf" => continue,
            k if KEPT.contains(&k) => value.clone(),
            _ => continue,
        };
        out.insert(keyword.clone(), cleaned);
    }
    if let Some(all_of) = fields.get("allOf") {
        merge_all_of(&mut out, all_of, depth);
    }
    Value::Object(out)
}

/// A map of names to schemas (`properties`, `$defs`): the names kept, each schema cleaned.
fn each_property(value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(name, s)| (name.clone(), clean(s, depth + 1))).collect()),
        _ => Value::Object(Map::new()),
    }
}

/// A list of schemas, each cleaned.
fn each_schema(value: &Value, depth: usize) -> Value {
    match value {
        Value::Array(list) => Value::Array(list.iter().map(|s| clean(s, depth + 1)).collect()),
        _ => Value::Array(Vec::new()),
    }
}

/// `allOf`'s schemas folded into `out`: their properties and required names added, their
/// type taken if `out` has none.
fn merge_all_of(out: &mut Map<String, Value>, value: &Value, depth: usize) {
    let Value::Array(parts) = value else { return };
    for part in parts {
        let Value::Object(part) = clean(part, depth + 1) else { continue };
        for (keyword, value) in part {
            match (keyword.as_str(), out.get_mut(&keyword)) {
                ("properties", Some(Value::Object(have))) => {
                    if let Value::Object(more) = value {
                        have.extend(more);
                    }
                }
                ("required", Some(Value::Array(have))) => {
                    if let Value::Array(more) = value {
                        for name in more {
                            if !have.contains(&name) {
                                have.push(name);
                            }
                        }
                    }
                }
                (_, None) => {
                    out.insert(keyword, value);
                }
                _ => {}
            }
        }
    }
}

/// The names of one request's tools as Google reads them, and the way back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNames {
    /// (Google's name, the client's), for the names that had to change.
    renamed: Vec<(String, String)>,
    /// The client's freeform tools (Responses' `custom`: one string of input, not JSON).
    freeform: Vec<String>,
}

impl ToolNames {
    /// The name Google reads for the client's `name` (remembered if it changed).
    pub fn to_google(&mut self, name: &str) -> String {
        let google = google_name(name);
        if google != name && !self.renamed.iter().any(|(g, _)| *g == google) {
            self.renamed.push((google.clone(), name.to_string()));
        }
        google
    }

    /// The client's tool `name` takes freeform input.
    pub fn mark_freeform(&mut self, name: &str) {
        self.freeform.push(name.to_string());
    }

    /// Does the client's tool `name` take freeform input?
    pub fn is_freeform(&self, name: &str) -> bool {
        self.freeform.iter().any(|f| f == name)
    }

    /// The client's name for the name Google called (`name` as it is if it never changed).
    pub fn to_client<'n>(&'n self, name: &'n str) -> &'n str {
        self.renamed.iter().find(|(g, _)| g == name).map_or(name, |(_, client)| client.as_str())
    }
}

/// `name` as Google accepts a function's name.
fn google_name(name: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    let mut out: String = name.chars().map(|c| if allowed(c) { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    if out.len() > MAX_NAME {
        let hash = Fingerprint::of_bytes(name.as_bytes());
        out.truncate(MAX_NAME - 17);
        out.push_str(&format!("_{hash}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_keeps_what_google_supports_and_every_property_name() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "$schema": {"type": "string", "maxLength": 10},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5},
                "mode": {"const": "fast"},
                "list": {"type": "array", "items": {"type": "string", "pattern": "x"}, "uniqueItems": true}
            },
            "required": ["timeout"],
            "allOf": [{"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}]
        });
        let cleaned = clean_schema(&schema);
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "$schema": {"type": "string"},
                    "timeout": {"type": "number"},
                    "mode": {"enum": ["fast"]},
                    "list": {"type": "array", "items": {"type": "string"}},
                    "extra": {"type": "boolean"}
                },
                "required": ["timeout", "extra"]
            })
        );
        assert_eq!(clean_schema(&json!(true)), json!({"type": "object", "properties": {}}));
    }

    #[test]
    fn a_deep_schema_is_cut_not_followed() {
        let mut schema = json!({"type": "string"});
        for _ in 0..200 {
            schema = json!({"type": "object", "properties": {"a": schema}});
        }
        let cleaned = clean_schema(&schema);
        assert!(serde_json::to_string(&cleaned).expect("text").len() < 2_000);
    }

    #[test]
    fn names_google_refuses_are_rewritten_and_restored() {
        let mut names = ToolNames::default();
        assert_eq!(names.to_google("Bash"), "Bash");
        assert_eq!(names.to_google("mcp__srv__read file"), "mcp__srv__read_file");
        assert_eq!(names.to_google("9lives"), "_9lives");
        let long = "x".repeat(100);
        let google = names.to_google(&long);
        assert_eq!(google.len(), 64);
        assert_eq!(names.to_client(&google), long);
        assert_eq!(names.to_client("mcp__srv__read_file"), "mcp__srv__read file");
        assert_eq!(names.to_client("Bash"), "Bash");
    }
}
