//! Empty answers: a 200 from Google that carries nothing for the client — no candidates, no
//! parts, or only the model's thoughts — reported against every proxy in this field. The
//! request tries another key before the client sees it (`retry_empty_answers`); the key is
//! not blamed.
//!
//! A call the model could not form (`MALFORMED_FUNCTION_CALL`, no parts) is such an answer too:
//! another try usually forms it, and the coding agents' translations would otherwise have to
//! end the answer in an error.
//!
//! The edge reads the head of a generation answer and asks a [`Peeker`] after each piece:
//! more, pass it on, or empty (each event of a stream is judged once). An answer that does not stream is read to its end when that comes
//! within [`EMPTY_CHECK_LIMIT`] (an empty one is a few hundred bytes); a stream is read until
//! its first event with content — nothing of it has reached the client before then anyway.

use crate::google::find::rfind;
use serde_json::Value;

/// The most bytes of a generation answer read to see whether it is empty (64 KiB). Past it,
/// the answer is not empty and goes to the client as it comes.
pub const EMPTY_CHECK_LIMIT: usize = 64 * 1024;

/// What the head of a successful answer shows ([`Peeker::peek`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Read on: nothing decided yet.
    More,
    /// Pass it on (with the rest, as it comes).
    Pass,
    /// Nothing for the client: try another key.
    Empty,
}

/// Judges the head of one generation answer as it grows.
#[derive(Debug, Clone, Default)]
pub struct Peeker {
    /// The answer streams as server-sent events (native `alt=sse` or OpenAI-compatible); a
    /// native stream without `alt=sse` (one JSON array) is passed on unread.
    stream: bool,
    /// Bytes of the head whose events were judged already (none had content).
    judged: usize,
}

impl Peeker {
    /// For an answer that streams (`stream`) or not.
    pub fn new(stream: bool) -> Self {
        Peeker { stream, judged: 0 }
    }

    /// What `head` — the answer's first bytes, all of them when `ended` — shows.
    pub fn peek(&mut self, head: &[u8], ended: bool) -> Peek {
        if head.len() > EMPTY_CHECK_LIMIT {
            return Peek::Pass;
        }
        if self.stream {
            return self.peek_stream(head, ended);
        }
        // An answer that does not stream is judged once, whole: its head alone says nothing.
        if !ended {
            Peek::More
        } else if is_empty_answer(head) {
            Peek::Empty
        } else {
            Peek::Pass
        }
    }

    /// A stream: pass it on at its first event with content (or anything not an event of an
    /// answer); empty if it ended without one. Each complete event is judged once.
    fn peek_stream(&mut self, head: &[u8], ended: bool) -> Peek {
        if head.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'd') {
            return Peek::Pass; // not `data: …` events
        }
        let fresh = &head[self.judged.min(head.len())..];
        let complete = if ended { fresh.len() } else { last_event_end(fresh) };
        let text = String::from_utf8_lossy(&fresh[..complete]);
        self.judged += complete;
        let events = text.split("\n\n").flat_map(|e| e.split("\r\n\r\n"));
        if events.map(str::trim).filter(|e| !e.is_empty()).any(event_has_content) {
            return Peek::Pass;
        }
        if ended {
            Peek::Empty
        } else {
            Peek::More
        }
    }
}

/// Where the last complete event of `bytes` ends (after its blank line: `\n\n`, or Google's
/// native `\r\n\r\n`), or 0.
fn last_event_end(bytes: &[u8]) -> usize {
    let lf = rfind(bytes, b"\n\n").map_or(0, |at| at + 2);
    let crlf = rfind(bytes, b"\r\n\r\n").map_or(0, |at| at + 4);
    lf.max(crlf)
}

/// An event that carries something for the client — or that is not one of an answer's
/// (unparsable, a prompt blocked, a stop for a reason another key would share).
fn event_has_content(event: &str) -> bool {
    let Some(data) = event.strip_prefix("data:").map(str::trim) else { return true };
    if data == "[DONE]" {
        return false;
    }
    if plainly_has_text(data.as_bytes()) {
        return true;
    }
    let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(data) else { return true };
    if chunk.contains_key("error") {
        return false; // an error before any content: another key may answer
    }
    if let Some(candidates) = chunk.get("candidates") {
        let blocked = chunk.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
        return blocked || !all_empty(candidates, native_candidate_empty);
    }
    if let Some(choices) = chunk.get("choices") {
        return !all_empty(choices, compat_delta_empty);
    }
    chunk.contains_key("promptFeedback")
}

/// A streamed choice's delta with neither content nor tool calls, not stopped for a reason
/// other than `stop`.
fn compat_delta_empty(choice: &Value) -> bool {
    let stopped_otherwise = choice.get("finish_reason").and_then(Value::as_str).is_some_and(|r| r != "stop");
    let delta = choice.get("delta");
    let content = delta.and_then(|d| d.get("content")).and_then(Value::as_str).is_some_and(|c| !c.is_empty());
    let calls = delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    !stopped_otherwise && !content && !calls
}

