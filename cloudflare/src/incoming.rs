//! The client's request as the runtime hands it over (`web_sys::Request`), read only as far as
//! the request needs: its method, its path and query (the URL split once, never parsed into a
//! `Url`), a header by name, its body. `worker::Request` would read the request's `cf` object
//! on arrival and parse the URL again each time its query was asked for: costs every request
//! paid, for nothing the proxy uses.

use crate::chunks::Chunks;
use gemini_pool_core::ErrorReply;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Method};

pub(crate) struct Incoming {
    raw: web_sys::Request,
    url: String,
    /// Where the path starts in `url` (after the origin).
    path_at: usize,
    /// Where the path ends: at the `?` of a query, the `#` of a fragment, or the end.
    path_end: usize,
}

impl Incoming {
    pub(crate) fn new(raw: web_sys::Request) -> Self {
        let url = raw.url();
        // A request's URL is absolute (`https://host/path?query`): the path starts at the
        // first `/` after `://`.
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let path_at = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
        let path_end = url[path_at..].find(['?', '#']).map_or(url.len(), |i| path_at + i);
        Incoming { raw, url, path_at, path_end }
    }

    pub(crate) fn method(&self) -> Method {
        Method::from(self.raw.method())
    }

    /// The path as sent (percent-encoding kept), `/` at least.
    pub(crate) fn path(&self) -> &str {
        match &self.url[self.path_at..self.path_end] {
            "" => "/",
            path => path,
        }
    }

    /// The query without its `?`, if there is one.
    pub(crate) fn query(&self) -> Option<&str> {
        let rest = self.url[self.path_end..].strip_prefix('?')?;
        Some(rest.split_once('#').map_or(rest, |(query, _)| query))
    }

    /// `scheme://host[:port]`, as the client addressed the proxy.
    pub(crate) fn origin(&self) -> &str {
        &self.url[..self.path_at]
    }

    /// A header's value, if it is there.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.raw.headers().get(name).ok().flatten()
    }

    /// The body, read whole if it is at most `limit` bytes: one it announces larger
    /// (`Content-Length`) is refused before a byte is read, and one without a length is read
    /// against a running count and dropped the moment it passes the limit — an isolate's memory
    /// is shared by every request it serves. One that cannot be read is a 400.
    pub(crate) async fn bytes_within(&self, limit: usize) -> Result<Vec<u8>, ErrorReply> {
        let announced = self.header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(ErrorReply::body_too_large(limit));
        }
        let unreadable = ErrorReply::unreadable_body;
        if announced.is_some() {
            // The runtime frames the body by its length: it cannot run past it.
            let promise = self.raw.array_buffer().map_err(|_| unreadable())?;
            let buffer = JsFuture::from(promise).await.map_err(|_| unreadable())?;
            return Ok(js_sys::Uint8Array::new(&buffer).to_vec());
        }
        let Some(stream) = self.raw.body() else { return Ok(Vec::new()) };
        let mut chunks = Chunks::of(&stream);
        let mut body = Vec::new();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(|_| unreadable())?);
            if body.len() > limit {
                // Dropping the reader cancels the rest of the body.
                return Err(ErrorReply::body_too_large(limit));
            }
        }
        Ok(body)
    }

    /// The body as the runtime's stream, to pass on unread (an upload's bytes).
    pub(crate) fn body(&self) -> Option<worker::wasm_bindgen::JsValue> {
        self.raw.body().map(|stream| stream.unchecked_into())
    }
}
