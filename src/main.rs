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
//! - [`log`] — log lines.

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

fn main() {
    let client = fastly::Request::from_client();
    let (response, after) = handler::handle(client);
    // The client gets its answer first; usage counting happens after.
    after.deliver(response);
}
