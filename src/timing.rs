//! Counts of the store operations and upstream time of one request, reported to the client
//! in a `Server-Timing` header (visible in browser dev tools, read by `make bench`).

use std::cell::Cell;
use std::time::Instant;

#[derive(Default)]
pub struct Timing {
    pub config_reads: Cell<u32>,
    pub secret_lookups: Cell<u32>,
    pub secret_reads: Cell<u32>,
    pub kv_reads: Cell<u32>,
    pub kv_writes: Cell<u32>,
    pub kv_ms: Cell<f64>,
    pub upstream_ms: Cell<f64>,
    pub attempts: Cell<u32>,
    /// Questions to the platform's rate counter (a client's `rpm` with `rate_limiter = platform`).
    pub rate_checks: Cell<u32>,
    /// Usage counts will be appended after the response (their cost is not in this request's times).
    pub usage_after: Cell<bool>,
    /// This request is the n-th its sandbox serves (1: a cold sandbox).
    pub sandbox_request: Cell<u32>,
}

/// Adds one to a counter.
pub fn bump(counter: &Cell<u32>) {
    counter.set(counter.get() + 1);
}

/// Adds the time since `since` to a duration counter.
pub fn add_elapsed(total: &Cell<f64>, since: Instant) {
    total.set(total.get() + since.elapsed().as_secs_f64() * 1000.0);
}

impl Timing {
    /// `Server-Timing` value, e.g.
    /// `kv;desc="2 reads, 0 writes";dur=0.31, secret;desc="2 lookups, 1 reads", config;desc="7 reads", …`.
    pub fn server_timing(&self, started: Instant) -> String {
        let total = started.elapsed().as_secs_f64() * 1000.0;
        let upstream = self.upstream_ms.get();
        // Written piece by piece, not with `format!`: every response carries it.
        let mut out = String::with_capacity(256);
        let count = |out: &mut String, n: u32| out.push_str(itoa::Buffer::new().format(n));
        out.push_str("kv;desc=\"");
        count(&mut out, self.kv_reads.get());
        out.push_str(" reads, ");
        count(&mut out, self.kv_writes.get());
        out.push_str(" writes\";dur=");
        millis(&mut out, self.kv_ms.get());
        out.push_str(", secret;desc=\"");
        count(&mut out, self.secret_lookups.get());
        out.push_str(" lookups, ");
        count(&mut out, self.secret_reads.get());
        out.push_str(" reads\", config;desc=\"");
        count(&mut out, self.config_reads.get());
        out.push_str(" reads\", attempts;desc=\"");
        count(&mut out, self.attempts.get());
        out.push_str("\", upstream;dur=");
        millis(&mut out, upstream);
        out.push_str(", proxy;dur=");
        millis(&mut out, total - upstream);
        if self.rate_checks.get() > 0 {
            out.push_str(", ratelimit;desc=\"");
            count(&mut out, self.rate_checks.get());
            out.push_str(" checks\"");
        }
        if self.usage_after.get() {
            out.push_str(", usage;desc=\"held, appended with the sandbox's others within 1 s\"");
        }
        out.push_str(", sandbox;desc=\"request ");
        count(&mut out, self.sandbox_request.get());
        out.push('"');
        out
    }
}

/// Milliseconds with two decimals (`0.31`), from whole hundredths.
fn millis(out: &mut String, ms: f64) {
    let hundredths = (ms.max(0.0) * 100.0).round() as u64;
    out.push_str(itoa::Buffer::new().format(hundredths / 100));
    out.push('.');
    let rest = hundredths % 100;
    if rest < 10 {
        out.push('0');
    }
    out.push_str(itoa::Buffer::new().format(rest));
}
