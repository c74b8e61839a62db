//! The operator's knobs (config store `proxy_settings`): names, defaults, parsing.
//!
//! Two groups, so a request reads only what it needs: [`RequestSettings`] on every request
//! (what the first attempt needs), [`CoolingSettings`] (with the [`RetrySettings`]) only when
//! Google's answer was not a success or no key can serve. Every knob is optional;
//! a present but malformed value is a configuration error naming the knob.

use crate::pool::pick::Strategy;
use crate::state::clock::ResetZone;
use std::time::Duration;
use thiserror::Error;

/// The one upper bound of every duration knob and every cooldown: 100,000 days, "practically
/// forever". A longer knob is a configuration error; a longer retry hint is cut to it.
pub const MAX_DURATION: Duration = Duration::from_secs(100_000 * 86_400);

/// `max_stream_duration` when unset: generous for any real generation, but a stream that
/// never ends is cut.
pub(crate) const DEFAULT_STREAM_LIMIT: Duration = Duration::from_secs(30 * 60);

/// A knob with a value we cannot use.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("proxy_settings.{name} = {value:?}: {problem}")]
pub struct SettingError {
    /// The knob.
    pub name: &'static str,
    /// Its value as written.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Where `rpm` is counted (knob `rate_limiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limiter {
    /// The client's limit item in the shared store (a fixed one-minute window).
    #[default]
    Store,
    /// The platform's own rate counter (Fastly Edge Rate Limiting).
    Platform,
}

/// What to do when every key is cooling for the requested model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAllCooling {
    /// Answer 429 with `Retry-After` (the default).
    Reject,
    /// Try the key whose cooldown ends first (the seed's "priority selection").
    ShortestCooldown,
}

/// The cooling table in force (`cooling_profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Reads Google's answer: per-minute vs per-day, per model, dead keys, upstream trouble.
    Smart,
    /// The seed's table: by HTTP status only, whole key, long durations.
    Seed,
}

/// Days the usage counts are kept when `usage_counts` is `on`.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;

/// Google's limit on one file (2 GB), and the default of `max_upload_bytes`.
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Knobs read on every request: what the first attempt needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How many secret-store entries hold keys: `keys`, then `keys_2` … `keys_4`.
    pub key_secrets: usize,
    /// Count requests per key and per client for the console (`usage_counts`: one KV append
    /// per request, after the response).
    pub usage_counts: bool,
    /// How many days the counts are kept for `/v1/usage` (`usage_counts = <days>`; `on`:
    /// [`DEFAULT_HISTORY_DAYS`]).
    pub history_days: u32,
    /// `daily_reset_zone`: when the day of the usage counts ends (read only if they are on).
    pub reset_zone: ResetZone,
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings {
            max_body_bytes: 20 * 1024 * 1024,
            key_secrets: 1,
            usage_counts: true,
            history_days: DEFAULT_HISTORY_DAYS,
            reset_zone: ResetZone::Pacific,
        }
    }
}

/// Knobs a request needs only once it goes past its first key — after a failure, or when no
/// key can serve — read with the [`CoolingSettings`] they belong to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySettings {
    /// `strategy` (the first key is drawn uniformly either way).
    pub strategy: Strategy,
    /// Upstream attempts per client request (also bounded by the pool size and by 32).
    pub max_attempts: usize,
    /// `when_all_cooling`.
    pub when_all_cooling: WhenAllCooling,
    /// Jitter added to per-minute cooldowns; also how close to its end a cooldown must be
    /// for the key to be tried anyway when every key is cooling.
    pub jitter: Duration,
}

impl RetrySettings {
    /// `jitter` in whole milliseconds.
    pub fn jitter_ms(&self) -> u64 {
        u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            strategy: Strategy::RoundRobin,
            max_attempts: 3,
            when_all_cooling: WhenAllCooling::Reject,
            jitter: Duration::from_millis(1_000),
        }
    }
}

