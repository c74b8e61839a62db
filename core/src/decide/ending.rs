//! How a request's attempts ended, and what the client gets for it: the part of the attempt
//! loop both edges share. Each edge sends the request and stores the verdicts; this module
//! turns an answer (or its absence) into a verdict, a choice not to try into a refusal, and
//! the last ending into the client's response or error.

use crate::client::envelope::ErrorReply;
use crate::decide::attempts::{Attempts, Choice};
use crate::google::classify::{classify, Verdict};
use crate::pool::keys::ApiKey;

/// The most bytes of an upstream error body the proxy reads (1 MiB): far more than any error
/// Google sends, and the verdict is read from them. The rest is never read — a body of any
/// size costs at most this much memory — and a cut body is classified by its status alone.
pub const ERROR_BODY_LIMIT: usize = 1024 * 1024;

/// How the attempts ended (so far).
#[derive(Debug)]
pub enum Ending<'a> {
    /// Google served: its response (the edge holds it) goes to the client as it is.
    Served,
    /// Google's last error answer, with the verdict on it and the key it was sent with.
    Upstream {
        /// Google's status.
        status: u16,
        /// Google's body.
        body: Vec<u8>,
        /// The classifier's verdict on it.
        verdict: Verdict,
        /// The key it was sent with (scrubbed from what the client sees).
        used: &'a str,
    },
    /// Google could not be reached, or did not answer in time.
    Unreachable {
        /// No answer in time (rather than no connection).
        timeout: bool,
    },
    /// The proxy answered without asking Google (every key cooling or dead).
    Refused(ErrorReply),
}

impl<'a> Ending<'a> {
    /// Before any attempt: nothing reached Google yet.
    pub fn nothing_yet() -> Self {
        Ending::Unreachable { timeout: false }
    }

    /// Google answered `status` (not a success) with `body` to a request sent with `key`.
    pub fn upstream(status: u16, body: Vec<u8>, key: &ApiKey<'a>) -> (Verdict, Self) {
        let verdict = classify(status, &body);
        (verdict.clone(), Ending::Upstream { status, body, verdict, used: key.secret })
    }

    /// Google did not answer (`timeout`: not in time; otherwise the connection failed).
    pub fn no_answer(timeout: bool, detail: impl Into<String>) -> (Verdict, Self) {
        (Verdict::connect_failure(timeout, detail), Ending::Unreachable { timeout })
    }

    /// The ending for a choice not to try (every key cooling or dead), or `None` for a choice
    /// the edge acts on (try a key, widen the pool, deliver the last ending).
    pub fn refusal(choice: &Choice<'_>, model: Option<&str>) -> Option<Self> {
        match choice {
            Choice::AllCooling { retired: true, .. } => Some(Ending::Refused(ErrorReply::model_retired(model))),
            Choice::AllCooling { retry_after_ms, .. } => {
                Some(Ending::Refused(ErrorReply::all_cooling(model, *retry_after_ms)))
            }
            Choice::AllDead => Some(Ending::Refused(ErrorReply::all_dead())),
            _ => None,
        }
    }

    /// What the client gets: Google's response, or the error for how the loop ended —
    /// Google's error rebuilt from its parsed fields with every key scrubbed, and on a 429 the
    /// pool's own `Retry-After` (when its first cooling key recovers).
    pub fn into_reply(self, attempts: &Attempts<'_>, now_ms: u64) -> Result<(), ErrorReply> {
        match self {
            Ending::Served => Ok(()),
            Ending::Refused(reply) => Err(reply),
            Ending::Unreachable { timeout } => Err(ErrorReply::upstream_unreachable(timeout)),
            Ending::Upstream { status, body, verdict, used } => {
                let reply = ErrorReply::from_upstream(status, &body, &verdict.outcome, &[used]);
                match attempts.retry_after_ms(now_ms).filter(|_| reply.status == 429) {
                    Some(ms) => Err(reply.with_retry_after_ms(ms)),
                    None => Err(reply),
                }
            }
        }
    }
}
