//! The client's request as the runtime hands it over (`web_sys::Request`), read only as far as
//! the request needs: its method, its path and query (the URL split once, never parsed into a
//! `Url`), a header by name, its body. `worker::Request` would read the request's `cf` object
//! on arrival and parse the URL again each time its query was asked for: costs every request
//! paid, for nothing the proxy uses.

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

    /// The body, read whole (none or unreadable: empty).
    pub(crate) async fn bytes(&self) -> Vec<u8> {
        let Ok(promise) = self.raw.array_buffer() else { return Vec::new() };
        match JsFuture::from(promise).await {
            Ok(buffer) => js_sys::Uint8Array::new(&buffer).to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// The body as the runtime's stream, to pass on unread (an upload's bytes).
    pub(crate) fn body(&self) -> Option<worker::wasm_bindgen::JsValue> {
        self.raw.body().map(|stream| stream.unchecked_into())
    }
}
