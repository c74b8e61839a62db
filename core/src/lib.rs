//! gemini-pool-core: the decisions of gemini-edge-pool, as pure functions over plain data.
//!
//! Nothing here performs I/O or knows about Fastly: the edge layer reads stores, sends
//! requests and passes what it got to these functions. Read in this order:
//! [`route`] → [`auth`] → [`openai_body`] → [`attempts`] (which uses [`state`], [`classify`]
//! and [`cooling`]) → [`envelope`]; [`status`] builds `/v1/status`.

pub mod attempts;
pub mod auth;
pub mod classify;
pub mod clock;
pub mod cooling;
pub mod envelope;
pub mod google_error;
pub mod keys;
pub mod openai_body;
pub mod rng;
pub mod route;
pub mod settings;
pub mod state;
pub mod status;
