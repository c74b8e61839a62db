//! Keeping keys out of what leaves the proxy: Google's messages, relayed errors, log lines.
//!
//! Two rules, applied to *decoded* text (a JSON-escaped key is a key once decoded):
//! - the key a request sent Google is masked wherever it appears, in any letter case;
//! - any token shaped like a Google key — `AIza…`, `AQ.…`, `IQ.…` in any case, eight or more
//!   key characters — is masked too, whoever's it is. So an echo of a client's guess looks the
//!   same whether or not it is a pool key: no oracle.
//!
//! A mask shows the last four characters of a key the request used (`…WXYZ`), and nothing of
//! any other key-shaped token (`…`).

use crate::keys::mask;
use serde_json::Value;

/// Prefixes of Google API keys (compared in lower case).
const KEY_PREFIXES: [&str; 3] = ["aiza", "aq.", "iq."];
/// The shortest token treated as key-shaped.
const MIN_KEY_TOKEN: usize = 8;

/// `text` with `used` (the keys this request sent) and every key-shaped token masked.
pub fn scrub(text: &str, used: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_token_char) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..].find(|c: char| !is_token_char(c)).unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        out.push_str(&scrub_token(token, used));
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

/// Every string inside a JSON value scrubbed (keys of objects included).
pub fn scrub_json(value: &mut Value, used: &[&str]) {
    match value {
        Value::String(s) => *s = scrub(s, used),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, used)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                scrub_json(&mut v, used);
                map.insert(scrub(&k, used), v);
            }
        }
        _ => {}
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn scrub_token(token: &str, used: &[&str]) -> String {
    let lower = token.to_ascii_lowercase();
    let mut out = token.to_string();
    for key in used.iter().filter(|k| k.len() >= 4) {
        let key_lower = key.to_ascii_lowercase();
        if lower.contains(&key_lower) {
            out = replace_ignoring_case(&out, &key_lower, &mask(key));
        }
    }
    if out != token {
        return out;
    }
    let key_shaped = token.len() >= MIN_KEY_TOKEN && KEY_PREFIXES.iter().any(|p| lower.starts_with(p));
    if key_shaped {
        return "…".to_string();
    }
    out
}

fn replace_ignoring_case(text: &str, needle_lower: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(needle_lower) {
        out.push_str(&text[at..at + found]);
        out.push_str(with);
        at += found + needle_lower.len();
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AIzaSyTEST00000000000000000000000000001";

    #[test]
    fn the_used_key_is_masked_in_any_case() {
        let text = format!("Consumer 'api_key:{KEY}' suspended; {} too", KEY.to_lowercase());
        assert_eq!(scrub(&text, &[KEY]), "Consumer 'api_key:…0001' suspended; …0001 too");
    }

    #[test]
    fn key_shaped_tokens_are_masked_whoever_they_belong_to() {
        let text = "models/AIzaSyGUESS000000000000000000000000000 is not found; aq.abcdefghij; AIza; AIzaSyAB.";
        assert_eq!(scrub(text, &[]), "models/… is not found; …; AIza; …");
        assert_eq!(scrub("gemini-2.5-flash is fine", &[KEY]), "gemini-2.5-flash is fine");
    }

    #[test]
    fn decoded_json_strings_are_scrubbed() {
        let escaped = br#"{"error":{"message":"key \u0041\u0049zaSyTEST00000000000000000000000000001 bad","details":[{"metadata":{"k":"AQ.Ab8RN6LongLongKey"}}]}}"#;
        let mut value: Value = serde_json::from_slice(escaped).expect("json");
        scrub_json(&mut value, &[KEY]);
        let text = value.to_string();
        assert!(!text.contains("AIzaSy") && !text.contains("AQ.Ab8"), "{text}");
        assert!(text.contains("key …0001 bad"), "{text}");
    }
}
