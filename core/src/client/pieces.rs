//! Google's `generateContent` answer read as it passes, as the pieces both agent translators
//! turn into their own dialect ([`crate::client::messages_answer`],
//! [`crate::client::responses_answer`]): usage, text and thought text, calls with their
//! signatures, the finish reason, an error. A stream (`alt=sse`) yields its pieces event by
//! event, holding only an event not yet whole; a whole answer yields them once it has come.

use crate::client::sse::event_end;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One thing Google's answer said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// The counts so far (each chunk of a stream carries them all).
    Usage(Usage),
    /// Text: the model's thoughts (`thought`) or its answer.
    Text { text: String, thought: bool, signature: Option<String> },
    /// A function call, named as Google knows it; `args`: its arguments' JSON text (an object).
    Call { name: String, args: String, signature: Option<String> },
    /// Google's `finishReason` (a blocked prompt: `SAFETY`).
    Finish(String),
    /// Google's error (an event of a stream that failed after it began).
    Failed { status: u16, message: String },
    /// Bytes that are not Google's JSON.
    Unreadable,
}

/// Google's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Usage {
    /// The prompt's tokens (`cached` among them).
    #[serde(rename = "promptTokenCount", default)]
    pub(crate) prompt: u64,
    /// Of the prompt, served from a cache.
    #[serde(rename = "cachedContentTokenCount", default)]
    pub(crate) cached: u64,
    /// The answer's tokens.
    #[serde(rename = "candidatesTokenCount", default)]
    pub(crate) candidates: u64,
    /// The thoughts' tokens.
    #[serde(rename = "thoughtsTokenCount", default)]
    pub(crate) thoughts: u64,
}

impl Usage {
    /// What the model made: the answer and its thoughts.
    pub(crate) fn output(self) -> u64 {
        self.candidates + self.thoughts
    }
}

/// Google's answer, read as it passes.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    stream: bool,
    pending: Vec<u8>,
}

impl Reader {
    /// A reader of a stream (`alt=sse`), or of a whole answer.
    pub(crate) fn new(stream: bool) -> Self {
        Reader { stream, pending: Vec::new() }
    }

    /// The next bytes: the pieces of the events they complete (a whole answer: none yet).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<Piece> {
        self.pending.extend_from_slice(bytes);
        let mut pieces = Vec::new();
        if self.stream {
            while let Some((end, skip)) = event_end(&self.pending) {
                let event: Vec<u8> = self.pending.drain(..end + skip).take(end).collect();
                read_event(&event, &mut pieces);
            }
        }
        pieces
    }

    /// The bytes fed and not yet read, taken as they are (an answer that is not content).
    pub(crate) fn unread(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// The answer has ended: the pieces of what is left.
    pub(crate) fn finish(&mut self) -> Vec<Piece> {
        let rest = std::mem::take(&mut self.pending);
        let mut pieces = Vec::new();
        if self.stream {
            read_event(&rest, &mut pieces);
        } else {
            read_chunk(&rest, &mut pieces);
        }
        pieces
    }
}

/// One chunk of Google's answer, as far as the translators read it (the rest is skipped
/// unread; strings are borrowed where they need no unescaping).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    error: Option<ChunkError<'a>>,
    #[serde(rename = "usageMetadata", default)]
    usage: Option<Usage>,
    #[serde(borrow, default)]
    candidates: Option<Vec<Candidate<'a>>>,
    #[serde(rename = "promptFeedback", borrow, default)]
    feedback: Option<Feedback<'a>>,
}

#[derive(Deserialize)]
struct ChunkError<'a> {
    #[serde(default)]
    code: Option<u64>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Feedback<'a> {
    #[serde(rename = "blockReason", borrow, default)]
    block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(rename = "finishReason", borrow, default)]
    finish: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(rename = "thoughtSignature", borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(rename = "functionCall", borrow, default)]
    call: Option<Call<'a>>,
}

