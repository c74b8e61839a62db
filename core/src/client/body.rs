//! What the proxy reads of a request's JSON body, in **one pass over the decoded JSON** — so a
//! name is found however the client spells it (escapes such as `files\/abc` or `\u0066iles`,
//! any key order, any whitespace), and a body the proxy cannot read is refused (400), never
//! passed on half-read:
//!
//! - the model it names at its top (`model`), whether it streams (`stream`) or runs in the
//!   background (`background`), and an Interactions agent (`agent`);
//! - the models named inside it, where Google reads one: `generateContentRequest.model`
//!   (`countTokens`), `requests[].model` (`batchEmbedContents`), `batch.model` and each inlined
//!   request's `request.model` (`batchGenerateContent`) — each must pass the client's allow-list
//!   like the top one;
//! - every stateful resource it references, at any depth, by the fields that reference one
//!   (`fileUri`, `uri`, `fileName`, `responsesFile`, `cachedContent`,
//!   `previous_interaction_id`; Google reads both `lowerCamel` and `snake_case` field names,
//!   so both are read, in any letter case); a reference that looks like one of Google's but is
//!   not written the canonical way is refused ([`crate::google::resource`]);
//! - the name an upload's metadata chooses for its file (`file.name`).
//!
//! Nothing is copied: strings the proxy does not need are checked (serde_json validates UTF-8,
//! escapes, numbers, nesting up to 128) and dropped. The body itself goes on as it came.

use crate::client::envelope::ErrorReply;
use crate::client::model::{normalize_model, valid_model};
use crate::google::resource::{cache_named, file_named, interaction_named, Kind, Resource, Unreadable};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What a request says, as far as the proxy needs it: read from its body here, then completed
/// from its path by [`Route::facts`](crate::client::route::Route::facts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The model it is about (normalised: no `models/`; `None` for endpoints without one, such
    /// as model lists). The body's reader takes the one at the body's top.
    pub model: Option<String>,
    /// Whether Google's answer streams (it must reach the client as `text/event-stream`).
    pub stream: bool,
    /// An interaction that runs in the background (its tokens are known only later).
    pub background: bool,
    /// An Interactions agent it asks for (`"agent"` at the body's top).
    pub agent: Option<String>,
    /// Models named inside the body (or a second time), each checked like `model`.
    pub inner_models: Vec<String>,
    /// The stateful resources it names (deduplicated, in the order met; the path's first).
    pub resources: Vec<Resource>,
    /// The file an upload's metadata names (`file.name`): the id a client chose for what it makes.
    pub new_file: Option<Resource>,
}

/// Reads `body`: a JSON object, or nothing at all (`optional`: an empty body is no facts;
/// otherwise it is a 400).
pub(crate) fn read(body: &[u8], optional: bool) -> Result<RequestFacts, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        if optional {
            return Ok(RequestFacts::default());
        }
        return Err(ErrorReply::bad_request("invalid_json", "Request body is empty; expected a JSON object."));
    }
    let mut scan = Scan::default();
    let mut json = serde_json::Deserializer::from_slice(body);
    let read = Node { scan: &mut scan, place: Place::Top, field: Field::Nothing }
        .deserialize(&mut json)
        .and_then(|()| json.end());
    match (scan.problem, read) {
        (Some(problem), _) => Err(problem),
        (None, Err(e)) => Err(ErrorReply::bad_request("invalid_json", format!("Request body is not valid JSON: {e}."))),
        (None, Ok(())) => Ok(scan.facts),
    }
}

#[derive(Default)]
struct Scan {
    facts: RequestFacts,
    /// Why the body is refused, once it is (the pass then stops).
    problem: Option<ErrorReply>,
}

/// Where in the body a value is: the places Google reads a model from, and everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The body itself.
    Top,
    /// `file` (an upload's metadata).
    UploadFile,
    /// `generateContentRequest` (`countTokens`).
    CountRequest,
    /// `requests` (`batchEmbedContents`): a list of requests.
    EmbedRequests,
    /// One of them.
    EmbedRequest,
    /// `batch` (`batchGenerateContent`).
    Batch,
    /// `batch.inputConfig`.
    BatchInput,
    /// `batch.inputConfig.requests`.
    BatchRequests,
    /// `batch.inputConfig.requests.requests`: the inlined requests.
    BatchList,
    /// One of them (`{"request": …, "metadata": …}`).
    BatchEntry,
    /// Its `request`.
    BatchRequest,
    /// Anywhere else.
    Elsewhere,
}

