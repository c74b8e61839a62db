//! `GET /v1/usage?from=&to=&days=&by=&format=`: the usage counts of past quota days, grouped.
//!
//! - `from`, `to`: quota days (`YYYY-MM-DD`, in `daily_reset_zone`); by default the last 7
//!   days to today. At most [`MAX_DAYS`] days per query, none older than `usage_history_days`.
//! - `days`: instead of `from`, the last N quota days to `to` — counted in the proxy's zone, so
//!   a browser whose own date is already tomorrow (or still yesterday) asks for the right days.
//! - `by`: any of `day`, `model`, `client`, `key` (comma-separated; default `day`). `key`
//!   (the key's fingerprint) is for admins, and cannot be combined with `client` (a key's
//!   lines do not say which client sent them).
//! - `format=csv` (or `Accept: text/csv`): CSV instead of JSON.
//!
//! An admin token sees every client; a client token sees only its own label's lines. The edge
//! reads every shard of every day asked ([`UsageQuery::items`]) and hands the bytes back.

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::client::query::query_param;
use crate::state::clock::{civil_from_days, day_text, days_from_civil, ResetZone};
use crate::state::usage::{Count, Usage, SHARDS};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Days one query may span.
pub(crate) const MAX_DAYS: i64 = 31;

/// What a row is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Day,
    Model,
    Client,
    Key,
}

impl Dim {
    fn name(self) -> &'static str {
        match self {
            Dim::Day => "day",
            Dim::Model => "model",
            Dim::Client => "client",
            Dim::Key => "key",
        }
    }
}

/// One `/v1/usage` query, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// The quota days asked, oldest first (`YYYY-MM-DD`).
    pub days: Vec<String>,
    by: Vec<Dim>,
    /// Answer in CSV.
    pub csv: bool,
    /// Only this client's lines (a client token); `None`: every client (an admin).
    client: Option<String>,
}

impl UsageQuery {
    /// Reads the query of `caller`'s request at `now_ms` (quota days in `zone`, kept
    /// `keep_days`); `wants_csv`: the client's `Accept` asks for CSV.
    pub fn parse(
        query: Option<&str>,
        caller: &Caller,
        now_ms: u64,
        zone: ResetZone,
        keep_days: u32,
        wants_csv: bool,
    ) -> Result<UsageQuery, ErrorReply> {
        let today = day_number(&crate::state::clock::day_of(now_ms, zone)).unwrap_or(0);
        let date = |name: &str, default: i64| match query_param(query, name) {
            None | Some("") => Ok(default),
            Some(text) => {
                day_number(text).ok_or_else(|| bad(format!("`{name}` must be a date YYYY-MM-DD, not {text:?}")))
            }
        };
        let to = date("to", today)?.min(today);
        let from = match (query_param(query, "days"), query_param(query, "from")) {
            (None | Some(""), _) => date("from", to - 6)?,
            (Some(_), Some(f)) if !f.is_empty() => return Err(bad("give `from` or `days`, not both".into())),
            (Some(text), _) => match text.parse::<i64>() {
                Ok(n) if (1..=MAX_DAYS).contains(&n) => to - n + 1,
                _ => return Err(bad(format!("`days` must be a number from 1 to {MAX_DAYS}, not {text:?}"))),
            },
        };
        let oldest = today - i64::from(keep_days.max(1)) + 1;
        if from > to {
            return Err(bad("`from` is after `to`".into()));
        }
        if to - from + 1 > MAX_DAYS {
            return Err(bad(format!("at most {MAX_DAYS} days per query")));
        }
        let days = (from.max(oldest)..=to).map(day_text).collect();
        let by = dims(query_param(query, "by").unwrap_or("day"), caller.admin)?;
        let csv = match query_param(query, "format") {
            Some("csv") => true,
            Some("json") => false,
            None => wants_csv,
            Some(other) => return Err(bad(format!("`format` must be json or csv, not {other:?}"))),
        };
        let client = (!caller.admin).then(|| caller.label.clone());
        Ok(UsageQuery { days, by, csv, client })
    }

