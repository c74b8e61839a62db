//! gemini-edge-pool on Cloudflare Workers: the thin I/O layer around `gemini-pool-core`,
//! the same core the Fastly edge uses, unchanged, in the same shape:
//!
//! - this file — the entry point;
//! - [`handler`] — routing, tokens and roles, settings;
//! - [`context`] — what an authenticated request carries; early answers; clock and entropy;
//! - [`forward`] — a request for Google's API: the core's flow, and the answer; usage counting
//!   after the response (`wait_until`);
//! - [`held`] — usage lines an isolate holds to write them together;
//! - [`incoming`] — the client's request, read as far as needed;
//! - [`admin`] — `/v1/status`, the key check, the console page;
//! - [`steps`] — the one loop that runs a core machine (a request's flow, the key check);
//! - [`stores`] — the shared state: Durable Objects holding the same items as Fastly's KV;
//! - [`upstream`] — requests to Google;
//! - [`chunks`] — Google's answers read chunk by chunk;
//! - [`config`] — the environment: keys, tokens, knobs, Google's address;
//! - [`reply`] — response headers, errors, preflight.

mod admin;
mod chunks;
mod config;
mod context;
mod forward;
mod handler;
mod held;
mod incoming;
mod reply;
mod steps;
mod stores;
mod upstream;

use incoming::Incoming;
use reply::Timing;
use worker::{event, web_sys, Context, Env, Response, Result};

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<Response> {
    let req = Incoming::new(req);
    let started = worker::Date::now().as_millis() as f64;
    let mut timing = Timing::default();
    let response = handler::serve(&req, env, &ctx, &mut timing).await?;
    reply::finish(response, &timing, started)
}

pub use stores::StateObject;
