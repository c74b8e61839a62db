//! A client's limits (`rpm`, `rpd`, `tokens_per_day` of its [`Policy`](crate::client::policy::Policy)):
//! where each is counted, and the verdict before a request goes out.
//!
//! - **Requests** (`rpd`, and `rpm` with knob `rate_limiter = store`, the default) count in the
//!   client's own item of the quota day, `limit/<day>/<client>`. A request first **claims** a
//!   place: it appends `r <minute> <id>` (its own random id), then reads the item, and is
//!   admitted if its line is among the first `rpd` of the day and the first `rpm` of the minute
//!   (a fixed one-minute window). A refused request appends `x <id>`, which takes its place back.
//!   Places are given in the order the store took the appends, so concurrent requests cannot
//!   all see room for one more: on a consistent store a limit is never passed (a stale read
//!   can miss lines appended elsewhere in the meantime, and admit as many more).
//! - **Tokens** (`tokens_per_day`): a request's tokens append `t <n>` after the client has its
//!   answer; a request is refused once the day's sum reaches the limit.
//! - With `rate_limiter = platform`, `rpm` is the platform's rate counter instead (Fastly's
//!   Edge Rate Limiting: per POP, a sliding 60 s window, may undercount by up to 10 %), asked
//!   with [`Step::Rate`](crate::decide::flow::Step::Rate).
//!
//! Answers to a limited client carry `x-ratelimit-*` headers (the ones OpenAI's SDKs read), and
//! a refusal carries `Retry-After`. docs/policies.md gives the accuracy measured and modelled.

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

/// What a client used so far, as its limit item says; and where one request's own line is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Requests that hold a place this quota day.
    pub(crate) day_requests: u64,
    /// Of them, in the current minute.
    pub(crate) minute_requests: u64,
    /// Tokens used this quota day.
    pub(crate) day_tokens: u64,
    /// The places of the line with the id asked for (of the day, of the minute), if it is there.
    pub(crate) own: Option<(u64, u64)>,
}

