//! Affinity: each of Google's stateful resources — an interaction, an uploaded file, a cached
//! content, an upload session — lives in the Google project of the key that made it, and only
//! keys of that project can use it. A pool that picks any key would send a follow-up to another
//! project most of the time, and Google would answer 403 or 404.
//!
//! This module owns:
//! - which resources a request **names**: in its path (`files/{id}`, `interactions/{id}`, …)
//!   and in its body (`fileData.fileUri`, `cachedContent`, `previous_interaction_id`) —
//!   [`named`];
//! - which resource a success **makes** ([`makes`]), and how to spot its name in Google's
//!   answer ([`spotter`], [`Spotter`], [`upload_session`]) — or, for a batch or an operation,
//!   the file Google generated that the answer names, which the proxy **adopts**;
//! - the **record** kept of each resource made through the proxy: its bucket (the project, or
//!   the key alone when none is declared), the part of the pool its key is in, and the client
//!   that made it ([`Record`]), stored as one item per resource ([`Resource::item`]) for as
//!   long as Google keeps the resource ([`Kind::ttl_secs`]);
//! - the rule from records to a **pin** ([`pin`]): every named resource must have a record
//!   made by the caller (admins: by anyone) — else 404, the same answer for a missing one and
//!   another client's — and all of them must live in one bucket — else 400. A pinned request
//!   tries keys of that bucket only ([`crate::decide::attempts::Attempts::pin`]); when they are
//!   all cooling, it gets a 429 with `Retry-After`, never a key of another project.
//!
//! A resource the proxy has no record of (made before the proxy, or by a key outside it, or
//! its record expired) is not found: the proxy cannot know whose it is or which project holds
//! it. A request naming no resource pays nothing here: no store read, one scan of its body for
//! three short words.

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::client::route::{Endpoint, ResourceCall, Route};
use crate::pool::keys::{ApiKey, Fingerprint};
use crate::pool::names::{escape, unescape, Bucket, MarkName};
use serde_json::Value;

/// The kinds of stateful resource the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `interactions/{id}` (Google keeps stored interactions up to 55 days on paid tiers).
    Interaction,
    /// `files/{id}` (48 hours).
    File,
    /// `cachedContents/{id}` (until its `expireTime`, which a client may extend).
    Cache,
    /// An upload session, `uploads/{upload_id}` (Google's upload URLs last about a week; a file
    /// is uploaded in minutes).
    Upload,
    /// `batches/{id}` (a batch runs up to 24 hours; its results are kept for days after).
    Batch,
    /// A long-running operation, `models/{m}/operations/{id}` (a generated video is kept two
    /// days).
    Operation,
}

impl Kind {
    /// The collection in the resource's name.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Interaction => "interactions",
            Kind::File => "files",
            Kind::Cache => "cachedContents",
            Kind::Upload => "uploads",
            Kind::Batch => "batches",
            Kind::Operation => "operations",
        }
    }

    /// How long its record is kept: at least as long as Google keeps the resource. A record
    /// that outlives its resource is harmless (Google answers that it is gone).
    pub fn ttl_secs(self) -> u64 {
        const DAY: u64 = 24 * 3600;
        match self {
            Kind::Interaction => 60 * DAY,
            Kind::File => 2 * DAY,
            Kind::Cache => 30 * DAY,
            Kind::Upload | Kind::Batch | Kind::Operation => 7 * DAY,
        }
    }
}

/// One resource, by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// Its kind.
    pub kind: Kind,
    /// Its id (letters, digits, `-`, `_`, `.`).
    pub id: String,
}

impl Resource {
    /// A resource of `kind` with `id`, if the id is one Google could have made.
    pub fn new(kind: Kind, id: &str) -> Option<Self> {
        valid_id(id).then(|| Resource { kind, id: id.to_string() })
    }

    /// Google's name for it (`files/abc`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind.collection(), self.id)
    }

    /// The name of the store item holding its record (`res/files/abc`).
    pub fn item(&self) -> String {
        format!("res/{}", self.name())
    }
}

