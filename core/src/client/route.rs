//! Routing: which endpoint a client request is for, which API dialect it speaks, and the
//! only paths that may reach Google. Anything not on the allow-list is a 404 here.

use crate::client::body::RequestFacts;
use crate::client::envelope::{Dialect, ErrorReply};
use crate::client::model::valid_model;
use crate::client::query::query_param;
use crate::client::spot::Spotter;
use crate::google::resource::{Kind, Resource};

/// Google API version of a native call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/v1beta/`.
    V1beta,
    /// `/v1/`.
    V1,
}

impl Version {
    /// As in the path.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1beta => "v1beta",
            Version::V1 => "v1",
        }
    }
}

/// The native methods that may be called on a model (the last two make a batch and a
/// long-running operation: [`crate::decide::affinity`]).
const NATIVE_METHODS: [&str; 7] = [
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
    "batchGenerateContent",
    "predictLongRunning",
];

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `OPTIONS` anything: CORS preflight.
    Preflight,
    /// `GET /v1/status`.
    Status,
    /// `GET /v1/usage`: usage counts by day ([`crate::admin::history`]).
    Usage,
    /// `GET /`: the operator console (a page; its calls carry the token).
    Console,
    /// `POST /v1/keys/check`: probe a batch of keys (admins).
    KeyCheck,
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages`: Anthropic's Messages API, translated to Google's native API
    /// ([`crate::client::messages`]).
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic's count, as Google's `countTokens`.
    CountTokens,
    /// `GET /v1/models` from an Anthropic client (it sent `anthropic-version` or `x-api-key`):
    /// the Claude names knob `agent_models` maps, answered by the proxy.
    AnthropicModels,
    /// `POST /v1/responses`: OpenAI's Responses API, translated to Google's native API
    /// ([`crate::client::responses`]).
    Responses,
    /// `GET /v1/models`.
    ListModels,
    /// `GET /v1/models/{id}`.
    GetModel(String),
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/images/generations`.
    ImageGenerations,
    /// Native `GET models`.
    NativeListModels(Version),
    /// Native `GET models/{m}`.
    NativeGetModel(Version, String),
    /// Google's stateful resources, native only: each lives in the project of the key that made
    /// it ([`crate::decide::affinity`]).
    Resource(Version, ResourceCall),
    /// Native `POST models/{m}:{method}`.
    NativeCall {
        /// API version.
        version: Version,
        /// The model.
        model: String,
        /// One of [`NATIVE_METHODS`].
        method: &'static str,
    },
}

/// A call on one of Google's stateful resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceCall {
    /// `POST interactions`: makes an interaction.
    CreateInteraction,
    /// `GET|DELETE interactions/{id}`.
    Interaction(String),
    /// `POST interactions/{id}/cancel`.
    CancelInteraction(String),
    /// `POST /upload/{v}/files` without `upload_id`: starts an upload session.
    StartUpload,
    /// `POST /upload/{v}/files?uploadType=multipart`: the file's metadata and bytes in one
    /// `multipart/related` body, streamed through (one attempt).
    MultipartUpload,
    /// `POST /upload/{v}/files?upload_id=…`: the bytes of a session (Google's upload URL is
    /// its own credential: clients send no key with it).
    Upload(String),
    /// `GET|DELETE files/{id}`.
    File(String),
    /// `GET files/{id}:download` (`alt=media`): a file Google generated (a batch's results, a
    /// video), adopted by the proxy when a pinned answer named it.
    Download(String),
    /// `POST cachedContents`: makes a cached content.
    CreateCache,
    /// `GET|PATCH|DELETE cachedContents/{id}`.
    Cache(String),
    /// `GET files`, `GET cachedContents`, `GET batches`: the caller's own, from every project
    /// ([`crate::decide::listing`]).
    List(Kind),
    /// `GET|DELETE batches/{id}` (a batch is made by `models/{m}:batchGenerateContent`).
    Batch(String),
    /// `POST batches/{id}:cancel`.
    CancelBatch(String),
    /// `GET models/{m}/operations/{id}` (made by `models/{m}:predictLongRunning`).
    Operation {
        /// The model in the operation's name.
        model: String,
        /// The operation's id.
        id: String,
    },
}

/// A routed request: the endpoint and the API dialect to answer in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// What it asks for.
    pub endpoint: Endpoint,
    /// Which API it speaks.
    pub dialect: Dialect,
    /// It is a `DELETE` (of a resource: its record goes once Google agrees).
    pub deletes: bool,
}