/// Durations of the `seed` profile (its table, each overridable).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedDurations {
    /// 401 / 403. `None` = forever.
    pub auth: Option<Duration>,
    /// 429.
    pub too_many_requests: Duration,
    /// 503.
    pub unavailable: Duration,
    /// 502 / 504 (and connection failures).
    pub gateway: Duration,
    /// Other 5xx.
    pub other_5xx: Duration,
}

/// Knobs read only when a request met a failure (or found no key that can serve).
#[derive(Debug, Clone, PartialEq)]
pub struct CoolingSettings {
    /// How the request goes on.
    pub retry: RetrySettings,
    /// `cooling_profile`.
    pub profile: Profile,
    /// `daily_reset_zone`.
    pub reset_zone: ResetZone,
    /// Per-minute cooldown when Google gives no `retryDelay`.
    pub default_retry_delay: Duration,
    /// `limit: 0` / no free tier, for a model.
    pub no_free_tier: Duration,
    /// 403 "caller does not have permission", for a model.
    pub model_forbidden: Duration,
    /// 404 "no longer available to new users": a model retired for the key's project.
    pub model_retired: Duration,
    /// Bare 429: first cooldown, doubled on each repeat up to `throttle_max`.
    pub throttle_base: Duration,
    /// The longest bare-429 backoff.
    pub throttle_max: Duration,
    /// No answer (connection failure, timeout).
    pub connect_failure: Duration,
    /// Cooldown of (key, model) on 500/502/503/504. Zero: none, just retry elsewhere.
    pub upstream_trouble: Duration,
    /// Time before a dead key gets one probation request.
    pub dead_probation: Duration,
    /// A project whose prepayment credits are depleted, every model.
    pub billing_depleted: Duration,
    /// `retry_empty_answers`: an empty answer is tried again on another key (smart profile).
    pub retry_empty_answers: bool,
    /// The seed profile's durations.
    pub seed: SeedDurations,
}

impl Default for CoolingSettings {
    fn default() -> Self {
        CoolingSettings {
            retry: RetrySettings::default(),
            profile: Profile::Smart,
            reset_zone: ResetZone::Pacific,
            default_retry_delay: Duration::from_secs(60),
            no_free_tier: Duration::from_secs(24 * 3600),
            model_forbidden: Duration::from_secs(24 * 3600),
            model_retired: Duration::from_secs(24 * 3600),
            throttle_base: Duration::from_secs(5),
            throttle_max: Duration::from_secs(300),
            connect_failure: Duration::from_secs(10),
            upstream_trouble: Duration::ZERO,
            dead_probation: Duration::from_secs(6 * 3600),
            billing_depleted: Duration::from_secs(6 * 3600),
            retry_empty_answers: true,
            seed: SeedDurations {
                auth: None,
                too_many_requests: Duration::from_secs(24 * 3600),
                unavailable: Duration::from_secs(24 * 3600),
                gateway: Duration::from_secs(300),
                other_5xx: Duration::from_secs(600),
            },
        }
    }
}

/// Reads knobs by name through `lookup` (the config store at the edge, a map in tests).
pub struct SettingsReader<F> {
    lookup: F,
}

impl<F: FnMut(&str) -> Option<String>> SettingsReader<F> {
    /// Reads through `lookup`.
    pub fn new(lookup: F) -> Self {
        SettingsReader { lookup }
    }

    /// The knobs every request needs.
    pub fn request(&mut self) -> Result<RequestSettings, SettingError> {
        let d = RequestSettings::default();
        let history_days = self.read("usage_counts", Some(d.history_days), parse_history)?;
        let usage_counts = history_days.is_some();
        let reset_zone =
            if usage_counts { self.read("daily_reset_zone", d.reset_zone, |v| v.parse())? } else { d.reset_zone };
        Ok(RequestSettings {
            max_body_bytes: self
                .read("max_body_bytes", d.max_body_bytes, |v| parse_count(v, 1024, 100 * 1024 * 1024))?,
            key_secrets: self.read("key_secrets", d.key_secrets, |v| parse_count(v, 1, 4))?,
            usage_counts,
            history_days: history_days.unwrap_or(0),
            reset_zone,
        })
    }