    /// The store items to read, every shard of every day, in order, each with its shard
    /// number (Workers keep each usage shard in an object of its own).
    pub fn items(&self) -> Vec<(String, usize)> {
        self.days.iter().flat_map(|day| (0..SHARDS).map(move |shard| (Usage::item(day, shard), shard))).collect()
    }

    /// The answer from the items as read (in [`items`](Self::items)' order): its content type
    /// and body.
    pub fn answer(&self, read: &[Option<Vec<u8>>]) -> (&'static str, Vec<u8>) {
        let rows = self.rows(read);
        if self.csv {
            return ("text/csv; charset=utf-8", self.csv(&rows).into_bytes());
        }
        let rows: Vec<Value> = rows.iter().map(|(dims, count)| self.json_row(dims, count)).collect();
        let body = json!({
            "from": self.days.first(),
            "to": self.days.last(),
            "by": self.by.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "rows": rows,
        });
        ("application/json; charset=utf-8", serde_json::to_vec_pretty(&body).unwrap_or_default())
    }

    /// Rows: the values of the `by` dimensions, and their count.
    fn rows(&self, read: &[Option<Vec<u8>>]) -> BTreeMap<Vec<String>, Count> {
        let mut rows: BTreeMap<Vec<String>, Count> = BTreeMap::new();
        for (day, shards) in self.days.iter().zip(read.chunks(SHARDS)) {
            let mut usage = Usage::default();
            shards.iter().flatten().for_each(|bytes| usage.add(bytes));
            let by_key = self.by.contains(&Dim::Key);
            let lines: Vec<(String, &str, &Count)> = match by_key {
                true => usage.keys.iter().map(|((fp, model), c)| (fp.to_string(), model.as_str(), c)).collect(),
                false => usage.clients.iter().map(|((client, model), c)| (client.clone(), model.as_str(), c)).collect(),
            };
            for (who, model, count) in lines {
                if !by_key && self.client.as_ref().is_some_and(|own| *own != who) {
                    continue;
                }
                let dims = self
                    .by
                    .iter()
                    .map(|dim| match dim {
                        Dim::Day => day.clone(),
                        Dim::Model => model.to_string(),
                        Dim::Client | Dim::Key => who.clone(),
                    })
                    .collect();
                let row = rows.entry(dims).or_default();
                row.ok += count.ok;
                row.failed += count.failed;
                row.tokens.add(count.tokens);
            }
        }
        rows
    }

    fn json_row(&self, dims: &[String], count: &Count) -> Value {
        let mut row = Map::new();
        for (dim, value) in self.by.iter().zip(dims) {
            row.insert(dim.name().to_string(), json!(value));
        }
        for (name, value) in numbers(count) {
            row.insert(name.to_string(), json!(value));
        }
        Value::Object(row)
    }

