//! The `/v1/status` report: the seed's shape (`status`, `timestamp`, `keyPool{…}`,
//! `version`) built from the shared cooling state, so every instance gives the same answer.
//! Keys appear only as masks (last four characters) and fingerprints.

use crate::clock::rfc3339_millis;
use crate::keys::{ApiKey, KeyPool};
use crate::marks::Marks;
use crate::names::MarkName;
use crate::settings::{CoolingSettings, Profile, Strategy};
use crate::state::{cooling_for, Mark};
use crate::usage::Usage;
use serde::Serialize;
use std::collections::BTreeMap;

/// The `version` field.
const VERSION: &str = concat!("gemini-edge-pool/", env!("CARGO_PKG_VERSION"));

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
    /// Each part's state, by part index.
    pub parts: &'a [PartMarks],
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
}

/// What only an admin sees.
pub struct AdminInput<'a> {
    /// The quota day (`YYYY-MM-DD` in `daily_reset_zone`).
    pub day: &'a str,
    /// Its counts.
    pub usage: &'a Usage,
}

/// The `/v1/status` answer (serialize it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    status: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageReport>,
    key_pool: KeyPoolReport,
    cooling: CoolingReport,
    auth: AuthReport,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyPoolReport {
    total_keys: usize,
    /// Entries in the secret that cannot be a key (not visible ASCII), skipped.
    ignored_entries: usize,
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
    /// Every key, in pool order (admins only: the console draws them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<KeyEntry>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CoolingDetail {
    key: String,
    fingerprint: String,
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
    fingerprint: String,
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
}

