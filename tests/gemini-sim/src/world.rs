//! The simulated Google: known keys and their projects, per-project per-model quotas
//! (RPM in windows, RPD), per-key scripted behaviours, a global 503 burst, and a log of
//! every request (which key served it, what Google answered).

use crate::google::{self, GoogleError, Style};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Config {
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Quotas per project name (a key without a project is its own project, named by its label).
    #[serde(default)]
    pub projects: HashMap<String, ProjectConfig>,
    #[serde(default)]
    pub behaviors: Vec<Behavior>,
    /// Delay before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default = "default_chunks")]
    pub stream_chunks: usize,
    #[serde(default)]
    pub chunk_delay_ms: u64,
    /// Length of a quota "minute" in seconds (60 like Google; shorter for quick benchmarks).
    #[serde(default = "default_minute")]
    pub minute_s: f64,
    #[serde(default = "default_page")]
    pub models_page_size: usize,
    #[serde(default)]
    pub style: Style,
    /// Upload URLs carry the key that started the session (`&key=…`), as Google's do for a
    /// caller that sent `?key=`: a proxy must not hand them on as they are.
    #[serde(default)]
    pub upload_url_key: bool,
}

fn default_chunks() -> usize {
    5
}
fn default_minute() -> f64 {
    60.0
}
fn default_page() -> usize {
    50
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyConfig {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct ProjectConfig {
    /// Requests per minute by model (`*` for any other model).
    #[serde(default)]
    pub rpm: HashMap<String, u64>,
    #[serde(default)]
    pub rpd: HashMap<String, u64>,
    /// Models this project's tier may not use at all (`limit: 0`).
    #[serde(default)]
    pub limit_zero: Vec<String>,
    /// Models retired for this project (too young to keep them): a 404 that counts nothing.
    #[serde(default)]
    pub retired: Vec<String>,
}

/// A scripted answer for one key (or `*`), optionally one model, a number of times.
#[derive(Debug, Clone, Deserialize)]
pub struct Behavior {
    pub key: String,
    pub kind: String,
    #[serde(default)]
    pub model: Option<String>,
    /// How many requests it applies to (absent: all).
    #[serde(default)]
    pub times: Option<u64>,
    /// How many matching requests pass before it applies (a fault in the middle of a session).
    #[serde(default)]
    pub skip: u64,
    #[serde(default)]
    pub style: Option<Style>,
    #[serde(default)]
    pub retry_delay_s: Option<f64>,
    /// `latency`: extra delay; `stream_error` / `stream_truncate`: chunks before the fault.
    #[serde(default)]
    pub ms: u64,
    #[serde(default)]
    pub after_chunks: usize,
    /// `huge_error`: the body's size.
    #[serde(default)]
    pub bytes: Option<usize>,
}

/// Behaviours that change how a successful answer is delivered.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub extra_latency_ms: u64,
    pub stream_error_after: Option<usize>,
    pub stream_truncate_after: Option<usize>,
    pub hang: bool,
    /// `empty` / `thoughts_only`: a 200 with nothing for the client (reported of Google's API
    /// by users of every proxy: gemini-balance #326, gpt-load #75, new-api #638);
    /// `malformed_call`: a 200 whose candidate ends `MALFORMED_FUNCTION_CALL` with no parts (the
    /// model wrote a call it could not form; reported by agent proxies).
    pub empty: Option<String>,
    /// `function_call`: the model answers with a function call whose arguments name the model.
    pub function_call: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub t: f64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Label of the key that was used, `none`, or `unknown:<what was sent>`.
    pub key: String,
    pub key_via: String,
    pub model: Option<String>,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct WindowStat {
    pub used: u64,
    pub exhausted_at: Option<f64>,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct BucketStat {
    pub rpm: Option<u64>,
    pub rpd: Option<u64>,
    pub limit_zero: bool,
    pub day_used: u64,
    pub day_exhausted_at: Option<f64>,
    pub windows: BTreeMap<u64, WindowStat>,
}

pub struct World {
    pub config: Config,
    /// Interactions, files, cached contents: per project.
    pub resources: crate::resources::Resources,
    /// Key text → index in `config.keys`.
    index: HashMap<String, usize>,
    remaining: Vec<Option<u64>>,
    /// Per behaviour: matching requests still to pass before it applies.
    skipping: Vec<u64>,
    pub started: f64,
    burst_until: f64,
    burst_status: u16,
    buckets: BTreeMap<(String, String), BucketStat>,
    pub log: Vec<LogEntry>,
}

pub fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// What Google does with a request.
pub enum Verdict {
    Ok(Delivery),
    Error(GoogleError),
}

impl World {
    pub fn new(config: Config) -> Self {
        let remaining = config.behaviors.iter().map(|b| b.times).collect();
        let skipping = config.behaviors.iter().map(|b| b.skip).collect();
        let index = config.keys.iter().enumerate().map(|(i, k)| (k.key.clone(), i)).collect();
        World {
            config,
            resources: Default::default(),
            index,
            remaining,
            skipping,
            started: now_s(),
            burst_until: 0.0,
            burst_status: 503,
            buckets: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub fn add_behavior(&mut self, behavior: Behavior) {
        self.remaining.push(behavior.times);
        self.skipping.push(behavior.skip);
        self.config.behaviors.push(behavior);
    }

    pub fn burst(&mut self, seconds: f64, status: u16) {
        self.burst_until = now_s() + seconds;
        self.burst_status = status;
    }

    /// The project a key belongs to (a key without one is its own, named by its label).
    pub fn project_of(&self, key: &str) -> Option<String> {
        self.label_of(key).map(|k| k.project.clone().unwrap_or_else(|| k.label.clone()))
    }

    pub fn label_of(&self, key: &str) -> Option<&KeyConfig> {
        self.index.get(key).and_then(|&i| self.config.keys.get(i))
    }

    /// Decides the answer for `key` on `model`; `counts` says whether it uses generation quota;
    /// `refused` is Google's answer to the body, if it refuses it (after the key is checked,
    /// before any quota is spent).
    pub fn admit(
        &mut self,
        key: Option<&str>,
        model: Option<&str>,
        counts: bool,
        refused: Option<GoogleError>,
    ) -> Verdict {
        let Some(key) = key else { return Verdict::Error(google::unregistered()) };
        let Some(known) = self.label_of(key).cloned() else { return Verdict::Error(google::key_invalid()) };
        let mut delivery = Delivery::default();
        if let Some(error) = self.scripted(&known, model, &mut delivery) {
            return Verdict::Error(error);
        }
        if let Some(error) = refused {
            return Verdict::Error(error);
        }
        let now = now_s();
        if now < self.burst_until {
            return Verdict::Error(match self.burst_status {
                500 => google::internal(),
                504 => google::deadline(),
                _ => google::overloaded(),
            });
        }
        if let (true, Some(model)) = (counts, model) {
            let project = known.project.clone().unwrap_or_else(|| known.label.clone());
            if let Some(error) = self.charge(&project, model, now) {
                return Verdict::Error(error);
            }
        }
        Verdict::Ok(delivery)
    }

    fn scripted(&mut self, key: &KeyConfig, model: Option<&str>, delivery: &mut Delivery) -> Option<GoogleError> {
        let style = self.config.style;
        for i in 0..self.config.behaviors.len() {
            let b = &self.config.behaviors[i];
            let key_matches = b.key == "*" || b.key == key.key || b.key == key.label;
            let model_matches = b.model.as_deref().is_none_or(|m| Some(m) == model);
            if !key_matches || !model_matches || self.remaining[i] == Some(0) {
                continue;
            }
            if self.skipping[i] > 0 {
                self.skipping[i] -= 1;
                continue;
            }
            if let Some(left) = self.remaining[i].as_mut() {
                *left -= 1;
            }
            let model_name = model.unwrap_or("gemini-3.5-flash");
            let style = b.style.unwrap_or(style);
            let error = match b.kind.as_str() {
                "latency" => {
                    delivery.extra_latency_ms += b.ms;
                    None
                }
                "stream_error" => {
                    delivery.stream_error_after = Some(b.after_chunks);
                    None
                }
                "stream_truncate" => {
                    delivery.stream_truncate_after = Some(b.after_chunks);
                    None
                }
                "hang" => {
                    delivery.hang = true;
                    None
                }
                "empty" | "thoughts_only" | "malformed_call" => {
                    delivery.empty = Some(b.kind.clone());
                    None
                }
                "function_call" => {
                    delivery.function_call = true;
                    None
                }
                "invalid" => Some(google::key_invalid()),
                "expired" => Some(google::key_expired()),
                "leaked" => Some(google::leaked()),
                "suspended" => Some(google::suspended(&key.key)),
                "blocked" => Some(google::service_blocked()),
                "service_disabled" => Some(google::service_disabled()),
                "project_denied" => Some(google::project_denied()),
                "caller_permission" => Some(google::caller_permission()),
                "unauthenticated" => Some(google::unauthenticated()),
                "per_minute" => Some(google::quota(style, "Minute", model_name, 5, b.retry_delay_s.unwrap_or(30.0))),
                "per_day" => Some(google::quota(style, "Day", model_name, 20, b.retry_delay_s.unwrap_or(22.0))),
                "limit_zero" => Some(google::quota(style, "Day", model_name, 0, b.retry_delay_s.unwrap_or(31.0))),
                "no_free_tier" => Some(google::no_free_tier(model_name)),
                "bare_429" => Some(google::bare_429()),
                "overloaded" => Some(google::overloaded()),
                "high_demand" => Some(google::high_demand()),
                "internal" => Some(google::internal()),
                "deadline" => Some(google::deadline()),
                "location" => Some(google::location()),
                "billing" => Some(google::billing_depleted()),
                "access_token_type_unsupported" => Some(google::access_token_type_unsupported()),
                "credentials_missing" => Some(google::credentials_missing()),
                "multiple_credentials" => Some(google::multiple_credentials()),
                "redirect" => Some(google::redirect()),
                "quote_key_escaped" => Some(google::key_quoted_escaped(&key.key)),
                "huge_error" => Some(google::huge(b.bytes.unwrap_or(64 << 20))),
                other => Some(google::bad_request(&format!("simulator: unknown behaviour {other}"))),
            };
            if error.is_some() {
                return error;
            }
        }
        None
    }

    /// Counts one request against (project, model); the 429 if a quota is used up.
    fn charge(&mut self, project: &str, model: &str, now: f64) -> Option<GoogleError> {
        let config = self.config.projects.get(project).cloned().unwrap_or_default();
        let limit_of = |map: &HashMap<String, u64>| map.get(model).or_else(|| map.get("*")).copied();
        let style = self.config.style;
        let minute = self.config.minute_s;
        let window = ((now - self.started) / minute).floor().max(0.0) as u64;
        if config.retired.iter().any(|m| m == model) {
            return Some(google::retired(model));
        }
        let bucket = self.buckets.entry((project.to_string(), model.to_string())).or_default();
        bucket.rpm = limit_of(&config.rpm);
        bucket.rpd = limit_of(&config.rpd);
        bucket.limit_zero = config.limit_zero.iter().any(|m| m == model);
        if bucket.limit_zero {
            return Some(google::quota(style, "Day", model, 0, 31.0 + (now.fract() * 10.0)));
        }
        if let Some(rpd) = bucket.rpd {
            if bucket.day_used >= rpd {
                // Daily 429s carry short retry delays (docs/google-errors.md).
                return Some(google::quota(style, "Day", model, rpd, 22.0));
            }
        }
        let stat = bucket.windows.entry(window).or_default();
        if let Some(rpm) = bucket.rpm {
            if stat.used >= rpm {
                let window_end = self.started + (window + 1) as f64 * minute;
                return Some(google::quota(style, "Minute", model, rpm, (window_end - now).max(0.001)));
            }
        }
        stat.used += 1;
        if bucket.rpm.is_some_and(|rpm| stat.used >= rpm) {
            stat.exhausted_at = Some(now);
        }
        bucket.day_used += 1;
        if bucket.rpd.is_some_and(|rpd| bucket.day_used >= rpd) {
            bucket.day_exhausted_at = Some(now);
        }
        None
    }

    pub fn timeline(&self) -> Value {
        let buckets: Vec<Value> = self
            .buckets
            .iter()
            .map(|((project, model), stat)| json!({"project": project, "model": model, "stat": stat}))
            .collect();
        let keys: Vec<Value> = self
            .config
            .keys
            .iter()
            .map(|k| json!({"label": k.label, "project": k.project.clone().unwrap_or_else(|| k.label.clone())}))
            .collect();
        json!({"started": self.started, "minute_s": self.config.minute_s, "buckets": buckets, "keys": keys,
               "projects": self.config.projects.iter().map(|(name, p)| (name.clone(), json!({
                   "rpm": p.rpm, "rpd": p.rpd, "limit_zero": p.limit_zero}))).collect::<BTreeMap<_, _>>()})
    }
}