/// Is this whole successful answer body empty for the client? Google's native shape
/// (`candidates[].content.parts[]`) or the OpenAI-compatible one (`choices[].message`).
/// Anything else — unparsable, compressed, a prompt blocked for safety, a model that stopped
/// for a reason other than `STOP` — is not: trying another key would not change it.
fn is_empty_answer(body: &[u8]) -> bool {
    if plainly_has_text(body) {
        return false;
    }
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if let Some(candidates) = answer.get("candidates") {
        let blocked = answer.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
        return !blocked && all_empty(candidates, native_candidate_empty);
    }
    if let Some(choices) = answer.get("choices") {
        return all_empty(choices, compat_choice_empty);
    }
    // No candidates at all (and no prompt feedback): nothing came back.
    answer.get("usageMetadata").is_some() && answer.get("promptFeedback").is_none()
}

/// The common case, without parsing: a `"text"` or `"content"` string that is not empty, and no
/// `"thought"` anywhere (a thought's text is no content). Anything else is parsed. One pass:
/// each quote in `json` is looked at once, for the three names.
fn plainly_has_text(json: &[u8]) -> bool {
    let mut text = false;
    let mut from = 0;
    while let Some(i) = json.get(from..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let at = &json[from + i..];
        // The byte after the quote tells the three names apart (most strings are none of them).
        match at.get(1) {
            Some(b't') if at.starts_with(b"\"thought\"") => return false,
            Some(b't') => text = text || non_empty_string_after(at, b"\"text\""),
            Some(b'c') => text = text || non_empty_string_after(at, b"\"content\""),
            _ => {}
        }
        from += i + 1;
    }
    text
}

/// `json` starts with `name`, then `:` and a string that is not empty.
fn non_empty_string_after(json: &[u8], name: &[u8]) -> bool {
    let Some(after) = json.strip_prefix(name) else { return false };
    let value = trim_start(after).strip_prefix(b":").map(trim_start).unwrap_or_default();
    value.first() == Some(&b'"') && value.get(1).is_some_and(|&c| c != b'"')
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Every entry of `list` (an array) is empty by `empty`; an empty array is.
fn all_empty(list: &Value, empty: fn(&Value) -> bool) -> bool {
    list.as_array().is_some_and(|items| items.iter().all(empty))
}

/// A candidate that stopped normally — or on a call the model could not form
/// (`MALFORMED_FUNCTION_CALL`: another try usually forms it) — with no part that is not a
/// thought.
fn native_candidate_empty(candidate: &Value) -> bool {
    let reason = candidate.get("finishReason").and_then(Value::as_str);
    let stopped = reason.is_none_or(|r| r == "STOP" || r == "MALFORMED_FUNCTION_CALL");
    let parts = candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array);
    stopped && parts.is_none_or(|parts| parts.iter().all(native_part_empty))
}

/// A thought, or a text part with no text (anything else — a call, inline data — is content).
fn native_part_empty(part: &Value) -> bool {
    let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
    let only_text = part.as_object().is_some_and(|p| p.keys().all(|k| k == "text" || k == "thoughtSignature"));
    let no_text = part.get("text").and_then(Value::as_str).is_none_or(str::is_empty);
    thought || only_text && no_text
}