/// Is `id` a resource id as Google writes them (letters, digits, `-`, `_`, `.`; at most 256)?
/// Nothing else goes into a path or a store item's name.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && id != "."
        && id != ".."
}

/// What the proxy keeps about a resource it saw made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The bucket that holds it.
    pub bucket: Pinned,
    /// The part of the pool the key that made it is in (where a request starts looking).
    pub part: usize,
    /// The label of the client that made it.
    pub client: String,
}

/// The bucket a request is pinned to, owned (a [`Bucket`] borrows from the key lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// Keys written `project:KEY` with this project.
    Project(String),
    /// One key with no declared project.
    Key(Fingerprint),
}

impl Pinned {
    /// The bucket `key` draws from.
    pub fn of(key: &ApiKey<'_>) -> Self {
        match Bucket::of(key) {
            Bucket::Project(project) => Pinned::Project(project.to_string()),
            Bucket::Key(fp) => Pinned::Key(fp),
        }
    }

    /// Is `key` in this bucket?
    pub fn holds(&self, key: &ApiKey<'_>) -> bool {
        match (self, Bucket::of(key)) {
            (Pinned::Project(p), Bucket::Project(q)) => p == q,
            (Pinned::Key(fp), Bucket::Key(other)) => *fp == other,
            _ => false,
        }
    }

    pub(crate) fn mark(&self) -> MarkName {
        match self {
            Pinned::Project(p) => MarkName::of(Bucket::Project(p)),
            Pinned::Key(fp) => MarkName::of(Bucket::Key(*fp)),
        }
    }

    pub(crate) fn parse(mark: &str) -> Option<Self> {
        match mark.split_once(':')? {
            ("k", hex) if hex.len() == 16 => u64::from_str_radix(hex, 16).ok().map(|n| Pinned::Key(Fingerprint(n))),
            ("p", project) if !project.is_empty() => unescape(project).map(Pinned::Project),
            _ => None,
        }
    }
}

impl Record {
    /// The record of a resource `key` made for `client`.
    pub fn new(key: &ApiKey<'_>, client: &str) -> Self {
        Record { bucket: Pinned::of(key), part: key.at.list, client: client.to_string() }
    }

    /// As stored: `1 <mark name> <part> <client, escaped>`.
    pub fn encode(&self) -> Vec<u8> {
        format!("1 {} {} {}", self.bucket.mark(), self.part, escape(&self.client)).into_bytes()
    }

    /// Reads a stored record back (`None`: not one [`encode`](Self::encode) wrote).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut fields = text.split(' ');
        if fields.next()? != "1" {
            return None;
        }
        let bucket = Pinned::parse(fields.next()?)?;
        let part = fields.next()?.parse().ok()?;
        let client = unescape(fields.next()?)?;
        fields.next().is_none().then_some(Record { bucket, part, client })
    }
}

/// Is `pin`'s bucket one of `projects` (`None`: any)?
pub(crate) fn within(pin: &Pin, projects: Option<&[String]>) -> bool {
    match (projects, &pin.bucket) {
        (None, _) => true,
        (Some(projects), Pinned::Project(project)) => projects.contains(project),
        (Some(_), Pinned::Key(_)) => false,
    }
}

/// Where a request is pinned: the bucket, the part to start in, and the client that owns
/// what it makes (the caller — or, for an upload session's bytes, the client that started it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The bucket every resource named lives in.
    pub bucket: Pinned,
    /// The part of the pool to start in.
    pub part: usize,
    /// The owner of what this request makes.
    pub owner: String,
}

