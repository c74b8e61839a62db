//! Requests to Google from Workers: the pool key goes where Google's endpoint expects it;
//! only `Content-Type` of the client's headers goes along; no answer within the first-byte
//! timeout is a timeout. Answers come back as the core's [`Answer`], an error's body read to
//! [`ERROR_BODY_LIMIT`].

use crate::chunks::Chunks;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use gemini_pool_core::{upload_session, Answer, Peek, Peeker, Reading, Spot, ERROR_BODY_LIMIT, SPOT_LIMIT};
use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, AbortController, Delay, Headers, Method, Response, ResponseBody};

/// A request's body: read (and sent again on a retry), or an upload's bytes streaming through
/// from the client (sent once).
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    Stream(RefCell<Option<worker::wasm_bindgen::JsValue>>),
}

impl Payload {
    /// The bytes of a body read whole (a streamed one: none).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(body) => body,
            Payload::Stream(_) => &[],
        }
    }
}

/// One request for Google, ready to be sent with any key.
pub(crate) struct Upstream {
    pub(crate) url: String,
    pub(crate) method: Method,
    /// The client's headers that go along (`content-type`; Google's upload protocol's).
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Payload,
    /// The key goes in `x-goog-api-key` (Google's native API) rather than `authorization`.
    pub(crate) native: bool,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    pub(crate) first_byte_timeout_ms: u64,
    /// What to read of a success before passing it on (the core's rule for the route).
    pub(crate) reading: Reading,
}

impl Upstream {
    /// Sends the request with `key`: the answer for the core, and a success's response.
    pub(crate) async fn answer(&self, key: &str) -> (Answer, Option<Response>) {
        match self.send(key).await {
            Ok(response) if (200..300).contains(&response.status_code()) => self.served(response).await,
            Ok(response) => {
                let status = response.status_code();
                (Answer::Error { status, body: error_body(response).await }, None)
            }
            Err(NoAnswer { timeout, detail }) => (Answer::None { timeout, detail }, None),
        }
    }

    /// A success, read as the core's [`Reading`] says (as on Fastly: `src/upstream.rs`); the
    /// bytes read go on first, then the rest as it streams in.
    async fn served(&self, mut response: Response) -> (Answer, Option<Response>) {
        let head = match &self.reading {
            Reading::Nothing => return (Answer::Served, Some(response)),
            Reading::UploadUrl => {
                let url = response.headers().get("x-goog-upload-url").ok().flatten();
                let made = url.and_then(|u| upload_session(&u));
                return (made.map_or(Answer::Served, Answer::Made), Some(response));
            }
            Reading::Page => {
                let body = response.bytes().await.unwrap_or_default();
                return (Answer::Page(body.into_iter().take(SPOT_LIMIT).collect()), None);
            }
            Reading::Peek(stream) => {
                let mut peeker = Peeker::new(*stream);
                let decide = |head: &[u8], ended| match peeker.peek(head, ended) {
                    Peek::More => None,
                    seen => Some(seen),
                };
                read_head(response, decide).await.map(|(seen, response)| match seen {
                    Some(Peek::Empty) => (Answer::Empty, response),
                    _ => (Answer::Served, response),
                })
            }
            Reading::Spot(spotter) => {
                let decide = |head: &[u8], ended| match spotter.spot(head, ended) {
                    Spot::More => None,
                    spot => Some(spot),
                };
                read_head(response, decide).await.map(|(spot, response)| match spot {
                    Some(Spot::Found(resource)) => (Answer::Made(resource), response),
                    _ => (Answer::Served, response),
                })
            }
        };
        match head {
            Ok((answer, response)) => (answer, Some(response)),
            Err(e) => (Answer::None { timeout: false, detail: e.to_string() }, None),
        }
    }

