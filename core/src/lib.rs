//! gemini-pool-core: the decisions of gemini-edge-pool, as pure functions over plain data.
//!
//! Nothing here performs I/O, reads a clock or draws entropy of its own: the edge (Fastly
//! Compute, Cloudflare Workers) reads stores, sends requests, passes the time
//! and a random seed, and hands what it got to these functions. Read in this order:
//! [`route`] → [`auth`] → [`openai_body`] → [`attempts`] (which uses [`keys`], [`pick`],
//! [`state`], [`classify`] and [`cooling`]) → [`record`] → [`ending`] → [`envelope`]; [`status`] builds
//! `/v1/status`, [`usage`] counts requests, [`keycheck`] probes keys for the console.

#![warn(missing_docs, unreachable_pub)]

pub mod attempts;
pub mod auth;
pub mod classify;
pub mod clock;
pub mod console;
pub mod cooling;
pub mod ending;
pub mod envelope;
pub mod flow;
pub mod google_error;
pub mod judge;
pub mod keycheck;
pub mod keys;
pub mod marks;
pub mod model;
pub mod names;
pub mod openai_body;
pub mod pick;
pub mod reason;
pub mod record;
pub mod rng;
pub mod route;
pub mod scrub;
pub mod settings;
pub mod state;
pub mod status;
pub mod usage;
