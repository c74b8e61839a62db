//! gemini-edge-pool on Fastly Compute: the thin I/O layer around `gemini-pool-core`.
//!
//! - [`handler`] — routing, tokens and roles, settings;
//! - [`context`] — what an authenticated request carries; early answers; clock and entropy;
//! - [`forward`] — a request for Google's API: the core's flow, and the answer;
//! - [`admin`] — `/v1/status`, the key check, the console page;
//! - [`steps`] — the one loop that runs a core machine (a request's flow, the key check);
//! - [`stores`] — config, secret and KV stores;
//! - [`upstream`] — requests to Google;
//! - [`reply`] — response headers, errors, preflight; sending the answer, then the usage count;
//! - [`ops`] — per-request operation counts for `Server-Timing`;
//! - [`log`] — log lines;
//! - [`warm`] — what a sandbox keeps between the requests it serves.

mod admin;
mod context;
mod forward;
mod handler;
mod log;
mod ops;
mod reply;
mod steps;
mod stores;
mod upstream;
mod warm;

use fastly::http::serve::Serve;
use std::time::Duration;

/// Requests one sandbox serves at most: bounds how long heap fragmentation can grow.
const MAX_REQUESTS: usize = 1_000;
/// How long a sandbox takes new requests (what it keeps is trusted for less: [`warm::WARM_TTL`]).
const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Heap past which a sandbox takes no more requests (of Fastly's 128 MB).
const MAX_MEMORY_MIB: u32 = 64;
/// How long a sandbox waits for its next request: waiting is billed as memory × time.
const WAIT_FOR_NEXT: Duration = Duration::from_secs(5);

/// One sandbox serves requests one after another (Fastly's reusable sandboxes); each request
/// starts from nothing but what [`warm`] keeps. A request that panics ends its sandbox.
fn main() {
    Serve::new()
        .with_max_requests(MAX_REQUESTS)
        .with_max_lifetime(MAX_LIFETIME)
        .with_max_memory(MAX_MEMORY_MIB)
        .with_timeout(WAIT_FOR_NEXT)
        .run(|client| {
            let (response, after) = handler::handle(client);
            // The client gets its answer first; usage counting happens after.
            after.deliver(response);
        });
}
