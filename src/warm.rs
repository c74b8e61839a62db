//! What a sandbox keeps between the requests it serves (Fastly's reusable sandboxes, see
//! `main.rs`): the configuration it read — token lookups (found and not found), client
//! policies, the knobs (and, parsed, the settings every request needs), the key lists —
//! trusted for [`WARM_TTL`], so that a warm request skips those host calls and that parsing.
//!
//! Nothing of a request is kept: not its caller, body, answers, usage or errors (each request
//! builds its own `Context`); the only thing of a request that outlives it is its usage lines,
//! held up to a second on their way to the store (`held`), which no request reads. The cooling state is never kept either: it lives in KV, where
//! other instances write it, and every request reads it fresh.

use bytes::Bytes;
use gemini_pool_core::RequestSettings;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a sandbox trusts what it read: a token revoked, a knob changed or a key list
/// edited takes effect within this long (plus the request in flight).
pub const WARM_TTL: Duration = Duration::from_secs(30);

/// Token lookups kept at most; past it the cache starts over (a client sending invented
/// tokens cannot grow a sandbox's memory).
const MAX_TOKENS: usize = 256;
/// A longer token is looked up every time, never kept.
const MAX_TOKEN_BYTES: usize = 256;

/// What this sandbox read, and when it started trusting it.
#[derive(Default)]
struct Warm {
    /// Requests this sandbox has begun.
    served: u32,
    since: Option<Instant>,
    /// (config store, token) → the label, or `None`: not in that store.
    tokens: HashMap<(&'static str, String), Option<String>>,
    /// Knob name → its value, or `None`: not set.
    knobs: HashMap<String, Option<String>>,
    /// The knobs every request reads, parsed.
    settings: Option<RequestSettings>,
    /// Part → its key list.
    lists: HashMap<usize, Bytes>,
    /// Client label → its policy's text, or `None`: it has none.
    policies: HashMap<String, Option<String>>,
}

thread_local! {
    static WARM: RefCell<Warm> = RefCell::default();
}

/// At the start of each request: forgets everything read more than [`WARM_TTL`] ago. Returns
/// which request of this sandbox this is (1: the sandbox is cold).
pub fn begin(now: Instant) -> u32 {
    WARM.with_borrow_mut(|warm| {
        if warm.since.is_none_or(|since| now.duration_since(since) >= WARM_TTL) {
            *warm = Warm { served: warm.served, since: Some(now), ..Warm::default() };
        }
        warm.served = warm.served.saturating_add(1);
        warm.served
    })
}

/// `token`'s label in config store `store`: kept, or read with `read` (an error is not kept).
pub fn token<E>(
    store: &'static str,
    token: &str,
    read: impl FnOnce() -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    if token.len() > MAX_TOKEN_BYTES {
        return read();
    }
    let key = (store, token.to_string());
    if let Some(found) = WARM.with_borrow(|warm| warm.tokens.get(&key).cloned()) {
        return Ok(found);
    }
    let found = read()?;
    WARM.with_borrow_mut(|warm| {
        if warm.tokens.len() >= MAX_TOKENS {
            warm.tokens.clear();
        }
        warm.tokens.insert(key, found.clone());
    });
    Ok(found)
}

/// Client `label`'s policy text: kept, or read with `read` (an error is not kept).
pub fn policy<E>(label: &str, read: impl FnOnce() -> Result<Option<String>, E>) -> Result<Option<String>, E> {
    if let Some(found) = WARM.with_borrow(|warm| warm.policies.get(label).cloned()) {
        return Ok(found);
    }
    let found = read()?;
    WARM.with_borrow_mut(|warm| {
        if warm.policies.len() >= MAX_TOKENS {
            warm.policies.clear();
        }
        warm.policies.insert(label.to_string(), found.clone());
    });
    Ok(found)
}

/// Knob `name`: kept, or read with `read`.
pub fn knob(name: &str, read: impl FnOnce() -> Option<String>) -> Option<String> {
    if let Some(value) = WARM.with_borrow(|warm| warm.knobs.get(name).cloned()) {
        return value;
    }
    let value = read();
    WARM.with_borrow_mut(|warm| warm.knobs.insert(name.to_string(), value.clone()));
    value
}

/// The settings every request needs: kept, or read with `read` (an error is not kept).
pub fn settings<E>(read: impl FnOnce() -> Result<RequestSettings, E>) -> Result<RequestSettings, E> {
    if let Some(kept) = WARM.with_borrow(|warm| warm.settings.clone()) {
        return Ok(kept);
    }
    let read = read()?;
    WARM.with_borrow_mut(|warm| warm.settings = Some(read.clone()));
    Ok(read)
}

/// Part `part`'s key list, if this sandbox has it.
pub fn key_list(part: usize) -> Option<Bytes> {
    WARM.with_borrow(|warm| warm.lists.get(&part).cloned())
}

/// Keeps part `part`'s key list.
pub fn keep_key_list(part: usize, bytes: &Bytes) {
    WARM.with_borrow_mut(|warm| warm.lists.insert(part, bytes.clone()));
}
