//! gemini-edge-pool on Fastly Compute: the thin I/O layer around `gemini-pool-core`.
//!
//! - [`handler`] — the request flow;
//! - [`stores`] — config, secret and KV stores;
//! - [`upstream`] — requests to Google;
//! - [`reply`] — response headers, errors, preflight;
//! - [`ops`] — per-request operation counts for `Server-Timing`;
//! - [`log`] — log lines.

mod handler;
mod log;
mod ops;
mod reply;
mod stores;
mod upstream;

fn main() {
    let client = fastly::Request::from_client();
    handler::handle(client).send_to_client();
}
