//! A client's limits (`rpm`, `rpd`, `tokens_per_day` of its [`Policy`](crate::client::policy::Policy)):
//! where each is counted, and the verdict before a request goes out.
//!
//! - **Daily limits** (`rpd`, `tokens_per_day`) count in the client's own item of the quota
//!   day, `limit/<day>/<client>`: an admitted request appends `r <minute>` before it is sent;
//!   its tokens append `t <n>` after the client has its answer. A request reads the item
//!   first (one read) and is refused once the day's count reaches the limit.
//! - **Per-minute limit** (`rpm`): with knob `rate_limiter = store` (the default) the same
//!   item's `r` lines of the current minute (a fixed window); with `rate_limiter = platform`
//!   the platform's rate counter (Fastly's Edge Rate Limiting: per POP, a sliding 60 s window,
//!   may undercount by up to 10 %), asked with [`Step::Rate`](crate::decide::flow::Step::Rate).
//!
//! Requests in flight are not in the count yet, so clients sending at once can pass a limit
//! by up to the number in flight: appends are never lost, reads may lag them (docs/limits.md
//! gives the measured numbers). Answers to a limited client carry `x-ratelimit-*` headers
//! (the ones OpenAI's SDKs read) and a refusal carries `Retry-After`.

use crate::client::envelope::ErrorReply;
use crate::client::policy::Limits;
use crate::operator::clock::ResetZone;
use crate::pool::names::escape;
use crate::shared::usage;

/// Where `rpm` is counted (knob `rate_limiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limiter {
    /// The client's limit item in the shared store (a fixed one-minute window).
    #[default]
    Store,
    /// The platform's own rate counter (Fastly Edge Rate Limiting).
    Platform,
}

/// Lines of a limit item past which a reader that appends compacts it.
const COMPACT_AFTER_LINES: usize = 64;

/// What a client used so far, as its limit item says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Requests admitted this quota day.
    pub(crate) day_requests: u64,
    /// Requests admitted in the current minute.
    pub(crate) minute_requests: u64,
    /// Tokens used this quota day.
    pub(crate) day_tokens: u64,
}

impl Tally {
    /// Adds up a limit item's lines (`r <minute>`, `t <tokens>`, and a compacted head
    /// `= <requests> <tokens>`) as seen in `minute`.
    pub(crate) fn read(bytes: &[u8], minute: u64) -> Tally {
        let mut tally = Tally::default();
        for line in bytes.split(|&b| b == b'\n') {
            let Ok(text) = std::str::from_utf8(line) else { continue };
            let mut fields = text.split(' ');
            let number = |field: Option<&str>| field.and_then(|f| f.parse::<u64>().ok());
            match (fields.next(), number(fields.next()), number(fields.next())) {
                (Some("r"), Some(at), None) => {
                    tally.day_requests += 1;
                    tally.minute_requests += u64::from(at == minute);
                }
                (Some("t"), Some(tokens), None) => tally.day_tokens = tally.day_tokens.saturating_add(tokens),
                (Some("="), Some(requests), Some(tokens)) => {
                    tally.day_requests = tally.day_requests.saturating_add(requests);
                    tally.day_tokens = tally.day_tokens.saturating_add(tokens);
                }
                _ => {}
            }
        }
        tally
    }
}

/// One client's gate at one moment: what to count, where, and the verdict.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: Limits,
    limiter: Limiter,
    client: String,
    now_ms: u64,
    zone: ResetZone,
    tally: Tally,
    /// Requests the platform counted in the last minute (platform limiter only).
    platform_minute: Option<u64>,
}