impl Route {
    /// Google's path for this endpoint; `None` for endpoints answered locally.
    pub fn upstream_path(&self) -> Option<String> {
        let path = match &self.endpoint {
            Endpoint::Preflight
            | Endpoint::Status
            | Endpoint::Usage
            | Endpoint::Console
            | Endpoint::KeyCheck
            | Endpoint::Messages
            | Endpoint::CountTokens
            | Endpoint::Responses
            | Endpoint::AnthropicModels => return None,
            Endpoint::ChatCompletions => "/v1beta/openai/chat/completions".to_string(),
            Endpoint::ListModels => "/v1beta/openai/models".to_string(),
            Endpoint::GetModel(id) => format!("/v1beta/openai/models/{id}"),
            Endpoint::Embeddings => "/v1beta/openai/embeddings".to_string(),
            Endpoint::ImageGenerations => "/v1beta/openai/images/generations".to_string(),
            Endpoint::NativeListModels(v) => format!("/{}/models", v.as_str()),
            Endpoint::NativeGetModel(v, model) => format!("/{}/models/{model}", v.as_str()),
            Endpoint::NativeCall { version, model, method } => {
                format!("/{}/models/{model}:{method}", version.as_str())
            }
            Endpoint::Resource(v, call) => resource_path(*v, call),
        };
        Some(path)
    }

