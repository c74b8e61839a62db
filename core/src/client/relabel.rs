//! The answer to an aliased request carries the client's model name back: where Google's
//! **envelope** names the Gemini model (`"gemini-3.5-flash"` or `"models/gemini-3.5-flash"`), the
//! client reads its alias instead — as the bytes pass (streams included: never buffered, a name
//! split between two chunks is still found).
//!
//! The envelope is the answer's own fields, never what the model wrote: a string is rewritten
//! only as the value of `model` or `modelVersion` in an object at most two deep (an interaction
//! event's `interaction.model`), or of `name` or `id` at the top (a model's own page), with no
//! list on the way — a top-level list excepted (Google's streamed JSON array). A function call's
//! arguments, a candidate's text, tool calls: all sit inside lists or deeper, and pass untouched.
//! The scanner follows JSON's structure as the bytes pass (strings and their escapes, objects,
//! lists); the text around a stream's events (`data: `, `event: …`) holds no JSON structure.

/// Rewrites the model's name to the alias in a body that passes through in chunks.
#[derive(Debug, Clone)]
pub struct Relabel {
    /// (what Google wrote, what the client reads), without quotes.
    pairs: [(Vec<u8>, Vec<u8>); 2],
    /// The open objects (`{`) and lists (`[`), outermost first; past [`MAX_DEPTH`] only counted.
    open: Vec<u8>,
    deeper: usize,
    /// In an object: the next string is a key.
    expect_key: bool,
    /// The last key of the innermost object, if it may name the model there.
    key: Option<Envelope>,
    /// Inside a string: whether the last byte was a backslash.
    string: Option<Text>,
}

/// A string being passed on.
#[derive(Debug, Clone)]
enum Text {
    /// A key: its first bytes, to tell an envelope key.
    Key { head: Vec<u8>, escaped: bool },
    /// A value that may be the model's name: held back until it is known (a quote, then the
    /// bytes so far).
    Held(Vec<u8>),
    /// Any other string, passed on as it comes.
    Passing { escaped: bool },
}

/// The envelope's keys that may hold the model's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// `model`, `modelVersion`: in an object at most two deep.
    Model,
    /// `name`, `id`: at the top only.
    Name,
}

/// Deeper than this, nothing is envelope (and nothing needs telling apart).
const MAX_DEPTH: usize = 8;
/// The longest key worth reading.
const KEY_HEAD: usize = 16;

impl Relabel {
    /// Answers naming `model` (the Gemini model) will name `alias` (the client's name).
    pub fn new(model: &str, alias: &str) -> Self {
        let prefixed = |name: &str| format!("models/{name}").into_bytes();
        Relabel {
            pairs: [(prefixed(model), prefixed(alias)), (model.as_bytes().to_vec(), alias.as_bytes().to_vec())],
            open: Vec::new(),
            deeper: 0,
            expect_key: false,
            key: None,
            string: None,
        }
    }

    /// The next chunk, rewritten (a string that may be the model's name waits for its end).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 16);
        for &byte in chunk {
            match self.string.take() {
                Some(text) => self.in_string(text, byte, &mut out),
                None => self.structure(byte, &mut out),
            }
        }
        out
    }

    /// What was held back at the end of the body (a string cut off).
    pub fn finish(&mut self) -> Vec<u8> {
        match self.string.take() {
            Some(Text::Held(held)) => held,
            _ => Vec::new(),
        }
    }

    /// A byte outside any string.
    fn structure(&mut self, byte: u8, out: &mut Vec<u8>) {
        out.push(byte);
        match byte {
            b'"' if self.in_object() && self.expect_key => {
                self.string = Some(Text::Key { head: Vec::new(), escaped: false });
            }
            b'"' => {
                let candidate = self.key.take().is_some_and(|key| self.envelope_at(key));
                self.string = Some(if candidate {
                    out.pop();
                    Text::Held(vec![b'"'])
                } else {
                    Text::Passing { escaped: false }
                });
            }
            b'{' | b'[' => {
                self.key = None;
                self.push(byte);
                self.expect_key = byte == b'{';
            }
            b'}' | b']' => {
                self.pop();
                self.key = None;
                self.expect_key = false;
            }
            b':' if self.in_object() => self.expect_key = false,
            b',' => {
                self.key = None;
                self.expect_key = self.in_object();
            }
            _ => {}
        }
    }

    /// A byte inside a string.
    fn in_string(&mut self, text: Text, byte: u8, out: &mut Vec<u8>) {
        out.extend(match &text {
            Text::Held(_) => None,
            _ => Some(byte),
        });
        self.string = match text {
            Text::Key { head, escaped: true } => Some(Text::Key { head, escaped: false }),
            Text::Key { head, .. } if byte == b'"' => {
                self.key = envelope_key(&head);
                None
            }
            Text::Key { mut head, .. } => {
                if head.len() <= KEY_HEAD {
                    head.push(byte);
                }
                Some(Text::Key { head, escaped: byte == b'\\' })
            }
            Text::Passing { escaped: true } => Some(Text::Passing { escaped: false }),
            Text::Passing { .. } if byte == b'"' => None,
            Text::Passing { .. } => Some(Text::Passing { escaped: byte == b'\\' }),
            Text::Held(mut held) => {
                if byte == b'"' {
                    let name = &held[1..];
                    match self.pairs.iter().find(|(from, _)| from.as_slice() == name) {
                        Some((_, to)) => {
                            out.push(b'"');
                            out.extend_from_slice(to);
                        }
                        None => out.extend_from_slice(&held),
                    }
                    out.push(b'"');
                    return;
                }
                held.push(byte);
                let name = &held[1..];
                if self.pairs.iter().any(|(from, _)| from.starts_with(name)) {
                    Some(Text::Held(held))
                } else {
                    // Not the model's name: what was held goes on, and the rest passes.
                    out.extend_from_slice(&held);
                    Some(Text::Passing { escaped: byte == b'\\' })
                }
            }
        };
    }

    fn in_object(&self) -> bool {
        self.deeper == 0 && self.open.last() == Some(&b'{')
    }

    fn push(&mut self, byte: u8) {
        if self.open.len() < MAX_DEPTH && self.deeper == 0 {
            self.open.push(byte);
        } else {
            self.deeper += 1;
        }
    }

    fn pop(&mut self) {
        if self.deeper > 0 {
            self.deeper -= 1;
        } else {
            self.open.pop();
        }
    }

    /// Is a value under `key` here part of the envelope: objects only on the way (a top-level
    /// list aside), two deep at most for `model`, the top for `name`?
    fn envelope_at(&self, key: Envelope) -> bool {
        if self.deeper > 0 {
            return false;
        }
        let path = self.open.strip_prefix(b"[").unwrap_or(&self.open);
        let objects_only = path.iter().all(|&b| b == b'{');
        match key {
            Envelope::Model => objects_only && (1..=2).contains(&path.len()),
            Envelope::Name => objects_only && path.len() == 1,
        }
    }
}

