//! Google's answer to a translated Responses request ([`crate::client::responses`]) as OpenAI's
//! Responses API answers, translated as it passes: a stream event by event, a whole answer
//! once it has come.
//!
//! A stream is `response.created`, then for each output item `response.output_item.added`,
//! its parts and deltas, `response.output_item.done` with the whole item, then exactly one end:
//! `response.completed` (with usage), `response.incomplete` (Google stopped at the token limit
//! or for safety) or `response.failed`. Items: thought text → a `reasoning` item (its text as
//! the summary), text → a `message` with one `output_text`, a call → a `function_call` (or a
//! `custom_tool_call` for a freeform tool), named as the client named it. A call's
//! `thoughtSignature` goes out as a `reasoning` item's `encrypted_content` just before it (the
//! open reasoning item's, or an empty one's), which Codex sends back with the conversation
//! (`include: ["reasoning.encrypted_content"]`) and [`crate::client::responses`] returns to
//! Google on the call.
//!
//! A stream that ends without Google's finish reason, with Google's error event, or with a call
//! Google could not form after its first byte, ends with `response.failed` — Codex treats a
//! stream closed without an end as an error and retries, and a fake `completed` would end its
//! turn.

use crate::client::pieces::{Piece, Reader, Usage};
use crate::client::responses::SIGNATURE_MARK;
use crate::client::sse::write_events;
use crate::client::tools::ToolNames;
use serde_json::{json, Value};

/// A Google answer on its way to a Responses client.
#[derive(Debug, Clone)]
pub struct ResponsesAnswer {
    /// The model the client asked for (the answer names it).
    model: String,
    names: ToolNames,
    stream: bool,
    /// Names the response and its items (unique per request).
    seed: u64,
    /// When the response was made (seconds since the epoch).
    created_at: u64,
    reader: Reader,
    state: State,
}

/// Where the translation stands.
#[derive(Debug, Clone, Default)]
struct State {
    started: bool,
    sequence: u64,
    /// The items done, in order.
    output: Vec<Value>,
    open: Option<Open>,
    calls: usize,
    finish: Option<String>,
    usage: Usage,
    ended: bool,
    /// The response as its end left it (a whole answer is this).
    response: Value,
}

/// The item being written: its kind, id and text so far.
#[derive(Debug, Clone)]
struct Open {
    kind: Kind,
    id: String,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reasoning,
    Message,
}