/// The report, from the pool and every part's stored state.
pub fn report(input: &StatusInput<'_, '_>) -> StatusReport {
    let now = input.now_ms;
    let mut details = Vec::new();
    let mut failed_details = Vec::new();
    let mut models: BTreeMap<String, ModelReport> = BTreeMap::new();
    let (mut available, mut failed, mut cooling) = (0, 0, 0);

    let nothing = PartMarks::default();
    let model_names: std::collections::BTreeSet<&String> =
        input.parts.iter().flat_map(|p| p.models.iter().map(|(m, _)| m)).collect();
    for model in model_names {
        models.insert(model.clone(), ModelReport { available_keys: 0, cooling_keys: 0 });
    }
    for key in input.pool.iter() {
        let part = input.parts.get(key.at.list).unwrap_or(&nothing);
        if let Some(mark) = part.keys.get(&MarkName::key(&key)).filter(|m| m.dead) {
            failed += 1;
            failed_details.push(failed_detail(&key, &mark));
            continue;
        }
        let whole_key = cooling_for(&part.keys, &key, now);
        if let Some(mark) = &whole_key {
            details.push(cooling_detail(&key, None, mark, now));
        }
        let mut cooling_now = whole_key.is_some();
        for (model, entry) in models.iter_mut() {
            let marks = part.models.iter().find(|(m, _)| m == model).map(|(_, marks)| marks);
            match marks.and_then(|marks| cooling_for(marks, &key, now)) {
                Some(mark) => {
                    cooling_now = true;
                    entry.cooling_keys += 1;
                    details.push(cooling_detail(&key, Some(model), &mark, now));
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
            ignored_entries: input.pool.ignored(),
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
            keys: input.admin.as_ref().map(|_| {
                let entry = |k: ApiKey<'_>| KeyEntry {
                    key: k.mask(),
                    fingerprint: k.fingerprint.to_string(),
                    project: k.project.map(str::to_string),
                };
                input.pool.iter().map(entry).collect()
            }),
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
        version: VERSION,
    }
}

/// Today's counts, keys named by mask (keys that left the pool by fingerprint only).
fn usage_report(pool: &KeyPool<'_>, admin: &AdminInput<'_>) -> UsageReport {
    let masks: std::collections::HashMap<_, _> = pool.iter().map(|k| (k.fingerprint, k.mask())).collect();
    let keys = admin
        .usage
        .keys
        .iter()
        .map(|((fp, model), c)| UsageLine {
            key: Some(masks.get(fp).cloned().unwrap_or_else(|| "…".to_string())),
            fingerprint: Some(fp.to_string()),
            client: None,
            model: model.clone(),
            ok: c.ok,
            failed: c.failed,
        })
        .collect();
    let clients = admin
        .usage
        .clients
        .iter()
        .map(|((client, model), c)| UsageLine {
            key: None,
            fingerprint: None,
            client: Some(client.clone()),
            model: model.clone(),
            ok: c.ok,
            failed: c.failed,
        })
        .collect();
    UsageReport { day: admin.day.to_string(), keys, clients }
}

fn cooling_detail(key: &ApiKey<'_>, model: Option<&str>, mark: &Mark, now: u64) -> CoolingDetail {
    let remaining = mark.until_ms.saturating_sub(now).div_ceil(1000);
    CoolingDetail {
        key: key.mask(),
        fingerprint: key.fingerprint.to_string(),
        project: key.project.map(str::to_string),
        model: model.map(str::to_string),
        reason: mark.reason.to_string(),
        until: rfc3339_millis(mark.until_ms),
        remaining_seconds: remaining,
        remaining_minutes: remaining.div_ceil(60),
        remaining_hours: remaining / 3600,
        remaining_display: display(remaining),
    }
}

fn failed_detail(key: &ApiKey<'_>, mark: &Mark) -> FailedDetail {
    FailedDetail {
        key: key.mask(),
        fingerprint: key.fingerprint.to_string(),
        reason: mark.reason.to_string(),
        since: rfc3339_millis(mark.since_ms),
        probation_at: (mark.until_ms != u64::MAX).then(|| rfc3339_millis(mark.until_ms)),
    }
}

/// `23h59m`, `4m10s`, `42s`.
pub fn display(seconds: u64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Bucket;
    use crate::reason::Reason;
    use crate::state::Entry;

    fn mark(until_ms: u64, reason: Reason, dead: bool) -> Mark {
        Mark { until_ms, reason, dead, strikes: 0, since_ms: 0 }
    }

    #[test]
    fn counts_and_details() {
        let pool = KeyPool::new([
            "AIzaAAAAAAAAAAAA1111\nAIzaBBBBBBBBBBBB2222\nmy team:AIzaCCCCCCCCCCCC3333\nmy team:AIzaDDDDDDDDDDDD4444",
        ]);
        let keys_of: Vec<_> = pool.iter().collect();
        let mut keys = Marks::default();
        keys.apply(MarkName::key(&keys_of[0]), Entry::Set(mark(u64::MAX, Reason::KeyInvalid, true)));
        let mut pro = Marks::default();
        let team = MarkName::of(Bucket::of(&keys_of[2]));
        pro.apply(team, Entry::Set(mark(1_000 + 86_340_000, Reason::PerDayQuota, false)));
        let parts = [PartMarks { keys, models: vec![("gemini-2.5-pro".to_string(), pro)] }];
        let cooling = CoolingSettings::default();
        let input = StatusInput {
            pool: &pool,
            parts: &parts,
            strategy: Strategy::RoundRobin,
            cooling: &cooling,
            client: "tests",
            now_ms: 1_000,
            admin: None,
        };
        let r = report(&input);
        let p = &r.key_pool;
        assert_eq!((p.total_keys, p.available_keys, p.failed_keys, p.cooling_keys), (4, 1, 1, 2));
        assert_eq!(r.status, "degraded");
        assert_eq!(p.cooling_details.len(), 2);
        assert_eq!(p.cooling_details[0].remaining_display, "23h59m");
        assert_eq!(p.cooling_details[0].model.as_deref(), Some("gemini-2.5-pro"));
        assert_eq!(p.cooling_details[0].project.as_deref(), Some("my team"));
        assert_eq!(p.failed_details[0].key, "…1111");
        assert_eq!(p.failed_details[0].probation_at, None);
        assert_eq!(p.models["gemini-2.5-pro"].available_keys, 1);
        let json = serde_json::to_string(&r).expect("json");
        assert!(!json.contains("AIza"), "{json}");
    }

    #[test]
    fn displays() {
        assert_eq!(display(86_400), "24h0m");
        assert_eq!(display(250), "4m10s");
        assert_eq!(display(42), "42s");
    }
}
