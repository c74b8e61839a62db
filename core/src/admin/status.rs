//! The `/v1/status` report: the seed's shape (`status`, `timestamp`, `keyPool{…}`,
//! `version`) built from the shared cooling state, so every instance gives the same answer.
//! Keys appear only as masks (last four characters); admins also see fingerprints and project
//! names (a fingerprint would let a client confirm a guessed key offline). A key listed twice
//! counts once. Bounded by construction: at most [`MAX_MODEL_ITEMS`] model items are read.

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::client::policy::Policy;
use crate::decide::limits::Gate;
use crate::decide::machine::{Answer, Machine, Step};
use crate::pool::keys::{ApiKey, KeyPool};
use crate::pool::names::MarkName;
use crate::pool::pick::Strategy;
use crate::settings::{CoolingSettings, Limiter, Profile, SettingsReader};
use crate::state::clock::rfc3339_millis;
use crate::state::failures::{recent as recent_failures, Failure, ITEM as FAILURES_ITEM};
use crate::state::items::{cooling_for, Item, Mark};
use crate::state::marks::Marks;
use crate::state::usage::Usage;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The `version` field.
const VERSION: &str = concat!("gemini-edge-pool/", env!("CARGO_PKG_VERSION"));

/// The most `model/<model>` items a status report reads (each is a store read); past it the
/// report says how many it left out. Items exist only for models Google answered about.
pub const MAX_MODEL_ITEMS: usize = 100;

/// One part's stored state: its `keys` item and each model's item.
#[derive(Debug, Clone, Default)]
pub struct PartMarks {
    /// The `keys` item.
    pub keys: Marks,
    /// Each model's item.
    pub models: Vec<(String, Marks)>,
}

/// Everything the report is built from.
pub struct StatusInput<'a, 'k> {
    /// The whole pool.
    pub pool: &'a KeyPool<'k>,
    /// What the operator calls each part (secret or variable names), by part index.
    pub part_names: &'a [&'a str],
    /// Each part's state, by part index.
    pub parts: &'a [PartMarks],
    /// Model items left unread past [`MAX_MODEL_ITEMS`].
    pub models_omitted: usize,
    /// The strategy in force.
    pub strategy: Strategy,
    /// The cooling knobs in force.
    pub cooling: &'a CoolingSettings,
    /// The label of the client token that asked.
    pub client: &'a str,
    /// Unix ms.
    pub now_ms: u64,
    /// For an admin token: today's usage (and the report lists every key).
    pub admin: Option<AdminInput<'a>>,
    /// The limits of the clients shown (a client token: its own; an admin: every client in
    /// today's usage with a limit), each with what its limit item says.
    pub limits: &'a [Gate],
}

/// What only an admin sees.
pub struct AdminInput<'a> {
    /// The quota day (`YYYY-MM-DD` in `daily_reset_zone`).
    pub day: &'a str,
    /// Its counts.
    pub usage: &'a Usage,
    /// The recent failures, newest first.
    pub failures: &'a [Failure],
}

