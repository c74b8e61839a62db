//! Google's stateful resources, kept per project as Google keeps them: interactions, files
//! (made through the resumable upload protocol) and cached contents. A key of another project
//! gets Google's answers: 403 for a file or a cached content it does not hold, 404 for an
//! interaction. Shapes follow Google's docs and the google-genai SDK's own parsing.

use crate::google::{self, GoogleError};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A call on a resource.
pub enum ResCall {
    CreateInteraction,
    Interaction(String),
    CancelInteraction(String),
    StartUpload,
    /// `uploadType=multipart`: metadata and bytes in one `multipart/related` body.
    MultipartUpload,
    Upload(String),
    File(String),
    /// `files/{id}:download`: a generated file's bytes.
    Download(String),
    CreateCache,
    Cache(String),
    /// `GET files`, `GET cachedContents`, `GET batches`: the project's own.
    List(String),
    /// `models/{m}:batchGenerateContent`.
    CreateBatch(String),
    Batch(String),
    CancelBatch(String),
    /// `models/{m}:predictLongRunning`.
    Predict(String),
    Operation {
        model: String,
        id: String,
    },
}

/// What the simulator answers: a status, headers, and a JSON body (or none) — or a stream of
/// SSE frames.
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Option<Value>,
    },
    Stream(Vec<String>),
    /// A file's bytes.
    Bytes(Vec<u8>),
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply::Json { status, headers: Vec::new(), body: Some(body) }
    }

    pub fn error(e: GoogleError) -> Self {
        Reply::json(e.status, e.body)
    }
}

/// What a request asks of a resource.
pub struct Asked<'a> {
    pub method: &'a str,
    pub body: &'a Value,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    /// The body's length (upload bytes).
    pub bytes: usize,
    /// The body as sent (a multipart upload's).
    pub raw: &'a [u8],
    /// The query string.
    pub query: &'a str,
    /// The key to write into an upload URL (the simulator's `upload_url_key`).
    pub key_in_url: Option<&'a str>,
}

struct Upload {
    project: String,
    size: u64,
    received: u64,
    file: Value,
}

struct Held {
    project: String,
    value: Value,
}

#[derive(Default)]
pub struct Resources {
    files: HashMap<String, Held>,
    caches: HashMap<String, Held>,
    interactions: HashMap<String, Held>,
    batches: HashMap<String, Held>,
    operations: HashMap<String, Held>,
    uploads: HashMap<String, Upload>,
    next: u64,
}

/// Google's host, as its upload URLs and file URIs name it.
const GOOGLE: &str = "https://generativelanguage.googleapis.com";

fn now_text() -> String {
    "2026-12-03T12:00:00.000000Z".to_string()
}

/// An Interactions API error: a word for a code.
pub fn interaction_error(status: u16, code: &str, message: &str) -> GoogleError {
    GoogleError { status, body: json!({"error": {"code": code, "message": message}}), raw: None }
}

/// A `generateContent`-style error as the Interactions API words it.
pub fn interactions_style(e: GoogleError) -> GoogleError {
    let message = e.body["error"]["message"].as_str().unwrap_or_default().to_string();
    let status_word = e.body["error"]["status"].as_str().unwrap_or_default();
    let daily = e.body.to_string().contains("PerDay");
    let (status, code) = match (e.status, status_word) {
        (400, _) if message.contains("API key") => (401, "authentication"),
        (400, _) => (400, "invalid_request"),
        (401, _) => (401, "authentication"),
        (402, _) => (402, "payment_required"),
        (403, _) => (403, "permission_denied"),
        (404, _) => (404, "not_found"),
        (429, _) if daily => (429, "quota_exceeded"),
        (429, _) => (429, "rate_limit_exceeded"),
        (503, _) => (503, "service_unavailable"),
        (s, _) if s >= 500 => (s, "api_error"),
        (s, _) => (s, "invalid_request"),
    };
    interaction_error(status, code, &message)
}