    /// Is this Google's native API (key in `x-goog-api-key`) rather than its OpenAI-compatible
    /// endpoint (key as `Authorization: Bearer`)?
    pub fn is_native(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::NativeListModels(_)
                | Endpoint::NativeGetModel(..)
                | Endpoint::NativeCall { .. }
                | Endpoint::Resource(..)
        )
    }

    /// The call on a stateful resource, if it is one.
    pub fn resource_call(&self) -> Option<&ResourceCall> {
        match &self.endpoint {
            Endpoint::Resource(_, call) => Some(call),
            _ => None,
        }
    }

    /// The model named in the path (native calls); OpenAI calls name it in the body.
    pub fn path_model(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::NativeCall { model, .. } => Some(model),
            _ => None,
        }
    }

    /// The model named in the path: native calls, a model's own page (both APIs), an
    /// operation of a model.
    pub fn named_model(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::NativeCall { model, .. } | Endpoint::GetModel(model) | Endpoint::NativeGetModel(_, model) => {
                Some(model)
            }
            Endpoint::Resource(_, ResourceCall::Operation { model, .. }) => Some(model),
            _ => None,
        }
    }

    /// The same route with `model` in its path instead (a client's alias resolved).
    pub fn with_model(&self, model: &str) -> Route {
        let mut route = self.clone();
        match &mut route.endpoint {
            Endpoint::NativeCall { model: named, .. }
            | Endpoint::GetModel(named)
            | Endpoint::NativeGetModel(_, named)
            | Endpoint::Resource(_, ResourceCall::Operation { model: named, .. }) => *named = model.to_string(),
            _ => {}
        }
        route
    }

    /// Is it a coding agent's request, translated to Google's native API (it reads the knob
    /// `agent_models`)?
    pub fn translated(&self) -> bool {
        matches!(self.endpoint, Endpoint::Messages | Endpoint::CountTokens | Endpoint::Responses)
    }

    /// The route as an Anthropic client means it: OpenAI's model list becomes Anthropic's when
    /// `anthropic` says the request carries `anthropic-version` or `x-api-key` (asked only on
    /// that path: each header read is a host call).
    pub fn for_anthropic(self, anthropic: impl FnOnce() -> bool) -> Route {
        match self.endpoint {
            Endpoint::ListModels if anthropic() => {
                Route { endpoint: Endpoint::AnthropicModels, dialect: Dialect::Anthropic, deletes: false }
            }
            _ => self,
        }
    }

    /// Is it a list of models (both APIs)?
    pub fn lists_models(&self) -> bool {
        matches!(self.endpoint, Endpoint::ListModels | Endpoint::NativeListModels(_))
    }

    /// Does Google's success carry the tokens it counted (a usage object the edge
    /// [`Meter`](crate::google::tokens::Meter)s as it passes)? Generation, embeddings and
    /// interactions.
    pub fn metered(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::ChatCompletions
                | Endpoint::Embeddings
                | Endpoint::NativeCall { method: "generateContent" | "streamGenerateContent", .. }
                | Endpoint::Resource(_, ResourceCall::CreateInteraction)
        )
    }

    /// Does a success generate tokens that its answer does not report as it passes — so a
    /// client's daily token limit could not count them? Batches (their usage is in a results
    /// file), background interactions (known only when polled), native embeddings (Google's
    /// answer carries no usage), videos and images (billed otherwise). `countTokens`, lists,
    /// reads and deletes generate none.
    pub fn tokens_unknown(&self, facts: &RequestFacts) -> bool {
        match &self.endpoint {
            Endpoint::NativeCall { method, .. } => {
                matches!(*method, "embedContent" | "batchEmbedContents" | "batchGenerateContent" | "predictLongRunning")
            }
            Endpoint::ImageGenerations => true,
            Endpoint::Resource(_, ResourceCall::CreateInteraction) => facts.background,
            _ => false,
        }
    }

    /// Does the request carry a JSON body that names the model (OpenAI POST endpoints)?
    fn model_in_body(&self) -> bool {
        matches!(self.endpoint, Endpoint::ChatCompletions | Endpoint::Embeddings | Endpoint::ImageGenerations)
    }

    /// Who may call it.
    pub fn access(&self) -> Access {
        match self.endpoint {
            Endpoint::Preflight | Endpoint::Console => Access::Anyone,
            Endpoint::Resource(_, ResourceCall::Upload(_)) => Access::Upload,
            Endpoint::KeyCheck => Access::Admin,
            Endpoint::Status | Endpoint::Usage => Access::Viewer,
            _ => Access::Client,
        }
    }

    /// May Google's successful answer be empty ([`crate::google::empty`]), so that the edge
    /// [`Peeker`](crate::google::empty::Peeker)s at its head before passing it on? Generation
    /// answers: chat completions, `generateContent` and `streamGenerateContent`.
    pub fn answer_may_be_empty(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::ChatCompletions
                | Endpoint::NativeCall { method: "generateContent" | "streamGenerateContent", .. }
        )
    }

    /// What the edge reads of a success (`stream`: the answer streams).
    pub fn reading(&self, stream: bool) -> Reading {
        if self.answer_may_be_empty() {
            return Reading::Peek(stream);
        }
        match (self.resource_call(), self.makes()) {
            (Some(ResourceCall::List(_)), _) => Reading::Page,
            (_, Some(Kind::Upload)) => Reading::UploadUrl,
            _ => self.spotter(stream).map_or(Reading::Nothing, Reading::Spot),
        }
    }

    /// What a success of this route makes, if anything.
    pub fn makes(&self) -> Option<Kind> {
        if let Endpoint::NativeCall { method, .. } = &self.endpoint {
            return match *method {
                "batchGenerateContent" => Some(Kind::Batch),
                "predictLongRunning" => Some(Kind::Operation),
                _ => None,
            };
        }
        match self.resource_call()? {
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
    pub fn spotter(&self, stream: bool) -> Option<Spotter> {
        match (self.makes(), self.resource_call()) {
            // An upload session is named in a header, not the answer.
            (Some(Kind::Upload), _) => None,
            (Some(kind), _) => Some(Spotter::new(kind, stream)),
            (None, Some(ResourceCall::Batch(_) | ResourceCall::Operation { .. })) => Some(Spotter::generated()),
            _ => None,
        }
    }

    /// Does Google's successful answer carry model ids that lose their `models/` prefix
    /// (OpenAI model lists and model objects)?
    pub fn rewrites_model_ids(&self) -> bool {
        matches!(self.endpoint, Endpoint::ListModels | Endpoint::GetModel(_))
    }

    /// What the request is about, read from its path and (one pass over) its body
    /// ([`crate::client::body`]): its model (cooling is per model), whether the answer streams,
    /// the models it names inside, and the stateful resources it references. A body the proxy
    /// cannot read is a 400; an upload's bytes stream past unread.
    pub fn facts(&self, body: &[u8]) -> Result<RequestFacts, ErrorReply> {
        let streamed = matches!(self.resource_call(), Some(ResourceCall::Upload(_) | ResourceCall::MultipartUpload));
        let mut read =
            if streamed { RequestFacts::default() } else { crate::client::body::read(body, !self.model_in_body())? };
        if self.model_in_body() && read.model.is_none() {
            return Err(ErrorReply::bad_request("missing_model", "Missing required field `model`."));
        }
        let takes_body_model = self.model_in_body()
            || matches!(self.resource_call(), Some(ResourceCall::CreateInteraction | ResourceCall::CreateCache));
        let model = match takes_body_model {
            true => read.model.take(),
            // Elsewhere the path names the model; one named in the body too is checked like it.
            false => {
                if let Some(model) = read.model.take() {
                    read.inner_models.insert(0, model);
                }
                self.path_model().map(str::to_string)
            }
        };
        let stream =
            read.stream || matches!(self.endpoint, Endpoint::NativeCall { method: "streamGenerateContent", .. });
        let mut resources: Vec<Resource> = self.path_resource().into_iter().collect();
        resources.extend(read.resources.into_iter().filter(|r| !resources.contains(r)).collect::<Vec<_>>());
        Ok(RequestFacts { model, stream, resources, ..read })
    }

    /// The resource the path names (`files/{id}`, `interactions/{id}/cancel`, …).
    fn path_resource(&self) -> Option<Resource> {
        match self.resource_call()? {
            ResourceCall::Interaction(id) | ResourceCall::CancelInteraction(id) => Resource::new(Kind::Interaction, id),
            ResourceCall::File(id) | ResourceCall::Download(id) => Resource::new(Kind::File, id),
            ResourceCall::Cache(id) => Resource::new(Kind::Cache, id),
            ResourceCall::Upload(id) => Resource::new(Kind::Upload, id),
            ResourceCall::Batch(id) | ResourceCall::CancelBatch(id) => Resource::new(Kind::Batch, id),
            ResourceCall::Operation { id, .. } => Resource::new(Kind::Operation, id),
            _ => None,
        }
    }

    /// Client headers passed on to Google: `content-type`, and for calls on stateful resources
    /// Google's upload protocol's (everything else — credentials, cookies, forwarding headers,
    /// SDK telemetry — stays here; each header read is a host call on Fastly).
    pub fn forwarded_headers(&self) -> &'static [&'static str] {
        match self.endpoint {
            Endpoint::Resource(..) => &RESOURCE_HEADERS,
            _ => &["content-type"],
        }
    }

    /// The header that announces an upload's size (checked against `max_upload_bytes`): the
    /// file's, when a session starts; the piece's, for its bytes.
    pub fn upload_size_header(&self) -> Option<&'static str> {
        match self.resource_call()? {
            ResourceCall::StartUpload => Some("x-goog-upload-header-content-length"),
            ResourceCall::Upload(_) | ResourceCall::MultipartUpload => Some("content-length"),
            _ => None,
        }
    }

    /// Query parameters passed on to Google (never `key`).
    pub fn forwarded_query_params(&self) -> &'static [&'static str] {
        match self.endpoint {
            Endpoint::NativeListModels(_) => &["pageSize", "pageToken"],
            Endpoint::NativeCall { .. } => &["alt"],
            Endpoint::Resource(_, ResourceCall::Interaction(_)) => &["stream", "last_event_id", "include_input"],
            Endpoint::Resource(_, ResourceCall::Upload(_)) => &["upload_id", "upload_protocol"],
            Endpoint::Resource(_, ResourceCall::MultipartUpload) => &["uploadType"],
            Endpoint::Resource(_, ResourceCall::Cache(_)) => &["updateMask"],
            Endpoint::Resource(_, ResourceCall::Download(_)) => &["alt"],
            _ => &[],
        }
    }
}

