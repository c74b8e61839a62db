//! A request for Google's API between the edge's routing and its response: the **front** and
//! the **back** of the request's machine, decided here so that an edge only does I/O.
//!
//! 1. **Prepare** ([`Forward::prepare`]), once the edge has read the body: what the body says
//!    ([`Route::facts`]); the client's policy (an alias resolved, every model the request names
//!    checked, what a daily token limit cannot meter refused); the model the attempts are about;
//!    what goes to Google ([`Outgoing`]: path and query, the client headers passed on, a body
//!    the alias rewrote, what to read of a success); one attempt for a body that streams; and
//!    the machine ([`Work`]): the request's [`Flow`] — or a list's [`Listing`] — behind the
//!    client's gate ([`Gated`]).
//! 2. The edge runs [`Forward::work`] with its one loop, sending [`Outgoing`] with each key.
//! 3. **Deliver** ([`Forward::deliver`]): how the machine's end reaches the client
//!    ([`Delivery`]): Google's success with what the edge does to it on the way ([`Passing`]:
//!    the upload URL made the proxy's, a body rewritten, the stream's type and time limit, the
//!    meter, the relabel), JSON the proxy made, or an error in the client's envelope — with the
//!    `x-ratelimit-*` headers, the counts to append once the client has its answer, and the
//!    writes the store refused ([`Linger`]).

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::client::messages::MessagesRequest;
use crate::client::messages_answer::MessagesAnswer;
use crate::client::model::valid_model;
use crate::client::policy::{Applied, Policy};
use crate::client::query::forwarded_query;
use crate::client::responses::ResponsesRequest;
use crate::client::responses_answer::ResponsesAnswer;
use crate::client::route::{Endpoint, Reading, ResourceCall, Route, Version};
use crate::client::tools::ToolNames;
use crate::client::transform::Transform;
use crate::decide::flow::{Finish, Flow};
use crate::decide::limits::{Gate, Gated, RateHeaders};
use crate::decide::linger::Linger;
use crate::decide::listing::{Listed, Listing};
use crate::decide::machine::{Answer, Machine, Step};
use crate::settings::{AgentModels, CoolingSettings, Limiter, RequestSettings};
use crate::state::items::Item;
use crate::state::marks::Marks;
use crate::state::usage::UsageAppend;

/// The request as the edge routed and read it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'r> {
    /// The route.
    pub route: &'r Route,
    /// Its body as read (an upload's bytes, which stream past unread: empty).
    pub body: &'r [u8],
    /// The body streams past unread (an upload's bytes): it can be sent once.
    pub streamed: bool,
    /// The client's query string.
    pub query: Option<&'r str>,
}

/// Who asks, and what the operator allows them.
#[derive(Debug, Clone, Copy)]
pub struct Client<'r> {
    /// The caller.
    pub caller: &'r Caller,
    /// Its policy (admins and clients without one: none).
    pub policy: Option<&'r Policy>,
}

/// What the edge is: its pool, its limits, its clock and entropy.
#[derive(Debug, Clone)]
pub struct Setup<'r> {
    /// Key lists in the pool.
    pub parts: usize,
    /// What the first key list is called (a configuration error names it).
    pub first_list: &'r str,
    /// The most calls to Google one request may make here.
    pub upstream_limit: usize,
    /// The edge has a per-client rate counter (`rate_limiter = platform`: Fastly's Edge Rate
    /// Limiting).
    pub platform_counter: bool,
    /// The store takes few writes per item a second (Fastly's KV): verdicts get entries of
    /// their own ([`crate::state::items`]), and so do limited clients' requests and tokens
    /// ([`crate::state::limit_entries`]).
    pub verdict_entries: bool,
    /// The request's entropy.
    pub seed: u64,
    /// Now.
    pub now_ms: u64,
    /// The request knobs.
    pub settings: RequestSettings,
    /// Knob `agent_models`, read for the routes that need it ([`Route::translated`]; `None`:
    /// its default).
    pub agent_models: Option<AgentModels>,
}

/// What goes to Google with each key.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Google's path and query (`/v1beta/models/m:streamGenerateContent?alt=sse`).
    pub path: String,
    /// The client headers passed on, by name (the edge copies their values).
    pub headers: &'static [&'static str],
    /// The key goes in `x-goog-api-key` (Google's native API), else `Authorization: Bearer`.
    pub native: bool,
    /// What to read of a success before passing it on.
    pub reading: Reading,
    /// The body to send instead of the client's (an alias rewrote its model); `None`: the body
    /// as read, or the upload's bytes as they stream.
    pub body: Option<Vec<u8>>,
}