impl Resources {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:06}x{}", self.next, self.next * 7919 % 1000)
    }

    /// Google's refusal of a generation body naming a file or a cached content `project`
    /// does not hold.
    pub fn check_refs(&self, project: &str, body: &Value) -> Option<GoogleError> {
        let cache = body.get("cachedContent").or_else(|| body.get("cached_content")).and_then(Value::as_str);
        if let Some(name) = cache {
            let id = name.strip_prefix("cachedContents/").unwrap_or(name);
            if self.caches.get(id).is_none_or(|c| c.project != project) {
                return Some(google::cache_denied());
            }
        }
        let mut files = Vec::new();
        file_ids(body, &mut files);
        files
            .into_iter()
            .find(|id| self.files.get(id).is_none_or(|f| f.project != project))
            .map(|id| google::file_denied(&id))
    }

    /// Answers a call on a resource by a key of `project` (empty for upload bytes, which carry
    /// no key); `text` is what a model says.
    pub fn answer(&mut self, call: &ResCall, asked: &Asked<'_>, project: &str, text: &str) -> Reply {
        let (method, body, headers, bytes) = (asked.method, asked.body, asked.headers, asked.bytes);
        match call {
            ResCall::StartUpload => self.start_upload(project, body, headers, asked.key_in_url),
            ResCall::MultipartUpload => self.multipart(project, headers, asked.raw),
            ResCall::Upload(id) => self.upload(id, headers, bytes),
            ResCall::File(id) => held(&mut self.files, id, method, project, || google::file_denied(id)),
            ResCall::Download(id) => match self.files.get(id).filter(|f| f.project == project) {
                Some(f) if f.value["source"] == "GENERATED" => {
                    Reply::Bytes(format!("generated bytes of {id}").into_bytes())
                }
                Some(_) => Reply::error(google::bad_request("Only generated files can be downloaded.")),
                None => Reply::error(google::file_denied(id)),
            },
            ResCall::CreateCache => self.create_cache(project, body),
            ResCall::Cache(id) => held(&mut self.caches, id, method, project, google::cache_denied),
            ResCall::CreateInteraction => self.create_interaction(project, body, text),
            ResCall::Interaction(id) => self.interaction(id, method, project, asked.query, text),
            ResCall::CancelInteraction(id) => self.cancel(id, project),
            ResCall::List(collection) => self.list(collection, project),
            ResCall::CreateBatch(model) => self.create_batch(model, project, body),
            ResCall::Batch(id) => self.batch(id, method, project, None),
            ResCall::CancelBatch(id) => self.batch(id, method, project, Some("BATCH_STATE_CANCELLED")),
            ResCall::Predict(model) => self.predict(model, project),
            ResCall::Operation { model, id } => self.operation(model, id, project),
        }
    }

    /// One project's resources of a collection (one page: the tests stay under Google's 100).
    fn list(&self, collection: &str, project: &str) -> Reply {
        let (map, field) = match collection {
            "files" => (&self.files, "files"),
            "cachedContents" => (&self.caches, "cachedContents"),
            _ => (&self.batches, "operations"),
        };
        let mut entries: Vec<&Held> = map.values().filter(|h| h.project == project).collect();
        entries.sort_by_key(|h| h.value["name"].as_str().unwrap_or_default().to_string());
        let values: Vec<Value> = entries.into_iter().map(|h| h.value.clone()).collect();
        if values.is_empty() {
            return Reply::json(200, json!({}));
        }
        Reply::json(200, json!({ field: values }))
    }

    fn create_batch(&mut self, model: &str, project: &str, body: &Value) -> Reply {
        let mut files = Vec::new();
        file_ids(body, &mut files);
        if let Some(input) = body["batch"]["inputConfig"]["fileName"].as_str() {
            files.push(input.trim_start_matches("files/").to_string());
        }
        if let Some(id) = files.into_iter().find(|id| self.files.get(id).is_none_or(|f| f.project != project)) {
            return Reply::error(google::file_denied(&id));
        }
        let id = self.id("b");
        let name = format!("batches/{id}");
        let value = json!({
            "name": name,
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "name": name, "model": format!("models/{model}"),
                "displayName": body["batch"]["displayName"].clone(),
                "createTime": now_text(), "updateTime": now_text(),
                "state": "BATCH_STATE_PENDING",
            },
        });
        // Google's answer repeats the batch's input: a file it names is not what the batch made.
        let mut value = value;
        if let Some(input) = body["batch"].get("inputConfig").or_else(|| body["batch"].get("input_config")) {
            value["metadata"]["inputConfig"] = input.clone();
        }
        self.batches.insert(id, Held { project: project.to_string(), value: value.clone() });
        Reply::json(200, value)
    }

    /// A batch: get (done by the time anyone asks), cancel, delete — in its own project only.
    fn batch(&mut self, id: &str, method: &str, project: &str, set_state: Option<&str>) -> Reply {
        let Some(held) = self.batches.get_mut(id).filter(|b| b.project == project) else {
            return Reply::error(google::not_found_entity());
        };
        if method == "DELETE" {
            self.batches.remove(id);
            return Reply::json(200, json!({}));
        }
        let state = match (set_state, held.value["metadata"]["state"].as_str()) {
            (Some(state), _) => state.to_string(),
            (None, Some("BATCH_STATE_PENDING") | None) => "BATCH_STATE_SUCCEEDED".to_string(),
            (None, Some(state)) => state.to_string(),
        };
        held.value["metadata"]["state"] = json!(state);
        if set_state.is_some() {
            return Reply::json(200, json!({}));
        }
        let done = state != "BATCH_STATE_PENDING" && state != "BATCH_STATE_RUNNING";
        held.value["done"] = json!(done);
        if state == "BATCH_STATE_SUCCEEDED" && held.value["metadata"]["output"].is_null() {
            // The results: a file Google generates in the batch's project.
            let results = format!("batch-{id}");
            held.value["metadata"]["output"] = json!({"responsesFile": format!("files/{results}")});
            let value = held.value.clone();
            self.generate_file(&results, project);
            return Reply::json(200, value);
        }
        Reply::json(200, held.value.clone())
    }

    /// A file Google generated in `project` (a batch's results, a video).
    fn generate_file(&mut self, id: &str, project: &str) {
        let value = json!({
            "name": format!("files/{id}"), "mimeType": "application/octet-stream",
            "createTime": now_text(), "updateTime": now_text(), "state": "ACTIVE", "source": "GENERATED",
            "uri": format!("{GOOGLE}/v1beta/files/{id}"),
            "downloadUri": format!("{GOOGLE}/v1beta/files/{id}:download?alt=media"),
        });
        self.files.entry(id.to_string()).or_insert(Held { project: project.to_string(), value });
    }

    fn predict(&mut self, model: &str, project: &str) -> Reply {
        let id = self.id("op");
        let value = json!({"name": format!("models/{model}/operations/{id}")});
        self.operations.insert(id, Held { project: project.to_string(), value: value.clone() });
        Reply::json(200, value)
    }

    /// A long-running operation: done with one generated video by the time anyone asks.
    fn operation(&mut self, model: &str, id: &str, project: &str) -> Reply {
        let Some(held) = self.operations.get(id).filter(|o| o.project == project) else {
            return Reply::error(google::not_found_entity());
        };
        let held_value = held.value.clone();
        let video = format!("{GOOGLE}/v1beta/files/{id}v:download?alt=media");
        self.generate_file(&format!("{id}v"), project);
        let mut value = held_value;
        value["done"] = json!(true);
        value["response"] = json!({
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": video}}]},
        });
        value["name"] = json!(format!("models/{model}/operations/{id}"));
        Reply::json(200, value)
    }

    fn start_upload(
        &mut self,
        project: &str,
        body: &Value,
        headers: &std::collections::BTreeMap<String, String>,
        key_in_url: Option<&str>,
    ) -> Reply {
        if headers.get("x-goog-upload-protocol").map(String::as_str) != Some("resumable")
            || headers.get("x-goog-upload-command").map(String::as_str) != Some("start")
        {
            return Reply::error(google::bad_request("Upload protocol not supported: start a resumable upload."));
        }
        let size = headers.get("x-goog-upload-header-content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let upload_id = self.id("AU");
        let meta = body.get("file").cloned().unwrap_or_else(|| json!({}));
        // A client may choose its file's id (lower case letters, digits and dashes, at most 40);
        // one its project holds already is a 409.
        let chosen = meta.get("name").and_then(Value::as_str).map(|n| n.trim_start_matches("files/").to_string());
        let file_id = match chosen {
            Some(id)
                if id.is_empty()
                    || id.len() > 40
                    || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                return Reply::error(google::bad_request(&format!("Invalid file name files/{id}.")));
            }
            Some(id) if self.files.get(&id).is_some_and(|f| f.project == project) => {
                return Reply::error(google::already_exists(&format!("files/{id}")));
            }
            Some(id) => id,
            None => self.id("f"),
        };
        let mime =
            headers.get("x-goog-upload-header-content-type").cloned().unwrap_or("application/octet-stream".into());
        let file = json!({
            "name": format!("files/{file_id}"),
            "displayName": meta.get("displayName").or_else(|| meta.get("display_name")).cloned().unwrap_or(Value::Null),
            "mimeType": mime,
            "sizeBytes": size.to_string(),
            "createTime": now_text(), "updateTime": now_text(),
            "expirationTime": "2026-12-05T12:00:00.000000Z",
            "sha256Hash": "ZmFrZQ==",
            "uri": format!("{GOOGLE}/v1beta/files/{file_id}"),
            "state": "ACTIVE",
            "source": "UPLOADED",
        });
        self.uploads.insert(upload_id.clone(), Upload { project: project.to_string(), size, received: 0, file });
        let url = match key_in_url {
            Some(key) => {
                format!("{GOOGLE}/upload/v1beta/files?key={key}&upload_id={upload_id}&upload_protocol=resumable")
            }
            None => format!("{GOOGLE}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"),
        };
        let headers = vec![
            ("x-goog-upload-url", url),
            ("x-goog-upload-status", "active".to_string()),
            ("x-goog-upload-chunk-granularity", "8388608".to_string()),
        ];
        Reply::Json { status: 200, headers, body: None }
    }

    /// A whole file in one `multipart/related` body: the JSON metadata, then the bytes.
    fn multipart(&mut self, project: &str, headers: &std::collections::BTreeMap<String, String>, raw: &[u8]) -> Reply {
        let content_type = headers.get("content-type").cloned().unwrap_or_default();
        let Some(boundary) = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"').to_string()) else {
            return Reply::error(google::bad_request("Multipart upload needs a multipart/related body."));
        };
        let delimiter = format!("--{boundary}");
        let text = String::from_utf8_lossy(raw);
        let parts: Vec<&str> = text.split(delimiter.as_str()).filter(|p| p.contains("\r\n\r\n")).collect();
        let [meta, data, ..] = parts[..] else {
            return Reply::error(google::bad_request("Multipart upload needs metadata and media parts."));
        };
        let body = |part: &str| part.split_once("\r\n\r\n").map(|(_, b)| b.trim_end_matches("\r\n").to_string());
        let meta: Value = body(meta).and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
        let data = body(data).unwrap_or_default();
        let mut upload_headers = headers.clone();
        upload_headers.insert("x-goog-upload-protocol".into(), "resumable".into());
        upload_headers.insert("x-goog-upload-command".into(), "start".into());
        upload_headers.insert("x-goog-upload-header-content-length".into(), data.len().to_string());
        let started = self.start_upload(project, &meta, &upload_headers, None);
        let Reply::Json { headers: started, .. } = started else { return started };
        let url = started.iter().find(|(n, _)| *n == "x-goog-upload-url").map(|(_, u)| u.clone()).unwrap_or_default();
        let id = url.split("upload_id=").nth(1).and_then(|r| r.split('&').next()).unwrap_or_default().to_string();
        let mut finish = std::collections::BTreeMap::new();
        finish.insert("x-goog-upload-command".to_string(), "upload, finalize".to_string());
        match self.upload(&id, &finish, data.len()) {
            Reply::Json { status, body, .. } => Reply::Json { status, headers: Vec::new(), body },
            other => other,
        }
    }

    fn upload(&mut self, id: &str, headers: &std::collections::BTreeMap<String, String>, bytes: usize) -> Reply {
        let Some(upload) = self.uploads.get_mut(id) else {
            return Reply::Json { status: 404, headers: Vec::new(), body: None };
        };
        let command = headers.get("x-goog-upload-command").cloned().unwrap_or_default();
        let offset: u64 = headers.get("x-goog-upload-offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        if offset != upload.received {
            return Reply::error(google::bad_request("Upload offset does not match the bytes received."));
        }
        upload.received += bytes as u64;
        if !command.contains("finalize") {
            return Reply::Json { status: 200, headers: vec![("x-goog-upload-status", "active".into())], body: None };
        }
        let Some(upload) = self.uploads.remove(id) else { return Reply::json(404, json!({})) };
        if upload.received != upload.size {
            return Reply::error(google::bad_request("The upload's size does not match the size announced."));
        }
        let file_id = upload.file["name"].as_str().unwrap_or_default().trim_start_matches("files/").to_string();
        let file = upload.file.clone();
        self.files.insert(file_id, Held { project: upload.project, value: file.clone() });
        Reply::Json {
            status: 200,
            headers: vec![("x-goog-upload-status", "final".into())],
            body: Some(json!({"file": file})),
        }
    }

    fn create_cache(&mut self, project: &str, body: &Value) -> Reply {
        let mut files = Vec::new();
        file_ids(body, &mut files);
        if let Some(id) = files.into_iter().find(|id| self.files.get(id).is_none_or(|f| f.project != project)) {
            return Reply::error(google::file_denied(&id));
        }
        let id = self.id("c");
        let value = json!({
            "name": format!("cachedContents/{id}"),
            "model": body.get("model").cloned().unwrap_or(Value::Null),
            "displayName": body.get("displayName").cloned().unwrap_or(Value::Null),
            "createTime": now_text(), "updateTime": now_text(),
            "expireTime": "2026-12-03T13:00:00.000000Z",
            "usageMetadata": {"totalTokenCount": 4096},
        });
        self.caches.insert(id, Held { project: project.to_string(), value: value.clone() });
        Reply::json(200, value)
    }

    fn create_interaction(&mut self, project: &str, body: &Value, text: &str) -> Reply {
        if let Some(previous) = body.get("previous_interaction_id").and_then(Value::as_str) {
            if self.interactions.get(previous).is_none_or(|i| i.project != project) {
                return Reply::error(interaction_error(
                    404,
                    "not_found",
                    &format!("Interaction {previous} not found."),
                ));
            }
        }
        let id = self.id("v1_i");
        let background = body.get("background").and_then(Value::as_bool) == Some(true);
        let status = if background { "in_progress" } else { "completed" };
        let mut value = json!({
            "id": id, "status": status,
            "model": body.get("model").cloned().unwrap_or(Value::Null),
            "created": now_text(), "updated": now_text(),
            "steps": [{"type": "model_output", "content": [{"type": "text", "text": text}]}],
            "usage": {"total_input_tokens": 8, "total_output_tokens": 12, "total_tokens": 20},
        });
        if let Some(previous) = body.get("previous_interaction_id") {
            value["previous_interaction_id"] = previous.clone();
        }
        self.interactions.insert(id.clone(), Held { project: project.to_string(), value: value.clone() });
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            return Reply::Stream(stream_events(&value, text));
        }
        if background {
            value["steps"] = json!([]);
        }
        Reply::json(200, value)
    }

    fn interaction(&mut self, id: &str, method: &str, project: &str, query: &str, text: &str) -> Reply {
        let Some(held) = self.interactions.get_mut(id).filter(|i| i.project == project) else {
            return Reply::error(interaction_error(404, "not_found", &format!("Interaction {id} not found.")));
        };
        if method == "DELETE" {
            self.interactions.remove(id);
            return Reply::json(200, json!({}));
        }
        // A background interaction is done by the time anyone asks.
        if held.value["status"] == "in_progress" {
            held.value["status"] = json!("completed");
        }
        // `stream=true`: its events again, after `last_event_id` if given (a resumed stream).
        let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='));
        if param("stream") == Some("true") {
            let events = stream_events(&held.value, text);
            let after = param("last_event_id").map(|last| format!("\"event_id\":\"{last}\""));
            let skip = after.and_then(|a| events.iter().position(|e| e.contains(&a)).map(|i| i + 1)).unwrap_or(0);
            return Reply::Stream(events.into_iter().skip(skip).collect());
        }
        Reply::json(200, held.value.clone())
    }

    fn cancel(&mut self, id: &str, project: &str) -> Reply {
        let Some(held) = self.interactions.get_mut(id).filter(|i| i.project == project) else {
            return Reply::error(interaction_error(404, "not_found", &format!("Interaction {id} not found.")));
        };
        held.value["status"] = json!("cancelled");
        Reply::json(200, held.value.clone())
    }
}

