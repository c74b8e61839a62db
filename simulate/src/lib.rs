//! gemini-pool-simulate: the core's real request flow ([`gemini_pool_core::Flow`], the machine
//! both edges run) against production stores as they behave, deterministically: Fastly's KV
//! store across POPs ([`kv`]: stale reads, throttled inserts, compare-and-swap at the origin or
//! at a POP, lost writes), Workers' Durable Objects ([`object`]: one object's ceiling, shards,
//! isolate read caches), and Google as a quota model ([`google`]). [`world`] runs a scenario —
//! clients arriving steadily, in bursts, or back to back — and reports upstream calls per
//! success, calls on a bucket after Google refused it (late hits), verdicts lost, and store
//! calls per verdict. `make simulate` prints the table (`src/main.rs`); `make test` runs short
//! seeded scenarios with asserted bounds (`tests/`).

pub mod google;
pub mod kv;
pub mod object;
pub mod scenarios;
pub mod world;
