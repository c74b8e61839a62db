//! Successful answers in Google's shapes: the OpenAI-compatible endpoint's chat completions
//! (and chunks), models, embeddings and images; the native API's GenerateContentResponse
//! (and stream chunks), countTokens, embeddings and the paged model list.

use serde_json::{json, Value};

pub const REPLY_WORDS: [&str; 8] = ["Hello", " from", " the", " Gemini", " simulator", ",", " friend", "."];

/// The catalog: real model ids plus generated ones, so the native list spans pages.
pub fn catalog() -> Vec<String> {
    let mut models: Vec<String> = [
        "gemini-3.1-pro-preview",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
        "gemini-3.6-flash",
        "gemini-3-flash-preview",
        "gemini-embedding-001",
        // Retired for new projects (older ones are still served and list it).
        "gemini-2.5-flash",
        // Shut down in 2026; kept for the test of the OpenAI-compatible images route, which
        // serves Imagen models only.
        "imagen-3.0-generate-002",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    models.extend((1..=51).map(|i| format!("gemini-sim-{i:03}")));
    models
}

pub fn text_for(chunks: usize) -> String {
    (0..chunks).map(|i| REPLY_WORDS[i % REPLY_WORDS.len()]).collect()
}

pub fn chat_completion(model: &str, id: u64, chunks: usize) -> Value {
    json!({
        "id": format!("chatcmpl-sim-{id}"), "object": "chat.completion", "created": 1_764_000_000u64, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text_for(chunks)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": chunks, "total_tokens": 8 + chunks}
    })
}

pub fn chat_chunk(model: &str, id: u64, index: usize, last: bool, chunks: usize) -> Value {
    let mut delta = json!({"content": REPLY_WORDS[index % REPLY_WORDS.len()]});
    if index == 0 {
        delta["role"] = json!("assistant");
    }
    let mut chunk = json!({
        "id": format!("chatcmpl-sim-{id}"), "object": "chat.completion.chunk", "created": 1_764_000_000u64, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": if last { json!("stop") } else { Value::Null }}]
    });
    if last {
        chunk["usage"] = json!({"prompt_tokens": 8, "completion_tokens": chunks, "total_tokens": 8 + chunks});
    }
    chunk
}

pub fn compat_model(id: &str) -> Value {
    json!({"id": format!("models/{id}"), "object": "model", "created": 0, "owned_by": "google"})
}

pub fn compat_models() -> Value {
    json!({"object": "list", "data": catalog().iter().map(|m| compat_model(m)).collect::<Vec<_>>()})
}

fn vector(seed: usize) -> Vec<f64> {
    (0..8).map(|i| ((seed * 31 + i * 7) % 17) as f64 / 17.0 - 0.5).collect()
}

/// One embedding per input (a string or an array of them).
pub fn compat_embeddings(model: &str, input: &Value) -> Value {
    let count = input.as_array().map_or(1, Vec::len);
    let data: Vec<Value> =
        (0..count).map(|i| json!({"object": "embedding", "index": i, "embedding": vector(i)})).collect();
    json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 4 * count, "total_tokens": 4 * count}})
}

pub fn compat_image() -> Value {
    // A 1×1 transparent PNG.
    json!({"created": 1_764_000_000u64, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="}]})
}

pub fn native_chunk(model: &str, index: usize, last: bool, chunks: usize) -> Value {
    let mut candidate =
        json!({"content": {"parts": [{"text": REPLY_WORDS[index % REPLY_WORDS.len()]}], "role": "model"}, "index": 0});
    let mut chunk = json!({"candidates": [], "modelVersion": model, "responseId": "sim-response"});
    // Every chunk counts the prompt; the last one the answer too.
    chunk["usageMetadata"] = json!({"promptTokenCount": 8, "totalTokenCount": 8});
    if last {
        candidate["finishReason"] = json!("STOP");
        chunk["usageMetadata"] =
            json!({"promptTokenCount": 8, "candidatesTokenCount": chunks, "totalTokenCount": 8 + chunks});
    }
    chunk["candidates"] = json!([candidate]);
    chunk
}

pub fn native_generate(model: &str, chunks: usize) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": text_for(chunks)}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": chunks, "totalTokenCount": 8 + chunks},
        "modelVersion": model, "responseId": "sim-response"
    })
}