/// The headroom a limited client is told of on every answer.
pub type RateHeaders = Vec<(&'static str, String)>;

impl Gate {
    /// `client`'s gate under `limits`, at `now_ms` in the quota day of `zone`.
    pub fn new(limits: Limits, limiter: Limiter, client: &str, now_ms: u64, zone: ResetZone) -> Self {
        Gate {
            limits,
            limiter,
            client: client.to_string(),
            now_ms,
            zone,
            tally: Tally::default(),
            platform_minute: None,
        }
    }

    /// The platform counter's entry to ask, if `rpm` is counted there.
    pub fn platform_entry(&self) -> Option<String> {
        (self.limits.rpm.is_some() && self.limiter == Limiter::Platform).then(|| escape(&self.client))
    }

    /// The client's limit item, if a limit is counted in the store.
    pub fn store_item(&self) -> Option<String> {
        let store_rpm = self.limits.rpm.is_some() && self.limiter == Limiter::Store;
        (store_rpm || self.limits.rpd.is_some() || self.limits.tokens_per_day.is_some())
            .then(|| item(&self.client, self.now_ms, self.zone))
    }

    /// The limit item the request's tokens are appended to after the answer, and its time to
    /// live (a client with a daily token limit).
    pub fn token_item(&self) -> Option<(String, u64)> {
        self.limits.tokens_per_day.map(|_| (item(&self.client, self.now_ms, self.zone), self.ttl_secs()))
    }

    /// The platform counted `count` requests in the last minute (`None`: it could not say).
    pub fn platform_counted(&mut self, count: Option<u64>) {
        self.platform_minute = count;
    }

    /// The limit item as read (`None`: the store has none yet).
    pub fn store_read(&mut self, bytes: Option<&[u8]>) {
        self.tally = bytes.map(|b| Tally::read(b, self.minute())).unwrap_or_default();
    }

    /// The verdict: admitted (with the line to append at once, if requests count in the
    /// store), or the 429 to answer with.
    pub fn verdict(&self) -> Result<Option<Vec<u8>>, ErrorReply> {
        let minute_used = match self.limiter {
            Limiter::Store => self.tally.minute_requests,
            Limiter::Platform => self.platform_minute.unwrap_or(0),
        };
        if let Some(rpm) = self.limits.rpm.filter(|&rpm| minute_used >= rpm) {
            return Err(ErrorReply::over_limit("rpm", rpm, self.minute_reset_ms()));
        }
        if let Some(rpd) = self.limits.rpd.filter(|&rpd| self.tally.day_requests >= rpd) {
            return Err(ErrorReply::over_limit("rpd", rpd, self.day_reset_ms()));
        }
        if let Some(tpd) = self.limits.tokens_per_day.filter(|&tpd| self.tally.day_tokens >= tpd) {
            return Err(ErrorReply::over_limit("tokens_per_day", tpd, self.day_reset_ms()));
        }
        let counts_here = (self.limits.rpm.is_some() && self.limiter == Limiter::Store) || self.limits.rpd.is_some();
        Ok(counts_here.then(|| format!("r {}\n", self.minute()).into_bytes()))
    }

    /// How long the limit item is kept: until the end of the next quota day.
    pub fn ttl_secs(&self) -> u64 {
        usage::ttl_secs(self.now_ms, self.zone)
    }

    /// `x-ratelimit-*` for this client (this request counted as admitted when `admitted`):
    /// requests against `rpm` (else `rpd`), tokens against `tokens_per_day`.
    pub fn headers(&self, admitted: bool) -> RateHeaders {
        let mut headers = Vec::new();
        let this = u64::from(admitted);
        let requests = match (self.limits.rpm, self.limits.rpd) {
            (Some(rpm), _) => {
                let used = match self.limiter {
                    Limiter::Store => self.tally.minute_requests,
                    Limiter::Platform => self.platform_minute.unwrap_or(0),
                };
                Some((rpm, used + this, self.minute_reset_ms()))
            }
            (None, Some(rpd)) => Some((rpd, self.tally.day_requests + this, self.day_reset_ms())),
            (None, None) => None,
        };
        if let Some((limit, used, reset_ms)) = requests {
            headers.push(("x-ratelimit-limit-requests", limit.to_string()));
            headers.push(("x-ratelimit-remaining-requests", limit.saturating_sub(used).to_string()));
            headers.push(("x-ratelimit-reset-requests", go_duration(reset_ms)));
        }
        if let Some(limit) = self.limits.tokens_per_day {
            headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
            headers.push(("x-ratelimit-remaining-tokens", limit.saturating_sub(self.tally.day_tokens).to_string()));
            headers.push(("x-ratelimit-reset-tokens", go_duration(self.day_reset_ms())));
        }
        headers
    }

    /// What `/v1/status` shows of this client: its limits and what it used (this minute, by
    /// the store; today), and what is left today.
    pub fn to_json(&self) -> serde_json::Value {
        let Limits { rpm, rpd, tokens_per_day } = self.limits;
        let Tally { day_requests, minute_requests, day_tokens } = self.tally;
        serde_json::json!({
            "client": self.client,
            "rpm": rpm,
            "rpd": rpd,
            "tokensPerDay": tokens_per_day,
            "requestsThisMinute": (self.limiter == Limiter::Store).then_some(minute_requests),
            "requestsToday": day_requests,
            "tokensToday": day_tokens,
            "requestsLeftToday": rpd.map(|n| n.saturating_sub(day_requests)),
            "tokensLeftToday": tokens_per_day.map(|n| n.saturating_sub(day_tokens)),
        })
    }

    fn minute(&self) -> u64 {
        self.now_ms / 60_000
    }

    fn minute_reset_ms(&self) -> u64 {
        60_000 - self.now_ms % 60_000
    }

    fn day_reset_ms(&self) -> u64 {
        let now = i64::try_from(self.now_ms / 1000).unwrap_or(i64::MAX / 2);
        let midnight = self.zone.next_midnight(now);
        u64::try_from(midnight - now).unwrap_or(0) * 1000 - self.now_ms % 1000
    }
}

/// The limit item of `client` for the quota day of `now_ms`.
pub(crate) fn item(client: &str, now_ms: u64, zone: ResetZone) -> String {
    format!("limit/{}/{}", usage::day_of(now_ms, zone), escape(client))
}

/// A limit item compacted, if it is long: one head line `= <requests> <tokens>` for all but the
/// current minute's requests, which keep their lines.
pub(crate) fn compacted(bytes: &[u8], minute: u64) -> Option<Vec<u8>> {
    if bytes.iter().filter(|&&b| b == b'\n').count() < COMPACT_AFTER_LINES {
        return None;
    }
    let tally = Tally::read(bytes, minute);
    let earlier = tally.day_requests - tally.minute_requests;
    let mut out = format!("= {earlier} {}\n", tally.day_tokens);
    for _ in 0..tally.minute_requests {
        out.push_str(&format!("r {minute}\n"));
    }
    Some(out.into_bytes())
}

/// A duration as OpenAI's headers write it: `59s`, `6m0s`, `13h5m2s`.
fn go_duration(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: u64 = 1_768_478_400_000; // 2026-01-15 12:00:00 UTC

    fn limits(rpm: Option<u64>, rpd: Option<u64>, tpd: Option<u64>) -> Limits {
        Limits { rpm, rpd, tokens_per_day: tpd }
    }

    #[test]
    fn requests_of_this_minute_and_today_add_up() {
        let minute = NOON / 60_000;
        let item = format!("r {}\nr {minute}\nt 40\nr {minute}\n= 10 500\ngarbage\n", minute - 1);
        assert_eq!(
            Tally::read(item.as_bytes(), minute),
            Tally { day_requests: 13, minute_requests: 2, day_tokens: 540 }
        );
    }

    #[test]
    fn each_limit_refuses_with_its_window() {
        let zone = ResetZone::Fixed(0);
        let minute = NOON / 60_000;
        let mut gate = Gate::new(limits(Some(2), None, None), Limiter::Store, "app", NOON + 15_000, zone);
        gate.store_read(Some(format!("r {minute}\n").as_bytes()));
        assert_eq!(gate.verdict(), Ok(Some(format!("r {minute}\n").into_bytes())));
        assert_eq!(gate.headers(true)[1], ("x-ratelimit-remaining-requests", "0".to_string()));
        assert_eq!(gate.headers(true)[2], ("x-ratelimit-reset-requests", "45s".to_string()));
        gate.store_read(Some(format!("r {minute}\nr {minute}\n").as_bytes()));
        let refused = gate.verdict().expect_err("over rpm");
        assert_eq!((refused.status, refused.retry_after_secs), (429, Some(45)));
        assert!(refused.message.contains("rpm = 2"), "{}", refused.message);

        let mut daily = Gate::new(limits(None, Some(1), Some(100)), Limiter::Store, "app", NOON, zone);
        daily.store_read(None);
        assert!(daily.verdict().is_ok());
        daily.store_read(Some(b"t 100\n"));
        let refused = daily.verdict().expect_err("over tokens");
        assert_eq!(refused.retry_after_secs, Some(12 * 3600));
        assert!(refused.message.contains("tokens_per_day = 100"));
        assert_eq!(daily.headers(false)[5], ("x-ratelimit-reset-tokens", "12h0m0s".to_string()));
    }

    #[test]
    fn the_platform_counts_rpm_when_asked_and_the_store_only_what_is_left() {
        let zone = ResetZone::Fixed(0);
        let mut gate = Gate::new(limits(Some(3), None, None), Limiter::Platform, "my app", NOON, zone);
        assert_eq!(gate.platform_entry().as_deref(), Some("my%20app"));
        assert_eq!(gate.store_item(), None, "nothing to count in the store");
        gate.platform_counted(Some(3));
        assert!(gate.verdict().is_err());
        gate.platform_counted(None);
        assert_eq!(gate.verdict(), Ok(None), "admitted; nothing to append");
        let tokens_only = Gate::new(limits(None, None, Some(5)), Limiter::Store, "a", NOON, zone);
        assert_eq!(tokens_only.store_item().as_deref(), Some("limit/2026-01-15/a"));
        assert_eq!(tokens_only.verdict(), Ok(None), "tokens are appended after the answer");
    }

    #[test]
    fn a_long_item_compacts_to_the_same_tally() {
        let minute = 1000;
        let mut item = String::new();
        for n in 0..80 {
            item.push_str(&format!("r {}\nt 3\n", minute - 1 + n % 2));
        }
        let before = Tally::read(item.as_bytes(), minute);
        let compacted = compacted(item.as_bytes(), minute).expect("long");
        assert_eq!(Tally::read(&compacted, minute), before);
        assert!(compacted.len() < 300);
        assert_eq!(super::compacted(b"r 1\n", minute), None);
        assert_eq!(go_duration(360_000), "6m0s");
    }
}