/// The resources a request names, in its path and its body (deduplicated).
pub fn named(route: &Route, body: &[u8]) -> Vec<Resource> {
    let mut names: Vec<Resource> = Vec::new();
    let in_path = match route.resource_call() {
        Some(ResourceCall::Interaction(id) | ResourceCall::CancelInteraction(id)) => {
            Resource::new(Kind::Interaction, id)
        }
        Some(ResourceCall::File(id) | ResourceCall::Download(id)) => Resource::new(Kind::File, id),
        Some(ResourceCall::Cache(id)) => Resource::new(Kind::Cache, id),
        Some(ResourceCall::Upload(id)) => Resource::new(Kind::Upload, id),
        Some(ResourceCall::Batch(id) | ResourceCall::CancelBatch(id)) => Resource::new(Kind::Batch, id),
        Some(ResourceCall::Operation { id, .. }) => Resource::new(Kind::Operation, id),
        _ => None,
    };
    names.extend(in_path);
    let streamed = matches!(route.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload));
    if !streamed && may_name_resources(body) {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            collect(&value, &mut names);
        }
    }
    names
}

/// Could `body` name a resource? (A plain request pays for this scan only.)
fn may_name_resources(body: &[u8]) -> bool {
    [&b"files/"[..], b"cachedContents/", b"previous_interaction_id"].iter().any(|word| contains(body, word))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else { return true };
    let mut from = 0;
    while let Some(at) = haystack.get(from..).and_then(|rest| rest.iter().position(|&b| b == first)) {
        let start = from + at;
        if haystack.get(start..start + needle.len()) == Some(needle) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Walks a JSON body for the fields that name resources.
fn collect(value: &Value, names: &mut Vec<Resource>) {
    match value {
        Value::Object(fields) => {
            for (field, inner) in fields {
                if let Some(found) = inner.as_str().and_then(|text| resource_in_field(field, text)) {
                    if !names.contains(&found) {
                        names.push(found);
                    }
                }
                collect(inner, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect(item, names)),
        _ => {}
    }
}

/// The resource a body field names, if it is one that does.
fn resource_in_field(field: &str, text: &str) -> Option<Resource> {
    match field {
        // A batch's input file (`batch.inputConfig.fileName`) and its results
        // (`output.responsesFile`) are named as `files/abc`.
        "fileName" | "file_name" | "responsesFile" => Resource::new(Kind::File, text.strip_prefix("files/")?),
        "fileUri" | "file_uri" | "uri" => {
            // `files/abc`, or Google's URI for it (`https://generativelanguage.googleapis.com/v1beta/files/abc`,
            // a generated one's ending `:download?alt=media`).
            let rest = text.strip_prefix("files/").or_else(|| {
                let path = text.strip_prefix("https://generativelanguage.googleapis.com/")?;
                let (_, id) = path.split_once("/files/")?;
                Some(id)
            })?;
            Resource::new(Kind::File, rest.split([':', '?']).next().unwrap_or(rest))
        }
        "cachedContent" | "cached_content" => Resource::new(Kind::Cache, text.strip_prefix("cachedContents/")?),
        "previous_interaction_id" => Resource::new(Kind::Interaction, text),
        _ => None,
    }
}

/// What a success of this route makes, if anything.
pub fn makes(route: &Route) -> Option<Kind> {
    if let Endpoint::NativeCall { method, .. } = &route.endpoint {
        return match *method {
            "batchGenerateContent" => Some(Kind::Batch),
            "predictLongRunning" => Some(Kind::Operation),
            _ => None,
        };
    }
    match route.resource_call()? {
        ResourceCall::CreateInteraction => Some(Kind::Interaction),
        ResourceCall::CreateCache => Some(Kind::Cache),
        ResourceCall::StartUpload => Some(Kind::Upload),
        ResourceCall::Upload(_) | ResourceCall::MultipartUpload => Some(Kind::File),
        _ => None,
    }
}

/// What the proxy reads an answer of this route for, if anything: the resource a create made,
/// or — for a batch or an operation, which Google finishes by generating files in their
/// project — a generated file the answer names (the proxy **adopts** it: its record, for the
/// pin's owner, so a download of it follows its project).
pub fn spotter(route: &Route, stream: bool) -> Option<Spotter> {
    match (makes(route), route.resource_call()) {
        // An upload session is named in a header, not the answer.
        (Some(Kind::Upload), _) => None,
        (Some(kind), _) => Some(Spotter::new(kind, stream)),
        (None, Some(ResourceCall::Batch(_) | ResourceCall::Operation { .. })) => {
            Some(Spotter { kind: Kind::File, stream: false, adopt: true })
        }
        _ => None,
    }
}

/// The pin for a request that names `looked` resources (each with its record, if the store
/// had one), made by `caller`: or the error it gets instead.
pub(crate) fn pin(caller: &Caller, looked: &[(Resource, Option<Record>)]) -> Result<Pin, ErrorReply> {
    let mut pin: Option<(Pin, &Resource)> = None;
    for (resource, record) in looked {
        // An upload session's bytes carry no token: the session is the credential.
        let mine = |r: &Record| resource.kind == Kind::Upload || caller.admin || r.client == caller.label;
        let Some(record) = record.as_ref().filter(|r| mine(r)) else {
            return Err(not_found(resource));
        };
        match &pin {
            Some((first, named)) if first.bucket != record.bucket => return Err(two_projects(named, resource)),
            Some(_) => {}
            None => {
                let owner = if resource.kind == Kind::Upload { &record.client } else { &caller.label };
                let first = Pin { bucket: record.bucket.clone(), part: record.part, owner: owner.clone() };
                pin = Some((first, resource));
            }
        }
    }
    pin.map(|(pin, _)| pin).ok_or_else(|| ErrorReply::new(500, "internal", "No resource to pin to."))
}

/// 404: no such resource — or not the caller's (the same answer, so ids cannot be probed).
pub(crate) fn not_found(resource: &Resource) -> ErrorReply {
    ErrorReply::new(404, "not_found", format!("Requested entity was not found: {}.", resource.name()))
}

fn two_projects(first: &Resource, second: &Resource) -> ErrorReply {
    ErrorReply::bad_request(
        "resources_of_two_projects",
        format!(
            "This request names {} and {}, which live in different Google projects of the pool; \
             a request can use the resources of one project only.",
            first.name(),
            second.name()
        ),
    )
}

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
    /// Look for a generated file the answer names ([`spotter`]), not for what it made.
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
            let mut named = Vec::new();
            collect(&value, &mut named);
            return named.into_iter().find(|r| r.kind == Kind::File).map_or(Spot::Nothing, Spot::Found);
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

/// The data of a stream's first complete event, if the head holds one.
fn first_event(head: &[u8]) -> Option<&[u8]> {
    let end = (0..head.len()).find(|&i| head[i..].starts_with(b"\n\n") || head[i..].starts_with(b"\r\n\r\n"))?;
    let event = &head[..end];
    let line = event.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"data:"))?;
    Some(line.trim_ascii())
}

/// Checks an upload against `max_upload_bytes` (`limit`): the size a session announces when it
/// starts (`x-goog-upload-header-content-length`), or a piece's `content-length`. The bytes
/// stream through: nothing else bounds them.
pub fn upload_fits(announced: Option<u64>, limit: u64) -> Result<(), ErrorReply> {
    match announced {
        Some(size) if size > limit => Err(ErrorReply::new(
            413,
            "upload_too_large",
            format!("The upload is larger than this proxy accepts ({limit} bytes: `max_upload_bytes`)."),
        )),
        _ => Ok(()),
    }
}

/// The upload session Google's `x-goog-upload-url` names (its `upload_id`).
pub fn upload_session(google_url: &str) -> Option<Resource> {
    let query = google_url.split_once('?')?.1;
    let id = query.split('&').find_map(|pair| pair.strip_prefix("upload_id="))?;
    Resource::new(Kind::Upload, id)
}

/// Google's upload URL moved to the proxy's own origin (`https://host`): the same path and
/// query (no key is in it: the `upload_id` is the session's credential).
pub fn proxied_upload_url(google_url: &str, own_origin: &str) -> Option<String> {
    let after_scheme = google_url.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    Some(format!("{own_origin}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::route::route;
    use crate::pool::keys::KeyPool;

    fn names(path: &str, body: &str) -> Vec<String> {
        let r = route("POST", path, None, true).expect("routes");
        named(&r, body.as_bytes()).iter().map(Resource::name).collect()
    }

    #[test]
    fn finds_what_a_request_names() {
        let generate = "/v1beta/models/gemini-3.5-flash:generateContent";
        let body = r#"{"contents":[{"parts":[{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc","mimeType":"text/plain"}},{"file_data":{"file_uri":"files/abc"}}]}],"cachedContent":"cachedContents/c-1"}"#;
        assert_eq!(names(generate, body), ["cachedContents/c-1", "files/abc"]);
        assert_eq!(names(generate, r#"{"contents":[{"parts":[{"text":"files/ are nice"}]}]}"#), Vec::<String>::new());
        assert_eq!(names(generate, r#"{"x":{"fileUri":"gs://bucket/files/abc"}}"#), Vec::<String>::new());
        assert_eq!(
            names("/v1/interactions", r#"{"model":"m","previous_interaction_id":"v1_x"}"#),
            ["interactions/v1_x"]
        );
        assert_eq!(names("/v1beta/interactions/i-1/cancel", ""), ["interactions/i-1"]);
        let batch = r#"{"batch":{"inputConfig":{"fileName":"files/in-1"}}}"#;
        assert_eq!(names("/v1beta/models/gemini-3.5-flash:batchGenerateContent", batch), ["files/in-1"]);
        assert_eq!(names("/v1beta/batches/b1:cancel", ""), ["batches/b1"]);
        // Ids Google could not have made name nothing.
        assert_eq!(names(generate, r#"{"cachedContent":"cachedContents/../keys"}"#), Vec::<String>::new());
    }

    #[test]
    fn records_read_back() {
        let list = "team a:AIzaSyA0000000000000000000000000000000001\nAIzaSyB0000000000000000000000000000000002";
        let pool = KeyPool::new([list.as_bytes()]);
        for key in pool.iter() {
            for client in ["app", "my app", "名前", ""] {
                let record = Record::new(&key, client);
                assert_eq!(Record::decode(&record.encode()), Some(record.clone()));
                assert!(record.bucket.holds(&key));
            }
        }
        assert_eq!(Record::decode(b"2 k:00 0 a"), None);
        assert_eq!(Record::decode(b"1 k:0000000000000001 0 a extra"), None);
    }

    fn caller(label: &str, admin: bool) -> Caller {
        Caller { label: label.into(), admin }
    }

    #[test]
    fn pins_to_the_one_project_of_the_callers_resources() {
        let file = Resource::new(Kind::File, "f").expect("id");
        let cache = Resource::new(Kind::Cache, "c").expect("id");
        let mine = Record { bucket: Pinned::Project("p1".into()), part: 1, client: "a".into() };
        let other_project = Record { bucket: Pinned::Project("p2".into()), ..mine.clone() };
        let pin = pin(&caller("a", false), &[(file.clone(), Some(mine.clone())), (cache.clone(), Some(mine.clone()))]);
        assert_eq!(pin.map(|p| (p.bucket, p.part)), Ok((Pinned::Project("p1".into()), 1)));
        let foreign = super::pin(&caller("b", false), &[(file.clone(), Some(mine.clone()))]).expect_err("404");
        let missing = super::pin(&caller("b", false), &[(file.clone(), None)]).expect_err("404");
        assert_eq!((foreign.status, &foreign.message), (missing.status, &missing.message));
        assert!(super::pin(&caller("root", true), &[(file.clone(), Some(mine.clone()))]).is_ok());
        let mixed = super::pin(&caller("a", false), &[(file, Some(mine)), (cache, Some(other_project))]);
        assert_eq!(mixed.map_err(|e| e.status), Err(400));
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
        let url =
            "https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=AB-c_1&upload_protocol=resumable";
        assert_eq!(upload_session(url).map(|r| r.name()).as_deref(), Some("uploads/AB-c_1"));
        assert_eq!(
            proxied_upload_url(url, "http://127.0.0.1:7676").as_deref(),
            Some("http://127.0.0.1:7676/upload/v1beta/files?upload_id=AB-c_1&upload_protocol=resumable")
        );
    }
}