    /// Sends the request with `key`; gives up when Google has not answered (headers) within
    /// `first_byte_timeout_ms`. A redirect comes back as it is (Google does not redirect its
    /// API; following one would send the key elsewhere): the core calls it upstream trouble.
    async fn send(&self, key: &str) -> std::result::Result<Response, NoAnswer> {
        let failed = |e: worker::Error| NoAnswer { timeout: false, detail: e.to_string() };
        let headers = Headers::new();
        if self.native {
            headers.set("x-goog-api-key", key).map_err(failed)?;
        } else {
            headers.set("authorization", &format!("Bearer {key}")).map_err(failed)?;
        }
        for (name, value) in &self.headers {
            headers.set(name, value).map_err(failed)?;
        }
        let has_body = matches!(self.method, Method::Post | Method::Patch);
        if has_body && !self.headers.iter().any(|(name, _)| *name == "content-type") {
            headers.set("content-type", "application/json").map_err(failed)?;
        }
        // The runtime's own init, built directly (`worker::RequestInit` would be converted
        // into one, with a `cf` object each time).
        let init = web_sys::RequestInit::new();
        init.set_method(self.method.as_ref());
        init.set_headers(&headers.0);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        match &self.body {
            Payload::Bytes(body) if has_body => init.set_body(&js_sys::Uint8Array::from(body.as_slice())),
            Payload::Bytes(_) => {}
            Payload::Stream(body) => match body.borrow_mut().take() {
                Some(stream) => init.set_body(&stream),
                None => return Err(NoAnswer { timeout: false, detail: "the upload was sent already".into() }),
            },
        }
        let controller = AbortController::default();
        init.set_signal(Some(&controller.signal()));
        let fetch = pin!(fetch_url(&self.url, &init));
        let timer = pin!(Delay::from(Duration::from_millis(self.first_byte_timeout_ms)));
        match select(fetch, timer).await {
            Either::Left((answer, _)) => answer.map(answered).map_err(failed),
            Either::Right(_) => {
                controller.abort();
                let detail = format!("no answer within {} ms", self.first_byte_timeout_ms);
                Err(NoAnswer { timeout: true, detail })
            }
        }
    }
}

/// `fetch(url, init)`, straight from the URL: a `worker::Request` would first be built to be
/// sent, and building one reads the request's `cf` object and parses its URL again, for
/// every attempt.
async fn fetch_url(url: &str, init: &web_sys::RequestInit) -> worker::Result<web_sys::Response> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer = JsFuture::from(global.fetch_with_str_and_init(url, init)).await?;
    Ok(answer.dyn_into()?)
}

/// Google's answer as a `worker::Response`: its status, headers and body (`Response::from`
/// would also read its `cf` object and its WebSocket, which an answer from Google never has).
fn answered(raw: web_sys::Response) -> Response {
    let builder = Response::builder().with_status(raw.status()).with_headers(Headers(raw.headers()));
    match raw.body() {
        Some(stream) => builder.stream(stream),
        None => builder.empty(),
    }
}

/// Reads the head of a response's body until `decide` decides (or the body ends), then puts
/// the body back together: the bytes read, then the rest as it streams in.
async fn read_head<T>(
    response: Response,
    mut decide: impl FnMut(&[u8], bool) -> Option<T>,
) -> worker::Result<(Option<T>, Response)> {
    let status = response.status_code();
    let headers = response.headers().clone();
    let _ = headers.delete("content-length");
    let mut rest = chunks_of(&response);
    let mut head = Vec::new();
    let (seen, ended) = loop {
        // A read that fails ends the answer where it failed, as a pass-through would.
        let piece = rest.next().await.and_then(|p| p.ok());
        let ended = piece.is_none();
        head.extend_from_slice(&piece.unwrap_or_default());
        match decide(&head, ended) {
            None if !ended => continue,
            seen => break (seen, ended),
        }
    };
    let rebuilt = if ended {
        Response::from_bytes(head)?
    } else {
        let first = futures_util::stream::once(async move { Ok::<Vec<u8>, worker::Error>(head) });
        Response::from_stream(first.chain(rest.into_stream()))?
    };
    Ok((seen, rebuilt.with_status(status).with_headers(headers)))
}

/// The chunks of a fetched response's body (none if it has none).
fn chunks_of(response: &Response) -> Chunks {
    match response.body() {
        ResponseBody::Stream(stream) => Chunks::of(stream),
        _ => Chunks::none(),
    }
}

/// Google did not answer: the connection failed, or the first byte took too long.
pub(crate) struct NoAnswer {
    pub(crate) timeout: bool,
    pub(crate) detail: String,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The first [`ERROR_BODY_LIMIT`] bytes of an error answer (the rest is never read).
async fn error_body(response: Response) -> Vec<u8> {
    let mut chunks = chunks_of(&response);
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = ERROR_BODY_LIMIT - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    body
}