/// A whole answer of one part (the agent script's call or text).
pub fn native_part(model: &str, part: Value) -> Value {
    json!({
        "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 6, "totalTokenCount": 46},
        "modelVersion": model, "responseId": "sim-agent"
    })
}

/// A function call whose arguments name the model (`{"model": "gemini-…"}`): what the model
/// wrote, which no proxy may rewrite.
pub fn native_function_call(model: &str) -> Value {
    let mut part = json!({"functionCall": {"name": "pick_model", "args": {"model": model}}});
    if crate::agent::signs(model) {
        part["thoughtSignature"] = json!(crate::agent::SIGNATURE);
    }
    json!({
        "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
        "modelVersion": model, "responseId": "sim-call"
    })
}

/// A 200 with nothing for the client: no parts (`empty`), only a thought (`thoughts_only`), or
/// a call the model could not form (`malformed_call`: Google's candidate then has no content,
/// only the finish reason and a `finishMessage`).
pub fn native_empty(model: &str, kind: &str) -> Value {
    if kind == "malformed_call" {
        return json!({
            "candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
                            "finishMessage": "Malformed function call: print(default_api.Write(file_path='a'"}],
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
            "modelVersion": model, "responseId": "sim-malformed"
        });
    }
    let content = match kind {
        "thoughts_only" => json!({"parts": [{"text": "Thinking about it.", "thought": true}], "role": "model"}),
        _ => json!({"role": "model"}),
    };
    json!({
        "candidates": [{"content": content, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": model, "responseId": "sim-empty"
    })
}

/// The OpenAI-compatible endpoint's empty answer: a stop with no content.
pub fn chat_empty(model: &str, id: u64) -> Value {
    json!({
        "id": format!("chatcmpl-sim-{id}"), "object": "chat.completion", "created": 1_764_000_000u64, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 0, "total_tokens": 8}
    })
}

/// A streamed chunk of the empty answer: the role first, then a stop with no content.
pub fn chat_empty_chunk(model: &str, id: u64, last: bool) -> Value {
    let (delta, finish) = if last { (json!({}), json!("stop")) } else { (json!({"role": "assistant"}), Value::Null) };
    json!({
        "id": format!("chatcmpl-sim-{id}"), "object": "chat.completion.chunk", "created": 1_764_000_000u64, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

pub fn native_model(id: &str) -> Value {
    let embedding = id.contains("embedding");
    let methods = if embedding {
        json!(["embedContent", "batchEmbedContents", "countTokens"])
    } else {
        json!(["generateContent", "streamGenerateContent", "countTokens"])
    };
    json!({"name": format!("models/{id}"), "version": "001", "displayName": id, "description": "Simulated model",
           "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536, "supportedGenerationMethods": methods})
}

/// One page of `models`, `pageToken` being the index of the first entry.
pub fn native_models_page(page_size: usize, page_token: Option<&str>) -> Value {
    let all = catalog();
    let start: usize = page_token.and_then(|t| t.parse().ok()).unwrap_or(0).min(all.len());
    let end = (start + page_size.clamp(1, 1000)).min(all.len());
    let mut page = json!({"models": all[start..end].iter().map(|m| native_model(m)).collect::<Vec<_>>()});
    if end < all.len() {
        page["nextPageToken"] = json!(end.to_string());
    }
    page
}

pub fn native_embedding() -> Value {
    json!({"embedding": {"values": vector(0)}})
}

pub fn native_batch_embeddings(body: &Value) -> Value {
    let count = body.get("requests").and_then(Value::as_array).map_or(1, Vec::len);
    json!({"embeddings": (0..count).map(|i| json!({"values": vector(i)})).collect::<Vec<_>>()})
}

/// A crude token count: words of every text part.
pub fn count_tokens(body: &Value) -> Value {
    fn words(v: &Value) -> usize {
        match v {
            Value::String(s) => s.split_whitespace().count(),
            Value::Array(items) => items.iter().map(words).sum(),
            Value::Object(map) => map.iter().map(|(k, v)| if k == "text" || k != "role" { words(v) } else { 0 }).sum(),
            _ => 0,
        }
    }
    let contents = body.get("contents").or_else(|| body.pointer("/generateContentRequest/contents"));
    json!({"totalTokens": words(contents.unwrap_or(&Value::Null)).max(1)})
}