/// What the edge reads of Google's success before it passes the answer on — one rule per
/// route, decided here so that both edges read the same.
#[derive(Debug, Clone)]
pub enum Reading {
    /// Nothing: the answer passes on as it came.
    Nothing,
    /// Its head, until a [`Peeker`](crate::google::empty::Peeker) decides whether it is empty
    /// (`true`: a stream) — [`Answer::Empty`](crate::decide::machine::Answer::Empty) or served.
    Peek(bool),
    /// Its head, until a [`Spotter`] finds the resource it made (or a generated file it names)
    /// — [`Answer::Made`](crate::decide::machine::Answer::Made).
    Spot(Spotter),
    /// The `x-goog-upload-url` header: the upload session a start made.
    UploadUrl,
    /// All of it (up to [`SPOT_LIMIT`](crate::client::spot::SPOT_LIMIT)): a page of a list —
    /// [`Answer::Page`](crate::decide::machine::Answer::Page).
    Page,
}

/// Entries asked of each project in a list of resources (Google's largest page for files).
pub(crate) const PAGE_SIZE: usize = 100;

/// Client headers passed on for calls on stateful resources.
const RESOURCE_HEADERS: [&str; 6] = [
    "content-type",
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-offset",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
];

/// Who may call an endpoint (and whether the caller's role changes the answer: see
/// [`crate::client::auth::lookup_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (the console page, CORS preflights).
    Anyone,
    /// A client token or an admin token, served alike (Google's API).
    Client,
    /// A client token or an admin token; an admin sees more (`/v1/status`).
    Viewer,
    /// An admin token (`admin_tokens`).
    Admin,
    /// The bytes of an upload session: no token, the session's record (made when a client
    /// started it) says whose it is.
    Upload,
}

