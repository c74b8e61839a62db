//! Google's answer to a translated Messages request ([`crate::client::messages`]) as Anthropic's,
//! translated as it passes: a stream event by event (nothing held but an event not yet whole),
//! a whole answer once it has come.
//!
//! A stream becomes `message_start` (with the prompt's tokens), then for each block
//! `content_block_start`, its deltas, `content_block_stop` — a block always started before its
//! first delta — then `message_delta` (the stop reason, the final usage) and `message_stop`.
//! Google's parts map to blocks: thought text → `thinking`, text → `text`, a `functionCall` →
//! `tool_use` (its arguments in one `input_json_delta`, its name the client's own). A call's
//! `thoughtSignature` goes to the client as a `thinking` block's `signature` just before it
//! (the open thinking block's, or an empty one's), which Claude Code sends back with the
//! history and [`crate::client::messages`] returns to Google on the call.
//!
//! A stream that ends without Google's finish reason, or with an error event, ends with
//! Anthropic's `event: error` — never with a stop that did not happen. A call Google could not
//! form (`MALFORMED_FUNCTION_CALL`) after the answer began is such an error too (before, the
//! pool retries it as an empty answer).

use crate::client::envelope::anthropic_type;
use crate::client::pieces::{Piece, Reader, Usage};
use crate::client::sse::write_events;
use crate::client::tools::ToolNames;
use serde_json::{json, Map, Value};

/// A Google answer on its way to a Messages client.
#[derive(Debug, Clone)]
pub struct MessagesAnswer {
    /// The model the client asked for (the answer names it).
    model: String,
    names: ToolNames,
    kind: Kind,
    /// Names the message and its tool calls (unique per request).
    seed: u64,
    reader: Reader,
    state: State,
}

/// What the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream,
    Whole,
    Count,
}

/// Where a stream's translation stands.
#[derive(Debug, Clone, Default)]
struct State {
    started: bool,
    open: Option<(usize, Block)>,
    blocks: usize,
    calls: usize,
    finish: Option<String>,
    usage: Usage,
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
}

/// Anthropic's usage object: `input_tokens` without what the cache served.
fn usage_json(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.prompt.saturating_sub(usage.cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached,
        "output_tokens": usage.output(),
    })
}