/// Stream events are built as (type, data) pairs.
type Event = (&'static str, Value);

/// How a response ended.
enum End {
    Completed,
    Incomplete(&'static str),
    Failed(&'static str, String),
}

impl ResponsesAnswer {
    /// The answer to a Responses request for `model` (the client's name), whose tools Google
    /// knows by `names`; `stream`: it streams. `seed` names what it makes; `now_ms` is when.
    pub fn new(model: &str, names: ToolNames, stream: bool, seed: u64, now_ms: u64) -> Self {
        ResponsesAnswer {
            model: model.to_string(),
            names,
            stream,
            seed,
            created_at: now_ms / 1000,
            reader: Reader::new(stream),
            state: State::default(),
        }
    }

    /// The next bytes of Google's answer; what the client gets of them so far.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        for piece in self.reader.feed(chunk) {
            self.piece(piece, &mut events);
        }
        self.written(&events)
    }

    /// Google's answer has ended: the rest of the client's.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        for piece in self.reader.finish() {
            self.piece(piece, &mut events);
        }
        self.end(&mut events);
        if self.stream {
            return self.written(&events);
        }
        serde_json::to_vec(&self.state.response).unwrap_or_default()
    }

    fn written(&self, events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.stream {
            return out;
        }
        write_events(events, &mut out);
        out
    }

    /// One piece of Google's answer as events.
    fn piece(&mut self, piece: Piece, events: &mut Vec<Event>) {
        if self.state.ended {
            return;
        }
        match piece {
            Piece::Failed { status, message } => return self.stop(End::Failed(failure_code(status), message), events),
            Piece::Unreadable => {
                return self.stop(End::Failed("server_error", "Google's answer is not JSON.".into()), events)
            }
            Piece::Usage(usage) => return self.state.usage = usage,
            Piece::Finish(reason) => return self.state.finish = Some(reason),
            Piece::Text { .. } | Piece::Call { .. } => {}
        }
        self.start(events);
        match piece {
            Piece::Call { name, args, signature } => self.call(&name, &args, signature, events),
            Piece::Text { text, thought, signature } => self.text(&text, thought, signature, events),
            _ => {}
        }
    }

    /// `response.created`, once.
    fn start(&mut self, events: &mut Vec<Event>) {
        if !self.state.started {
            self.state.started = true;
            let response = self.response("in_progress");
            self.emit(events, "response.created", json!({ "response": response }));
        }
    }

    /// The response as it stands.
    fn response(&self, status: &str) -> Value {
        json!({
            "id": format!("resp_{:016x}", self.seed),
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": self.model,
            "output": self.state.output,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "error": null,
            "incomplete_details": null,
            "usage": null,
        })
    }

    fn emit(&mut self, events: &mut Vec<Event>, kind: &'static str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.state.sequence);
        self.state.sequence += 1;
        events.push((kind, data));
    }

    /// Text or thought text as its item's deltas (a thought's signature ends its item).
    fn text(&mut self, text: &str, thought: bool, signature: Option<String>, events: &mut Vec<Event>) {
        if text.is_empty() && !(thought && signature.is_some()) {
            return;
        }
        let kind = if thought { Kind::Reasoning } else { Kind::Message };
        self.open(kind, events);
        if !text.is_empty() {
            let index = self.state.output.len();
            let Some(open) = self.state.open.as_mut() else { return };
            let first = open.text.is_empty();
            open.text.push_str(text);
            let id = open.id.clone();
            if kind == Kind::Reasoning && first {
                // A reasoning item's summary part begins with its first text (one that only
                // carries a signature has none).
                let part = json!({"item_id": id, "output_index": index, "summary_index": 0,
                                  "part": {"type": "summary_text", "text": ""}});
                self.emit(events, "response.reasoning_summary_part.added", part);
            }
            let (event, data) = match kind {
                Kind::Reasoning => (
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": text}),
                ),
                Kind::Message => (
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                ),
            };
            self.emit(events, event, data);
        }
        if let (Kind::Reasoning, Some(signature)) = (kind, signature) {
            self.close(Some(signature), events);
        }
    }

    /// A call as its item, its signature on a reasoning item before it.
    fn call(&mut self, name: &str, args: &str, signature: Option<String>, events: &mut Vec<Event>) {
        if signature.is_some() {
            self.open(Kind::Reasoning, events);
        }
        self.close(signature, events);
        self.state.calls += 1;
        let index = self.state.output.len();
        let call_id = format!("call_{:016x}_{}", self.seed, self.state.calls);
        let name = self.names.to_client(name).to_string();
        let item = if self.names.is_freeform(&name) {
            let input = freeform_input(args);
            json!({"type": "custom_tool_call", "id": format!("ctc_{:016x}_{index}", self.seed),
                   "call_id": call_id, "name": name, "input": input, "status": "completed"})
        } else {
            json!({"type": "function_call", "id": format!("fc_{:016x}_{index}", self.seed),
                   "call_id": call_id, "name": name, "arguments": args, "status": "completed"})
        };
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        self.emit(events, "response.output_item.added", json!({"output_index": index, "item": added}));
        if item["type"] == "function_call" {
            let id = item["id"].clone();
            let arguments = item["arguments"].clone();
            let delta = json!({"item_id": id, "output_index": index, "delta": arguments});
            self.emit(events, "response.function_call_arguments.delta", delta);
            let done = json!({"item_id": id, "output_index": index, "arguments": arguments});
            self.emit(events, "response.function_call_arguments.done", done);
        }
        self.done(item, events);
    }

    /// The item open for `kind` text: the one open if it is such, else a new one.
    fn open(&mut self, kind: Kind, events: &mut Vec<Event>) {
        if self.state.open.as_ref().is_some_and(|o| o.kind == kind) {
            return;
        }
        self.close(None, events);
        let index = self.state.output.len();
        let id = match kind {
            Kind::Reasoning => {
                let id = format!("rs_{:016x}_{index}", self.seed);
                let item = json!({"type": "reasoning", "id": id, "summary": []});
                self.emit(events, "response.output_item.added", json!({"output_index": index, "item": item}));
                id
            }
            Kind::Message => {
                let id = format!("msg_{:016x}_{index}", self.seed);
                let item =
                    json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []});
                self.emit(events, "response.output_item.added", json!({"output_index": index, "item": item}));
                let part = json!({"item_id": id, "output_index": index, "content_index": 0,
                                  "part": {"type": "output_text", "text": "", "annotations": []}});
                self.emit(events, "response.content_part.added", part);
                id
            }
        };
        self.state.open = Some(Open { kind, id, text: String::new() });
    }

    /// Closes the open item (a reasoning item keeps `signature` as its `encrypted_content`).
    fn close(&mut self, signature: Option<String>, events: &mut Vec<Event>) {
        let Some(Open { kind, id, text }) = self.state.open.take() else { return };
        let index = self.state.output.len();
        let item = match kind {
            Kind::Reasoning => {
                let mut summary = json!([]);
                if !text.is_empty() {
                    let part = json!({"item_id": id, "output_index": index, "summary_index": 0,
                                      "part": {"type": "summary_text", "text": text}});
                    let done = json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text});
                    self.emit(events, "response.reasoning_summary_text.done", done);
                    self.emit(events, "response.reasoning_summary_part.done", part);
                    summary = json!([{"type": "summary_text", "text": text}]);
                }
                let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
                if let Some(signature) = signature {
                    item["encrypted_content"] = json!(format!("{SIGNATURE_MARK}{signature}"));
                }
                item
            }
            Kind::Message => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let done = json!({"item_id": id, "output_index": index, "content_index": 0, "text": text});
                self.emit(events, "response.output_text.done", done);
                let part_done = json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                self.emit(events, "response.content_part.done", part_done);
                json!({"type": "message", "id": id, "role": "assistant", "status": "completed", "content": [part]})
            }
        };
        self.done(item, events);
    }

    /// `response.output_item.done` with the whole item, which joins the output.
    fn done(&mut self, item: Value, events: &mut Vec<Event>) {
        let index = self.state.output.len();
        self.emit(events, "response.output_item.done", json!({"output_index": index, "item": item}));
        self.state.output.push(item);
    }

    /// Google's answer is over: how it ended.
    fn end(&mut self, events: &mut Vec<Event>) {
        if self.state.ended {
            return;
        }
        let end = match self.state.finish.as_deref() {
            None => End::Failed("server_error", "Google's answer ended before it was complete.".into()),
            Some("MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL") => {
                End::Failed("server_error", "Gemini could not form a tool call; try again.".into())
            }
            Some(_) if self.state.calls > 0 => End::Completed,
            Some("STOP" | "FINISH_REASON_UNSPECIFIED") => End::Completed,
            Some("MAX_TOKENS") => End::Incomplete("max_output_tokens"),
            Some(_) => End::Incomplete("content_filter"),
        };
        self.stop(end, events);
    }

    /// The one terminal event.
    fn stop(&mut self, end: End, events: &mut Vec<Event>) {
        if !matches!(end, End::Failed(..)) {
            self.close(None, events);
        }
        self.start(events);
        self.state.ended = true;
        let (kind, mut response) = match end {
            End::Completed => ("response.completed", self.response("completed")),
            End::Incomplete(reason) => {
                let mut response = self.response("incomplete");
                response["incomplete_details"] = json!({ "reason": reason });
                ("response.incomplete", response)
            }
            End::Failed(code, message) => {
                let mut response = self.response("failed");
                response["error"] = json!({"code": code, "message": message});
                ("response.failed", response)
            }
        };
        response["usage"] = usage_json(self.state.usage);
        if !self.stream {
            self.state.response = response.clone();
        }
        self.emit(events, kind, json!({ "response": response }));
    }
}