    /// `max_stream_duration`: how long a streamed answer may run before the proxy cuts it
    /// (`None`: never). Read only by a request whose answer streams.
    pub fn stream_limit(&mut self) -> Result<Option<Duration>, SettingError> {
        let limit = self.read("max_stream_duration", DEFAULT_STREAM_LIMIT, parse_duration)?;
        Ok(Some(limit).filter(|d| !d.is_zero()))
    }

    /// `agent_models`: the Gemini model a coding agent's model name means. Read only by the
    /// agents' endpoints (`/v1/messages`, `/v1/responses`, Anthropic's model list).
    pub fn agent_models(&mut self) -> Result<AgentModels, SettingError> {
        self.read("agent_models", AgentModels::default(), AgentModels::parse)
    }

    /// `max_upload_bytes`: the largest file an upload session may announce, and the largest
    /// piece of one (default and most: Google's 2 GB per file). Read only by uploads, whose
    /// bytes stream through and are never held (`max_body_bytes` does not apply to them).
    pub fn upload_limit(&mut self) -> Result<u64, SettingError> {
        let most = usize::try_from(MAX_UPLOAD_BYTES).unwrap_or(usize::MAX);
        self.read("max_upload_bytes", most, |v| parse_count(v, 1024, most)).map(|n| n as u64)
    }

    /// `rate_limiter`: where a client's `rpm` counts — `store` (the default: the shared
    /// state, across every POP) or `platform` (Fastly's Edge Rate Limiting: per POP,
    /// approximate). Read only for a client with `rpm`.
    pub fn limiter(&mut self) -> Result<Limiter, SettingError> {
        self.read("rate_limiter", Limiter::Store, |v| match v {
            "store" => Ok(Limiter::Store),
            "platform" => Ok(Limiter::Platform),
            _ => Err("expected store or platform".into()),
        })
    }

    /// The knobs a failure needs.
    pub fn cooling(&mut self) -> Result<CoolingSettings, SettingError> {
        let d = CoolingSettings::default();
        let profile = self.read("cooling_profile", d.profile, parse_profile)?;
        let seed = match profile {
            Profile::Seed => self.seed(&d.seed)?,
            Profile::Smart => d.seed.clone(),
        };
        Ok(CoolingSettings {
            retry: self.retry()?,
            profile,
            reset_zone: self.read("daily_reset_zone", d.reset_zone, |v| v.parse())?,
            default_retry_delay: self.duration("cool_default_retry_delay", d.default_retry_delay)?,
            no_free_tier: self.duration("cool_no_free_tier", d.no_free_tier)?,
            model_forbidden: self.duration("cool_model_forbidden", d.model_forbidden)?,
            model_retired: self.duration("cool_model_retired", d.model_retired)?,
            throttle_base: self.duration("cool_throttle_base", d.throttle_base)?,
            throttle_max: self.duration("cool_throttle_max", d.throttle_max)?,
            connect_failure: self.duration("cool_connect_failure", d.connect_failure)?,
            upstream_trouble: self.duration("cool_upstream_trouble", d.upstream_trouble)?,
            dead_probation: self.duration("dead_probation", d.dead_probation)?,
            billing_depleted: self.duration("cool_billing_depleted", d.billing_depleted)?,
            retry_empty_answers: self.read("retry_empty_answers", d.retry_empty_answers, parse_switch)?,
            seed,
        })
    }

    fn retry(&mut self) -> Result<RetrySettings, SettingError> {
        let d = RetrySettings::default();
        Ok(RetrySettings {
            strategy: self.read("strategy", d.strategy, parse_strategy)?,
            max_attempts: self.read("max_attempts", d.max_attempts, |v| parse_count(v, 1, 32))?,
            when_all_cooling: self.read("when_all_cooling", d.when_all_cooling, parse_when_all)?,
            jitter: self.read("cool_jitter_ms", d.jitter, parse_millis)?,
        })
    }

