//! Requests to Google through the static backend `gemini`: the pool key goes where Google's
//! endpoint expects it; only allow-listed client headers and query parameters go along.
//! The client's `Authorization`, `x-goog-api-key` and `?key=` never do.

use crate::timing::{add_elapsed, Timing};
use fastly::handle::BodyHandle;
use fastly::http::request::{PendingRequest, SendErrorCause};
use fastly::http::{HeaderValue, Method, Url};
use fastly::{Body, Request, Response};
use gemini_pool_core::{upload_session, Answer, Outgoing, Peek, Peeker, Reading, Spot, ERROR_BODY_LIMIT, SPOT_LIMIT};
use std::cell::RefCell;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Instant;

/// The backend declared in `fastly.toml`.
pub const BACKEND: &str = "gemini";
pub const ORIGIN: &str = "https://generativelanguage.googleapis.com";

/// A request's body: read (and sent again on a retry), or an upload's bytes streaming through
/// from the client (sent once).
pub enum Payload {
    Bytes(Vec<u8>),
    Stream(RefCell<Option<Body>>),
}

impl Payload {
    /// The bytes of a body read whole (a streamed one: none).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(body) => body,
            Payload::Stream(_) => &[],
        }
    }
}

/// A success on its way to the client: Google's response (its body taken apart) and its body.
pub struct Served {
    pub response: Response,
    pub body: AnswerBody,
}

/// An answer's body as the instance holds it: the head it read to judge the answer, then the
/// rest of Google's body, unread. The head goes out first — relayed without being read back.
pub struct AnswerBody {
    pub head: Vec<u8>,
    /// `None`: the head is the whole body.
    pub rest: Option<BodyHandle>,
}

impl AnswerBody {
    /// A body nothing of which was read.
    pub fn unread(body: Body) -> Self {
        AnswerBody { head: Vec::new(), rest: Some(body.into_handle()) }
    }

    /// A body the instance wrote.
    pub fn bytes(bytes: Vec<u8>) -> Self {
        AnswerBody { head: bytes, rest: None }
    }

    /// The whole body for the host to send: the head, then the rest (appended by the host, not
    /// copied).
    pub fn whole(self) -> Body {
        let AnswerBody { head, rest } = self;
        let body = match (head.is_empty(), rest) {
            (true, Some(rest)) => rest,
            (_, rest) => {
                let mut body = BodyHandle::from(head);
                if let Some(rest) = rest {
                    body.append(rest);
                }
                body
            }
        };
        Body::from(body)
    }

    /// The whole body as bytes (an answer the instance rewrites: a list of models).
    pub fn into_bytes(self) -> Vec<u8> {
        let AnswerBody { mut head, rest } = self;
        if let Some(mut rest) = rest {
            // A read that fails ends the answer where it failed, as a pass-through would.
            let _ = rest.read_to_end(&mut head);
        }
        head
    }
}

impl Served {
    /// A success whose body was not read.
    fn unread(mut response: Response) -> Self {
        let body = AnswerBody::unread(response.take_body());
        Served { response, body }
    }
}

/// Google's origin, parsed once per sandbox: a request's URL is its path and query joined to
/// this.
fn google_origin() -> Option<&'static Url> {
    static PARSED: OnceLock<Option<Url>> = OnceLock::new();
    PARSED.get_or_init(|| Url::parse(ORIGIN).ok()).as_ref()
}

/// One client request, ready to be sent with any key.
pub struct Upstream {
    method: Method,
    url: Url,
    native: bool,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Payload,
    /// What to read of a success before passing it on (the core's rule for the route).
    reading: Reading,
}