/// A request that matches no route, with the dialect to answer it in.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteError {
    /// The dialect to answer in.
    pub dialect: Dialect,
    /// The 404 or 405.
    pub reply: ErrorReply,
}

/// Is `path` one of Anthropic's (where a token may come as `x-api-key`)?
pub fn may_be_anthropic(path: &str) -> bool {
    path.starts_with("/v1/messages") || path == "/v1/models"
}

/// Can a request for `path` be a native call, so that a token sent the Google way
/// (`x-goog-api-key`, `?key=`) matters? (OpenAI-only paths need not look for one.)
pub fn may_be_native(path: &str) -> bool {
    !path.starts_with("/v1/") || path.starts_with("/v1/models") || resource_path_v1(path)
}

/// Is `path` one of the native resource paths under `/v1/` (where OpenAI has paths of its own)?
fn resource_path_v1(path: &str) -> bool {
    RESOURCE_COLLECTIONS.iter().any(|c| path.strip_prefix("/v1/").is_some_and(|rest| rest.starts_with(c)))
}

/// The collections of stateful resources.
const RESOURCE_COLLECTIONS: [&str; 4] = ["interactions", "files", "cachedContents", "batches"];

/// Google's path for a call on a resource.
fn resource_path(version: Version, call: &ResourceCall) -> String {
    let v = version.as_str();
    match call {
        ResourceCall::CreateInteraction => format!("/{v}/interactions"),
        ResourceCall::Interaction(id) => format!("/{v}/interactions/{id}"),
        ResourceCall::CancelInteraction(id) => format!("/{v}/interactions/{id}/cancel"),
        ResourceCall::StartUpload | ResourceCall::MultipartUpload | ResourceCall::Upload(_) => {
            format!("/upload/{v}/files")
        }
        ResourceCall::File(id) => format!("/{v}/files/{id}"),
        ResourceCall::Download(id) => format!("/{v}/files/{id}:download"),
        ResourceCall::CreateCache => format!("/{v}/cachedContents"),
        ResourceCall::Cache(id) => format!("/{v}/cachedContents/{id}"),
        ResourceCall::List(kind) => format!("/{v}/{}?pageSize={PAGE_SIZE}", kind.collection()),
        ResourceCall::Batch(id) => format!("/{v}/batches/{id}"),
        ResourceCall::CancelBatch(id) => format!("/{v}/batches/{id}:cancel"),
        ResourceCall::Operation { model, id } => format!("/{v}/models/{model}/operations/{id}"),
    }
}

/// Routes `method path`. `native_credentials`: the request carries its token the way Google's
/// SDKs send a key (`x-goog-api-key` or `?key=`); it decides between the OpenAI and the native
/// meaning of the paths both APIs share (`GET /v1/models`, `GET /v1/models/{m}`).
///
/// `query`: the query string; its `upload_id` makes `/upload/{v}/files` an upload session's
/// bytes, its `uploadType=multipart` a one-request upload.
pub fn route(method: &str, path: &str, query: Option<&str>, native_credentials: bool) -> Result<Route, RouteError> {
    let dialect = guess_dialect(path, native_credentials);
    let Some((endpoint, allow)) = match_path(path, query, native_credentials) else {
        return Err(RouteError { dialect, reply: ErrorReply::not_found(path) });
    };
    if method == "OPTIONS" {
        return Ok(Route { endpoint: Endpoint::Preflight, dialect, deletes: false });
    }
    if !allow.split(", ").any(|m| m == method) {
        return Err(RouteError { dialect, reply: ErrorReply::method_not_allowed(method, allow) });
    }
    let endpoint = match endpoint {
        Endpoint::Resource(v, ResourceCall::CreateCache) if method == "GET" => {
            Endpoint::Resource(v, ResourceCall::List(Kind::Cache))
        }
        other => other,
    };
    Ok(Route { endpoint, dialect, deletes: method == "DELETE" })
}

