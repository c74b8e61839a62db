//! gemini-sim: a test double of the Gemini API for gemini-edge-pool's tests and benchmarks.
//!
//! Serves Google's OpenAI-compatible endpoint (`/v1beta/openai/...`, errors wrapped in a JSON
//! array) and the native API (`/v1beta/...`, `/v1/...`; SSE without `[DONE]`, paged model
//! lists), with per-key scripted failures and per-project per-model quotas ([`world`]).
//!
//! Control API (for tests): `POST /_sim/reset` (a [`world::Config`] as JSON),
//! `POST /_sim/behavior`, `POST /_sim/burst {"seconds", "status"}`, `GET /_sim/log`,
//! `GET /_sim/timeline`, `GET /_sim/health`.
//!
//! Usage: `gemini-sim [--port 9100] [--config file.json] [--quiet]`

mod agent;
mod answers;
mod google;
mod requests;
mod resources;
mod world;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use resources::ResCall;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use world::{Config, Delivery, LogEntry, Verdict, World};

type BodyError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BodyError>;
type Shared = Arc<Mutex<World>>;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(9100);
    let config: Config = match arg("--config") {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => Config::default(),
    };
    let world: Shared = Arc::new(Mutex::new(World::new(config)));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    if !args.iter().any(|a| a == "--quiet") {
        eprintln!("gemini-sim listening on http://127.0.0.1:{port}");
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let world = world.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, world.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Everything about an incoming request the simulator looks at.
struct Incoming_ {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

async fn handle(req: Request<Incoming>, world: Shared) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let incoming = Incoming_ {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body,
    };
    if let Some(rest) = incoming.path.strip_prefix("/_sim/") {
        return Ok(control(rest, &incoming, &world));
    }
    Ok(api(incoming, world).await)
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let body = Full::new(body.into()).map_err(|never: Infallible| -> BodyError { match never {} }).boxed();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .unwrap_or_else(|_| Response::new(BoxBody::default()))
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    full(status, "application/json; charset=UTF-8", serde_json::to_vec(value).unwrap_or_default())
}

fn control(rest: &str, incoming: &Incoming_, world: &Shared) -> Response<Body> {
    let Ok(mut w) = world.lock() else { return json_response(500, &json!({"error": "poisoned"})) };
    match rest {
        "health" => json_response(200, &json!({"ok": true})),
        "reset" => match serde_json::from_slice::<Config>(&incoming.body) {
            Ok(config) => {
                *w = World::new(config);
                json_response(200, &json!({"ok": true}))
            }
            Err(e) => json_response(400, &json!({"error": e.to_string()})),
        },
        "behavior" => match serde_json::from_slice(&incoming.body) {
            Ok(behavior) => {
                w.add_behavior(behavior);
                json_response(200, &json!({"ok": true}))
            }
            Err(e) => json_response(400, &json!({"error": e.to_string()})),
        },
        "burst" => {
            let v: Value = serde_json::from_slice(&incoming.body).unwrap_or_default();
            let seconds = v.get("seconds").and_then(Value::as_f64).unwrap_or(5.0);
            let status = v.get("status").and_then(Value::as_u64).unwrap_or(503) as u16;
            w.burst(seconds, status);
            json_response(200, &json!({"ok": true}))
        }
        "log" => json_response(200, &serde_json::to_value(&w.log).unwrap_or_default()),
        "timeline" => json_response(200, &w.timeline()),
        _ => json_response(404, &json!({"error": "unknown control path"})),
    }
}

/// Where the request carried its API key, Google-style.
fn find_key(incoming: &Incoming_) -> (Option<String>, &'static str) {
    if let Some(auth) = incoming.headers.get("authorization") {
        let key = auth.strip_prefix("Bearer ").unwrap_or(auth).trim().to_string();
        return (Some(key), "authorization");
    }
    if let Some(key) = incoming.headers.get("x-goog-api-key") {
        return (Some(key.clone()), "x-goog-api-key");
    }
    let from_query = incoming.query.split('&').find_map(|p| p.strip_prefix("key=")).map(str::to_string);
    match from_query {
        Some(key) => (Some(key), "query"),
        None => (None, "none"),
    }
}

/// The endpoint a request is for.
enum Call {
    Chat,
    CompatModels,
    CompatModel(String),
    CompatEmbeddings,
    CompatImages,
    NativeModels,
    NativeModel(String),
    Native { model: String, method: String, version: String },
    Res(ResCall),
    Unknown,
}

/// Calls on stateful resources (`rest`: the path after the version).
fn classify_resource(method: &str, rest: &str, query: &str) -> Option<ResCall> {
    if rest == "upload-files" {
        let upload_id = query.split('&').find_map(|p| p.strip_prefix("upload_id="));
        if upload_id.is_none() && query.split('&').any(|p| p == "uploadType=multipart") {
            return Some(ResCall::MultipartUpload);
        }
        return Some(upload_id.map_or(ResCall::StartUpload, |id| ResCall::Upload(id.to_string())));
    }
    let call = match (method, rest.split_once('/')) {
        ("POST", None) if rest == "interactions" => ResCall::CreateInteraction,
        ("POST", None) if rest == "cachedContents" => ResCall::CreateCache,
        ("GET", None) if matches!(rest, "files" | "cachedContents" | "batches") => ResCall::List(rest.to_string()),
        ("POST", Some(("interactions", id))) => ResCall::CancelInteraction(id.strip_suffix("/cancel")?.to_string()),
        ("GET" | "DELETE", Some(("interactions", id))) => ResCall::Interaction(id.to_string()),
        ("GET", Some(("files", id))) if id.ends_with(":download") => {
            ResCall::Download(id.trim_end_matches(":download").to_string())
        }
        ("GET" | "DELETE", Some(("files", id))) => ResCall::File(id.to_string()),
        ("GET" | "PATCH" | "DELETE", Some(("cachedContents", id))) => ResCall::Cache(id.to_string()),
        ("POST", Some(("batches", id))) => ResCall::CancelBatch(id.strip_suffix(":cancel")?.to_string()),
        ("GET" | "DELETE", Some(("batches", id))) => ResCall::Batch(id.to_string()),
        _ => return None,
    };
    Some(call)
}

fn classify_path(method: &str, path: &str, query: &str) -> Call {
    if method == "POST" && (path == "/upload/v1beta/files" || path == "/upload/v1/files") {
        return classify_resource(method, "upload-files", query).map_or(Call::Unknown, Call::Res);
    }
    if let Some(rest) = path.strip_prefix("/v1beta/openai/") {
        return match (method, rest) {
            ("POST", "chat/completions") => Call::Chat,
            ("GET", "models") => Call::CompatModels,
            ("POST", "embeddings") => Call::CompatEmbeddings,
            ("POST", "images/generations") => Call::CompatImages,
            ("GET", r) => r.strip_prefix("models/").map_or(Call::Unknown, |m| Call::CompatModel(m.to_string())),
            _ => Call::Unknown,
        };
    }
    let (version, rest) = match (path.strip_prefix("/v1beta/"), path.strip_prefix("/v1/")) {
        (Some(rest), _) => ("v1beta", rest),
        (None, Some(rest)) => ("v1", rest),
        _ => return Call::Unknown,
    };
    if rest == "models" && method == "GET" {
        return Call::NativeModels;
    }
    let Some(name) = rest.strip_prefix("models/") else {
        return classify_resource(method, rest, query).map_or(Call::Unknown, Call::Res);
    };
    if let (Some((model, id)), "GET") = (name.split_once("/operations/"), method) {
        return Call::Res(ResCall::Operation { model: model.to_string(), id: id.to_string() });
    }
    match (method, name.split_once(':')) {
        ("POST", Some((model, "batchGenerateContent"))) => return Call::Res(ResCall::CreateBatch(model.to_string())),
        ("POST", Some((model, "predictLongRunning"))) => return Call::Res(ResCall::Predict(model.to_string())),
        _ => {}
    }
    match (method, name.split_once(':')) {
        ("GET", None) => Call::NativeModel(name.to_string()),
        ("POST", Some((model, m))) => {
            Call::Native { model: model.to_string(), method: m.to_string(), version: version.to_string() }
        }
        _ => Call::Unknown,
    }
}

async fn api(incoming: Incoming_, world: Shared) -> Response<Body> {
    let call = classify_path(&incoming.method, &incoming.path, &incoming.query);
    if let Call::Res(res) = &call {
        return resource(res, incoming, world).await;
    }
    let compat = incoming.path.starts_with("/v1beta/openai/");
    let body_json: Value = serde_json::from_slice(&incoming.body).unwrap_or(Value::Null);
    let model = match &call {
        Call::Native { model, .. } => Some(model.clone()),
        Call::Chat | Call::CompatEmbeddings | Call::CompatImages => body_model(&body_json),
        _ => None,
    };
    let counts = matches!(&call, Call::Chat)
        || matches!(&call, Call::Native { method, .. } if method.contains("enerateContent"));
    let refused = match &call {
        Call::Chat => requests::check_chat(&body_json),
        Call::Native { method, model, .. } if method.contains("enerateContent") => {
            requests::check_generate(&body_json, model)
        }
        _ => None,
    };
    let (key, key_via) = find_key(&incoming);

    let (verdict, latency_ms, knobs, label) = {
        let Ok(mut w) = world.lock() else { return json_response(500, &json!({"error": "poisoned"})) };
        // Google treats any Authorization header on the native API as an OAuth credential.
        let verdict = if !compat && key_via == "authorization" {
            Verdict::Error(google::unauthenticated())
        } else {
            let project = key.as_deref().and_then(|k| w.project_of(k)).unwrap_or_default();
            let refused = refused.or_else(|| match counts || matches!(&call, Call::Native { .. }) {
                true => w.resources.check_refs(&project, &body_json),
                false => None,
            });
            w.admit(key.as_deref(), model.as_deref(), counts, refused)
        };
        let label = match &key {
            Some(k) => w.label_of(k).map_or_else(|| format!("unknown:{k}"), |c| c.label.clone()),
            None => "none".to_string(),
        };
        let knobs = Knobs {
            chunks: w.config.stream_chunks,
            chunk_delay_ms: w.config.chunk_delay_ms,
            page_size: w.config.models_page_size,
        };
        (verdict, w.config.latency_ms, knobs, label)
    };

    let (response, status, delivery) = match verdict {
        Verdict::Error(e) => (error_response(compat, &e), e.status, Delivery::default()),
        Verdict::Ok(delivery) => {
            let (response, status) = answer(&call, &incoming, &body_json, model.as_deref(), &knobs, &delivery);
            (response, status, delivery)
        }
    };
    record(&world, &incoming, &label, key_via, model, status, key.as_deref());
    let wait = latency_ms + delivery.extra_latency_ms;
    if delivery.hang {
        tokio::time::sleep(Duration::from_secs(600)).await;
    } else if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    response
}

fn body_model(body: &Value) -> Option<String> {
    body.get("model").and_then(Value::as_str).map(|m| m.strip_prefix("models/").unwrap_or(m).to_string())
}

/// A call on a stateful resource: the key's project holds it or not ([`resources`]).
/// An upload session's bytes need no key (the upload URL is the credential, as at Google).
async fn resource(call: &ResCall, incoming: Incoming_, world: Shared) -> Response<Body> {
    let body_json: Value = serde_json::from_slice(&incoming.body).unwrap_or(Value::Null);
    let (key, key_via) = find_key(&incoming);
    let interactions =
        matches!(call, ResCall::CreateInteraction | ResCall::Interaction(_) | ResCall::CancelInteraction(_));
    let model = match call {
        ResCall::CreateInteraction | ResCall::CreateCache => body_model(&body_json),
        ResCall::CreateBatch(m) | ResCall::Predict(m) => Some(m.clone()),
        _ => None,
    };
    let mut asked = resources::Asked {
        method: &incoming.method,
        body: &body_json,
        headers: &incoming.headers,
        bytes: incoming.body.len(),
        raw: &incoming.body,
        query: &incoming.query,
        key_in_url: None,
    };
    let (reply, label, latency_ms, chunk_delay_ms) = {
        let Ok(mut w) = world.lock() else { return json_response(500, &json!({"error": "poisoned"})) };
        if w.config.upload_url_key {
            asked.key_in_url = key.as_deref();
        }
        let label = match &key {
            Some(k) => w.label_of(k).map_or_else(|| format!("unknown:{k}"), |c| c.label.clone()),
            None => "none".to_string(),
        };
        let reply = match call {
            ResCall::Upload(_) => {
                let project = String::new();
                let text = answers::text_for(w.config.stream_chunks);
                w.resources.answer(call, &asked, &project, &text)
            }
            _ => {
                let counts = matches!(call, ResCall::CreateInteraction);
                let project = key.as_deref().and_then(|k| w.project_of(k)).unwrap_or_default();
                let refused = match call {
                    ResCall::CreateInteraction => {
                        w.resources.check_refs(&project, &body_json).map(resources::interactions_style)
                    }
                    _ => None,
                };
                match w.admit(key.as_deref(), model.as_deref(), counts, refused) {
                    Verdict::Error(e) if interactions => resources::Reply::error(resources::interactions_style(e)),
                    Verdict::Error(e) => resources::Reply::error(e),
                    Verdict::Ok(_) => {
                        let text = answers::text_for(w.config.stream_chunks);
                        w.resources.answer(call, &asked, &project, &text)
                    }
                }
            }
        };
        (reply, label, w.config.latency_ms, w.config.chunk_delay_ms)
    };
    let (response, status) = match reply {
        resources::Reply::Bytes(bytes) => (full(200, "application/octet-stream", bytes), 200),
        resources::Reply::Stream(frames) => (
            stream_body(frames.into_iter().map(Bytes::from).collect(), chunk_delay_ms, false, "text/event-stream"),
            200,
        ),
        resources::Reply::Json { status, headers, body } => {
            let mut response = match body {
                Some(body) => json_response(status, &body),
                None => full(status, "text/plain; charset=utf-8", ""),
            };
            for (name, value) in headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(name, value);
                }
            }
            (response, status)
        }
    };
    record(&world, &incoming, &label, key_via, model, status, key.as_deref());
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    response
}