    fn seed(&mut self, d: &SeedDurations) -> Result<SeedDurations, SettingError> {
        Ok(SeedDurations {
            auth: self.read("seed_cool_401_403", d.auth, parse_optional_duration)?,
            too_many_requests: self.duration("seed_cool_429", d.too_many_requests)?,
            unavailable: self.duration("seed_cool_503", d.unavailable)?,
            gateway: self.duration("seed_cool_502_504", d.gateway)?,
            other_5xx: self.duration("seed_cool_5xx", d.other_5xx)?,
        })
    }

    fn duration(&mut self, name: &'static str, default: Duration) -> Result<Duration, SettingError> {
        self.read(name, default, parse_duration)
    }

    /// A knob's text as set (`None`: not set), for a machine that parses it itself.
    pub fn raw(&mut self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn read<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, SettingError> {
        let Some(raw) = (self.lookup)(name) else {
            return Ok(default);
        };
        let value = raw.trim();
        if value.is_empty() {
            return Ok(default);
        }
        parse(value).map_err(|problem| SettingError { name, value: raw.clone(), problem })
    }
}

fn parse_strategy(v: &str) -> Result<Strategy, String> {
    match v {
        "round-robin" | "round_robin" | "roundrobin" => Ok(Strategy::RoundRobin),
        "random" => Ok(Strategy::Random),
        _ => Err("expected round-robin or random".into()),
    }
}

fn parse_when_all(v: &str) -> Result<WhenAllCooling, String> {
    match v {
        "reject" | "429" => Ok(WhenAllCooling::Reject),
        "shortest-cooldown" | "shortest_cooldown" => Ok(WhenAllCooling::ShortestCooldown),
        _ => Err("expected reject or shortest-cooldown".into()),
    }
}

/// `usage_counts`: `on` (kept [`DEFAULT_HISTORY_DAYS`]), `off`, or on and kept this many days
/// (`90d`, 1 to 400).
fn parse_history(v: &str) -> Result<Option<u32>, String> {
    let Some(days) = v.strip_suffix('d') else {
        return parse_switch(v).map(|on| on.then_some(DEFAULT_HISTORY_DAYS));
    };
    match days.parse::<u32>() {
        Ok(days @ 1..=400) => Ok(Some(days)),
        _ => Err("expected on, off, or the days to keep the counts (1d to 400d)".into()),
    }
}

fn parse_switch(v: &str) -> Result<bool, String> {
    match v {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

fn parse_profile(v: &str) -> Result<Profile, String> {
    match v {
        "smart" => Ok(Profile::Smart),
        "seed" => Ok(Profile::Seed),
        _ => Err("expected smart or seed".into()),
    }
}

fn parse_count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = v.parse().map_err(|_| format!("expected a whole number from {min} to {max}"))?;
    if n < min || n > max {
        return Err(format!("expected a whole number from {min} to {max}"));
    }
    Ok(n)
}

fn parse_millis(v: &str) -> Result<Duration, String> {
    let ms: u64 = v.parse().map_err(|_| "expected milliseconds, e.g. 1000".to_string())?;
    within_bound(Duration::from_millis(ms))
}

/// `90`, `90s`, `15m`, `24h`, `2d` (a bare number is seconds), at most [`MAX_DURATION`].
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let problem = || "expected a duration such as 90, 90s, 15m, 24h or 2d".to_string();
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => v.split_at(at),
        None => (v, "s"),
    };
    let n: u64 = number.parse().map_err(|_| problem())?;
    let per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(problem()),
    };
    let seconds = n.checked_mul(per_unit).ok_or_else(too_long)?;
    within_bound(Duration::from_secs(seconds))
}

fn within_bound(duration: Duration) -> Result<Duration, String> {
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

fn too_long() -> String {
    format!("longer than the limit of {} days", MAX_DURATION.as_secs() / 86_400)
}

fn parse_optional_duration(v: &str) -> Result<Option<Duration>, String> {
    if v == "forever" || v == "never" {
        return Ok(None);
    }
    parse_duration(v).map(Some)
}

/// `agent_models`: which Gemini model a coding agent's model name means — `pattern=model`
/// pairs, comma-separated, tried in order: a name that contains the pattern (any case) gets
/// the model; `*` matches any name. A name starting `gemini-` is used as it is, and so is one no
/// pattern matches (Google then answers 404 for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentModels {
    pairs: Vec<(String, String)>,
}