/// A choice that stopped normally with neither content nor tool calls.
fn compat_choice_empty(choice: &Value) -> bool {
    let stopped = choice.get("finish_reason").and_then(Value::as_str).is_none_or(|r| r == "stop");
    let message = choice.get("message");
    let content = message.and_then(|m| m.get("content")).and_then(Value::as_str).is_some_and(|c| !c.is_empty());
    let calls = message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    stopped && !content && !calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(body: &str) -> bool {
        is_empty_answer(body.as_bytes())
    }

    #[test]
    fn native_answers() {
        assert!(empty(r#"{"candidates":[],"usageMetadata":{"promptTokenCount":8}}"#));
        assert!(empty(r#"{"usageMetadata":{"promptTokenCount":8},"modelVersion":"m"}"#));
        assert!(empty(r#"{"candidates":[{"content":{"role":"model"},"finishReason":"STOP"}]}"#));
        assert!(empty(
            r#"{"candidates":[{"content":{"parts":[{"text":"plan","thought":true}]},"finishReason":"STOP"}]}"#
        ));
        assert!(empty(r#"{"candidates":[{"content":{"parts":[{"text":""}]},"finishReason":"STOP"}]}"#));
        assert!(empty(r#"{"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL","finishMessage":"Malformed"}]}"#));
        assert!(!empty(r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}]}"#));
        assert!(!empty(
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}]}"#
        ));
        // A stop for another reason, or a blocked prompt, is the answer: another key gives the same.
        assert!(!empty(
            r#"{"candidates":[{"content":{"parts":[{"text":"x","thought":true}]},"finishReason":"MAX_TOKENS"}]}"#
        ));
        assert!(!empty(r#"{"candidates":[{"finishReason":"SAFETY"}]}"#));
        assert!(!empty(r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{}}"#));
        assert!(!empty(r#"{"candidates":[],"promptFeedback":{"blockReason":"OTHER"}}"#));
    }

    #[test]
    fn compat_answers() {
        assert!(empty(r#"{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#));
        assert!(empty(r#"{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}"#));
        assert!(empty(r#"{"choices":[]}"#));
        assert!(!empty(r#"{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}"#));
        assert!(!empty(
            r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c"}]},"finish_reason":"tool_calls"}]}"#
        ));
        assert!(!empty(r#"{"choices":[{"message":{"content":""},"finish_reason":"length"}]}"#));
    }

    /// A fresh peeker's verdict on `head` (a stream when `stream`).
    fn peek(head: &[u8], ended: bool, stream: bool) -> Peek {
        Peeker::new(stream).peek(head, ended)
    }

    #[test]
    fn a_stream_growing_piece_by_piece_is_judged_event_by_event() {
        let thought = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hm\",\"thought\":true}]}}]}\r\n\r\n";
        let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n";
        let whole = format!("{thought}{thought}{text}");
        let mut peeker = Peeker::new(true);
        let mut seen = Vec::new();
        for end in (7..whole.len()).step_by(7) {
            seen.push(peeker.peek(&whole.as_bytes()[..end], false));
        }
        seen.push(peeker.peek(whole.as_bytes(), false));
        assert!(seen[..seen.len() - 1].iter().all(|p| *p == Peek::More), "{seen:?}");
        assert_eq!(seen.last(), Some(&Peek::Pass));
        assert!(peeker.judged <= whole.len());
        let mut peeker = Peeker::new(true);
        assert_eq!(peeker.peek(format!("{thought}{thought}").as_bytes(), false), Peek::More);
        assert_eq!(peeker.peek(format!("{thought}{thought}").as_bytes(), true), Peek::Empty);
    }

    #[test]
    fn a_whole_answer_is_read_to_its_end() {
        let body = br#"{"candidates":[],"usageMetadata":{}}"#;
        assert_eq!(peek(&body[..10], false, false), Peek::More);
        assert_eq!(peek(body, true, false), Peek::Empty);
        assert_eq!(peek(&vec![b' '; EMPTY_CHECK_LIMIT + 1], false, false), Peek::Pass);
    }

    #[test]
    fn a_stream_is_read_to_its_first_content() {
        let thought = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hm\",\"thought\":true}]}}]}\r\n\r\n";
        let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n";
        let stop = "data: {\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":\"STOP\"}]}\r\n\r\n";
        assert_eq!(peek(thought.as_bytes(), false, true), Peek::More);
        assert_eq!(peek(format!("{thought}{}", &text[..20]).as_bytes(), false, true), Peek::More);
        assert_eq!(peek(format!("{thought}{text}").as_bytes(), false, true), Peek::Pass);
        assert_eq!(peek(format!("{thought}{stop}").as_bytes(), true, true), Peek::Empty);
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
        let word = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert_eq!(peek(role.as_bytes(), false, true), Peek::More);
        assert_eq!(peek(format!("{role}{word}").as_bytes(), false, true), Peek::Pass);
        assert_eq!(peek(format!("{role}data: [DONE]\n\n").as_bytes(), true, true), Peek::Empty);
        // An error before any content: another key may answer.
        assert_eq!(peek(b"data: {\"error\":{\"code\":503}}\r\n\r\n", true, true), Peek::Empty);
        // Not events (a native stream without alt=sse is one JSON array): passed on unread.
        assert_eq!(peek(b"[{\"candidates\"", false, true), Peek::Pass);
        let length = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
        assert_eq!(peek(length.as_bytes(), true, true), Peek::Pass);
    }

    #[test]
    fn plain_text_is_found_without_parsing() {
        assert!(plainly_has_text(b"{\n  \"text\": \"Hi\"\n}"));
        assert!(plainly_has_text(br#"{"content":"Hi"}"#));
        assert!(!plainly_has_text(br#"{"content":""}"#));
        assert!(!plainly_has_text(br#"{"text":"plan","thought":true}"#));
        assert!(!plainly_has_text(br#"{"content":null}"#));
        assert!(!plainly_has_text(br#"{"text""#));
    }

    #[test]
    fn other_bodies_are_not_empty() {
        assert!(!empty(""));
        assert!(!empty("\u{1f}\u{8b}gzip"));
        assert!(!empty(r#"{"embedding":{"values":[]}}"#));
        assert!(!empty("[]"));
    }
}
