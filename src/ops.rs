//! Counts of the store operations and upstream time of one request, reported to the client
//! in a `Server-Timing` header (visible in browser dev tools, read by `make bench`).

use std::cell::Cell;
use std::time::Instant;

#[derive(Default)]
pub struct Ops {
    pub config_reads: Cell<u32>,
    pub secret_lookups: Cell<u32>,
    pub secret_reads: Cell<u32>,
    pub kv_reads: Cell<u32>,
    pub kv_writes: Cell<u32>,
    pub kv_ms: Cell<f64>,
    pub upstream_ms: Cell<f64>,
    pub attempts: Cell<u32>,
    /// Usage counts will be appended after the response (their cost is not in this request's times).
    pub usage_after: Cell<bool>,
}

/// Adds one to a counter.
pub fn bump(counter: &Cell<u32>) {
    counter.set(counter.get() + 1);
}

/// Adds the time since `since` to a duration counter.
pub fn add_elapsed(total: &Cell<f64>, since: Instant) {
    total.set(total.get() + since.elapsed().as_secs_f64() * 1000.0);
}

impl Ops {
    /// `Server-Timing` value, e.g.
    /// `kv;desc="2 reads, 0 writes";dur=0.31, secret;desc="2 lookups, 1 reads", config;desc="7 reads", …`.
    pub fn server_timing(&self, started: Instant) -> String {
        let total = started.elapsed().as_secs_f64() * 1000.0;
        let upstream = self.upstream_ms.get();
        let usage = if self.usage_after.get() { ", usage;desc=\"1 KV append after the response\"" } else { "" };
        format!(
            "kv;desc=\"{} reads, {} writes\";dur={:.2}, secret;desc=\"{} lookups, {} reads\", config;desc=\"{} reads\", attempts;desc=\"{}\", upstream;dur={:.2}, proxy;dur={:.2}{}",
            self.kv_reads.get(),
            self.kv_writes.get(),
            self.kv_ms.get(),
            self.secret_lookups.get(),
            self.secret_reads.get(),
            self.config_reads.get(),
            self.attempts.get(),
            upstream,
            (total - upstream).max(0.0),
            usage,
        )
    }
}
