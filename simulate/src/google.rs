//! Google as a quota model: requests per minute per (project, model), in fixed windows; a
//! call over the quota gets Google's per-minute 429 (`QuotaFailure` `PerMinute`, the delay to
//! the window's end). `exhausted` of the projects, spread over the pool, have used their day
//! already: every call gets the per-day 429 (`PerDay`), as when a pool relearns a day's
//! refusals at once. Every refusal is logged with its time, to count the calls that came
//! after it on the same bucket (late hits).

use gemini_pool_core::Answer;
use std::collections::HashMap;

/// Google's quotas and latency.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// Requests per minute each project allows per model.
    pub rpm: u64,
    /// Length of a quota window, ms (60,000 like Google; shorter for quick runs).
    pub window_ms: u64,
    /// Time to a success, and to a refusal, ms.
    pub served_ms: u64,
    /// Time to a refusal, ms.
    pub refused_ms: u64,
    /// How many projects refuse every call for the day (`p<n>` with `n × 7919 mod projects`
    /// below it: spread over the pool, not one block of it).
    pub exhausted: usize,
    /// Projects in the pool (to spread the exhausted ones).
    pub projects: usize,
    /// The exhausted projects are one block instead, `p0` … (the keys of one age, spent
    /// together: a round-robin walk's worst case).
    pub in_one_block: bool,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            rpm: 3,
            window_ms: 60_000,
            served_ms: 400,
            refused_ms: 120,
            exhausted: 0,
            projects: 1,
            in_one_block: false,
        }
    }
}

/// The modelled Google.
pub struct Google {
    config: GoogleConfig,
    used: HashMap<(String, String, u64), u64>,
    /// When each (project, model, window) was first refused.
    pub refused_at: HashMap<(String, String, u64), u64>,
    /// Calls, successes.
    pub calls: u64,
    /// Successes.
    pub served: u64,
    /// Calls on a bucket already refused in its window, by how long after the first refusal
    /// (ms).
    pub late: Vec<u64>,
}

impl Google {
    /// A fresh quota model.
    pub fn new(config: GoogleConfig) -> Self {
        Google { config, used: HashMap::new(), refused_at: HashMap::new(), calls: 0, served: 0, late: Vec::new() }
    }

    /// The answer to a call on `project` for `model` arriving at `now`, and when it is back.
    pub fn call(&mut self, project: &str, model: &str, now: u64) -> (Answer, u64) {
        self.calls += 1;
        let window = now / self.config.window_ms;
        let bucket = (project.to_string(), model.to_string(), window);
        if let Some(first) = self.refused_at.get(&bucket) {
            self.late.push(now - first);
        }
        let number = project.strip_prefix('p').and_then(|n| n.parse::<usize>().ok());
        let spread = |n: usize| if self.config.in_one_block { n } else { n * 7919 % self.config.projects.max(1) };
        let spent_today = number.is_some_and(|n| spread(n) < self.config.exhausted);
        if spent_today {
            self.refused_at.entry(bucket).or_insert(now);
            return (Answer::Error { status: 429, body: quota_429("Day", model, 20, 0.0) }, self.config.refused_ms);
        }
        let used = self.used.entry(bucket.clone()).or_default();
        if *used < self.config.rpm {
            *used += 1;
            self.served += 1;
            return (Answer::Served, self.config.served_ms);
        }
        self.refused_at.entry(bucket).or_insert(now);
        let retry_s = ((window + 1) * self.config.window_ms - now) as f64 / 1000.0;
        (
            Answer::Error { status: 429, body: quota_429("Minute", model, self.config.rpm, retry_s) },
            self.config.refused_ms,
        )
    }

    /// Successes Google could have given in `duration_ms` to `projects` projects on one model
    /// (those whose day is spent give none).
    pub fn capacity(&self, projects: usize, duration_ms: u64) -> u64 {
        let windows = duration_ms.div_ceil(self.config.window_ms);
        let serving = projects.saturating_sub(self.config.exhausted) as u64;
        windows.saturating_mul(serving).saturating_mul(self.config.rpm)
    }
}

/// Google's 2026 quota 429 body, `per` `Minute` or `Day`.
fn quota_429(per: &str, model: &str, limit: u64, retry_s: f64) -> Vec<u8> {
    format!(
        r#"{{"error":{{"code":429,"message":"You exceeded your current quota.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: {limit}, model: {model}\nPlease retry in {retry_s:.3}s.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaId":"GenerateRequestsPer{per}PerProjectPerModel-FreeTier","quotaDimensions":{{"model":"{model}"}}}}]}}]}}}}"#
    )
    .into_bytes()
}