    fn csv(&self, rows: &BTreeMap<Vec<String>, Count>) -> String {
        let mut out: Vec<String> = self.by.iter().map(|d| d.name().to_string()).collect();
        out.extend(numbers(&Count::default()).iter().map(|(name, _)| name.to_string()));
        let mut text = out.join(",") + "\n";
        for (dims, count) in rows {
            let mut fields: Vec<String> = dims.iter().map(|v| csv_field(v)).collect();
            fields.extend(numbers(count).iter().map(|(_, n)| n.to_string()));
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        text
    }
}

/// A row's numbers, named.
fn numbers(count: &Count) -> [(&'static str, u64); 8] {
    let t = count.tokens;
    [
        ("requests", count.ok + count.failed),
        ("ok", count.ok),
        ("failed", count.failed),
        ("prompt_tokens", t.prompt),
        ("completion_tokens", t.completion),
        ("thinking_tokens", t.thinking),
        ("cached_tokens", t.cached),
        ("total_tokens", t.total()),
    ]
}

/// A CSV field, quoted if it must be (a label may hold commas or quotes). A field that a
/// spreadsheet would run as a formula is prefixed with `'`.
fn csv_field(value: &str) -> String {
    let value = match value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{value}"),
        false => value.to_string(),
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn dims(text: &str, admin: bool) -> Result<Vec<Dim>, ErrorReply> {
    let mut dims = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let dim = match name {
            "day" => Dim::Day,
            "model" => Dim::Model,
            "client" => Dim::Client,
            "key" if admin => Dim::Key,
            "key" => return Err(ErrorReply::admin_required()),
            other => return Err(bad(format!("`by` takes day, model, client, key; not {other:?}"))),
        };
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    if dims.contains(&Dim::Key) && dims.contains(&Dim::Client) {
        return Err(bad("`by` cannot hold both key and client: a key's counts do not say which client".into()));
    }
    Ok(if dims.is_empty() { vec![Dim::Day] } else { dims })
}

fn bad(message: String) -> ErrorReply {
    ErrorReply::bad_request("invalid_query", message)
}

fn day_number(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let n = days_from_civil(y, m, d);
    (civil_from_days(n) == (y, m, d)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_768_478_400_000; // 2026-01-15 12:00 UTC
    const UTC: ResetZone = ResetZone::Fixed(0);

    fn admin() -> Caller {
        Caller { label: "ops".into(), admin: true }
    }

    fn client(label: &str) -> Caller {
        Caller { label: label.into(), admin: false }
    }

    #[test]
    fn days_default_to_the_last_week_and_stay_within_the_history() {
        let q = UsageQuery::parse(None, &admin(), NOW, UTC, 30, false).expect("reads");
        assert_eq!((q.days.first().map(String::as_str), q.days.len()), (Some("2026-01-09"), 7));
        assert_eq!(q.items().len(), 7 * SHARDS);
        let q = UsageQuery::parse(Some("from=2026-01-01&to=2026-01-20"), &admin(), NOW, UTC, 3, false).expect("reads");
        assert_eq!(q.days, ["2026-01-13", "2026-01-14", "2026-01-15"], "kept 3 days; nothing after today");
        let q = UsageQuery::parse(Some("days=14"), &admin(), NOW, UTC, 30, false).expect("reads");
        assert_eq!(
            (q.days.first().map(String::as_str), q.days.last().map(String::as_str)),
            (Some("2026-01-02"), Some("2026-01-15"))
        );
        for bad in [
            "from=2026-02-30",
            "from=yesterday",
            "from=2026-01-15&to=2026-01-01",
            "from=2025-01-01",
            "by=week",
            "by=key,client",
            "format=xml",
            "days=0",
            "days=99",
            "days=week",
            "days=3&from=2026-01-10",
        ] {
            let e = UsageQuery::parse(Some(bad), &admin(), NOW, UTC, 30, false).expect_err(bad);
            assert_eq!(e.status, 400, "{bad}");
        }
        let e = UsageQuery::parse(Some("by=key"), &client("app"), NOW, UTC, 30, false).expect_err("admins only");
        assert_eq!(e.status, 403);
    }

    #[test]
    fn a_client_sees_its_own_rows_and_an_admin_every_one() {
        let day = b"c app m1 2 1 10 5 0 0\nc other m1 7 0 70 7 0 0\nk 00000000000000aa m1 9 1 80 12 0 0\n".to_vec();
        let mut read = vec![None; 7 * SHARDS];
        read[6 * SHARDS + 3] = Some(day);
        let own = UsageQuery::parse(Some("by=client,model"), &client("app"), NOW, UTC, 30, false).expect("reads");
        let (kind, body) = own.answer(&read);
        assert!(kind.starts_with("application/json"));
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["rows"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["rows"][0]["client"], "app");
        assert_eq!(
            (body["rows"][0]["requests"].as_u64(), body["rows"][0]["total_tokens"].as_u64()),
            (Some(3), Some(15))
        );
        let all = UsageQuery::parse(Some("by=key&format=csv"), &admin(), NOW, UTC, 30, false).expect("reads");
        let (kind, body) = all.answer(&read);
        assert!(kind.starts_with("text/csv"));
        assert_eq!(
            String::from_utf8_lossy(&body),
            "key,requests,ok,failed,prompt_tokens,completion_tokens,thinking_tokens,cached_tokens,total_tokens\n\
             00000000000000aa,10,9,1,80,12,0,0,92\n"
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("\t=cmd()"), "'\t=cmd()");
        assert_eq!(csv_field("\r=cmd()"), "\"'\r=cmd()\"");
    }
}