impl Place {
    /// The place of the value under `key` here.
    fn child(self, key: &str) -> Place {
        match self {
            Place::Top if key_is(key, "file") => Place::UploadFile,
            Place::Top if key_is(key, "generatecontentrequest") => Place::CountRequest,
            Place::Top if key_is(key, "requests") => Place::EmbedRequests,
            Place::Top if key_is(key, "batch") => Place::Batch,
            Place::Batch if key_is(key, "inputconfig") => Place::BatchInput,
            Place::BatchInput if key_is(key, "requests") => Place::BatchRequests,
            Place::BatchRequests if key_is(key, "requests") => Place::BatchList,
            Place::BatchEntry if key_is(key, "request") => Place::BatchRequest,
            _ => Place::Elsewhere,
        }
    }

    /// The place of a list's items here.
    fn item(self) -> Place {
        match self {
            Place::EmbedRequests => Place::EmbedRequest,
            Place::BatchList => Place::BatchEntry,
            _ => Place::Elsewhere,
        }
    }

    /// What the value under `key` here means.
    fn field(self, key: &str) -> Field {
        let inner_request =
            matches!(self, Place::CountRequest | Place::EmbedRequest | Place::Batch | Place::BatchRequest);
        match self {
            Place::Top if key_is(key, "model") => Field::Model,
            Place::Top if key_is(key, "agent") => Field::Agent,
            Place::Top if key_is(key, "stream") => Field::Stream,
            Place::Top if key_is(key, "background") => Field::Background,
            Place::UploadFile if key_is(key, "name") => Field::NewFile,
            _ if inner_request && key_is(key, "model") => Field::InnerModel,
            _ if key_is(key, "fileuri") || key_is(key, "uri") => Field::File,
            _ if key_is(key, "filename") || key_is(key, "responsesfile") => Field::File,
            _ if key_is(key, "cachedcontent") => Field::Cache,
            _ if key_is(key, "previousinteractionid") => Field::Interaction,
            _ => Field::Nothing,
        }
    }
}

/// What a value means to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Model,
    InnerModel,
    Agent,
    Stream,
    Background,
    NewFile,
    File,
    Cache,
    Interaction,
    Nothing,
}

/// Is `key` the field `name` (lower case, no underscores), as Google's JSON reader takes it:
/// `lowerCamel` or `snake_case`; read here in any letter case.
fn key_is(key: &str, name: &str) -> bool {
    let mut letters = key.bytes().filter(|&b| b != b'_');
    name.bytes().all(|want| letters.next().is_some_and(|b| b.to_ascii_lowercase() == want)) && letters.next().is_none()
}

impl Scan {
    /// A string under a field that means something.
    fn text(&mut self, field: Field, text: &str) -> Result<(), ErrorReply> {
        let found = match field {
            Field::Model => return self.top_model(text),
            Field::InnerModel => {
                let model = checked_model(text)?;
                if !self.facts.inner_models.contains(&model) {
                    self.facts.inner_models.push(model);
                }
                return Ok(());
            }
            Field::Agent => {
                self.facts.agent = Some(checked_model(text)?);
                return Ok(());
            }
            Field::NewFile => {
                // Google's own ids are lower case: the name it will make.
                let lower = text.to_ascii_lowercase();
                self.facts.new_file = lower.strip_prefix("files/").and_then(|id| Resource::new(Kind::File, id));
                return Ok(());
            }
            Field::File => file_named(text),
            Field::Cache => cache_named(text),
            Field::Interaction => interaction_named(text),
            Field::Stream | Field::Background | Field::Nothing => return Ok(()),
        };
        match found {
            Ok(Some(resource)) if !self.facts.resources.contains(&resource) => self.facts.resources.push(resource),
            Ok(_) => {}
            Err(Unreadable) => return Err(unreadable_reference(text)),
        }
        Ok(())
    }