#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}

/// One SSE event (its `data:` lines joined).
fn read_event(event: &[u8], pieces: &mut Vec<Piece>) {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
    match data.as_slice() {
        [] => {} // a comment, or the blank end
        [one] => read_chunk(one.as_bytes(), pieces),
        lines => read_chunk(lines.join("\n").as_bytes(), pieces),
    }
}

/// One chunk of the answer (a stream's event, or the whole answer).
fn read_chunk(json: &[u8], pieces: &mut Vec<Piece>) {
    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(json) else { return pieces.push(Piece::Unreadable) };
    if let Some(error) = chunk.error {
        let status = error.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
        let message = error.message.map_or_else(|| "Google's answer failed.".to_string(), Cow::into_owned);
        pieces.push(Piece::Failed { status, message });
        return;
    }
    if let Some(usage) = chunk.usage {
        pieces.push(Piece::Usage(usage));
    }
    let candidate = chunk.candidates.and_then(|c| c.into_iter().next());
    let blocked = chunk.feedback.is_some_and(|f| f.block_reason.is_some());
    let Some(candidate) = candidate else {
        if blocked {
            pieces.push(Piece::Finish("SAFETY".to_string()));
        }
        return;
    };
    let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
    pieces.extend(parts.into_iter().filter_map(read_part));
    if let Some(reason) = candidate.finish {
        pieces.push(Piece::Finish(reason.into_owned()));
    }
}

fn read_part(part: Part<'_>) -> Option<Piece> {
    let signature = part.signature.map(Cow::into_owned);
    if let Some(call) = part.call {
        let name = call.name.map(Cow::into_owned).unwrap_or_default();
        let args = call.args.map(RawValue::get).filter(|a| a.trim_start().starts_with('{')).unwrap_or("{}");
        return Some(Piece::Call { name, args: args.to_string(), signature });
    }
    let text = part.text?.into_owned();
    Some(Piece::Text { text, thought: part.thought.unwrap_or(false), signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_reads_the_same_however_it_is_cut() {
        let stream = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\",\"thought\":true},\
            {\"functionCall\":{\"name\":\"f\",\"args\":{\"x\":1}},\"thoughtSignature\":\"s\"}]},\"finishReason\":\"STOP\"}],\
            \"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2}}\r\n\r\ndata: {\"error\":{\"code\":503,\"message\":\"busy\"}}\n\n: comment\n\n";
        let read = |cut: usize| {
            let mut reader = Reader::new(true);
            let mut pieces: Vec<Piece> = stream.chunks(cut).flat_map(|c| reader.feed(c)).collect();
            pieces.extend(reader.finish());
            pieces
        };
        let whole = read(stream.len());
        assert_eq!(
            whole,
            vec![
                Piece::Usage(Usage { prompt: 5, cached: 0, candidates: 2, thoughts: 0 }),
                Piece::Text { text: "a".into(), thought: true, signature: None },
                Piece::Call { name: "f".into(), args: r#"{"x":1}"#.into(), signature: Some("s".into()) },
                Piece::Finish("STOP".into()),
                Piece::Failed { status: 503, message: "busy".into() },
            ]
        );
        for cut in [1, 2, 7, 33] {
            assert_eq!(read(cut), whole, "cut every {cut}");
        }
    }

    #[test]
    fn a_whole_answer_and_garbage() {
        let mut reader = Reader::new(false);
        assert!(reader.feed(br#"{"promptFeedback":{"blockReason":"OTHER"}}"#).is_empty());
        assert_eq!(reader.finish(), vec![Piece::Finish("SAFETY".into())]);
        let mut reader = Reader::new(false);
        reader.feed(b"<html>");
        assert_eq!(reader.finish(), vec![Piece::Unreadable]);
        let mut reader = Reader::new(true);
        assert_eq!(reader.feed(b"data: {oops\n\n"), vec![Piece::Unreadable]);
    }
}