impl Tally {
    /// Adds up a limit item's lines (`r <minute> <id>`, `x <id>`, `t <tokens>`, and a compacted
    /// head `= <requests> <tokens>`) as seen in `minute`; finds the line of request `id`.
    pub(crate) fn read(bytes: &[u8], minute: u64, id: Option<u64>) -> Tally {
        let text = String::from_utf8_lossy(bytes);
        let cancelled: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("x ")).collect();
        let mut tally = Tally::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            match (fields.first().copied(), fields.len()) {
                (Some("r"), 3) if !cancelled.contains(&fields[2]) => {
                    let Some(at) = number(1) else { continue };
                    if id.is_some_and(|id| fields[2] == format!("{id:x}")) {
                        tally.own = Some((tally.day_requests, tally.minute_requests));
                    }
                    tally.day_requests += 1;
                    tally.minute_requests += u64::from(at == minute);
                }
                (Some("t"), 2) => tally.day_tokens = tally.day_tokens.saturating_add(number(1).unwrap_or(0)),
                (Some("="), 3) => {
                    tally.day_requests = tally.day_requests.saturating_add(number(1).unwrap_or(0));
                    tally.day_tokens = tally.day_tokens.saturating_add(number(2).unwrap_or(0));
                }
                _ => {}
            }
        }
        tally
    }

    /// This request's places (of the day, of the minute): its own line's, or — not seen yet —
    /// after every line read.
    fn places(&self) -> (u64, u64) {
        self.own.unwrap_or((self.day_requests, self.minute_requests))
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
    /// This request's id in the limit item, once it claimed a place.
    claimed: Option<u64>,
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
            claimed: None,
        }
    }

    /// The platform counter's entry to ask, if `rpm` is counted there.
    pub fn platform_entry(&self) -> Option<String> {
        (self.limits.rpm.is_some() && self.limiter == Limiter::Platform).then(|| escape(&self.client))
    }

    /// The client's limit item, if a limit is counted in the store.
    pub fn store_item(&self) -> Option<String> {
        (self.counts_requests() || self.limits.tokens_per_day.is_some())
            .then(|| item(&self.client, self.now_ms, self.zone))
    }

    /// The limit item the request's tokens are appended to after the answer, and its time to
    /// live (a client with a daily token limit).
    pub fn token_item(&self) -> Option<(String, u64)> {
        self.limits.tokens_per_day.map(|_| (item(&self.client, self.now_ms, self.zone), self.ttl_secs()))
    }

    /// The line that claims this request's place (`id`: its own, random), if requests count in
    /// the store: appended before the item is read.
    pub(crate) fn claim(&mut self, id: u64) -> Option<Vec<u8>> {
        if !self.counts_requests() {
            return None;
        }
        self.claimed = Some(id);
        Some(format!("r {} {id:x}\n", self.minute()).into_bytes())
    }

    /// The line that gives a refused request's place back.
    pub(crate) fn cancel(&self) -> Option<Vec<u8>> {
        self.claimed.map(|id| format!("x {id:x}\n").into_bytes())
    }

    /// The platform counted `count` requests in the last minute (`None`: it could not say).
    pub fn platform_counted(&mut self, count: Option<u64>) {
        self.platform_minute = count;
    }

    /// The limit item as read (`None`: the store has none yet).
    pub fn store_read(&mut self, bytes: Option<&[u8]>) {
        self.tally = bytes.map(|b| Tally::read(b, self.minute(), self.claimed)).unwrap_or_default();
    }

    /// The verdict: admitted, or the 429 to answer with.
    pub fn verdict(&self) -> Result<(), ErrorReply> {
        let (day_place, minute_place) = self.tally.places();
        if let Some(rpm) = self.limits.rpm.filter(|&rpm| self.minute_used(minute_place) >= rpm) {
            return Err(ErrorReply::over_limit("rpm", rpm, self.minute_reset_ms()));
        }
        if let Some(rpd) = self.limits.rpd.filter(|&rpd| day_place >= rpd) {
            return Err(ErrorReply::over_limit("rpd", rpd, self.day_reset_ms()));
        }
        if let Some(tpd) = self.limits.tokens_per_day.filter(|&tpd| self.tally.day_tokens >= tpd) {
            return Err(ErrorReply::over_limit("tokens_per_day", tpd, self.day_reset_ms()));
        }
        Ok(())
    }

    /// Do requests count in the store (`rpd`, or `rpm` there)?
    fn counts_requests(&self) -> bool {
        (self.limits.rpm.is_some() && self.limiter == Limiter::Store) || self.limits.rpd.is_some()
    }

    /// Requests of this minute before this one: its place (store), or the platform's count.
    fn minute_used(&self, minute_place: u64) -> u64 {
        match self.limiter {
            Limiter::Store => minute_place,
            Limiter::Platform => self.platform_minute.unwrap_or(0),
        }
    }

    /// How long the limit item is kept: until the end of the next quota day.
    pub fn ttl_secs(&self) -> u64 {
        usage::ttl_secs(self.now_ms, self.zone)
    }

    /// `x-ratelimit-*` for this client (this request counted as admitted when `admitted`):
    /// requests against `rpm` (else `rpd`), tokens against `tokens_per_day`.
    pub fn headers(&self, admitted: bool) -> RateHeaders {
        let mut headers = Vec::new();
        let (day_place, minute_place) = self.tally.places();
        let this = u64::from(admitted);
        let requests = match (self.limits.rpm, self.limits.rpd) {
            (Some(rpm), _) => Some((rpm, self.minute_used(minute_place) + this, self.minute_reset_ms())),
            (None, Some(rpd)) => Some((rpd, day_place + this, self.day_reset_ms())),
            (None, None) => None,
        };
        if let Some((limit, used, reset_ms)) = requests {
            let remaining = if admitted { limit.saturating_sub(used) } else { 0 };
            headers.push(("x-ratelimit-limit-requests", limit.to_string()));
            headers.push(("x-ratelimit-remaining-requests", remaining.to_string()));
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
        let Tally { day_requests, minute_requests, day_tokens, .. } = self.tally;
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
/// current minute's requests, which keep their lines (in order: their places), and no cancelled
/// line.
pub(crate) fn compacted(bytes: &[u8], minute: u64) -> Option<Vec<u8>> {
    if bytes.iter().filter(|&&b| b == b'\n').count() < COMPACT_AFTER_LINES {
        return None;
    }
    let tally = Tally::read(bytes, minute, None);
    let text = String::from_utf8_lossy(bytes);
    let cancelled: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("x ")).collect();
    let current = format!("r {minute} ");
    let kept: Vec<&str> =
        text.lines().filter(|l| l.strip_prefix(current.as_str()).is_some_and(|id| !cancelled.contains(&id))).collect();
    let earlier = tally.day_requests - kept.len() as u64;
    let mut out = format!("= {earlier} {}\n", tally.day_tokens);
    for line in kept {
        out.push_str(line);
        out.push('\n');
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
    const UTC: ResetZone = ResetZone::Fixed(0);

    fn limits(rpm: Option<u64>, rpd: Option<u64>, tpd: Option<u64>) -> Limits {
        Limits { rpm, rpd, tokens_per_day: tpd }
    }

    #[test]
    fn requests_of_this_minute_and_today_add_up_and_a_cancelled_place_is_free() {
        let minute = NOON / 60_000;
        let item =
            format!("= 10 500\nr {} a\nr {minute} b\nt 40\nr {minute} c\nx b\ngarbage\nr {minute} d\n", minute - 1);
        let tally = Tally::read(item.as_bytes(), minute, Some(0xd));
        assert_eq!((tally.day_requests, tally.minute_requests, tally.day_tokens), (13, 2, 540));
        assert_eq!(tally.own, Some((12, 1)), "d comes after the 10 compacted, a and c (b gave its place back)");
    }

    #[test]
    fn places_go_in_the_order_the_store_took_the_claims() {
        // Three requests claim at once with room for two: whatever order they read in, the
        // first two lines are admitted and the third is not.
        let item = b"r 0 1\nr 0 2\nr 0 3\n";
        let verdicts: Vec<bool> = (1..=3u64)
            .map(|id| {
                let mut gate = Gate::new(limits(None, Some(2), None), Limiter::Store, "app", 0, UTC);
                assert!(gate.claim(id).is_some());
                gate.store_read(Some(item));
                gate.verdict().is_ok()
            })
            .collect();
        assert_eq!(verdicts, [true, true, false]);
    }

    #[test]
    fn each_limit_refuses_with_its_window() {
        let minute = NOON / 60_000;
        let mut gate = Gate::new(limits(Some(2), None, None), Limiter::Store, "app", NOON + 15_000, UTC);
        assert_eq!(gate.claim(7), Some(format!("r {minute} 7\n").into_bytes()));
        gate.store_read(Some(format!("r {minute} 1\nr {minute} 7\n").as_bytes()));
        assert_eq!(gate.verdict(), Ok(()));
        assert_eq!(gate.headers(true)[1], ("x-ratelimit-remaining-requests", "0".to_string()));
        assert_eq!(gate.headers(true)[2], ("x-ratelimit-reset-requests", "45s".to_string()));
        gate.store_read(Some(format!("r {minute} 1\nr {minute} 2\nr {minute} 7\n").as_bytes()));
        let refused = gate.verdict().expect_err("over rpm");
        assert_eq!((refused.status, refused.retry_after_secs), (429, Some(45)));
        assert!(refused.message.contains("rpm = 2"), "{}", refused.message);
        assert_eq!(gate.cancel(), Some(b"x 7\n".to_vec()));

        let mut daily = Gate::new(limits(None, Some(1), Some(100)), Limiter::Store, "app", NOON, UTC);
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
        let mut gate = Gate::new(limits(Some(3), None, None), Limiter::Platform, "my app", NOON, UTC);
        assert_eq!(gate.platform_entry().as_deref(), Some("my%20app"));
        assert_eq!(gate.store_item(), None, "nothing to count in the store");
        assert_eq!(gate.claim(1), None);
        gate.platform_counted(Some(3));
        assert!(gate.verdict().is_err());
        gate.platform_counted(None);
        assert_eq!(gate.verdict(), Ok(()));
        let mut tokens_only = Gate::new(limits(None, None, Some(5)), Limiter::Store, "a", NOON, UTC);
        assert_eq!(tokens_only.store_item().as_deref(), Some("limit/2026-01-15/a"));
        assert_eq!(tokens_only.claim(1), None, "tokens are appended after the answer");
    }

    #[test]
    fn a_long_item_compacts_to_the_same_tally() {
        let minute = 1000;
        let mut item = String::new();
        for n in 0..80u64 {
            item.push_str(&format!("r {} {n:x}\nt 3\n", minute - 1 + n % 2));
        }
        item.push_str("x 3\nx 4\n");
        let before = Tally::read(item.as_bytes(), minute, Some(0x4f));
        let compacted = compacted(item.as_bytes(), minute).expect("long");
        assert_eq!(Tally::read(&compacted, minute, Some(0x4f)), before);
        assert!(compacted.len() < 500, "{}", compacted.len());
        assert_eq!(super::compacted(b"r 1 1\n", minute), None);
        assert_eq!(go_duration(360_000), "6m0s");
    }
}
