//! Keeping keys out of what leaves the proxy: Google's messages, relayed errors, log lines.
//!
//! Two rules, applied to *decoded* text (a JSON-escaped key is a key once decoded):
//! - the key a request sent Google is masked wherever it appears, in any letter case;
//! - any token shaped like a Google key — `AIza…`, `AQ.…`, `IQ.…` in any case, eight or more
//!   key characters — is masked too, whoever's it is. So an echo of a client's guess looks the
//!   same whether or not it is a pool key: no oracle.
//!
//! A mask is `…` and the last four characters of the text it replaces, whatever that text
//! is: the same input always gives the same output, so a client cannot tell from the answer
//! whether a guess was a pool key.

use serde_json::Value;

/// Prefixes of Google API keys (compared in lower case).
const KEY_PREFIXES: [&str; 3] = ["aiza", "aq.", "iq."];
/// The shortest token treated as key-shaped.
const MIN_KEY_TOKEN: usize = 8;

/// `text` with `used` (the keys this request sent) and every key-shaped token masked.
pub fn scrub(text: &str, used: &[&str]) -> String {
    let mut text = text.to_string();
    for key in used.iter().filter(|k| k.len() >= 4) {
        text = replace_ignoring_case(&text, &key.to_ascii_lowercase());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(is_token_char) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..].find(|c: char| !is_token_char(c)).unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        out.push_str(&if key_shaped(token) { masked(token) } else { token.to_string() });
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    out
}

/// Every string inside a JSON value scrubbed (keys of objects included).
pub(crate) fn scrub_json(value: &mut Value, used: &[&str]) {
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

/// `AIza…`, `AQ.…`, `IQ.…` in any case, eight characters or more.
fn key_shaped(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    token.len() >= MIN_KEY_TOKEN && KEY_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// `…` and the last four characters of `text`.
fn masked(text: &str) -> String {
    let tail: String = text.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

/// `text` with every case-insensitive occurrence of `needle_lower` masked.
fn replace_ignoring_case(text: &str, needle_lower: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(needle_lower) {
        let start = at + found;
        out.push_str(&text[at..start]);
        out.push_str(&masked(&text[start..start + needle_lower.len()]));
        at = start + needle_lower.len();
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
        let text = format!("Consumer 'api_key:{KEY}' suspended; {} too; x{KEY}y", KEY.to_lowercase());
        assert_eq!(scrub(&text, &[KEY]), "Consumer 'api_key:…0001' suspended; …0001 too; x…0001y");
    }

    #[test]
    fn key_shaped_tokens_are_masked_whoever_they_belong_to() {
        let text = "models/AIzaSyGUESS000000000000000000000000007 is not found; aq.abcdefghij; AIza; AIzaSyAB.";
        assert_eq!(scrub(text, &[]), "models/…0007 is not found; …ghij; AIza; …yAB.");
        assert_eq!(scrub("gemini-3.5-flash is fine", &[KEY]), "gemini-3.5-flash is fine");
    }

    #[test]
    fn a_guess_reads_the_same_whether_or_not_it_is_the_key_used() {
        let echo = |guess: &str| format!("models/{guess} is not found");
        assert_eq!(scrub(&echo(KEY), &[KEY]), scrub(&echo(KEY), &["AIzaSyOTHER0000000000000000000000000000"]));
        assert_eq!(scrub(&echo(KEY), &[KEY]), scrub(&echo(KEY), &[]));
    }

    #[test]
    fn what_is_left_around_a_masked_key_is_checked_too() {
        // Found by fuzzing: the key masked inside a token, the key-shaped rest left as it was.
        let text = format!("iq.found{}", KEY.to_lowercase());
        let once = scrub(&text, &[KEY]);
        assert_eq!(once, "…ound…0001");
        assert_eq!(scrub(&once, &[KEY]), once);
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