/// A file or a cached content: get, patch (echoes), delete — in its own project only.
fn held(
    map: &mut HashMap<String, Held>,
    id: &str,
    method: &str,
    project: &str,
    denied: impl FnOnce() -> GoogleError,
) -> Reply {
    if map.get(id).is_none_or(|h| h.project != project) {
        return Reply::error(denied());
    }
    match method {
        "DELETE" => {
            map.remove(id);
            Reply::json(200, json!({}))
        }
        _ => Reply::json(200, map.get(id).map(|h| h.value.clone()).unwrap_or_default()),
    }
}

/// The ids of the files a body names (`fileUri` / `file_uri`, anywhere).
fn file_ids(value: &Value, ids: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                if let (true, Some(uri)) = (matches!(name.as_str(), "fileUri" | "file_uri" | "uri"), inner.as_str()) {
                    if let Some((_, id)) = uri.rsplit_once("files/") {
                        ids.push(id.to_string());
                    }
                }
                file_ids(inner, ids);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| file_ids(i, ids)),
        _ => {}
    }
}

/// A streamed interaction's events: created, one step with its deltas, completed.
fn stream_events(done: &Value, text: &str) -> Vec<String> {
    let mut started = done.clone();
    started["status"] = json!("in_progress");
    started["steps"] = json!([]);
    let mut events = vec![json!({"event_type": "interaction.created", "interaction": started, "event_id": "e1"})];
    events.push(json!({"event_type": "step.start", "index": 0, "step": {"type": "model_output", "content": []}, "event_id": "e2"}));
    for (i, word) in text.split_inclusive(' ').enumerate() {
        events.push(json!({"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": word}, "event_id": format!("e{}", i + 3)}));
    }
    events.push(json!({"event_type": "step.stop", "index": 0, "event_id": "e90"}));
    events.push(json!({"event_type": "interaction.completed", "interaction": done, "event_id": "e91"}));
    events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["event_type"].as_str().unwrap_or_default())).collect()
}