/// The envelope key a key's text is, if any.
fn envelope_key(head: &[u8]) -> Option<Envelope> {
    match head {
        b"model" | b"modelVersion" | b"model_version" => Some(Envelope::Model),
        b"name" | b"id" => Some(Envelope::Name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(relabel: &mut Relabel, body: &[u8], size: usize) -> Vec<u8> {
        let mut out: Vec<u8> = body.chunks(size).flat_map(|c| relabel.feed(c)).collect();
        out.extend(relabel.finish());
        out
    }

    fn check(body: &str, want: &str) {
        for size in [1, 2, 3, 7, 16, body.len().max(1)] {
            let mut relabel = Relabel::new("gemini-3.5-flash", "gpt-4o");
            let got = through(&mut relabel, body.as_bytes(), size);
            assert_eq!(String::from_utf8_lossy(&got), want, "chunks of {size}");
        }
    }

    #[test]
    fn the_envelope_names_the_alias_whatever_the_chunks() {
        check(
            r#"data: {"model":"gemini-3.5-flash","x":"gemini-3.5-flash","m":{"model":"models/gemini-3.5-flash"},"y":"gemini-3.5-flash-lite"}"#,
            r#"data: {"model":"gpt-4o","x":"gemini-3.5-flash","m":{"model":"models/gpt-4o"},"y":"gemini-3.5-flash-lite"}"#,
        );
        check(
            "[{\"modelVersion\": \"gemini-3.5-flash\"}\n,\r\n{\"modelVersion\" : \"gemini-3.5-flash\"}]",
            "[{\"modelVersion\": \"gpt-4o\"}\n,\r\n{\"modelVersion\" : \"gpt-4o\"}]",
        );
        check(
            r#"{"name":"models/gemini-3.5-flash","displayName":"x"}"#,
            r#"{"name":"models/gpt-4o","displayName":"x"}"#,
        );
        check(
            r#"event: interaction.created
data: {"event_type":"interaction.created","interaction":{"id":"v1","model":"gemini-3.5-flash"}}"#,
            r#"event: interaction.created
data: {"event_type":"interaction.created","interaction":{"id":"v1","model":"gpt-4o"}}"#,
        );
    }

    #[test]
    fn what_the_model_wrote_is_never_touched() {
        for body in [
            // A function call's arguments, a candidate's text, an escaped quote, a tool call.
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"model":"gemini-3.5-flash"}}}]}}],"modelVersion":"x"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"\"gemini-3.5-flash\""}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{\"model\":\"gemini-3.5-flash\"}"}}]}}]}"#,
            r#"{"delta":{"type":"function_call","arguments":{"model":"gemini-3.5-flash"}}}"#,
            r#"{"a":{"b":{"model":"gemini-3.5-flash"}}}"#,
            r#"{"x":{"name":"gemini-3.5-flash"}}"#,
            r#"{"text":"model: gemini-3.5-flash","model\"":"gemini-3.5-flash"}"#,
        ] {
            check(body, body);
        }
    }

    #[test]
    fn a_body_cut_inside_a_name_keeps_it() {
        let mut relabel = Relabel::new("gemini-3.5-flash", "gpt-4o");
        assert_eq!(through(&mut relabel, b"{\"model\":\"gemini-3", 4), b"{\"model\":\"gemini-3");
    }
}