/// The machine a forward runs. (One per request, moved once: boxing the large variant would
/// only add an allocation.)
#[allow(clippy::large_enum_variant)]
pub enum Work<'a> {
    /// A request's flow, behind the client's gate.
    Request(Gated<Flow<'a>>),
    /// A list of resources across projects, behind the client's gate.
    List(Gated<Listing<'a>>),
}

/// How a [`Work`] ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// A request's end.
    Request(Finish),
    /// A list's end.
    List(Listed),
}

/// What reaches the client, and what follows.
pub struct Delivery {
    /// The answer.
    pub answer: Answering,
    /// The `x-ratelimit-*` headers (a client with limits).
    pub rate_headers: RateHeaders,
    /// The counts to append once the client has its answer.
    pub usage: Option<UsageAppend>,
    /// The changes the store refused, to write again after the answer.
    pub linger: Option<Linger>,
}

/// The answer the client gets. (One per request, as [`Work`].)
#[allow(clippy::large_enum_variant)]
pub enum Answering {
    /// Google's success (the response the last `Send` got), passed on as [`Passing`] says.
    Served(Passing),
    /// JSON the proxy made (a merged list).
    Json(Vec<u8>),
    /// An error, in the client's envelope.
    Error(ErrorReply),
}

/// What the edge does to Google's success on its way to the client.
#[derive(Debug, Clone, Default)]
pub struct Passing {
    /// `x-goog-upload-url` becomes the proxy's own ([`proxied_upload_url`](crate::client::upload::proxied_upload_url)).
    pub upload_url: bool,
    /// The body is read whole and rewritten.
    pub rewrite: Option<Rewrite>,
    /// It is a stream: `text/event-stream` if Google named no type, relayed chunk by chunk,
    /// cut after `max_stream_duration`.
    pub stream: bool,
    /// Its tokens are read as it passes (the counts wait for it).
    pub meter: bool,
    /// The client's alias goes back into its envelope, or the answer is translated into the
    /// client's dialect, as it passes.
    pub transform: Option<Transform>,
}

/// A success's body rewritten whole: model ids without `models/` (OpenAI's model pages), a
/// model list kept to what the client's policy allows.
#[derive(Debug, Clone)]
pub struct Rewrite {
    strip_model_prefixes: bool,
    models_of: Option<Policy>,
}

impl Rewrite {
    /// `body` rewritten (a body that does not read as the list it should be goes as it came).
    pub fn apply(&self, mut body: Vec<u8>) -> Vec<u8> {
        if self.strip_model_prefixes {
            body = crate::client::openai_body::strip_model_prefixes(&body).unwrap_or(body);
        }
        if let Some(policy) = &self.models_of {
            body = policy.model_list(&body).unwrap_or(body);
        }
        body
    }
}

/// A request for Google's API: prepared, run by the edge, delivered.
pub struct Forward<'a> {
    route: Route,
    stream: bool,
    outgoing: Outgoing,
    work: Work<'a>,
    transform: Option<Transform>,
    models_of: Option<Policy>,
    first_list: String,
    label: String,
    settings: RequestSettings,
}

impl<'a> Forward<'a> {
    /// Prepares `ask` by `client` on an edge set up as `setup`. An error is the client's answer.
    pub fn prepare(ask: Ask<'_>, client: Client<'_>, setup: Setup<'_>) -> Result<Self, ErrorReply> {
        let gate = gate(client, &setup);
        if let Some(ResourceCall::List(kind)) = ask.route.resource_call() {
            let listing = Listing::new(*kind, client.caller, setup.parts, setup.now_ms);
            let outgoing = Outgoing {
                path: ask.route.upstream_path().unwrap_or_default(),
                headers: &[],
                native: true,
                reading: Reading::Page,
                body: None,
            };
            let work = Work::List(gated(listing, gate, &setup));
            return Ok(Forward::new(ask.route.clone(), false, outgoing, work, client, setup));
        }
        if let Some(translated) = translate(&ask, client, &setup)? {
            let query = translated.stream.then_some("alt=sse");
            let native = Ask { route: &translated.route, body: &translated.body, streamed: false, query };
            let mut forward = Forward::prepare(native, client, setup)?;
            forward.outgoing.body = Some(translated.body);
            forward.transform = Some(translated.transform);
            return Ok(forward);
        }
        let facts = ask.route.facts(ask.body)?;
        let applied = match client.policy {
            Some(policy) => policy.apply(ask.route, ask.body, &facts)?,
            None => Applied::default(),
        };
        let Applied { route: aliased, body, model, relabel, query } = applied;
        let route = aliased.unwrap_or_else(|| ask.route.clone());
        let model = model.or_else(|| facts.model.clone());
        let query = query.map(str::to_string).or_else(|| forwarded_query(ask.query, route.forwarded_query_params()));
        let path = route.upstream_path().unwrap_or_default();
        let outgoing = Outgoing {
            path: query.map_or_else(|| path.clone(), |q| format!("{path}?{q}")),
            headers: route.forwarded_headers(),
            native: route.is_native(),
            reading: route.reading(facts.stream),
            body,
        };
        // A body that streams past can be sent once: one attempt.
        let upstream_limit = if ask.streamed { 1 } else { setup.upstream_limit };
        let flow = Flow::new(setup.parts, model.as_deref(), setup.seed, upstream_limit)
            .verdict_entries(setup.verdict_entries)
            .with_resources(&route, &facts, client.caller)
            .within(client.policy.and_then(|p| p.projects.clone()));
        let work = Work::Request(gated(flow, gate, &setup));
        let mut forward = Forward::new(route, facts.stream, outgoing, work, client, setup);
        forward.transform = relabel.map(Transform::Relabel);
        Ok(forward)
    }