    /// The model at the top: named once (a second, different one is refused: which one Google
    /// would read is not the proxy's guess to make).
    fn top_model(&mut self, text: &str) -> Result<(), ErrorReply> {
        let model = checked_model(text)?;
        match &self.facts.model {
            Some(first) if *first != model => {
                Err(ErrorReply::bad_request("invalid_json", "Request body names `model` twice, differently."))
            }
            _ => {
                self.facts.model = Some(model);
                Ok(())
            }
        }
    }

    fn flag(&mut self, field: Field, value: bool) {
        match field {
            Field::Stream => self.facts.stream = value,
            Field::Background => self.facts.background = value,
            _ => {}
        }
    }
}

fn checked_model(model: &str) -> Result<String, ErrorReply> {
    let model = normalize_model(model);
    if !valid_model(model) {
        let shown: String = model.chars().take(80).collect();
        return Err(ErrorReply::bad_request("invalid_model", format!("Invalid model name {shown:?}.")));
    }
    Ok(model.to_string())
}

fn unreadable_reference(text: &str) -> ErrorReply {
    let shown: String = text.chars().take(120).collect();
    ErrorReply::bad_request(
        "invalid_resource_name",
        format!("{shown:?} is not a resource name this proxy reads: write `files/ID`, Google's URI for it, or `cachedContents/ID`."),
    )
}

/// One JSON value at a place, meaning a field.
struct Node<'s> {
    scan: &'s mut Scan,
    place: Place,
    field: Field,
}

