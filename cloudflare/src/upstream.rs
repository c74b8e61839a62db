//! Requests to Google from Workers: the pool key goes where Google's endpoint expects it;
//! only `Content-Type` of the client's headers goes along; no answer within the first-byte
//! timeout is a timeout. Answers come back as the core's [`Answer`], an error's body read to
//! [`ERROR_BODY_LIMIT`].

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use gemini_pool_core::{Answer, ERROR_BODY_LIMIT};
use std::pin::pin;
use std::time::Duration;
use worker::{js_sys, AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

/// One request for Google, ready to be sent with any key.
pub(crate) struct Upstream {
    pub(crate) url: String,
    pub(crate) method: Method,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The key goes in `x-goog-api-key` (Google's native API) rather than `authorization`.
    pub(crate) native: bool,
    /// How long Google may take to answer (`FIRST_BYTE_TIMEOUT_MS`).
    pub(crate) first_byte_timeout_ms: u64,
}

impl Upstream {
    /// Sends the request with `key`: the answer for the core, and a success's response.
    pub(crate) async fn answer(&self, key: &str) -> (Answer, Option<Response>) {
        match self.send(key).await {
            Ok(response) if (200..300).contains(&response.status_code()) => (Answer::Served, Some(response)),
            Ok(response) => {
                let status = response.status_code();
                (Answer::Error { status, body: error_body(response).await }, None)
            }
            Err(NoAnswer { timeout, detail }) => (Answer::None { timeout, detail }, None),
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
        if self.method == Method::Post {
            let content_type = self.content_type.as_deref().unwrap_or("application/json");
            headers.set("content-type", content_type).map_err(failed)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method.clone()).with_headers(headers).with_redirect(RequestRedirect::Manual);
        if self.method == Method::Post {
            init.with_body(Some(js_sys::Uint8Array::from(self.body.as_slice()).into()));
        }
        let request = Request::new_with_init(&self.url, &init).map_err(failed)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let sending = Fetch::Request(request);
        let fetch = pin!(sending.send_with_signal(&signal));
        let timer = pin!(Delay::from(Duration::from_millis(self.first_byte_timeout_ms)));
        match select(fetch, timer).await {
            Either::Left((answer, _)) => answer.map_err(failed),
            Either::Right(_) => {
                controller.abort();
                let detail = format!("no answer within {} ms", self.first_byte_timeout_ms);
                Err(NoAnswer { timeout: true, detail })
            }
        }
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
async fn error_body(mut response: Response) -> Vec<u8> {
    let Ok(mut chunks) = response.stream() else { return Vec::new() };
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