    fn new(
        route: Route,
        stream: bool,
        outgoing: Outgoing,
        work: Work<'a>,
        client: Client<'_>,
        setup: Setup<'_>,
    ) -> Self {
        let models_of = client.policy.filter(|p| route.lists_models() && p.restricts()).cloned();
        Forward {
            route,
            stream,
            outgoing,
            work,
            transform: None,
            models_of,
            first_list: setup.first_list.to_string(),
            label: client.caller.label.clone(),
            settings: setup.settings,
        }
    }

    /// What goes to Google with each key.
    pub fn outgoing(&self) -> &Outgoing {
        &self.outgoing
    }

    /// The route as the request goes (an alias resolved).
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The machine the edge runs.
    pub fn work(&mut self) -> &mut Work<'a> {
        &mut self.work
    }

    /// How the machine's end (`ended`) reaches the client — `served`: the edge holds the
    /// response of the last `Send` — at `now_ms`.
    pub fn deliver(&mut self, ended: Ended, served: bool, now_ms: u64) -> Delivery {
        match (ended, &mut self.work) {
            (Ended::List(listed), Work::List(listing)) => {
                let answer = match listed {
                    Listed::Answer(body) => Answering::Json(body),
                    Listed::Error(reply) => Answering::Error(reply),
                };
                Delivery { answer, rate_headers: listing.rate_headers().clone(), usage: None, linger: None }
            }
            (Ended::Request(finish), Work::Request(flow)) => {
                let usage = flow.usage(&self.label, now_ms, &self.settings);
                let linger = flow.inner_mut().linger(now_ms);
                let rate_headers = flow.rate_headers().clone();
                let answer = match (finish, served) {
                    (Finish::Served, true) => Answering::Served(self.passing(usage.is_some())),
                    (Finish::Served, false) => Answering::Error(ErrorReply::upstream_unreachable(false)),
                    (Finish::Error(reply), _) => Answering::Error(reply),
                    (Finish::EmptyPool, _) => {
                        Answering::Error(ErrorReply::config(format!("secret `{}` holds no API keys", self.first_list)))
                    }
                };
                Delivery { answer, rate_headers, usage, linger }
            }
            _ => Delivery {
                answer: Answering::Error(ErrorReply::new(500, "internal", "The request ended as another kind.")),
                rate_headers: Vec::new(),
                usage: None,
                linger: None,
            },
        }
    }

    /// What is done to a success on its way (`counted`: its usage will be appended).
    fn passing(&mut self, counted: bool) -> Passing {
        let strip = self.route.rewrites_model_ids();
        let rewrite = (strip || self.models_of.is_some())
            .then(|| Rewrite { strip_model_prefixes: strip, models_of: self.models_of.clone() });
        Passing {
            upload_url: matches!(self.route.resource_call(), Some(ResourceCall::StartUpload)),
            rewrite,
            stream: self.stream,
            meter: counted && self.route.metered(),
            transform: self.transform.take(),
        }
    }
}

/// A coding agent's request as the native one it becomes.
struct Translated {
    /// The native call (answering in the agent's dialect).
    route: Route,
    /// It streams (Google's `alt=sse`).
    stream: bool,
    body: Vec<u8>,
    /// Google's answer on its way back.
    transform: Transform,
}