/// A freeform tool's input: the call's one `input` argument (its arguments' text if it has none).
fn freeform_input(args: &str) -> String {
    let parsed = serde_json::from_str::<Value>(args).ok();
    parsed
        .as_ref()
        .and_then(|a| a.get("input"))
        .and_then(Value::as_str)
        .map_or_else(|| args.to_string(), str::to_string)
}

/// The Responses API's usage object.
fn usage_json(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached},
        "output_tokens": usage.output(),
        "output_tokens_details": {"reasoning_tokens": usage.thoughts},
        "total_tokens": usage.prompt + usage.output(),
    })
}

/// The code a failed response carries for Google's status (Codex retries `rate_limit_exceeded`
/// and `server_error`).
fn failure_code(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_prompt",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::sse::read_events;

    fn sse(chunks: &[Value]) -> Vec<u8> {
        chunks.iter().flat_map(|c| format!("data: {c}\r\n\r\n").into_bytes()).collect()
    }

    /// The events of a translated stream, fed in pieces of `cut` bytes (each named for its type).
    fn events(google: &[u8], cut: usize, names: ToolNames) -> Vec<Value> {
        let mut answer = ResponsesAnswer::new("gpt-5.1-codex", names, true, 7, 1_000_000);
        let mut out: Vec<u8> = google.chunks(cut.max(1)).flat_map(|piece| answer.feed(piece)).collect();
        out.extend(answer.finish());
        read_events(&out)
            .into_iter()
            .map(|(kind, data)| {
                assert_eq!(data["type"], kind, "the event names its type");
                data
            })
            .collect()
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().filter_map(|e| e["type"].as_str()).collect()
    }

    fn call_chunks() -> Vec<u8> {
        sse(&[
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me look.", "thought": true}]}}],
                   "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100}}),
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "exec_command", "args": {"cmd": "ls"}}, "thoughtSignature": "U0lH"}]},
                "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 9, "thoughtsTokenCount": 4}}),
        ])
    }

    #[test]
    fn a_stream_with_a_call_reads_as_codex_expects_however_it_is_cut() {
        let whole = events(&call_chunks(), usize::MAX, ToolNames::default());
        assert_eq!(
            kinds(&whole),
            [
                "response.created",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let sequence: Vec<u64> = whole.iter().filter_map(|e| e["sequence_number"].as_u64()).collect();
        assert_eq!(sequence, (0..12).collect::<Vec<_>>());
        assert_eq!(whole[6]["item"]["encrypted_content"], "gemini-signature:U0lH");
        assert_eq!(whole[6]["item"]["summary"][0]["text"], "Let me look.");
        assert_eq!(whole[10]["item"]["arguments"], r#"{"cmd":"ls"}"#);
        assert_eq!(whole[10]["output_index"], 1);
        let completed = &whole[11]["response"];
        assert_eq!(completed["output"].as_array().map(Vec::len), Some(2));
        assert_eq!(completed["usage"]["input_tokens_details"]["cached_tokens"], 100);
        assert_eq!(completed["usage"]["output_tokens"], 13);
        assert_eq!(completed["usage"]["total_tokens"], 133);
        for cut in [1, 3, 17, 64] {
            assert_eq!(events(&call_chunks(), cut, ToolNames::default()), whole, "cut every {cut} bytes");
        }
    }

    #[test]
    fn a_signature_without_thoughts_is_a_reasoning_item_with_no_summary() {
        let signed = sse(&[json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "U0lH"}]}, "finishReason": "STOP"}]})]);
        let got = events(&signed, 7, ToolNames::default());
        assert_eq!(
            kinds(&got),
            [
                "response.created",
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(
            got[2]["item"],
            json!({"type": "reasoning", "id": got[1]["item"]["id"], "summary": [],
                                          "encrypted_content": "gemini-signature:U0lH"})
        );
    }

    #[test]
    fn a_stream_cut_or_failed_ends_failed_once() {
        let cut = sse(&[json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]})]);
        let got = events(&cut, usize::MAX, ToolNames::default());
        assert_eq!(
            kinds(&got),
            [
                "response.created",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.failed"
            ]
        );
        let failed = sse(&[
            json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}),
            json!({"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}),
        ]);
        let got = events(&failed, 5, ToolNames::default());
        let last = got.last().expect("an end");
        assert_eq!(last["response"]["error"]["code"], "rate_limit_exceeded");
        assert_eq!(kinds(&got).iter().filter(|k| k.starts_with("response.f") || k.ends_with("completed")).count(), 1);
    }

    #[test]
    fn a_freeform_call_and_a_whole_answer() {
        let mut names = ToolNames::default();
        names.mark_freeform("apply_patch");
        let google = json!({"candidates": [{"content": {"parts": [
                {"text": "Patching."},
                {"functionCall": {"name": "apply_patch", "args": {"input": "*** Begin Patch"}}}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3}});
        let mut answer = ResponsesAnswer::new("gpt-5.1-codex", names, false, 1, 5_000);
        assert!(answer.feed(google.to_string().as_bytes()).is_empty());
        let response: Value = serde_json::from_slice(&answer.finish()).expect("json");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["created_at"], 5);
        assert_eq!(response["output"][0]["content"][0]["text"], "Patching.");
        assert_eq!(response["output"][1]["type"], "custom_tool_call");
        assert_eq!(response["output"][1]["input"], "*** Begin Patch");
        for (finish, reason) in [("MAX_TOKENS", "max_output_tokens"), ("SAFETY", "content_filter")] {
            let google = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": finish}]});
            let mut answer = ResponsesAnswer::new("m", ToolNames::default(), false, 1, 0);
            answer.feed(google.to_string().as_bytes());
            let response: Value = serde_json::from_slice(&answer.finish()).expect("json");
            assert_eq!(response["incomplete_details"]["reason"], reason, "{finish}");
        }
    }
}