/// Stream events are built as (type, data) pairs.
type Event = (&'static str, Value);

impl MessagesAnswer {
    /// The answer to a Messages request for `model` (the client's name), whose tools Google
    /// knows by `names`; `stream`: it streams (Google's `alt=sse`). `seed` names what it makes.
    pub fn new(model: &str, names: ToolNames, stream: bool, seed: u64) -> Self {
        let kind = if stream { Kind::Stream } else { Kind::Whole };
        let reader = Reader::new(stream);
        MessagesAnswer { model: model.to_string(), names, kind, seed, reader, state: State::default() }
    }

    /// The answer to a `count_tokens` request.
    pub fn count() -> Self {
        MessagesAnswer { kind: Kind::Count, ..MessagesAnswer::new("", ToolNames::default(), false, 0) }
    }

    /// The next bytes of Google's answer; what the client gets of them so far.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.kind == Kind::Count {
            self.reader.feed(chunk);
            return Vec::new();
        }
        let mut events = Vec::new();
        for piece in self.reader.feed(chunk) {
            self.piece(piece, &mut events);
        }
        let mut out = Vec::new();
        write_events(&events, &mut out);
        out
    }

    /// Google's answer has ended: the rest of the client's.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.kind == Kind::Count {
            return count_answer(&self.reader.unread());
        }
        let mut events = Vec::new();
        for piece in self.reader.finish() {
            self.piece(piece, &mut events);
        }
        self.end(&mut events);
        if self.kind == Kind::Whole {
            return serde_json::to_vec(&fold(events)).unwrap_or_default();
        }
        let mut out = Vec::new();
        write_events(&events, &mut out);
        out
    }

    /// One piece of Google's answer as events.
    fn piece(&mut self, piece: Piece, events: &mut Vec<Event>) {
        if self.state.ended {
            return;
        }
        match piece {
            Piece::Failed { status, message } => return self.fail(anthropic_type(status), &message, events),
            Piece::Unreadable => return self.fail("api_error", "Google's answer is not JSON.", events),
            Piece::Usage(usage) => return self.state.usage = usage,
            Piece::Finish(reason) => return self.state.finish = Some(reason),
            Piece::Text { .. } | Piece::Call { .. } => {}
        }
        self.start(events);
        match piece {
            Piece::Call { name, args, signature } => self.call(&name, &args, signature.as_deref(), events),
            Piece::Text { text, thought, signature } => self.text(&text, thought, signature.as_deref(), events),
            _ => {}
        }
    }

    /// `message_start`, once, with the prompt's tokens as Google has counted them so far.
    fn start(&mut self, events: &mut Vec<Event>) {
        if !self.state.started {
            self.state.started = true;
            let mut message = self.message_head();
            message["usage"] = usage_json(self.state.usage);
            events.push(("message_start", json!({"type": "message_start", "message": message})));
        }
    }

    /// The message's fields before its content.
    fn message_head(&self) -> Value {
        json!({
            "id": format!("msg_{:016x}", self.seed),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
        })
    }

    /// Text or thought text as a block's deltas (a thought's signature ends its block).
    fn text(&mut self, text: &str, thought: bool, signature: Option<&str>, events: &mut Vec<Event>) {
        if text.is_empty() && !(thought && signature.is_some()) {
            return;
        }
        let block = if thought { Block::Thinking } else { Block::Text };
        let index = self.open(block, events);
        let delta = match block {
            Block::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            Block::Text => json!({"type": "text_delta", "text": text}),
        };
        if !text.is_empty() {
            events.push(delta_event(index, delta));
        }
        if let (Block::Thinking, Some(signature)) = (block, signature) {
            events.push(delta_event(index, json!({"type": "signature_delta", "signature": signature})));
            self.close(events);
        }
    }

    /// A `functionCall` as a `tool_use` block, its signature on a thinking block before it.
    fn call(&mut self, name: &str, args: &str, signature: Option<&str>, events: &mut Vec<Event>) {
        if let Some(signature) = signature {
            let index = self.open(Block::Thinking, events);
            events.push(delta_event(index, json!({"type": "signature_delta", "signature": signature})));
        }
        self.close(events);
        let index = self.state.blocks;
        self.state.blocks += 1;
        self.state.calls += 1;
        let id = format!("toolu_{:016x}_{}", self.seed, self.state.calls);
        let block = json!({"type": "tool_use", "id": id, "name": self.names.to_client(name), "input": {}});
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        let delta = json!({"type": "input_json_delta", "partial_json": args});
        events.push(delta_event(index, delta));
        events.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }

    /// The block open for `block` text: the one open if it is such, else a new one.
    fn open(&mut self, block: Block, events: &mut Vec<Event>) -> usize {
        if let Some((index, open)) = self.state.open {
            if open == block {
                return index;
            }
        }
        self.close(events);
        let index = self.state.blocks;
        self.state.blocks += 1;
        self.state.open = Some((index, block));
        let start = match block {
            Block::Text => json!({"type": "text", "text": ""}),
            Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
        };
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        index
    }

    fn close(&mut self, events: &mut Vec<Event>) {
        if let Some((index, _)) = self.state.open.take() {
            events.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    /// Google's answer is over: the stop, or an error if it never said it was done.
    fn end(&mut self, events: &mut Vec<Event>) {
        if self.state.ended {
            return;
        }
        let stop = match self.state.finish.as_deref() {
            None => return self.fail("api_error", "Google's answer ended before it was complete.", events),
            Some("MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL") => {
                return self.fail("api_error", "Gemini could not form a tool call; try again.", events)
            }
            Some(_) if self.state.calls > 0 => "tool_use",
            Some("MAX_TOKENS") => "max_tokens",
            Some("STOP" | "FINISH_REASON_UNSPECIFIED") => "end_turn",
            Some(_) => "refusal",
        };
        self.close(events);
        self.start(events);
        events.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": usage_json(self.state.usage)}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
        self.state.ended = true;
    }

    /// Ends the answer with Anthropic's error event.
    fn fail(&mut self, kind: &str, message: &str, events: &mut Vec<Event>) {
        self.state.ended = true;
        events.push(("error", json!({"type": "error", "error": {"type": kind, "message": message}})));
    }
}

/// Stream events folded into the message they tell (or the error that ended them).
fn fold(events: Vec<Event>) -> Value {
    let mut message = Map::new();
    let mut blocks: Vec<Value> = Vec::new();
    for (kind, mut data) in events {
        match kind {
            "error" => return data,
            "message_start" => {
                if let Value::Object(head) = data["message"].take() {
                    message = head;
                }
            }
            "content_block_start" => blocks.push(data["content_block"].take()),
            "content_block_delta" => {
                if let Some(block) = blocks.last_mut() {
                    apply_delta(block, &data["delta"]);
                }
            }
            "message_delta" => {
                message.insert("stop_reason".into(), data["delta"]["stop_reason"].take());
                message.insert("usage".into(), data["usage"].take());
            }
            _ => {}
        }
    }
    for block in &mut blocks {
        if let Some(Value::String(json)) = block.get_mut("input").and_then(|i| i.get_mut("_partial")).map(Value::take) {
            block["input"] = serde_json::from_str(&json).unwrap_or_else(|_| json!({}));
        }
    }
    message.insert("content".into(), Value::Array(blocks));
    Value::Object(message)
}

/// A delta added to its block's text (a tool's arguments kept as text until the end).
fn apply_delta(block: &mut Value, delta: &Value) {
    let append = |block: &mut Value, field: &str, more: &Value| {
        let have = block[field].as_str().unwrap_or_default().to_string();
        block[field] = json!(have + more.as_str().unwrap_or_default());
    };
    match delta["type"].as_str() {
        Some("text_delta") => append(block, "text", &delta["text"]),
        Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
        Some("signature_delta") => append(block, "signature", &delta["signature"]),
        Some("input_json_delta") => {
            let input = &mut block["input"];
            let have = input.get("_partial").and_then(Value::as_str).unwrap_or_default().to_string();
            *input = json!({"_partial": have + delta["partial_json"].as_str().unwrap_or_default()});
        }
        _ => {}
    }
}

fn delta_event(index: usize, delta: Value) -> Event {
    ("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

/// Google's `countTokens` answer as Anthropic's.
fn count_answer(body: &[u8]) -> Vec<u8> {
    let total = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("totalTokens").and_then(Value::as_u64));
    serde_json::to_vec(&json!({"input_tokens": total.unwrap_or(0)})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::sse::read_events;

    fn sse(chunks: &[Value]) -> Vec<u8> {
        chunks.iter().flat_map(|c| format!("data: {c}\r\n\r\n").into_bytes()).collect()
    }

    /// The events of a translated stream, fed in pieces of `cut` bytes.
    fn events(google: &[u8], cut: usize) -> Vec<(String, Value)> {
        let mut answer = MessagesAnswer::new("claude-sonnet-4-6", ToolNames::default(), true, 7);
        let mut out: Vec<u8> = google.chunks(cut.max(1)).flat_map(|piece| answer.feed(piece)).collect();
        out.extend(answer.finish());
        read_events(&out)
    }

    fn kinds(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn call_chunks() -> Vec<u8> {
        sse(&[
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me look.", "thought": true}]}}],
                   "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "totalTokenCount": 120}}),
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "U0lH"}]},
                "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 9, "thoughtsTokenCount": 4}}),
        ])
    }

    #[test]
    fn a_stream_with_a_call_reads_as_anthropic_events_however_it_is_cut() {
        let whole = events(&call_chunks(), usize::MAX);
        assert_eq!(
            kinds(&whole),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(whole[0].1["message"]["usage"]["input_tokens"], 20, "the prompt's tokens, less the cache's");
        assert_eq!(whole[0].1["message"]["usage"]["cache_read_input_tokens"], 100);
        assert_eq!(whole[3].1["delta"], json!({"type": "signature_delta", "signature": "U0lH"}));
        assert_eq!(whole[5].1["content_block"]["name"], "Bash");
        assert_eq!(whole[6].1["delta"]["partial_json"], r#"{"command":"ls"}"#);
        assert_eq!(whole[8].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(whole[8].1["usage"]["output_tokens"], 13);
        for cut in [1, 3, 17, 64] {
            assert_eq!(events(&call_chunks(), cut), whole, "cut every {cut} bytes");
        }
    }

    #[test]
    fn a_stream_cut_before_its_finish_ends_in_an_error_not_a_stop() {
        let cut = sse(&[json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})]);
        let got = events(&cut, usize::MAX);
        assert_eq!(kinds(&got), ["message_start", "content_block_start", "content_block_delta", "error"]);
        assert_eq!(got[3].1["error"]["type"], "api_error");
        let failed = sse(&[
            json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}),
            json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
        ]);
        let got = events(&failed, 5);
        assert_eq!(got.last().map(|(_, d)| d["error"]["type"].clone()), Some(json!("overloaded_error")));
        assert_eq!(got.iter().filter(|(k, _)| k == "error").count(), 1, "one terminal event");
    }

    #[test]
    fn a_whole_answer_is_one_message() {
        let google = json!({"candidates": [{"content": {"parts": [
                {"text": "Hi "}, {"text": "there."},
                {"functionCall": {"name": "mcp_read_file", "args": {"p": 1}}}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3}});
        let mut names = ToolNames::default();
        names.to_google("mcp read file");
        let mut answer = MessagesAnswer::new("claude-haiku-4-5", names, false, 1);
        let mut out = answer.feed(google.to_string().as_bytes());
        out.extend(answer.finish());
        let message: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(message["model"], "claude-haiku-4-5");
        assert_eq!(message["content"][0], json!({"type": "text", "text": "Hi there."}));
        assert_eq!(message["content"][1]["name"], "mcp read file");
        assert_eq!(message["content"][1]["input"], json!({"p": 1}));
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(message["usage"]["output_tokens"], 3);
    }

    #[test]
    fn stop_reasons_follow_googles_finish() {
        for (finish, stop) in [("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"), ("SAFETY", "refusal")] {
            let google = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": finish}]});
            let mut answer = MessagesAnswer::new("m", ToolNames::default(), false, 1);
            answer.feed(google.to_string().as_bytes());
            let message: Value = serde_json::from_slice(&answer.finish()).expect("json");
            assert_eq!(message["stop_reason"], stop, "{finish}");
        }
        let mut count = MessagesAnswer::count();
        count.feed(br#"{"totalTokens": 42}"#);
        assert_eq!(count.finish(), br#"{"input_tokens":42}"#);
    }
}