/// The `/v1/status` answer (serialize it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    status: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    limits: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recent_failures: Option<Vec<Value>>,
    key_pool: KeyPoolReport,
    cooling: CoolingReport,
    auth: AuthReport,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyPoolReport {
    total_keys: usize,
    /// Entries in the key lists that are not keys, skipped.
    ignored_entries: usize,
    /// Entries listed again (counted, tried and checked once).
    duplicate_entries: usize,
    /// Neither dead nor cooling for any model.
    available_keys: usize,
    /// Dead (Google rejects the key itself).
    failed_keys: usize,
    /// Alive but cooling for at least one model.
    cooling_keys: usize,
    strategy: &'static str,
    cooling_details: Vec<CoolingDetail>,
    failed_details: Vec<FailedDetail>,
    /// Per model with cooling state: how many keys can serve it now.
    models: BTreeMap<String, ModelReport>,
    /// Models with cooling state past [`MAX_MODEL_ITEMS`], not shown.
    #[serde(skip_serializing_if = "is_zero")]
    models_omitted: usize,
    /// Every key, in pool order (admins only: the console draws them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<KeyEntry>>,
    /// Where the entries that are not keys are, and why (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_entries: Option<Vec<RejectedEntry>>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RejectedEntry {
    secret: String,
    line: usize,
    problem: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CoolingDetail {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// `null` when the whole key cools (seed profile).
    model: Option<String>,
    reason: String,
    until: String,
    remaining_seconds: u64,
    remaining_minutes: u64,
    remaining_hours: u64,
    remaining_display: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailedDetail {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    reason: String,
    since: String,
    /// When the key gets a probation request (`null`: never).
    probation_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelReport {
    available_keys: usize,
    cooling_keys: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CoolingReport {
    profile: &'static str,
    daily_reset_zone: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthReport {
    client: String,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    key: String,
    fingerprint: String,
    project: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageReport {
    day: String,
    keys: Vec<UsageLine>,
    clients: Vec<UsageLine>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    model: String,
    ok: u64,
    failed: u64,
    /// Tokens Google reported (prompt, answer and thinking).
    tokens: u64,
}

impl StatusInput<'_, '_> {
    /// The report, from the pool and every part's stored state.
    pub fn report(&self) -> StatusReport {
        report(self)
    }
}

fn report(input: &StatusInput<'_, '_>) -> StatusReport {
    let now = input.now_ms;
    let mut details = Vec::new();
    let mut failed_details = Vec::new();
    let mut models: BTreeMap<String, ModelReport> = BTreeMap::new();
    let (mut available, mut failed, mut cooling) = (0, 0, 0);

    let nothing = PartMarks::default();
    let admin = input.admin.is_some();
    let model_names: std::collections::BTreeSet<&String> =
        input.parts.iter().flat_map(|p| p.models.iter().map(|(m, _)| m)).collect();
    for model in model_names {
        models.insert(model.clone(), ModelReport { available_keys: 0, cooling_keys: 0 });
    }
    for key in input.pool.distinct() {
        let part = input.parts.get(key.at.list).unwrap_or(&nothing);
        if let Some(mark) = part.keys.get(&MarkName::key(&key)).filter(|m| m.dead) {
            failed += 1;
            failed_details.push(failed_detail(&key, &mark, admin));
            continue;
        }
        let whole_key = cooling_for(&part.keys, &key, now);
        if let Some(mark) = &whole_key {
            details.push(cooling_detail(&key, None, mark, now, admin));
        }
        let mut cooling_now = whole_key.is_some();
        for (model, entry) in models.iter_mut() {
            let marks = part.models.iter().find(|(m, _)| m == model).map(|(_, marks)| marks);
            match marks.and_then(|marks| cooling_for(marks, &key, now)) {
                Some(mark) => {
                    cooling_now = true;
                    entry.cooling_keys += 1;
                    details.push(cooling_detail(&key, Some(model), &mark, now, admin));
                }
                None if whole_key.is_none() => entry.available_keys += 1,
                None => entry.cooling_keys += 1,
            }
        }
        if cooling_now {
            cooling += 1;
        } else {
            available += 1;
        }
    }

    let some_model_blocked = models.values().any(|m| m.available_keys == 0);
    let healthy = failed == 0 && available + cooling > 0 && !some_model_blocked;
    StatusReport {
        status: if healthy { "healthy" } else { "degraded" },
        timestamp: rfc3339_millis(now),
        key_pool: KeyPoolReport {
            total_keys: available + failed + cooling,
            ignored_entries: input.pool.rejected().count(),
            duplicate_entries: input.pool.iter().count() - (available + failed + cooling),
            available_keys: available,
            failed_keys: failed,
            cooling_keys: cooling,
            strategy: match input.strategy {
                Strategy::RoundRobin => "round-robin",
                Strategy::Random => "random",
            },
            cooling_details: details,
            failed_details,
            models,
            models_omitted: input.models_omitted,
            keys: admin.then(|| {
                let entry = |k: ApiKey<'_>| KeyEntry {
                    key: k.mask(),
                    fingerprint: k.fingerprint.to_string(),
                    project: k.project.map(str::to_string),
                };
                input.pool.distinct().map(entry).collect()
            }),
            rejected_entries: admin.then(|| rejected_entries(input)),
        },
        cooling: CoolingReport {
            profile: match input.cooling.profile {
                Profile::Smart => "smart",
                Profile::Seed => "seed",
            },
            daily_reset_zone: input.cooling.reset_zone.to_string(),
        },
        auth: AuthReport {
            client: input.client.to_string(),
            role: if input.admin.is_some() { "admin" } else { "client" },
        },
        usage: input.admin.as_ref().map(|admin| usage_report(input.pool, admin)),
        limits: input.limits.iter().map(Gate::to_json).collect(),
        recent_failures: input.admin.as_ref().map(|admin| failures_report(input.pool, admin.failures)),
        version: VERSION,
    }
}

/// Where the entries that are not keys are, and why (never their text).
fn rejected_entries(input: &StatusInput<'_, '_>) -> Vec<RejectedEntry> {
    let name = |part: usize| input.part_names.get(part).map_or_else(|| format!("part {}", part + 1), |n| n.to_string());
    input
        .pool
        .rejected()
        .map(|r| RejectedEntry { secret: name(r.part), line: r.line, problem: r.problem.to_string() })
        .collect()
}

/// Log lines for the entries that are not keys (at most `max`, then how many more).
pub(crate) fn rejected_lines(pool: &KeyPool<'_>, part_names: &[&str], max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut more = 0;
    for r in pool.rejected() {
        if lines.len() == max {
            more += 1;
            continue;
        }
        let name = part_names.get(r.part).copied().unwrap_or("?");
        lines.push(format!("key list {name}, line {}: not a key: {}; skipped", r.line, r.problem));
    }
    if more > 0 {
        lines.push(format!("… and {more} more entries that are not keys"));
    }
    lines
}

/// Today's counts, keys named by mask (keys that left the pool by fingerprint only).
fn usage_report(pool: &KeyPool<'_>, admin: &AdminInput<'_>) -> UsageReport {
    let masks: std::collections::HashMap<_, _> = pool.iter().map(|k| (k.fingerprint, k.mask())).collect();
    let usage = admin.usage.clone().capped(crate::state::usage::MAX_MODELS);
    let keys = usage
        .keys
        .iter()
        .map(|((fp, model), c)| UsageLine {
            key: Some(masks.get(fp).cloned().unwrap_or_else(|| "…".to_string())),
            fingerprint: Some(fp.to_string()),
            client: None,
            model: model.clone(),
            ok: c.ok,
            failed: c.failed,
            tokens: c.tokens.total(),
        })
        .collect();
    let clients = usage
        .clients
        .iter()
        .map(|((client, model), c)| UsageLine {
            key: None,
            fingerprint: None,
            client: Some(client.clone()),
            model: model.clone(),
            ok: c.ok,
            failed: c.failed,
            tokens: c.tokens.total(),
        })
        .collect();
    UsageReport { day: admin.day.to_string(), keys, clients }
}

/// The recent failures, each key named by mask too (admins).
fn failures_report(pool: &KeyPool<'_>, failures: &[Failure]) -> Vec<Value> {
    let masks: std::collections::HashMap<_, _> = pool.iter().map(|k| (k.fingerprint, k.mask())).collect();
    failures
        .iter()
        .map(|f| {
            let mut shown = f.to_json();
            shown["key"] = Value::String(masks.get(&f.fingerprint).cloned().unwrap_or_else(|| "…".to_string()));
            shown
        })
        .collect()
}

fn cooling_detail(key: &ApiKey<'_>, model: Option<&str>, mark: &Mark, now: u64, admin: bool) -> CoolingDetail {
    let remaining = mark.until_ms.saturating_sub(now).div_ceil(1000);
    CoolingDetail {
        key: key.mask(),
        fingerprint: admin.then(|| key.fingerprint.to_string()),
        project: key.project.filter(|_| admin).map(str::to_string),
        model: model.map(str::to_string),
        reason: mark.reason.to_string(),
        until: rfc3339_millis(mark.until_ms),
        remaining_seconds: remaining,
        remaining_minutes: remaining.div_ceil(60),
        remaining_hours: remaining / 3600,
        remaining_display: display(remaining),
    }
}

fn failed_detail(key: &ApiKey<'_>, mark: &Mark, admin: bool) -> FailedDetail {
    FailedDetail {
        key: key.mask(),
        fingerprint: admin.then(|| key.fingerprint.to_string()),
        reason: mark.reason.to_string(),
        since: rfc3339_millis(mark.since_ms),
        probation_at: (mark.until_ms != u64::MAX).then(|| rfc3339_millis(mark.until_ms)),
    }
}

/// `23h59m`, `4m10s`, `42s`.
pub(crate) fn display(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Where a [`Status`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusAt {
    /// Fetch every key list.
    Fetch,
    /// Read the cooling knobs (the strategy, the profile, the reset zone).
    Configure,
    /// List the model items.
    List,
    /// Read every part's items.
    Read,
    /// An admin: read today's counts and the recent failures.
    Counts,
    /// An admin: read the policies of the clients in today's counts.
    Policies,
    /// Read knob `rate_limiter` (a limit shown has `rpm`).
    Knob,
    /// Read the limit items of the clients shown.
    Limits,
    /// Build the report.
    Report,
}

/// `/v1/status` as a machine: every key list, the cooling knobs, every part's items (at most
/// [`MAX_MODEL_ITEMS`] model items, by name), for an admin today's counts and recent failures,
/// the limits of the clients shown — then the report as JSON. The edge reads; the choices
/// (which items, how many, in which order, what an admin sees) are here.
pub struct Status<'a> {
    caller: Caller,
    /// The caller's own policy (a client token sees its own limits).
    policy: Option<Policy>,
    part_names: Vec<String>,
    lists: Vec<Option<&'a [u8]>>,
    now_ms: u64,
    /// The edge has a per-client rate counter (`rate_limiter = platform` is real there).
    platform_counter: bool,
    at: StatusAt,
    cooling: Option<CoolingSettings>,
    models: Vec<Item>,
    models_omitted: usize,
    parts: Vec<PartMarks>,
    usage: Option<Usage>,
    failures: Vec<Failure>,
    limited: Vec<(String, Policy)>,
    limiter: Limiter,
    gates: Vec<Gate>,
}

impl<'a> Status<'a> {
    /// The status `caller` (with its `policy`) asks for, of a pool of key lists named
    /// `part_names`, at `now_ms`; `platform_counter`: the edge has a per-client rate counter.
    pub fn new(
        caller: &Caller,
        policy: Option<Policy>,
        part_names: &[&str],
        now_ms: u64,
        platform_counter: bool,
    ) -> Self {
        Status {
            caller: caller.clone(),
            policy,
            part_names: part_names.iter().map(|n| n.to_string()).collect(),
            lists: vec![None; part_names.len().max(1)],
            now_ms,
            platform_counter,
            at: StatusAt::Fetch,
            cooling: None,
            models: Vec::new(),
            models_omitted: 0,
            parts: vec![PartMarks::default(); part_names.len().max(1)],
            usage: None,
            failures: Vec::new(),
            limited: Vec::new(),
            limiter: Limiter::Store,
            gates: Vec::new(),
        }
    }

    /// The clients whose limits are shown: the caller's own, or (an admin) every client in
    /// today's counts whose policy has a limit.
    fn limits_shown(&mut self) -> StatusAt {
        if self.caller.admin {
            return StatusAt::Policies;
        }
        self.limited =
            self.policy.iter().filter(|p| p.limits.any()).map(|p| (self.caller.label.clone(), p.clone())).collect();
        StatusAt::Knob
    }

    /// The report's bytes (an empty pool is a configuration error, as for a request).
    fn report(&self) -> Result<Vec<u8>, ErrorReply> {
        let pool = KeyPool::new(self.lists.iter().map(|l| l.unwrap_or_default()));
        if pool.is_empty() {
            let first = self.part_names.first().map_or("keys", String::as_str);
            return Err(ErrorReply::config(format!("secret `{first}` holds no API keys")));
        }
        let cooling = self.cooling.clone().unwrap_or_default();
        let names: Vec<&str> = self.part_names.iter().map(String::as_str).collect();
        let day = Usage::day(self.now_ms, cooling.reset_zone);
        let input = StatusInput {
            pool: &pool,
            part_names: &names,
            parts: &self.parts,
            models_omitted: self.models_omitted,
            strategy: cooling.retry.strategy,
            cooling: &cooling,
            client: &self.caller.label,
            now_ms: self.now_ms,
            admin: self.usage.as_ref().map(|usage| AdminInput { day: &day, usage, failures: &self.failures }),
            limits: &self.gates,
        };
        Ok(serde_json::to_vec_pretty(&input.report()).unwrap_or_default())
    }
}

impl<'a> Machine<'a> for Status<'a> {
    type Done = Result<Vec<u8>, ErrorReply>;

    fn step(&mut self, _now_ms: u64) -> Step<'a, Self::Done> {
        loop {
            match self.at {
                StatusAt::Fetch => match self.lists.iter().position(Option::is_none) {
                    Some(part) => return Step::Fetch(part),
                    None => self.at = StatusAt::Configure,
                },
                StatusAt::Configure => match self.cooling {
                    Some(_) => self.at = StatusAt::List,
                    None => return Step::Configure,
                },
                StatusAt::List => {
                    self.at = StatusAt::Read;
                    return Step::List(Item::model_prefix().to_string());
                }
                StatusAt::Read => {
                    let mut items: Vec<Item> = (0..self.lists.len()).map(Item::keys).collect();
                    items.extend(self.models.iter().cloned());
                    self.at = if self.caller.admin { StatusAt::Counts } else { self.limits_shown() };
                    return Step::Read(items);
                }
                StatusAt::Counts => {
                    let day = Usage::day(self.now_ms, self.cooling.as_ref().map(|c| c.reset_zone).unwrap_or_default());
                    let mut names: Vec<String> = (0..Usage::SHARDS).map(|shard| Usage::item(&day, shard)).collect();
                    names.push(FAILURES_ITEM.to_string());
                    self.usage = Some(Usage::default());
                    self.at = StatusAt::Policies;
                    return Step::Look(names);
                }
                StatusAt::Policies => {
                    let labels = self.usage.as_ref().map(Usage::client_labels).unwrap_or_default();
                    self.at = StatusAt::Knob;
                    if !labels.is_empty() {
                        self.limited = labels.into_iter().map(|label| (label, Policy::default())).collect();
                        return Step::Policies(self.limited.iter().map(|(label, _)| label.clone()).collect());
                    }
                }
                StatusAt::Knob => {
                    self.at = StatusAt::Limits;
                    if self.limited.iter().any(|(_, p)| p.limits.rpm.is_some()) {
                        return Step::Knob("rate_limiter");
                    }
                }
                StatusAt::Limits => {
                    let zone = self.cooling.as_ref().map(|c| c.reset_zone).unwrap_or_default();
                    self.gates = self
                        .limited
                        .iter()
                        .map(|(label, p)| Gate::new(p.limits, self.limiter, label, self.now_ms, zone))
                        .collect();
                    self.at = StatusAt::Report;
                    let items: Vec<String> = self.gates.iter().filter_map(Gate::store_item).collect();
                    if !items.is_empty() {
                        return Step::Look(items);
                    }
                }
                StatusAt::Report => return Step::Done(self.report()),
            }
        }
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        if let Some(slot) = self.lists.get_mut(part) {
            *slot = Some(bytes);
        }
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        self.cooling = Some(cooling.clone());
    }

    fn listed(&mut self, names: Vec<String>) {
        let parts = self.lists.len();
        let mut models: Vec<Item> =
            names.iter().filter_map(|name| Item::from_kv_key(name)).filter(|item| item.part < parts).collect();
        models.sort();
        models.dedup();
        self.models_omitted = models.len().saturating_sub(MAX_MODEL_ITEMS);
        models.truncate(MAX_MODEL_ITEMS);
        self.models = models;
    }

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        for (item, marks) in items {
            let Some(part) = self.parts.get_mut(item.part) else { continue };
            match item.model {
                None => part.keys = marks,
                Some(model) => part.models.push((model, marks)),
            }
        }
    }

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        match self.at {
            // Today's counts and the recent failures (the last one read).
            StatusAt::Policies => {
                let mut records = records;
                let failures = records.pop().flatten().unwrap_or_default();
                self.failures = recent_failures(&failures);
                let usage = self.usage.get_or_insert_with(Usage::default);
                for bytes in records.into_iter().flatten() {
                    usage.add(&bytes);
                }
            }
            // The limit items, in the order of the gates that have one.
            StatusAt::Report => {
                let mut read = records.into_iter();
                for gate in self.gates.iter_mut().filter(|g| g.store_item().is_some()) {
                    gate.store_read(read.next().flatten().as_deref());
                }
            }
            _ => {}
        }
    }

    fn policies(&mut self, policies: Vec<Option<Policy>>) {
        let labels = std::mem::take(&mut self.limited);
        self.limited = labels
            .into_iter()
            .zip(policies)
            .filter_map(|((label, _), policy)| policy.filter(|p| p.limits.any()).map(|p| (label, p)))
            .collect();
    }

    fn knob(&mut self, value: Option<String>) {
        let read = SettingsReader::new(|_: &str| value.clone()).limiter().unwrap_or_default();
        // Where the edge has no per-client counter, `rpm` counts in the store whatever is set.
        self.limiter = if self.platform_counter { read } else { Limiter::Store };
    }

    fn answered(&mut self, _: Vec<Answer>) {}

    fn written(&mut self) {}

    fn refused(&mut self, _: Vec<usize>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::reason::Reason;
    use crate::pool::names::Bucket;
    use crate::state::items::Entry;

    fn mark(until_ms: u64, reason: Reason, dead: bool) -> Mark {
        Mark { until_ms, reason, dead, strikes: 0, since_ms: 0 }
    }

    #[test]
    fn counts_and_details() {
        let pool = KeyPool::new([
            "AIzaAAAAAAAAAAAAAAAAAAAAAAAAAA1111\nAIzaBBBBBBBBBBBBBBBBBBBBBBBBBB2222\nmy team:AIzaCCCCCCCCCCCCCCCCCCCCCCCCCC3333\nmy team:AIzaDDDDDDDDDDDDDDDDDDDDDDDDDD4444",
        ]);
        let keys_of: Vec<_> = pool.iter().collect();
        let mut keys = Marks::default();
        keys.apply(MarkName::key(&keys_of[0]), Entry::Set(mark(u64::MAX, Reason::KeyInvalid, true)));
        let mut pro = Marks::default();
        let team = MarkName::of(Bucket::of(&keys_of[2]));
        pro.apply(team, Entry::Set(mark(1_000 + 86_340_000, Reason::PerDayQuota, false)));
        let parts = [PartMarks { keys, models: vec![("gemini-3.1-pro-preview".to_string(), pro)] }];
        let cooling = CoolingSettings::default();
        let input = StatusInput {
            pool: &pool,
            part_names: &["keys"],
            parts: &parts,
            models_omitted: 0,
            strategy: Strategy::RoundRobin,
            cooling: &cooling,
            client: "tests",
            now_ms: 1_000,
            admin: None,
            limits: &[],
        };
        let r = report(&input);
        let p = &r.key_pool;
        assert_eq!((p.total_keys, p.available_keys, p.failed_keys, p.cooling_keys), (4, 1, 1, 2));
        assert_eq!(r.status, "degraded");
        assert_eq!(p.cooling_details.len(), 2);
        assert_eq!(p.cooling_details[0].remaining_display, "23h59m");
        assert_eq!(p.cooling_details[0].model.as_deref(), Some("gemini-3.1-pro-preview"));
        assert_eq!(p.failed_details[0].key, "…1111");
        assert_eq!(p.failed_details[0].probation_at, None);
        assert_eq!(p.models["gemini-3.1-pro-preview"].available_keys, 1);
        let json = serde_json::to_string(&r).expect("json");
        assert!(!json.contains("AIza"), "{json}");
        // A client sees no fingerprint and no project name; an admin does.
        assert!(!json.contains("fingerprint") && !json.contains("my team"), "{json}");
        let usage = Usage::default();
        let admin =
            StatusInput { admin: Some(AdminInput { day: "2026-01-01", usage: &usage, failures: &[] }), ..input };
        let r = report(&admin);
        assert_eq!(r.key_pool.cooling_details[0].project.as_deref(), Some("my team"));
        assert!(r.key_pool.failed_details[0].fingerprint.is_some());
    }

    #[test]
    fn entries_that_are_not_keys_and_keys_listed_twice() {
        let text = "AIzaSyGOOD00000000000000000000000001\n:\na\nAIza\nAIzaSyGOOD00000000000000000000000001\n# c\n";
        let long = format!("{}\nteam:\n", "x".repeat(100_000));
        let pool = KeyPool::new([text, long.as_str()]);
        let cooling = CoolingSettings::default();
        let usage = Usage::default();
        let input = StatusInput {
            pool: &pool,
            part_names: &["keys", "keys_2"],
            parts: &[],
            models_omitted: 0,
            strategy: Strategy::RoundRobin,
            cooling: &cooling,
            client: "ops",
            now_ms: 1_000,
            admin: Some(AdminInput { day: "2026-01-01", usage: &usage, failures: &[] }),
            limits: &[],
        };
        let r = report(&input);
        let p = &r.key_pool;
        assert_eq!((p.total_keys, p.duplicate_entries, p.ignored_entries), (1, 1, 5));
        let rejected = p.rejected_entries.as_ref().expect("admin");
        let places: Vec<(&str, usize)> = rejected.iter().map(|r| (r.secret.as_str(), r.line)).collect();
        assert_eq!(places, [("keys", 2), ("keys", 3), ("keys", 4), ("keys_2", 1), ("keys_2", 2)]);
        assert!(rejected[3].problem.contains("too long") && rejected[0].problem.contains("too short"));
        let json = serde_json::to_string(&r).expect("json");
        assert!(!json.contains("xxxx") && !json.contains("GOOD"), "no entry's text: {json}");
        let lines = rejected_lines(&pool, &["keys", "keys_2"], 2);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0],
            "key list keys, line 2: not a key: too short for a key (0 characters; at least 30); skipped"
        );
        assert_eq!(lines[2], "… and 3 more entries that are not keys");
    }

    #[test]
    fn displays() {
        assert_eq!(display(86_400), "24h0m");
        assert_eq!(display(250), "4m10s");
        assert_eq!(display(42), "42s");
    }
}