fn record(
    world: &Shared,
    incoming: &Incoming_,
    label: &str,
    key_via: &str,
    model: Option<String>,
    status: u16,
    key: Option<&str>,
) {
    let Ok(mut w) = world.lock() else { return };
    // Known keys are logged by label only; anything else that arrived as a credential is kept
    // verbatim, so a test can see a client token that should never have reached Google.
    let hide = |text: &str| match key {
        Some(k) if w.label_of(k).is_some() => text.replace(k, &format!("<key:{label}>")),
        _ => text.to_string(),
    };
    let headers = incoming.headers.iter().map(|(k, v)| (k.clone(), hide(v))).collect();
    let body: String = String::from_utf8_lossy(&incoming.body).chars().take(65_536).collect();
    let entry = LogEntry {
        t: world::now_s(),
        method: incoming.method.clone(),
        path: incoming.path.clone(),
        query: hide(&incoming.query),
        key: label.to_string(),
        key_via: key_via.to_string(),
        model,
        status,
        headers,
        body,
    };
    w.log.push(entry);
}

fn error_response(compat: bool, error: &google::GoogleError) -> Response<Body> {
    if (300..400).contains(&error.status) {
        let mut response = full(error.status, "text/html", "");
        if let Ok(location) = "https://accounts.google.com/ServiceLogin".parse() {
            response.headers_mut().insert("location", location);
        }
        return response;
    }
    match &error.raw {
        Some(raw) if compat => full(error.status, "application/json; charset=UTF-8", format!("[{raw}]")),
        Some(raw) => full(error.status, "application/json; charset=UTF-8", raw.clone()),
        None => {
            let wrapped = if compat { json!([error.body]) } else { error.body.clone() };
            json_response(error.status, &wrapped)
        }
    }
}