impl Node<'_> {
    fn stop<E: de::Error>(&mut self, problem: ErrorReply) -> E {
        self.scan.problem = Some(problem);
        E::custom("refused")
    }

    /// A value of the wrong type for a field the proxy reads (a model that is not a string,
    /// `stream` that is not true or false): refused, as Google would.
    fn mistyped<E: de::Error>(&mut self) -> Result<(), E> {
        let wants = match self.field {
            Field::Model | Field::InnerModel | Field::Agent => "a string",
            Field::Stream | Field::Background => "true or false",
            _ => return Ok(()),
        };
        let what = match self.field {
            Field::Stream => "stream",
            Field::Background => "background",
            Field::Agent => "agent",
            _ => "model",
        };
        Err(self.stop(ErrorReply::bad_request("invalid_json", format!("`{what}` must be {wants}."))))
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, value: bool) -> Result<(), E> {
        if self.place == Place::Top {
            return Err(self.stop(not_an_object()));
        }
        if !matches!(self.field, Field::Stream | Field::Background) {
            return self.mistyped();
        }
        self.scan.flag(self.field, value);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_str<E: de::Error>(mut self, text: &str) -> Result<(), E> {
        if self.place == Place::Top {
            return Err(self.stop(not_an_object()));
        }
        if matches!(self.field, Field::Stream | Field::Background) {
            return self.mistyped();
        }
        match self.scan.text(self.field, text) {
            Ok(()) => Ok(()),
            Err(problem) => Err(self.stop(problem)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut items: A) -> Result<(), A::Error> {
        if self.place == Place::Top {
            return Err(self.stop(not_an_object()));
        }
        self.mistyped()?;
        let place = self.place.item();
        while items.next_element_seed(Node { scan: &mut *self.scan, place, field: Field::Nothing })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let mut node = self;
        node.mistyped()?;
        let Node { scan, place, .. } = node;
        while let Some((place, field)) = fields.next_key_seed(Key { place })? {
            fields.next_value_seed(Node { scan: &mut *scan, place, field })?;
        }
        Ok(())
    }
}

impl Node<'_> {
    fn scalar<E: de::Error>(mut self) -> Result<(), E> {
        match self.place {
            Place::Top => Err(self.stop(not_an_object())),
            _ => self.mistyped(),
        }
    }
}

fn not_an_object() -> ErrorReply {
    ErrorReply::bad_request("invalid_json", "Request body is not a JSON object.")
}

/// A key, read as the place and meaning of its value (never copied).
struct Key {
    place: Place,
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = (Place, Field);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(Place, Field), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = (Place, Field);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(Place, Field), E> {
        Ok((self.place.child(key), self.place.field(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Vec<String> {
        read(body.as_bytes(), false).expect("reads").resources.iter().map(Resource::name).collect()
    }

    #[test]
    fn every_spelling_of_a_name_is_found() {
        for body in [
            r#"{"contents":[{"parts":[{"fileData":{"fileUri":"files/abc"}}]}]}"#,
            r#"{"contents":[{"parts":[{"fileData":{"fileUri":"files\/abc"}}]}]}"#,
            r#"{"contents":[{"parts":[{"fileData":{"fileUri":"\u0066iles/abc"}}]}]}"#,
            r#"{"contents":[{"parts":[{"file_data":{"file_uri":"files/abc"}}]}]}"#,
            r#"{"contents":[{"parts":[{"file_data":{"\u0066ile_uri":"files/abc"}}]}]}"#,
            r#"{"contents":[{"parts":[{"fileData":{"FILEURI":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}"#,
            "{ \"contents\" : [ { \"parts\" : [ { \"fileData\" : { \"fileUri\" : \"files/abc\" } } ] } ] }",
        ] {
            assert_eq!(names(body), ["files/abc"], "{body}");
        }
        assert_eq!(names(r#"{"model":"m","previous_interaction_id":"v1_x"}"#), ["interactions/v1_x"]);
        assert_eq!(names(r#"{"model":"m","previous\u005finteraction_id":"v1_x"}"#), ["interactions/v1_x"]);
        assert_eq!(names(r#"{"cachedContent":"cachedContents\/c-1"}"#), ["cachedContents/c-1"]);
        assert_eq!(names(r#"{"batch":{"inputConfig":{"fileName":"files/in-1"}}}"#), ["files/in-1"]);
        assert_eq!(names(r#"{"contents":[{"parts":[{"text":"files/ are nice"}]}]}"#), Vec::<String>::new());
        assert_eq!(names(r#"{"x":{"fileUri":"gs://bucket/files/abc"}}"#), Vec::<String>::new());
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let refused = |body: &[u8]| read(body, false).map(|_| ()).map_err(|e| (e.status, e.code));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [
            br#"{"a":"\ud800"}"#.to_vec(),
            br#"{"a":1e400}"#.to_vec(),
            b"\xef\xbb\xbf{}".to_vec(),
            format!(r#"{{"contents":{deep},"cachedContent":"cachedContents/c"}}"#).into_bytes(),
            b"[]".to_vec(),
            b"{} {}".to_vec(),
            br#"{"a":"\xff"}"#.to_vec(),
        ] {
            assert_eq!(refused(&body), Err((400, "invalid_json".into())), "{}", String::from_utf8_lossy(&body));
        }
        for body in [
            r#"{"fileUri":"Files/abc"}"#,
            r#"{"cachedContent":"cachedContents/a/b"}"#,
            r#"{"previous_interaction_id":"a b"}"#,
        ] {
            assert_eq!(refused(body.as_bytes()), Err((400, "invalid_resource_name".into())), "{body}");
        }
        assert_eq!(refused(br#"{"model":"a","model":"b"}"#), Err((400, "invalid_json".into())));
        assert_eq!(read(b"  ", true), Ok(RequestFacts::default()));
    }

    #[test]
    fn models_are_read_where_google_reads_them() {
        let facts = read(
            br#"{"model":"models/m1","agent":"deep-research-1","stream":true,"background":true,
                 "generateContentRequest":{"model":"models/m2","contents":[{"parts":[{"functionCall":{"args":{"model":"x"}}}]}]},
                 "requests":[{"model":"m3"},{"model":"m3"}],
                 "batch":{"model":"m4","input_config":{"requests":{"requests":[{"request":{"model":"m5"}}]}}}}"#,
            false,
        )
        .expect("reads");
        assert_eq!(facts.model.as_deref(), Some("m1"));
        assert_eq!(facts.agent.as_deref(), Some("deep-research-1"));
        assert!(facts.stream && facts.background);
        assert_eq!(facts.inner_models, ["m2", "m3", "m4", "m5"]);
        let upload = read(br#"{"file":{"name":"files/Report-1","display_name":"r"}}"#, true).expect("reads");
        assert_eq!(upload.new_file, Resource::new(Kind::File, "report-1"));
    }
}
