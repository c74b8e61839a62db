//! What the proxy does to Google's success on its way to the client, as the bytes pass: the
//! client's alias put back ([`Relabel`]) or the answer translated into a coding agent's dialect
//! ([`MessagesAnswer`], [`ResponsesAnswer`]). The edge feeds each chunk after the meter has read it, and sends what
//! comes out.

use crate::client::messages_answer::MessagesAnswer;
use crate::client::relabel::Relabel;
use crate::client::responses_answer::ResponsesAnswer;

/// A success's bytes rewritten as they pass.
#[derive(Debug, Clone)]
pub enum Transform {
    /// The client asked by an alias: the answer names it.
    Relabel(Relabel),
    /// The client spoke Anthropic's Messages API.
    Messages(MessagesAnswer),
    /// The client spoke OpenAI's Responses API.
    Responses(ResponsesAnswer),
}

impl Transform {
    /// The next chunk of Google's answer; what the client gets of it now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        match self {
            Transform::Relabel(relabel) => relabel.feed(chunk),
            Transform::Messages(answer) => answer.feed(chunk),
            Transform::Responses(answer) => answer.feed(chunk),
        }
    }

    /// Google's answer has ended: the rest of the client's.
    pub fn finish(&mut self) -> Vec<u8> {
        match self {
            Transform::Relabel(relabel) => relabel.finish(),
            Transform::Messages(answer) => answer.finish(),
            Transform::Responses(answer) => answer.finish(),
        }
    }
}