impl Upstream {
    /// The client's request as Google gets it, as the core's [`Outgoing`] says (`None` if the
    /// URL cannot be built: a query parameter no URL can carry). The client's body goes along
    /// unless the core rewrote it.
    pub fn new(client: &Request, outgoing: &Outgoing, payload: Payload) -> Option<Self> {
        // Relative to the origin parsed once: its scheme and host are not parsed again.
        let url = google_origin()?.join(&outgoing.path).ok()?;
        let headers = outgoing
            .headers
            .iter()
            .filter_map(|name| client.get_header(*name).map(|value| (*name, value.clone())))
            .collect();
        let body = match &outgoing.body {
            Some(rewritten) => Payload::Bytes(rewritten.clone()),
            None => payload,
        };
        let (native, reading) = (outgoing.native, outgoing.reading.clone());
        Some(Upstream { method: client.get_method().clone(), url, native, headers, body, reading })
    }

    /// Sends with `key`; returns when the response headers arrive: the answer for the core,
    /// and a success (its body streams later).
    pub fn send(&self, key: &str, timing: &Timing) -> (Answer, Option<Served>) {
        let mut request = Request::new(self.method.clone(), self.url.clone()).with_pass(true);
        for (name, value) in &self.headers {
            request.set_header(*name, value.clone());
        }
        // Keys are visible ASCII (KeyPool skips anything else), so this cannot fail; if it
        // did, the attempt fails instead of the instance.
        let credential = if self.native {
            (key.to_string(), "x-goog-api-key")
        } else {
            (["Bearer ", key].concat(), "authorization")
        };
        let Ok(value) = HeaderValue::from_str(&credential.0) else {
            return (Answer::None { timeout: false, detail: "key is not a valid header value".into() }, None);
        };
        request.set_header(credential.1, value);
        match &self.body {
            Payload::Bytes(body) if self.method == Method::POST || self.method == Method::PATCH => {
                if request.get_header("content-type").is_none() {
                    request.set_header("content-type", "application/json");
                }
                request.set_body(body.as_slice());
            }
            Payload::Bytes(_) => {}
            Payload::Stream(body) => match body.borrow_mut().take() {
                Some(body) => request.set_body(body),
                None => return (Answer::None { timeout: false, detail: "the upload was sent already".into() }, None),
            },
        }
        let started = Instant::now();
        let result = request.send(BACKEND);
        add_elapsed(&timing.upstream_ms, started);
        match result {
            Ok(response) if response.get_status().is_success() => self.served(response),
            Ok(response) => {
                let status = response.get_status().as_u16();
                (Answer::Error { status, body: error_body(response) }, None)
            }
            Err(e) => {
                let cause = e.root_cause();
                let named = matches!(
                    cause,
                    SendErrorCause::DnsTimeout
                        | SendErrorCause::ConnectionTimeout
                        | SendErrorCause::HttpResponseTimeout
                );
                // Viceroy names no cause (an internal error, for a refused connection and a
                // first-byte timeout alike): a failure that took a second or more was a wait.
                let unnamed = matches!(cause, SendErrorCause::InternalError(_));
                let timeout = named || unnamed && started.elapsed() >= UNNAMED_TIMEOUT;
                (Answer::None { timeout, detail: format!("{cause:?}") }, None)
            }
        }
    }
}