/// Claude's families on the Gemini models nearest them, OpenAI's on the workhorse.
const DEFAULT_AGENT_MODELS: &str =
    "opus=gemini-3.1-pro-preview,sonnet=gemini-3.5-flash,haiku=gemini-3.5-flash-lite,gpt=gemini-3.5-flash";

impl Default for AgentModels {
    fn default() -> Self {
        AgentModels::parse(DEFAULT_AGENT_MODELS).unwrap_or(AgentModels { pairs: Vec::new() })
    }
}

impl AgentModels {
    /// Reads the knob's text.
    pub fn parse(text: &str) -> Result<AgentModels, String> {
        let mut pairs = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((pattern, model)) = pair.split_once('=') else {
                return Err(format!("`{pair}` is not pattern=model"));
            };
            let (pattern, model) = (pattern.trim().to_ascii_lowercase(), model.trim());
            if pattern.is_empty() || !crate::client::model::valid_model(model) {
                return Err(format!("`{pair}`: expected a pattern and a Gemini model name"));
            }
            pairs.push((pattern, model.to_string()));
        }
        Ok(AgentModels { pairs })
    }

    /// The Gemini model for the agent's model name `asked`.
    pub fn model_for<'m>(&'m self, asked: &'m str) -> &'m str {
        if asked.starts_with("gemini-") {
            return asked;
        }
        let lower = asked.to_ascii_lowercase();
        self.pairs
            .iter()
            .find(|(pattern, _)| pattern == "*" || lower.contains(pattern.as_str()))
            .map_or(asked, |(_, model)| model.as_str())
    }

    /// Anthropic's model list (`GET /v1/models` as Claude Code's gateway discovery reads it):
    /// `claude-<pattern>` for each pattern (the picker keeps only names starting `claude`), each
    /// naming the Gemini model it means; a model the client's `policy` does not allow is not
    /// listed.
    pub fn anthropic_list(&self, policy: Option<&crate::client::policy::Policy>) -> Vec<u8> {
        let allowed = |model: &str| policy.is_none_or(|p| p.allows(model));
        let data: Vec<serde_json::Value> = self
            .pairs
            .iter()
            .filter(|(pattern, model)| pattern != "*" && allowed(model))
            .map(|(pattern, model)| {
                let id = if pattern.starts_with("claude") { pattern.clone() } else { format!("claude-{pattern}") };
                serde_json::json!({"type": "model", "id": id, "display_name": format!("{model} (as {pattern})"),
                                   "created_at": "2026-01-01T00:00:00Z"})
            })
            .collect();
        let first = data.first().map(|m| m["id"].clone());
        let last = data.last().map(|m| m["id"].clone());
        let list = serde_json::json!({"data": data, "has_more": false, "first_id": first, "last_id": last});
        serde_json::to_vec(&list).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reader(pairs: &[(&str, &str)]) -> SettingsReader<impl FnMut(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SettingsReader::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn the_anthropic_list_names_what_each_family_means() {
        let models = AgentModels::parse("opus=gemini-3.1-pro-preview,claude-fable=gemini-3.5-flash,*=gemini-3.5-flash")
            .expect("parses");
        let policy = crate::client::policy::Policy::parse("app", r#"{"models":["gemini-3.1-*"]}"#).expect("reads");
        let list: serde_json::Value = serde_json::from_slice(&models.anthropic_list(Some(&policy))).expect("json");
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "the disallowed and `*` are not listed");
        assert_eq!(list["data"][0]["id"], "claude-opus");
        assert_eq!(models.model_for("claude-opus"), "gemini-3.1-pro-preview", "a listed name means its model");
        assert_eq!(list["first_id"], "claude-opus");
        let everything: serde_json::Value = serde_json::from_slice(&models.anthropic_list(None)).expect("json");
        assert_eq!(everything["data"].as_array().map(Vec::len), Some(2), "no policy: every pattern but `*`");
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(reader(&[]).request(), Ok(RequestSettings::default()));
        assert_eq!(reader(&[]).cooling(), Ok(CoolingSettings::default()));
        assert_eq!(reader(&[]).stream_limit(), Ok(Some(DEFAULT_STREAM_LIMIT)));
        assert_eq!(reader(&[("max_stream_duration", "0")]).stream_limit(), Ok(None));
        assert_eq!(reader(&[("max_stream_duration", "2h")]).stream_limit(), Ok(Some(Duration::from_secs(7200))));
        assert!(reader(&[("max_stream_duration", "soon")]).stream_limit().is_err());
    }

    #[test]
    fn reads_and_validates_values() {
        let knobs = [("strategy", "random"), ("max_attempts", "5"), ("when_all_cooling", "shortest-cooldown")];
        let r = reader(&knobs).cooling().expect("valid").retry;
        assert_eq!((r.strategy, r.max_attempts), (Strategy::Random, 5));
        assert_eq!(r.when_all_cooling, WhenAllCooling::ShortestCooldown);
        let err = reader(&[("max_attempts", "zero")]).cooling().expect_err("invalid");
        assert_eq!(err.name, "max_attempts");
        assert!(err.to_string().contains("proxy_settings.max_attempts"));
        assert!(reader(&[("max_attempts", "33")]).cooling().is_err());
        // The first attempt does not need them: a request reads them only past its first key.
        assert_eq!(reader(&[("max_attempts", "zero")]).request(), Ok(RequestSettings::default()));
        let err = reader(&[("max_body_bytes", "1")]).request().expect_err("below 1024");
        assert_eq!(err.name, "max_body_bytes");
        // `usage_counts`: a switch, or on and kept this many days.
        let kept = |v: &str| reader(&[("usage_counts", v)]).request().map(|r| (r.usage_counts, r.history_days));
        assert_eq!(kept("on"), Ok((true, DEFAULT_HISTORY_DAYS)));
        assert_eq!(kept("1"), Ok((true, DEFAULT_HISTORY_DAYS)));
        assert_eq!(kept("90d"), Ok((true, 90)));
        assert_eq!(kept("off"), Ok((false, 0)));
        assert!(kept("0d").is_err() && kept("401d").is_err() && kept("lots").is_err());
        assert_eq!(reader(&[("rate_limiter", "platform")]).limiter(), Ok(Limiter::Platform));
        assert!(reader(&[("rate_limiter", "erl")]).limiter().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(parse_duration("99999d"), Ok(Duration::from_secs(99_999 * 86_400)));
        assert!(parse_duration("213503982334602d").is_err_and(|e| e.contains("limit")));
        assert!(parse_duration("18446744073709552").is_err());
        assert!(parse_millis("18446744073709551615").is_err());
        let c = reader(&[("cooling_profile", "seed"), ("seed_cool_429", "1h"), ("seed_cool_401_403", "2d")])
            .cooling()
            .expect("valid");
        assert_eq!(c.profile, Profile::Seed);
        assert_eq!(c.seed.too_many_requests, Duration::from_secs(3600));
        assert_eq!(c.seed.auth, Some(Duration::from_secs(172_800)));
    }

    #[test]
    fn agent_models_map_by_family_and_pass_gemini_names() {
        let models = AgentModels::default();
        assert_eq!(models.model_for("claude-sonnet-4-6"), "gemini-3.5-flash");
        assert_eq!(models.model_for("claude-opus-4-7"), "gemini-3.1-pro-preview");
        assert_eq!(models.model_for("Claude-Haiku-4-5"), "gemini-3.5-flash-lite");
        assert_eq!(models.model_for("gemini-3.6-flash"), "gemini-3.6-flash");
        assert_eq!(models.model_for("llama"), "llama");
        let custom = AgentModels::parse("sonnet = gemini-3.6-flash, * = gemini-3.5-flash-lite").expect("reads");
        assert_eq!(custom.model_for("claude-sonnet-4-6"), "gemini-3.6-flash");
        assert_eq!(custom.model_for("anything"), "gemini-3.5-flash-lite");
        assert!(AgentModels::parse("sonnet").is_err());
        assert!(AgentModels::parse("sonnet=../x").is_err());
    }
}