fn guess_dialect(path: &str, native_credentials: bool) -> Dialect {
    let native_looking = path.starts_with("/v1beta/") && !path.starts_with("/v1beta/openai/")
        || path.contains(':')
        || path.starts_with("/upload/")
        || native_credentials && (path.starts_with("/v1/models") || resource_path_v1(path));
    if native_looking {
        Dialect::Google
    } else if path.starts_with("/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

const GET: &str = "GET, OPTIONS";
const POST: &str = "POST, OPTIONS";
const GET_DELETE: &str = "GET, DELETE, OPTIONS";
const GET_POST: &str = "GET, POST, OPTIONS";
const GET_PATCH_DELETE: &str = "GET, PATCH, DELETE, OPTIONS";

/// The endpoint for a path and the methods it allows.
fn match_path(path: &str, query: Option<&str>, native_credentials: bool) -> Option<(Endpoint, &'static str)> {
    if path == "/" {
        return Some((Endpoint::Console, GET));
    }
    if let Some(rest) = path.strip_prefix("/upload/") {
        return match_upload(rest, query);
    }
    if let Some(rest) = path.strip_prefix("/v1beta/openai/") {
        return match_openai(rest);
    }
    if let Some(rest) = path.strip_prefix("/v1beta/") {
        return match_native(Version::V1beta, rest);
    }
    let rest = path.strip_prefix("/v1/")?;
    match rest {
        "status" => return Some((Endpoint::Status, GET)),
        "usage" => return Some((Endpoint::Usage, GET)),
        "keys/check" => return Some((Endpoint::KeyCheck, POST)),
        "messages" => return Some((Endpoint::Messages, POST)),
        "messages/count_tokens" => return Some((Endpoint::CountTokens, POST)),
        "responses" => return Some((Endpoint::Responses, POST)),
        _ => {}
    }
    let native = native_credentials || rest.contains(':');
    if native && (rest == "models" || rest.starts_with("models/") || resource_path_v1(path)) {
        return match_native(Version::V1, rest);
    }
    match_openai(rest)
}

/// `/upload/{v}/files`: a session's start, or (with `upload_id`) its bytes, or (with
/// `uploadType=multipart`) a whole file in one request.
fn match_upload(rest: &str, query: Option<&str>) -> Option<(Endpoint, &'static str)> {
    let version = match rest {
        "v1beta/files" => Version::V1beta,
        "v1/files" => Version::V1,
        _ => return None,
    };
    let call = match (query_param(query, "upload_id"), query_param(query, "uploadType")) {
        (Some(id), _) => ResourceCall::Upload(valid_id(id)?.to_string()),
        (None, Some("multipart")) => ResourceCall::MultipartUpload,
        (None, _) => ResourceCall::StartUpload,
    };
    Some((Endpoint::Resource(version, call), POST))
}

/// `id`, if it is a resource id ([`crate::google::resource`]).
fn valid_id(id: &str) -> Option<&str> {
    crate::google::resource::valid_id(id).then_some(id)
}

/// `interactions…`, `files/{id}`, `cachedContents…` (the lists are not served: see the README).
fn match_resource(version: Version, rest: &str) -> Option<(Endpoint, &'static str)> {
    let (call, allow) = match rest.split_once('/') {
        None if rest == "interactions" => (ResourceCall::CreateInteraction, POST),
        // `GET` lists them (see `route`).
        None if rest == "cachedContents" => (ResourceCall::CreateCache, GET_POST),
        None if rest == "files" => (ResourceCall::List(Kind::File), GET),
        None if rest == "batches" => (ResourceCall::List(Kind::Batch), GET),
        None => return None,
        Some(("interactions", id)) => match id.strip_suffix("/cancel") {
            Some(id) => (ResourceCall::CancelInteraction(valid_id(id)?.to_string()), POST),
            None => (ResourceCall::Interaction(valid_id(id)?.to_string()), GET_DELETE),
        },
        Some(("files", id)) => match id.strip_suffix(":download") {
            Some(id) => (ResourceCall::Download(valid_id(id)?.to_string()), GET),
            None => (ResourceCall::File(valid_id(id)?.to_string()), GET_DELETE),
        },
        Some(("cachedContents", id)) => (ResourceCall::Cache(valid_id(id)?.to_string()), GET_PATCH_DELETE),
        Some(("batches", id)) => match id.strip_suffix(":cancel") {
            Some(id) => (ResourceCall::CancelBatch(valid_id(id)?.to_string()), POST),
            None => (ResourceCall::Batch(valid_id(id)?.to_string()), GET_DELETE),
        },
        Some(_) => return None,
    };
    Some((Endpoint::Resource(version, call), allow))
}

fn match_openai(rest: &str) -> Option<(Endpoint, &'static str)> {
    match rest {
        "chat/completions" => Some((Endpoint::ChatCompletions, POST)),
        "models" => Some((Endpoint::ListModels, GET)),
        "embeddings" => Some((Endpoint::Embeddings, POST)),
        "images/generations" => Some((Endpoint::ImageGenerations, POST)),
        _ => {
            let id = rest.strip_prefix("models/")?;
            valid_model(id).then(|| (Endpoint::GetModel(id.to_string()), GET))
        }
    }
}

fn match_native(version: Version, rest: &str) -> Option<(Endpoint, &'static str)> {
    if rest == "models" {
        return Some((Endpoint::NativeListModels(version), GET));
    }
    let Some(name) = rest.strip_prefix("models/") else { return match_resource(version, rest) };
    if let Some((model, id)) = name.split_once("/operations/") {
        let (model, id) = (valid_model(model).then_some(model)?, valid_id(id)?);
        let call = ResourceCall::Operation { model: model.to_string(), id: id.to_string() };
        return Some((Endpoint::Resource(version, call), GET));
    }
    match name.split_once(':') {
        None => valid_model(name).then(|| (Endpoint::NativeGetModel(version, name.to_string()), GET)),
        Some((model, method)) => {
            let method = NATIVE_METHODS.iter().find(|m| **m == method)?;
            valid_model(model).then(|| (Endpoint::NativeCall { version, model: model.to_string(), method }, POST))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str, body: &str) -> Vec<String> {
        let r = route("POST", path, None, true).expect("routes");
        r.facts(body.as_bytes()).expect("reads").resources.iter().map(Resource::name).collect()
    }

    #[test]
    fn finds_what_a_request_names() {
        let generate = "/v1beta/models/gemini-3.5-flash:generateContent";
        let body = r#"{"contents":[{"parts":[{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc","mimeType":"text/plain"}},{"file_data":{"file_uri":"files/abc"}}]}],"cachedContent":"cachedContents/c-1"}"#;
        assert_eq!(names(generate, body), ["files/abc", "cachedContents/c-1"]);
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
        // A reference Google could resolve but the proxy cannot read is refused, not ignored.
        let r = route("POST", generate, None, true).expect("routes");
        let refused = r.facts(br#"{"cachedContent":"cachedContents/../keys"}"#).expect_err("400");
        assert_eq!(refused.status, 400);
    }

    fn ok(method: &str, path: &str, native: bool) -> Route {
        route(method, path, None, native).expect("routes")
    }

    fn status(method: &str, path: &str) -> u16 {
        route(method, path, None, false).map_or_else(|e| e.reply.status, |_| 200)
    }

    #[test]
    fn openai_routes() {
        let r = ok("POST", "/v1/chat/completions", false);
        assert_eq!(r.upstream_path().as_deref(), Some("/v1beta/openai/chat/completions"));
        assert_eq!(r.dialect, Dialect::OpenAi);
        assert_eq!(ok("GET", "/v1/models", false).endpoint, Endpoint::ListModels);
        assert_eq!(
            ok("GET", "/v1/models/gemini-3.5-flash", false).endpoint,
            Endpoint::GetModel("gemini-3.5-flash".into())
        );
        assert_eq!(ok("POST", "/v1/embeddings", false).upstream_path().as_deref(), Some("/v1beta/openai/embeddings"));
        assert_eq!(ok("GET", "/v1/status", false).upstream_path(), None);
        assert_eq!(ok("OPTIONS", "/v1/chat/completions", false).endpoint, Endpoint::Preflight);
        assert_eq!(ok("POST", "/v1beta/openai/chat/completions", false).endpoint, Endpoint::ChatCompletions);
    }

    #[test]
    fn native_routes() {
        let r = ok("POST", "/v1beta/models/gemini-3.5-flash:streamGenerateContent", false);
        assert_eq!(r.dialect, Dialect::Google);
        assert_eq!(r.path_model(), Some("gemini-3.5-flash"));
        assert_eq!(r.upstream_path().as_deref(), Some("/v1beta/models/gemini-3.5-flash:streamGenerateContent"));
        assert_eq!(ok("GET", "/v1beta/models", false).endpoint, Endpoint::NativeListModels(Version::V1beta));
        let v1 = ok("POST", "/v1/models/gemini-3.5-flash:countTokens", false);
        assert_eq!(v1.upstream_path().as_deref(), Some("/v1/models/gemini-3.5-flash:countTokens"));
        // The shared paths follow the credential style.
        assert_eq!(ok("GET", "/v1/models", true).endpoint, Endpoint::NativeListModels(Version::V1));
        assert_eq!(ok("GET", "/v1/models", true).dialect, Dialect::Google);
        assert!(r.is_native() && v1.is_native() && !ok("GET", "/v1/models", false).is_native());
        assert!(may_be_native("/v1beta/models") && may_be_native("/v1/models/x:countTokens"));
        assert!(!may_be_native("/v1/chat/completions"));
    }

    #[test]
    fn resource_routes() {
        let create = ok("POST", "/v1/interactions", true);
        assert_eq!(create.endpoint, Endpoint::Resource(Version::V1, ResourceCall::CreateInteraction));
        assert_eq!((create.dialect, create.upstream_path().as_deref()), (Dialect::Google, Some("/v1/interactions")));
        let get = ok("DELETE", "/v1beta/interactions/v1_abc-9", false);
        assert_eq!(get.upstream_path().as_deref(), Some("/v1beta/interactions/v1_abc-9"));
        assert_eq!(
            ok("POST", "/v1beta/interactions/x1/cancel", false).endpoint,
            Endpoint::Resource(Version::V1beta, ResourceCall::CancelInteraction("x1".into()))
        );
        assert_eq!(
            ok("PATCH", "/v1beta/cachedContents/c1", false).upstream_path().as_deref(),
            Some("/v1beta/cachedContents/c1")
        );
        let start = ok("POST", "/upload/v1beta/files", false);
        assert_eq!(
            (start.endpoint.clone(), start.access()),
            (Endpoint::Resource(Version::V1beta, ResourceCall::StartUpload), Access::Client)
        );
        let bytes = route("POST", "/upload/v1beta/files", Some("upload_id=u-1&upload_protocol=resumable"), false)
            .expect("routes");
        assert_eq!(bytes.access(), Access::Upload);
        assert_eq!(bytes.upstream_path().as_deref(), Some("/upload/v1beta/files"));
        assert_eq!(
            route("POST", "/upload/v1beta/files", Some("upload_id=a b"), false).map_err(|e| e.reply.status),
            Err(404)
        );
        let multipart = route("POST", "/upload/v1/files", Some("uploadType=multipart"), true).expect("routes");
        assert_eq!(multipart.endpoint, Endpoint::Resource(Version::V1, ResourceCall::MultipartUpload));
        // OpenAI's own `/v1/files` is not served.
        assert_eq!(status("GET", "/v1/files/abc"), 404);
        assert!(may_be_native("/v1/files/abc") && may_be_native("/upload/v1beta/files"));
        assert_eq!(
            ok("POST", "/v1beta/batches/b-1:cancel", false).upstream_path().as_deref(),
            Some("/v1beta/batches/b-1:cancel")
        );
        assert_eq!(status("POST", "/v1beta/batches/b-1"), 405);
        let list = ok("GET", "/v1beta/cachedContents", false);
        assert_eq!(list.endpoint, Endpoint::Resource(Version::V1beta, ResourceCall::List(Kind::Cache)));
        assert_eq!(list.upstream_path().as_deref(), Some("/v1beta/cachedContents?pageSize=100"));
        assert_eq!(ok("GET", "/v1/files", true).upstream_path().as_deref(), Some("/v1/files?pageSize=100"));
        let op = ok("GET", "/v1beta/models/veo-3.1-generate-preview/operations/op1", false);
        assert_eq!(op.upstream_path().as_deref(), Some("/v1beta/models/veo-3.1-generate-preview/operations/op1"));
        assert_eq!(status("GET", "/v1beta/models/veo/operations/a/b"), 404);
    }

    #[test]
    fn errors() {
        assert_eq!(status("GET", "/v1/chat/completions"), 405);
        assert_eq!(status("POST", "/v1/models"), 405);
        assert_eq!(status("GET", "/v1/nothing"), 404);
        assert_eq!(ok("GET", "/", false).access(), Access::Anyone);
        assert_eq!(ok("POST", "/v1/keys/check", false).access(), Access::Admin);
        assert_eq!(ok("GET", "/v1/status", false).access(), Access::Viewer);
        assert_eq!(ok("POST", "/v1/chat/completions", false).access(), Access::Client);
        assert_eq!(status("POST", "/"), 405);
        assert_eq!(status("GET", "/index.html"), 404);
        assert_eq!(status("POST", "/v1beta/models/x/../../something:generateContent"), 404);
        assert_eq!(status("POST", "/v1beta/models/a%2Fb:generateContent"), 404);
        assert_eq!(status("POST", "/v1beta/models/gemini:deleteEverything"), 404);
        assert_eq!(status("GET", "/v1beta/tunedModels/x"), 404);
        assert_eq!(status("GET", "/v1beta/files/a/b"), 404);
        assert_eq!(status("DELETE", "/v1beta/files/a:download"), 405);
        assert_eq!(status("GET", "/v1beta/files/.."), 404);
        assert_eq!(status("POST", "/v1beta/files/abc"), 405);
        assert_eq!(status("GET", "/upload/v1beta/other"), 404);
        let e = route("DELETE", "/v1beta/models", None, false).expect_err("405");
        assert_eq!((e.dialect, e.reply.allow), (Dialect::Google, Some("GET, OPTIONS")));
    }
}