impl Upstream {
    /// A success, read as the core's [`Reading`] says: passed on as it came; or its head read
    /// until the core's [`Peeker`] decides ([`Answer::Empty`] is kept, in case no other key
    /// serves) or its [`Spotter`](gemini_pool_core::Spotter) finds what it made
    /// ([`Answer::Made`]), then passed on as the head and the rest of Google's body ([`Served`]);
    /// or the upload session named in its header; or read whole, a page of a list
    /// ([`Answer::Page`]).
    fn served(&self, mut response: Response) -> (Answer, Option<Served>) {
        match &self.reading {
            Reading::Nothing => (Answer::Served, Some(Served::unread(response))),
            Reading::UploadUrl => {
                let url = response.get_header("x-goog-upload-url").and_then(|v| v.to_str().ok());
                let made = url.and_then(upload_session);
                (made.map_or(Answer::Served, Answer::Made), Some(Served::unread(response)))
            }
            Reading::Page => {
                let mut body = Vec::new();
                let _ = response.take_body().into_handle().take(SPOT_LIMIT as u64).read_to_end(&mut body);
                (Answer::Page(body), None)
            }
            Reading::Peek(stream) => {
                let mut peeker = Peeker::new(*stream);
                let (seen, served) = read_head(response, |head, ended| match peeker.peek(head, ended) {
                    Peek::More => None,
                    seen => Some(seen),
                });
                let answer = if seen == Some(Peek::Empty) { Answer::Empty } else { Answer::Served };
                (answer, Some(served))
            }
            Reading::Spot(spotter) => {
                let (spot, served) = read_head(response, |head, ended| match spotter.spot(head, ended) {
                    Spot::More => None,
                    spot => Some(spot),
                });
                let answer = match spot {
                    Some(Spot::Found(resource)) => Answer::Made(resource),
                    _ => Answer::Served,
                };
                (answer, Some(served))
            }
        }
    }
}

/// Reads the head of a response's body until `decide` decides (or the body ends): what it
/// decided, and the response with the head apart from the rest of Google's body.
fn read_head<T>(mut response: Response, mut decide: impl FnMut(&[u8], bool) -> Option<T>) -> (Option<T>, Served) {
    // Straight from the handle: `Body`'s buffered reader would copy through a buffer of its own.
    let mut rest = response.take_body().into_handle();
    let mut head = Vec::new();
    let mut piece = [0u8; 8 * 1024];
    let (seen, ended) = loop {
        // A read that fails ends the answer where it failed, as a pass-through would.
        let read = rest.read(&mut piece).unwrap_or(0);
        head.extend_from_slice(&piece[..read]);
        let ended = read == 0;
        match decide(&head, ended) {
            None if !ended => continue,
            seen => break (seen, ended),
        }
    };
    let rest = if ended { None } else { Some(rest) };
    (seen, Served { response, body: AnswerBody { head, rest } })
}

/// How long a send must have waited before a failure whose cause the platform does not name
/// counts as a timeout (Fastly names its causes; Viceroy does not, and cannot tell the
/// instance its backend's timeouts either).
const UNNAMED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A key check's probe on its way: Google's native model list, one model per page, with one
/// key (a call Google does not bill).
pub struct Probe(Result<PendingRequest, String>);

/// Sends a probe with `key`; [`Probe::wait`] gets the answer.
pub fn probe(key: &str, timing: &Timing) -> Probe {
    let started = Instant::now();
    let url = format!("{ORIGIN}{}", gemini_pool_core::Check::PROBE_PATH);
    let request = Request::get(url).with_pass(true);
    let sent = match HeaderValue::from_str(key) {
        Ok(value) => request
            .with_header("x-goog-api-key", value)
            .send_async(BACKEND)
            .map_err(|e| format!("{:?}", e.root_cause())),
        Err(_) => Err("key is not a valid header value".to_string()),
    };
    add_elapsed(&timing.upstream_ms, started);
    Probe(sent)
}

impl Probe {
    /// Google's answer (an error's body read to [`gemini_pool_core::ERROR_BODY_LIMIT`]).
    pub fn wait(self) -> Answer {
        let pending = match self.0 {
            Ok(pending) => pending,
            Err(detail) => return Answer::None { timeout: false, detail },
        };
        match pending.wait() {
            Ok(response) if response.get_status().is_success() => Answer::Served,
            Ok(response) => Answer::Error { status: response.get_status().as_u16(), body: error_body(response) },
            Err(e) => Answer::None { timeout: false, detail: format!("{:?}", e.root_cause()) },
        }
    }
}

/// The first [`ERROR_BODY_LIMIT`] bytes of an error answer (the rest is never read).
pub fn error_body(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = response.take_body().into_handle().take(ERROR_BODY_LIMIT as u64).read_to_end(&mut body);
    body
}
