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
//! - [`timing`] — per-request operation counts for `Server-Timing`;
//! - [`held`] — usage lines a sandbox holds to write them together;
//! - [`log`] — log lines;
//! - [`warm`] — what a sandbox keeps between the requests it serves.

mod admin;
mod context;
mod forward;
mod handler;
mod held;
mod log;
mod reply;
mod steps;
mod stores;
mod timing;
mod upstream;
mod warm;

use fastly::http::serve::{NextRequestError, NextRequestOptions, RequestPromise};
use fastly::Request;
use std::time::{Duration, Instant};

/// Requests one sandbox serves at most: bounds how long heap fragmentation can grow.
const MAX_REQUESTS: usize = 1_000;
/// How long a sandbox takes new requests (what it keeps is trusted for less: [`warm::WARM_TTL`]).
const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Heap past which a sandbox takes no more requests (of Fastly's 128 MB).
const MAX_MEMORY_MIB: u32 = 64;
/// How long a sandbox waits for its next request: waiting is billed as memory × time.
const WAIT_FOR_NEXT: Duration = Duration::from_secs(5);

/// One sandbox serves requests one after another (Fastly's reusable sandboxes, the loop of
/// the SDK's `Serve` with one thing more: while it waits for the next request it writes the
/// usage it holds once due, see [`held`]); each request starts from nothing but what [`warm`]
/// keeps. A request that panics ends its sandbox.
fn main() {
    let started = Instant::now();
    let mut client = Request::from_client();
    for served in 1.. {
        let (response, after) = handler::handle(client);
        // The client gets its answer first; usage counting happens after.
        after.deliver(response);
        if served >= MAX_REQUESTS || started.elapsed() >= MAX_LIFETIME || over_memory() {
            break;
        }
        match next_request() {
            Some(next) => client = next,
            None => break,
        }
    }
    held::write();
}

/// The sandbox's heap is past [`MAX_MEMORY_MIB`]: the size of its linear memory, which grows
/// with the heap and never shrinks (one wasm instruction; the SDK's `heap_memory_snapshot_mib`
/// asks the host, a call on every request).
fn over_memory() -> bool {
    const PAGE_BYTES: usize = 64 * 1024;
    const MIB: usize = 1024 * 1024;
    core::arch::wasm32::memory_size::<0>() * PAGE_BYTES > MAX_MEMORY_MIB as usize * MIB
}

/// The next request for this sandbox, waiting at most [`WAIT_FOR_NEXT`]; held usage that falls
/// due meanwhile is written. `None`: the sandbox ends.
fn next_request() -> Option<Request> {
    let mut promise = RequestPromise::new(&NextRequestOptions::from_timeout(WAIT_FOR_NEXT)).ok()?;
    while let Some(due_in) = held::due_in() {
        match promise.wait_timeout(due_in) {
            Ok(next) => return Some(next),
            Err(NextRequestError::Timeout(waiting)) => {
                held::write();
                promise = waiting;
            }
            Err(_) => return None,
        }
    }
    promise.wait().ok()
}