/// `ask` translated, if it is a coding agent's request: its model resolved (the client's alias
/// first, then `agent_models`), its body made Google's native one.
fn translate(ask: &Ask<'_>, client: Client<'_>, setup: &Setup<'_>) -> Result<Option<Translated>, ErrorReply> {
    let mut names = ToolNames::default();
    let (model, method, body, transform, stream) = match ask.route.endpoint {
        Endpoint::Messages => {
            let request = MessagesRequest::read(ask.body, false)?;
            let gemini = agent_model(&request.model, client, setup)?;
            let body = request.to_google(&gemini, &mut names)?;
            let answer = MessagesAnswer::new(&request.model, names, request.stream, setup.seed);
            (gemini, generation(request.stream), body, Transform::Messages(answer), request.stream)
        }
        Endpoint::CountTokens => {
            let request = MessagesRequest::read(ask.body, true)?;
            let gemini = agent_model(&request.model, client, setup)?;
            let body = request.to_count_tokens(&gemini)?;
            (gemini, "countTokens", body, Transform::Messages(MessagesAnswer::count()), false)
        }
        Endpoint::Responses => {
            let request = ResponsesRequest::read(ask.body)?;
            let gemini = agent_model(&request.model, client, setup)?;
            let body = request.to_google(&gemini, &mut names)?;
            let answer = ResponsesAnswer::new(&request.model, names, request.stream, setup.seed, setup.now_ms);
            (gemini, generation(request.stream), body, Transform::Responses(answer), request.stream)
        }
        _ => return Ok(None),
    };
    let endpoint = Endpoint::NativeCall { version: Version::V1beta, model, method };
    let route = Route { endpoint, dialect: ask.route.dialect, deletes: false };
    Ok(Some(Translated { route, stream, body, transform }))
}

/// Google's method for a generation that streams or not.
fn generation(stream: bool) -> &'static str {
    if stream {
        "streamGenerateContent"
    } else {
        "generateContent"
    }
}

/// The Gemini model for an agent's `model`: the client's alias, else knob `agent_models`'.
fn agent_model(model: &str, client: Client<'_>, setup: &Setup<'_>) -> Result<String, ErrorReply> {
    let defaults = AgentModels::default();
    let models = setup.agent_models.as_ref().unwrap_or(&defaults);
    let alias = client.policy.and_then(|p| p.alias(model));
    let gemini = alias.unwrap_or_else(|| models.model_for(model));
    if !valid_model(gemini) {
        return Err(ErrorReply::new(404, "not_found", format!("model: {model} is not a model this proxy serves.")));
    }
    Ok(gemini.to_string())
}

/// The gate of a client with limits (its policy's `rpm`, `rpd`, `tokens_per_day`); where its
/// `rpm` counts, the gate reads itself ([`Gated::reading_limiter`]).
fn gate(client: Client<'_>, setup: &Setup<'_>) -> Option<Gate> {
    let limits = client.policy.map(|p| p.limits).filter(|l| l.any())?;
    let gate = Gate::new(limits, Limiter::Store, &client.caller.label, setup.now_ms, setup.settings.reset_zone);
    Some(gate.entries(setup.verdict_entries))
}

/// `inner` behind `gate` (its claim's id drawn from the request's seed), reading where `rpm`
/// counts itself.
fn gated<M>(inner: M, gate: Option<Gate>, setup: &Setup<'_>) -> Gated<M> {
    Gated::new(inner, gate, setup.seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15).reading_limiter(setup.platform_counter)
}

impl<'a> Machine<'a> for Work<'a> {
    type Done = Ended;

    fn step(&mut self, now_ms: u64) -> Step<'a, Ended> {
        match self {
            Work::Request(flow) => flow.step(now_ms).map_done(Ended::Request),
            Work::List(listing) => listing.step(now_ms).map_done(Ended::List),
        }
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        match self {
            Work::Request(m) => m.fetched(part, bytes),
            Work::List(m) => m.fetched(part, bytes),
        }
    }

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        match self {
            Work::Request(m) => m.read(items),
            Work::List(m) => m.read(items),
        }
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        match self {
            Work::Request(m) => m.configured(cooling),
            Work::List(m) => m.configured(cooling),
        }
    }

    fn answered(&mut self, answers: Vec<Answer>) {
        match self {
            Work::Request(m) => m.answered(answers),
            Work::List(m) => m.answered(answers),
        }
    }

    fn written(&mut self) {
        match self {
            Work::Request(m) => m.written(),
            Work::List(m) => m.written(),
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        match self {
            Work::Request(m) => m.refused(writes),
            Work::List(m) => m.refused(writes),
        }
    }

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        match self {
            Work::Request(m) => m.looked(records),
            Work::List(m) => m.looked(records),
        }
    }

    fn rated(&mut self, count: Option<u64>) {
        match self {
            Work::Request(m) => m.rated(count),
            Work::List(m) => m.rated(count),
        }
    }

    fn claimed(&mut self, item: Option<(Vec<u8>, u64)>) {
        match self {
            Work::Request(m) => m.claimed(item),
            Work::List(m) => m.claimed(item),
        }
    }

    fn remembered(&mut self, stored: bool) {
        match self {
            Work::Request(m) => m.remembered(stored),
            Work::List(m) => m.remembered(stored),
        }
    }

    fn knob(&mut self, value: Option<String>) {
        match self {
            Work::Request(m) => m.knob(value),
            Work::List(m) => m.knob(value),
        }
    }

    fn listed(&mut self, names: Vec<String>) {
        match self {
            Work::Request(m) => m.listed(names),
            Work::List(m) => m.listed(names),
        }
    }
}