/// Shape of successful answers.
struct Knobs {
    chunks: usize,
    chunk_delay_ms: u64,
    page_size: usize,
}

/// The successful answer (or a client error the simulator detects itself, like Google does).
fn answer(
    call: &Call,
    incoming: &Incoming_,
    body: &Value,
    model: Option<&str>,
    knobs: &Knobs,
    delivery: &Delivery,
) -> (Response<Body>, u16) {
    let (chunks, chunk_delay_ms) = (knobs.chunks, knobs.chunk_delay_ms);
    let catalog = answers::catalog();
    let known = |m: &str| catalog.iter().any(|c| c == m);
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    match call {
        Call::Chat | Call::CompatEmbeddings | Call::CompatImages if body.is_null() => {
            (error_response(true, &google::bad_request("Invalid JSON payload received.")), 400)
        }
        Call::Chat | Call::CompatEmbeddings | Call::CompatImages if !model.is_some_and(known) => {
            let m = model.unwrap_or("");
            (error_response(true, &google::not_found_model(m, "v1beta", "generateContent")), 404)
        }
        Call::Chat => {
            let model = model.unwrap_or_default();
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                (chat_stream(model, id, chunks, chunk_delay_ms, delivery), 200)
            } else if delivery.empty.is_some() {
                (json_response(200, &answers::chat_empty(model, id)), 200)
            } else {
                (json_response(200, &answers::chat_completion(model, id, chunks)), 200)
            }
        }
        Call::CompatModels => (json_response(200, &answers::compat_models()), 200),
        Call::CompatModel(m) if known(m) => (json_response(200, &answers::compat_model(m)), 200),
        Call::CompatModel(m) => (error_response(true, &google::not_found_model(m, "v1beta", "get")), 404),
        Call::CompatEmbeddings => {
            let input = body.get("input").cloned().unwrap_or(Value::Null);
            (json_response(200, &answers::compat_embeddings(model.unwrap_or_default(), &input)), 200)
        }
        Call::CompatImages => (json_response(200, &answers::compat_image()), 200),
        Call::NativeModels => {
            let param = |name: &str| {
                incoming
                    .query
                    .split('&')
                    .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')).map(str::to_string))
            };
            let size = param("pageSize").and_then(|s| s.parse().ok()).unwrap_or(knobs.page_size);
            (json_response(200, &answers::native_models_page(size, param("pageToken").as_deref())), 200)
        }
        Call::NativeModel(m) if known(m) => (json_response(200, &answers::native_model(m)), 200),
        Call::NativeModel(m) => (error_response(false, &google::not_found_model(m, "v1beta", "get")), 404),
        Call::Native { model, method, version } => {
            native(model, method, version, incoming, body, chunks, chunk_delay_ms, delivery, &known)
        }
        Call::Unknown | Call::Res(_) => {
            (error_response(incoming.path.starts_with("/v1beta/openai/"), &google::not_found_path()), 404)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn native(
    model: &str,
    method: &str,
    version: &str,
    incoming: &Incoming_,
    body: &Value,
    chunks: usize,
    chunk_delay_ms: u64,
    delivery: &Delivery,
    known: &dyn Fn(&str) -> bool,
) -> (Response<Body>, u16) {
    if !known(model) {
        return (error_response(false, &google::not_found_model(model, version, method)), 404);
    }
    if body.is_null() {
        return (error_response(false, &google::bad_request("Invalid JSON payload received.")), 400);
    }
    match method {
        "generateContent" => match &delivery.empty {
            Some(kind) => (json_response(200, &answers::native_empty(model, kind)), 200),
            None if agent::next_part(body, model).is_some() => {
                let part = agent::next_part(body, model).unwrap_or_default();
                (json_response(200, &answers::native_part(model, part)), 200)
            }
            None if delivery.function_call => (json_response(200, &answers::native_function_call(model)), 200),
            None => (json_response(200, &answers::native_generate(model, chunks)), 200),
        },
        "streamGenerateContent" => {
            let sse = incoming.query.split('&').any(|p| p == "alt=sse");
            match agent::next_part(body, model).filter(|_| delivery.empty.is_none()) {
                Some(part) => (agent_stream(model, part, sse), 200),
                None => (native_stream(model, chunks, chunk_delay_ms, sse, delivery), 200),
            }
        }
        "countTokens" if body.get("contents").is_some() && body.get("generateContentRequest").is_some() => {
            let refused = google::bad_request("Only one of contents and generateContentRequest may be set.");
            (error_response(false, &refused), 400)
        }
        "countTokens" => (json_response(200, &answers::count_tokens(body)), 200),
        "embedContent" => (json_response(200, &answers::native_embedding()), 200),
        "batchEmbedContents" => (json_response(200, &answers::native_batch_embeddings(body)), 200),
        _ => (error_response(false, &google::not_found_path()), 404),
    }
}

/// Streams `frames` with a delay between them; `truncate` ends the body with an error (the
/// connection is cut, like a dropped upstream stream).
fn stream_body(frames: Vec<Bytes>, delay_ms: u64, truncate: bool, content_type: &str) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BodyError>>(4);
    tokio::spawn(async move {
        for frame in frames {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            if tx.send(Ok(Frame::data(frame))).await.is_err() {
                return;
            }
        }
        if truncate {
            let _ = tx.send(Err("simulated truncation".into())).await;
        }
    });
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(body)
        .unwrap_or_else(|_| Response::new(BoxBody::default()))
}

fn stream_error_event(separator: &str) -> Bytes {
    let error = google::overloaded().body;
    Bytes::from(format!("data: {error}{separator}"))
}

fn chat_stream(model: &str, id: u64, chunks: usize, delay_ms: u64, delivery: &Delivery) -> Response<Body> {
    if delivery.empty.is_some() {
        // The role, then a stop with no content.
        let frames = [answers::chat_empty_chunk(model, id, false), answers::chat_empty_chunk(model, id, true)]
            .iter()
            .map(|c| Bytes::from(format!("data: {c}\n\n")))
            .chain([Bytes::from_static(b"data: [DONE]\n\n")])
            .collect();
        return stream_body(frames, delay_ms, false, "text/event-stream");
    }
    let cut = delivery.stream_error_after.or(delivery.stream_truncate_after).unwrap_or(usize::MAX);
    let mut frames: Vec<Bytes> = (0..chunks.min(cut))
        .map(|i| Bytes::from(format!("data: {}\n\n", answers::chat_chunk(model, id, i, i + 1 == chunks, chunks))))
        .collect();
    match (delivery.stream_error_after, delivery.stream_truncate_after) {
        (Some(_), _) => frames.push(stream_error_event("\n\n")),
        (None, Some(_)) => {}
        (None, None) => frames.push(Bytes::from_static(b"data: [DONE]\n\n")),
    }
    stream_body(frames, delay_ms, delivery.stream_truncate_after.is_some(), "text/event-stream")
}

/// The script's answer as a stream: one chunk with its part, its finish and its usage.
fn agent_stream(model: &str, part: Value, sse: bool) -> Response<Body> {
    let chunk = answers::native_part(model, part).to_string();
    let frame = if sse { format!("data: {chunk}\r\n\r\n") } else { format!("[{chunk}]") };
    let content_type = if sse { "text/event-stream" } else { "application/json; charset=UTF-8" };
    stream_body(vec![Bytes::from(frame)], 0, false, content_type)
}

fn native_stream(model: &str, chunks: usize, delay_ms: u64, sse: bool, delivery: &Delivery) -> Response<Body> {
    let cut = delivery.stream_error_after.or(delivery.stream_truncate_after).unwrap_or(usize::MAX);
    let bodies: Vec<String> = match &delivery.empty {
        Some(kind) => vec![answers::native_empty(model, kind).to_string()],
        None => {
            (0..chunks.min(cut)).map(|i| answers::native_chunk(model, i, i + 1 == chunks, chunks).to_string()).collect()
        }
    };
    let truncate = delivery.stream_truncate_after.is_some();
    if sse {
        let mut frames: Vec<Bytes> = bodies.iter().map(|b| Bytes::from(format!("data: {b}\r\n\r\n"))).collect();
        if delivery.stream_error_after.is_some() {
            frames.push(stream_error_event("\r\n\r\n"));
        }
        return stream_body(frames, delay_ms, truncate, "text/event-stream");
    }
    // Without alt=sse Google streams one JSON array.
    let mut frames = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        let lead = if i == 0 { "[" } else { ",\r\n" };
        frames.push(Bytes::from(format!("{lead}{b}")));
    }
    if !truncate {
        frames.push(Bytes::from_static(b"]"));
    }
    stream_body(frames, delay_ms, truncate, "application/json; charset=UTF-8")
}
