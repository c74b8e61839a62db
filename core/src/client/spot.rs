//! What a success made: its name found in Google's answer ([`Spotter`]) — or, for a batch or an
//! operation, the file Google generated that the answer names, which the proxy **adopts** (its
//! record, so a download of it follows its project: [`crate::decide::affinity`]). Which routes
//! make what is the route's to say ([`Route::makes`](crate::client::route::Route::makes)).

use crate::google::resource::{file_named, Kind, Resource};
use serde_json::Value;

/// The most of an answer the proxy reads to find the name of what it made (1 MiB); a longer
/// answer passes on without a record (its resource is then not found through the proxy).
pub const SPOT_LIMIT: usize = 1024 * 1024;

/// Finds the name of the resource a success made in the head of Google's answer: the whole
/// JSON answer (`name`, `file.name`, an interaction's `id`), or a stream's first event
/// (`interaction.created`). Like [`crate::google::empty::Peeker`], the edge reads pieces until
/// it decides.
#[derive(Debug, Clone)]
pub struct Spotter {
    kind: Kind,
    stream: bool,
    /// Look for a generated file the answer names, not for what it made.
    adopt: bool,
}

/// What a [`Spotter`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spot {
    /// Read more.
    More,
    /// The answer made this.
    Found(Resource),
    /// The answer names nothing it made (or it is too long to read): pass it on as it is.
    Nothing,
}

impl Spotter {
    /// A spotter for an answer that makes a `kind` (`stream`: Google's answer is a stream of
    /// events).
    pub fn new(kind: Kind, stream: bool) -> Self {
        Spotter { kind, stream, adopt: false }
    }

    /// A spotter for a batch's or an operation's answer: the file Google generated that it names.
    pub fn generated() -> Self {
        Spotter { kind: Kind::File, stream: false, adopt: true }
    }

    /// Looks at the head read so far (`ended`: it is the whole answer).
    pub fn spot(&self, head: &[u8], ended: bool) -> Spot {
        if self.stream {
            return match first_event(head) {
                Some(data) => self.found_in(data),
                None if ended || head.len() > SPOT_LIMIT => Spot::Nothing,
                None => Spot::More,
            };
        }
        if head.len() > SPOT_LIMIT {
            return Spot::Nothing;
        }
        if !ended {
            return Spot::More;
        }
        self.found_in(head)
    }

    fn found_in(&self, json: &[u8]) -> Spot {
        let Ok(value) = serde_json::from_slice::<Value>(json) else { return Spot::Nothing };
        if self.adopt {
            return generated_file(&value, None).map_or(Spot::Nothing, Spot::Found);
        }
        let name = match self.kind {
            Kind::Interaction => value.get("interaction").unwrap_or(&value).get("id").and_then(Value::as_str),
            Kind::File => value.get("file").and_then(|f| f.get("name")).and_then(Value::as_str),
            Kind::Cache | Kind::Upload | Kind::Batch => value.get("name").and_then(Value::as_str),
            // `models/{m}/operations/{id}`.
            Kind::Operation => {
                value.get("name").and_then(Value::as_str).and_then(|n| n.rsplit_once("/operations/")).map(|(_, id)| id)
            }
        };
        let id = name.map(|n| n.strip_prefix(self.kind.collection()).and_then(|r| r.strip_prefix('/')).unwrap_or(n));
        id.and_then(|id| Resource::new(self.kind, id)).map_or(Spot::Nothing, Spot::Found)
    }
}

/// The file Google generated that a batch's or an operation's answer names — by the field
/// Google writes it in, never by a file the answer merely mentions (a batch's answer repeats
/// its input file): a batch's results (`responsesFile`, in `metadata.output` or `response`),
/// an operation's video (`video.uri`). `parent`: the key `value` is under.
fn generated_file(value: &Value, parent: Option<&str>) -> Option<Resource> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, inner)| {
            let named = match (parent, key.as_str(), inner.as_str()) {
                (_, "responsesFile" | "responses_file", Some(text)) => file_named(text).ok().flatten(),
                (Some("video"), "uri", Some(text)) => file_named(text).ok().flatten(),
                _ => None,
            };
            named.or_else(|| generated_file(inner, Some(key)))
        }),
        Value::Array(items) => items.iter().find_map(|item| generated_file(item, parent)),
        _ => None,
    }
}

/// The data of a stream's first complete event, if the head holds one.
fn first_event(head: &[u8]) -> Option<&[u8]> {
    let end = (0..head.len()).find(|&i| head[i..].starts_with(b"\n\n") || head[i..].starts_with(b"\r\n\r\n"))?;
    let event = &head[..end];
    let line = event.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"data:"))?;
    Some(line.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopts_a_generated_file_by_the_field_google_writes_it_in() {
        let batch = Spotter::generated();
        // The input file comes first in the answer; the results file is the one adopted.
        let answer = br#"{"name":"batches/b","metadata":{"inputConfig":{"fileName":"files/in-1"},"output":{"responsesFile":"files/out-1"}}}"#;
        assert_eq!(batch.spot(answer, true), Spot::Found(Resource::new(Kind::File, "out-1").expect("id")));
        let pending = br#"{"name":"batches/b","metadata":{"inputConfig":{"fileName":"files/in-1"}}}"#;
        assert_eq!(batch.spot(pending, true), Spot::Nothing);
        let video = br#"{"done":true,"response":{"generateVideoResponse":{"generatedSamples":[{"video":{"uri":"https://generativelanguage.googleapis.com/v1beta/files/op1v:download?alt=media"}}]}}}"#;
        assert_eq!(batch.spot(video, true), Spot::Found(Resource::new(Kind::File, "op1v").expect("id")));
    }

    #[test]
    fn spots_what_an_answer_made() {
        let file = Spotter::new(Kind::File, false);
        assert_eq!(file.spot(br#"{"file":{"name":"files/x1"}}"#, false), Spot::More);
        assert_eq!(
            file.spot(br#"{"file":{"name":"files/x1"}}"#, true),
            Spot::Found(Resource::new(Kind::File, "x1").expect("id"))
        );
        let stream = Spotter::new(Kind::Interaction, true);
        let head = b"data: {\"event_type\":\"interaction.created\",\"interaction\":{\"id\":\"v1_q\"}}\r\n\r\ndata: {";
        assert_eq!(stream.spot(&head[..20], false), Spot::More);
        assert_eq!(stream.spot(head, false), Spot::Found(Resource::new(Kind::Interaction, "v1_q").expect("id")));
        assert_eq!(Spotter::new(Kind::Cache, false).spot(b"not json", true), Spot::Nothing);
        let operation = br#"{"name":"models/veo-3.1-generate-preview/operations/op-9"}"#;
        assert_eq!(
            Spotter::new(Kind::Operation, false).spot(operation, true),
            Spot::Found(Resource::new(Kind::Operation, "op-9").expect("id"))
        );
        assert_eq!(
            Spotter::new(Kind::Batch, false).spot(br#"{"name":"batches/b-2","metadata":{}}"#, true),
            Spot::Found(Resource::new(Kind::Batch, "b-2").expect("id"))
        );
    }
}
