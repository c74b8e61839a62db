//! Requests to Google through the static backend `gemini`: the pool key goes where Google's
//! endpoint expects it; only allow-listed client headers and query parameters go along.
//! The client's `Authorization`, `x-goog-api-key` and `?key=` never do.

use crate::ops::{add_elapsed, Ops};
use fastly::http::{HeaderValue, Method};
use fastly::{Request, Response};
use gemini_pool_core::auth::forwarded_query;
use gemini_pool_core::route::{Endpoint, Route};
use std::time::Instant;

/// The backend declared in `fastly.toml`.
pub const BACKEND: &str = "gemini";
pub const ORIGIN: &str = "https://generativelanguage.googleapis.com";

/// Client headers passed on; everything else (auth, cookies, forwarding headers, SDK
/// telemetry) stays here. (Each header is a host call: the list is kept short.)
const FORWARDED_HEADERS: [&str; 1] = ["content-type"];

/// One client request, ready to be sent with any key.
pub struct Outbound {
    method: Method,
    url: String,
    native: bool,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
}

/// What came back from one attempt.
pub enum Answer {
    Response(Box<Response>),
    /// No HTTP answer: connection failure (`timeout: false`) or timeout.
    Failed {
        timeout: bool,
        detail: String,
    },
}

impl Outbound {
    pub fn new(client: &Request, route: &Route, path: &str, body: Vec<u8>) -> Self {
        let query = forwarded_query(client.get_query_str(), route.forwarded_query_params());
        let url = match query {
            Some(q) => format!("{ORIGIN}{path}?{q}"),
            None => format!("{ORIGIN}{path}"),
        };
        let headers = FORWARDED_HEADERS
            .iter()
            .filter_map(|name| client.get_header(*name).map(|value| (*name, value.clone())))
            .collect();
        let native = !matches!(
            route.endpoint,
            Endpoint::ChatCompletions
                | Endpoint::ListModels
                | Endpoint::GetModel(_)
                | Endpoint::Embeddings
                | Endpoint::ImageGenerations
        );
        Outbound { method: client.get_method().clone(), url, native, headers, body }
    }

    /// Sends with `key`; returns when the response headers arrive (the body streams later).
    pub fn send(&self, key: &str, ops: &Ops) -> Answer {
        let mut request = Request::new(self.method.clone(), &self.url).with_pass(true);
        for (name, value) in &self.headers {
            request.set_header(*name, value.clone());
        }
        if self.native {
            request.set_header("x-goog-api-key", key);
        } else {
            request.set_header("authorization", format!("Bearer {key}"));
        }
        if self.method == Method::POST {
            if request.get_header("content-type").is_none() {
                request.set_header("content-type", "application/json");
            }
            request.set_body(self.body.as_slice());
        }
        let started = Instant::now();
        let result = request.send(BACKEND);
        add_elapsed(&ops.upstream_ms, started);
        match result {
            Ok(response) => Answer::Response(Box::new(response)),
            Err(e) => {
                let cause = format!("{:?}", e.root_cause());
                let timeout = cause.contains("Timeout");
                Answer::Failed { timeout, detail: cause }
            }
        }
    }
}
