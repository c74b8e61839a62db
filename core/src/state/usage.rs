//! Usage counts for the operator: requests and tokens per (key, model) and per (client,
//! model), by quota day, kept `usage_history_days` (30 by default) for `/v1/usage`.
//!
//! The day is the quota day: it ends at midnight in `daily_reset_zone`, like Google's daily
//! quotas. Counts live in KV items of their own, `usage/<day>/<shard>`, never in the cooling
//! items: a request appends one group of lines to one of [`SHARDS`] shards *after the client
//! has its response* (so counting never delays an answer), each line
//! `k <fingerprint> <model> <ok> <failed>` or `c <client> <model> <ok> <failed>` (client
//! labels escaped by [`crate::pool::names::escape`]), followed by the tokens Google reported
//! (`<prompt> <completion> <thinking> <cached>`) on the line of the key that served and the
//! client's. Reading adds the lines up.
//!
//! The shard is the one of the first key the request tried, so a shard holds the lines of
//! one eighth of the pool's keys: its size, and what an append or a compaction costs, does not
//! grow with the pool beyond that (writes spread over the shards as traffic spreads over the
//! keys). A writer that reads its shard (one in [`COMPACT_CHECK_ONE_IN`]) compacts it into one
//! line per name once [`COMPACT_AFTER_LINES`] lines were appended since the last compaction
//! (a compacted item starts with `= <lines>`), with a compare-and-swap, so nothing is lost.
//! Every append sets the item's TTL to `usage_history_days` (at least the end of the next
//! day): old days disappear on their own.
//!
//! Counts are approximate under contention in production (KV is eventually consistent across
//! POPs and an append may be throttled); they never touch the cooling state.
//!
//! **Bounded by construction.** Clients choose model names, so a name counts as itself only
//! if Google accepted the request ([`crate::decide::attempts::Attempts::counted_model`]); otherwise
//! the line says [`OTHER_MODEL`]. And a compaction, like every reading, keeps at most
//! [`MAX_MODELS`] names (the busiest), folding the rest into [`OTHER_MODEL`].

use crate::google::tokens::Tokens;
use crate::pool::keys::{ApiKey, Fingerprint};
use crate::pool::names::{escape, unescape};
use crate::pool::rng::Rng;
use crate::state::clock::{day_of, ttl_secs, ResetZone};
use crate::state::failures::{self, Failure};
use crate::state::index;
use crate::state::limit_entries::TokenItem;
use crate::state::limit_item;
use std::collections::BTreeMap;

/// Shards per day.
pub(crate) const SHARDS: usize = 8;
/// The name counts go under when Google did not accept the model a request named, or when
/// a day had more than [`MAX_MODELS`] names (it cannot be a model id: those start with a
/// letter or digit).
pub const OTHER_MODEL: &str = "(other)";
/// Distinct model names a compacted shard, or a reading of a day, keeps.
pub(crate) const MAX_MODELS: usize = 32;
/// Lines appended since the last compaction after which a shard is compacted again.
pub(crate) const COMPACT_AFTER_LINES: usize = 200;
/// One writer in this many reads its shard to see whether to compact it.
pub(crate) const COMPACT_CHECK_ONE_IN: usize = 16;

/// Successes, failures and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Answered by Google with a success.
    pub ok: u64,
    /// Failed (an attempt with this key; or a request the client got an error for).
    pub failed: u64,
    /// Tokens Google reported.
    pub tokens: Tokens,
}

/// A day's counts, added up from its items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// By key fingerprint and model.
    pub keys: BTreeMap<(Fingerprint, String), Count>,
    /// By client label and model.
    pub clients: BTreeMap<(String, String), Count>,
}

/// The KV key of a day's shard.
fn item_name(day: &str, shard: usize) -> String {
    ["usage/", day, "/", itoa::Buffer::new().format(shard)].concat()
}

/// Seconds an append keeps its item: `keep_days` (at least until the end of the next quota day).
pub(crate) fn history_ttl_secs(now_ms: u64, zone: ResetZone, keep_days: u32) -> u64 {
    ttl_secs(now_ms, zone).max(u64::from(keep_days) * 86_400)
}

/// The lines one request appends: each key it tried (and whether that attempt succeeded), and
/// the client (whether it got a success); `tokens` go on the serving key's line and the client's.
pub(crate) fn lines(
    keys: &[(Fingerprint, bool)],
    client: &str,
    model: Option<&str>,
    served: bool,
    tokens: Tokens,
) -> String {
    let model = model.unwrap_or("-");
    let mut out = String::with_capacity((keys.len() + 1) * (30 + model.len()) + client.len() * 3);
    for (fingerprint, ok) in keys {
        let tokens = if *ok { tokens } else { Tokens::default() };
        fingerprint.with_hex(|hex| line(&mut out, 'k', hex, model, *ok, tokens));
    }
    line(&mut out, 'c', &escape(client), model, served, tokens);
    out
}

/// `<kind> <name> <model> <ok> <failed>[ <prompt> <completion> <thinking> <cached>]\n`, one
/// success or one failure.
fn line(out: &mut String, kind: char, name: &str, model: &str, ok: bool, tokens: Tokens) {
    out.push(kind);
    for field in [name, model, if ok { "1 0" } else { "0 1" }] {
        out.push(' ');
        out.push_str(field);
    }
    push_token_fields(out, tokens);
    out.push('\n');
}

/// One request's counts, appended once the client has its answer: the usage lines (to the
/// shard of the first key it tried; one request in [`COMPACT_CHECK_ONE_IN`] reads the shard
/// back to compact it) and, for a client with a daily token limit, its tokens in its limit
/// item ([`crate::decide::limits`]). The edge sets [`tokens`](Self::tokens) once the answer
/// has passed, then writes [`appends`](Self::appends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAppend {
    /// The quota day ([`crate::state::clock::day_of`]).
    pub day: String,
    /// The shard: the first tried key's (see [`shard_of`]).
    pub shard: usize,
    /// The item's time to live (see [`history_ttl_secs`]).
    pub ttl_secs: u64,
    /// Read the shard back after appending, to compact it if it is long.
    pub check: bool,
    /// The tokens Google reported for the answer the client got.
    pub tokens: Tokens,
    keys: Vec<(Fingerprint, bool)>,
    client: String,
    model: Option<String>,
    served: bool,
    /// Where the client's tokens count, when they count against a limit, and now.
    limit: Option<(TokenItem, u64)>,
    /// The usage lines are appended (`usage_counts` is on).
    usage: bool,
    /// The request's failed attempts, for the recent-failures list.
    failures: String,
}

/// One append after the answer: bytes to add to an item, how long it lives, and whether to
/// read it back to compact it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// The item.
    pub item: String,
    /// The bytes appended.
    pub bytes: Vec<u8>,
    /// Its time to live.
    pub ttl_secs: u64,
    /// Read it back and compact it (with a compare-and-swap) if due.
    pub compact: Option<Compaction>,
    /// The usage shard it is (`None`: a client's limit item).
    pub shard: Option<usize>,
    /// It may wait in a [`UsageBatch`](crate::state::batch::UsageBatch): usage lines and
    /// failures may, a client's limit tokens may not (its next request's gate reads them).
    pub may_wait: bool,
}

/// How an item read back is compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// A usage shard ([`Usage::compacted`]).
    Usage,
    /// A client's limit item, in this minute ([`limit_item::compacted`]).
    Limit(u64),
    /// The recent-failures list ([`failures::compacted`]).
    Failures,
    /// A client's index of what it made, at this time (unix seconds: [`index::compacted`]).
    Index(u64),
}

impl Append {
    /// The item's bytes compacted, if due.
    pub fn compacted(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        match self.compact? {
            Compaction::Usage => compacted(bytes),
            Compaction::Limit(minute) => limit_item::compacted(bytes, minute),
            Compaction::Failures => failures::compacted(bytes),
            Compaction::Index(now_secs) => index::compacted(bytes, now_secs),
        }
    }
}

impl UsageAppend {
    /// The counts of a request that tried `attempts` for `client` (`served`: it got a
    /// success), at `now_ms` in the quota day of `zone`, kept `keep_days`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        attempts: &[(ApiKey<'_>, bool)],
        client: &str,
        model: Option<&str>,
        served: bool,
        now_ms: u64,
        zone: ResetZone,
        keep_days: u32,
        rng: &mut Rng,
    ) -> Self {
        UsageAppend {
            day: day_of(now_ms, zone),
            shard: attempts.first().map_or_else(|| rng.below(SHARDS), |(key, _)| shard_of(key.fingerprint)),
            ttl_secs: history_ttl_secs(now_ms, zone, keep_days),
            check: rng.below(COMPACT_CHECK_ONE_IN) == 0,
            tokens: Tokens::default(),
            keys: attempts.iter().map(|(key, ok)| (key.fingerprint, *ok)).collect(),
            client: client.to_string(),
            model: model.map(str::to_string),
            served,
            limit: None,
            usage: true,
            failures: String::new(),
        }
    }

    /// The request's failed attempts go to the recent-failures list too.
    pub(crate) fn with_failures(mut self, failures: &[Failure]) -> Self {
        self.failures = failures.iter().map(Failure::line).collect();
        self
    }

    /// Only the client's tokens count (in its limit item): `usage_counts` is off.
    pub fn only_limit(mut self) -> Self {
        self.usage = false;
        self
    }

    /// The client's tokens also count in its limit item (it has a daily token limit).
    pub fn count_tokens_in(mut self, token_item: TokenItem, now_ms: u64) -> Self {
        self.limit = Some((token_item, now_ms));
        self
    }

    /// The item the usage lines go to.
    pub fn item(&self) -> String {
        item_name(&self.day, self.shard)
    }

    /// The usage lines (see [`lines`]).
    pub fn lines(&self) -> String {
        lines(&self.keys, &self.client, self.model.as_deref(), self.served, self.tokens)
    }

    /// What to append, in order.
    pub fn appends(&self) -> Vec<Append> {
        let mut appends = Vec::new();
        // The client's tokens first: its next request's gate reads them.
        if let Some((limit, now_ms)) = &self.limit {
            let tokens = self.tokens.total();
            if tokens > 0 {
                // In the limit item, a line (compacted as the item is); else an entry of its own.
                let compact = (self.check && limit.entry.is_none()).then_some(Compaction::Limit(now_ms / 60_000));
                appends.push(Append {
                    item: limit.name(*now_ms, tokens),
                    bytes: format!("t {tokens}\n").into_bytes(),
                    ttl_secs: limit.ttl_secs,
                    compact,
                    shard: None,
                    may_wait: false,
                });
            }
        }
        if !self.usage {
            return appends;
        }
        appends.push(Append {
            item: self.item(),
            bytes: self.lines().into_bytes(),
            ttl_secs: self.ttl_secs,
            compact: self.check.then_some(Compaction::Usage),
            shard: Some(self.shard),
            may_wait: true,
        });
        if !self.failures.is_empty() {
            appends.push(Append {
                item: failures::ITEM.to_string(),
                bytes: self.failures.clone().into_bytes(),
                ttl_secs: failures::TTL_SECS,
                compact: self.check.then_some(Compaction::Failures),
                shard: None,
                may_wait: true,
            });
        }
        appends
    }
}

/// The shard of a key's lines (a request that tried no key draws one at random).
pub(crate) fn shard_of(fingerprint: Fingerprint) -> usize {
    (fingerprint.0 % SHARDS as u64) as usize
}

/// A shard's bytes compacted, if it is due: [`COMPACT_AFTER_LINES`] lines or more were
/// appended since it was last compacted.
fn compacted(bytes: &[u8]) -> Option<Vec<u8>> {
    let (head, rest) = match bytes.strip_prefix(b"= ") {
        Some(after) => {
            let end = after.iter().position(|&b| b == b'\n').unwrap_or(after.len());
            let head = std::str::from_utf8(&after[..end]).ok().and_then(|n| n.parse::<usize>().ok());
            (head.unwrap_or(0), &after[(end + 1).min(after.len())..])
        }
        None => (0, bytes),
    };
    if line_count(rest).saturating_sub(head) < COMPACT_AFTER_LINES {
        return None;
    }
    let mut counts = Usage::default();
    counts.add(rest);
    Some(counts.capped(MAX_MODELS).encode())
}

impl Usage {
    /// Shards per day.
    pub const SHARDS: usize = SHARDS;

    /// The quota day `now_ms` falls in, as `YYYY-MM-DD` in `zone`.
    pub fn day(now_ms: u64, zone: ResetZone) -> String {
        day_of(now_ms, zone)
    }

    /// The KV key of a day's shard.
    pub fn item(day: &str, shard: usize) -> String {
        item_name(day, shard)
    }

    /// The shard a usage item's name says (`usage/<day>/<shard>`), if it is one.
    pub fn shard_of_item(name: &str) -> Option<usize> {
        let (_, shard) = name.strip_prefix("usage/")?.rsplit_once('/')?;
        shard.parse().ok().filter(|&s| s < SHARDS)
    }

    /// A shard's bytes compacted, if it is due (a writer that read its shard back asks).
    pub fn compacted(bytes: &[u8]) -> Option<Vec<u8>> {
        compacted(bytes)
    }

    /// Adds an item's lines (lines that do not read are skipped).
    pub fn add(&mut self, bytes: &[u8]) {
        for line in bytes.split(|&b| b == b'\n') {
            let Some(text) = std::str::from_utf8(line).ok() else { continue };
            let fields: Vec<&str> = text.split(' ').collect();
            let (kind, name, model, numbers) = match fields[..] {
                [kind, name, model, ref numbers @ ..] if numbers.len() == 2 || numbers.len() == 6 => {
                    (kind, name, model, numbers)
                }
                _ => continue,
            };
            let Some(numbers) = numbers.iter().map(|n| n.parse::<u64>().ok()).collect::<Option<Vec<u64>>>() else {
                continue;
            };
            let token = |i: usize| numbers.get(i).copied().unwrap_or(0);
            let tokens = Tokens { prompt: token(2), completion: token(3), thinking: token(4), cached: token(5) };
            let count = Count { ok: numbers[0], failed: numbers[1], tokens };
            match kind {
                "k" => {
                    let Some(fp) = u64::from_str_radix(name, 16).ok().filter(|_| name.len() == 16) else { continue };
                    add_to(self.keys.entry((Fingerprint(fp), model.to_string())).or_default(), count);
                }
                "c" => {
                    let Some(client) = unescape(name) else { continue };
                    add_to(self.clients.entry((client, model.to_string())).or_default(), count);
                }
                _ => {}
            }
        }
    }

    /// The same counts with at most `max` model names: the busiest `max - 1` keep theirs, the
    /// rest are added up under [`OTHER_MODEL`].
    pub fn capped(self, max: usize) -> Usage {
        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        let all = self.keys.iter().map(|((_, m), c)| (m, c)).chain(self.clients.iter().map(|((_, m), c)| (m, c)));
        for (model, count) in all {
            let total = totals.entry(model.as_str()).or_default();
            *total = total.saturating_add(count.ok).saturating_add(count.failed);
        }
        if totals.len() <= max {
            return self;
        }
        let mut ranked: Vec<(&str, u64)> = totals.into_iter().filter(|(m, _)| *m != OTHER_MODEL).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kept: std::collections::BTreeSet<String> =
            ranked.iter().take(max.saturating_sub(1)).map(|(m, _)| m.to_string()).collect();
        let name = |model: String| if kept.contains(&model) { model } else { OTHER_MODEL.to_string() };
        let mut capped = Usage::default();
        for ((fp, model), count) in self.keys {
            add_to(capped.keys.entry((fp, name(model))).or_default(), count);
        }
        for ((client, model), count) in self.clients {
            add_to(capped.clients.entry((client, name(model))).or_default(), count);
        }
        capped
    }

    /// The client labels with counts (each once, in order).
    pub fn client_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.clients.keys().map(|(client, _)| client.clone()).collect();
        labels.dedup();
        labels
    }

    /// The counts as lines, one per name, after a head line `= <lines>` (a compacted item).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("= {}\n", self.keys.len() + self.clients.len());
        for ((fp, model), c) in &self.keys {
            out.push_str(&format!("k {fp} {model} {} {}", c.ok, c.failed));
            push_token_fields(&mut out, c.tokens);
            out.push('\n');
        }
        for ((client, model), c) in &self.clients {
            out.push_str(&format!("c {} {model} {} {}", escape(client), c.ok, c.failed));
            push_token_fields(&mut out, c.tokens);
            out.push('\n');
        }
        out.into_bytes()
    }
}

fn add_to(total: &mut Count, more: Count) {
    total.ok = total.ok.saturating_add(more.ok);
    total.failed = total.failed.saturating_add(more.failed);
    total.tokens.add(more.tokens);
}

/// ` <prompt> <completion> <thinking> <cached>`, or nothing for no tokens.
fn push_token_fields(out: &mut String, tokens: Tokens) {
    if tokens.is_zero() {
        return;
    }
    for n in [tokens.prompt, tokens.completion, tokens.thinking, tokens.cached] {
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(n));
    }
}

/// Lines in an item (to decide on compaction).
fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::keys::KeyPool;

    #[test]
    fn days_follow_the_reset_zone() {
        // 2026-01-15 05:00 UTC is still January 14 in Los Angeles.
        let ms = 1_768_453_200_000;
        assert_eq!(day_of(ms, ResetZone::Pacific), "2026-01-14");
        assert_eq!(day_of(ms, ResetZone::Fixed(0)), "2026-01-15");
        let ttl = ttl_secs(ms, ResetZone::Pacific);
        assert!(ttl > 86_400 && ttl <= 2 * 86_400, "{ttl}");
    }

    #[test]
    fn lines_add_up_and_compact() {
        let pool = KeyPool::new(["AIzaSyONE0000000000000000000000000001\nAIzaSyTWO0000000000000000000000000002"]);
        let keys: Vec<_> = pool.iter().collect();
        let mut usage = Usage::default();
        let (fp0, fp1) = (keys[0].fingerprint, keys[1].fingerprint);
        let tokens = Tokens { prompt: 8, completion: 5, thinking: 2, cached: 1 };
        usage.add(lines(&[(fp0, false), (fp1, true)], "my app", Some("m"), true, tokens).as_bytes());
        usage.add(lines(&[(fp1, true)], "my app", Some("m"), true, Tokens::default()).as_bytes());
        usage.add(lines(&[], "équipe", None, false, Tokens::default()).as_bytes());
        usage.add(b"garbage\nk zz m 1 1\nc %ZZ m 1 1\n");
        assert_eq!(usage.keys[&(fp1, "m".to_string())], Count { ok: 2, failed: 0, tokens });
        assert_eq!(usage.keys[&(fp0, "m".to_string())], Count { ok: 0, failed: 1, tokens: Tokens::default() });
        assert_eq!(usage.clients[&("my app".to_string(), "m".to_string())], Count { ok: 2, failed: 0, tokens });
        let none = Count { ok: 0, failed: 1, tokens: Tokens::default() };
        assert_eq!(usage.clients[&("équipe".to_string(), "-".to_string())], none);
        let mut again = Usage::default();
        again.add(&usage.encode());
        assert_eq!(again, usage);
        assert_eq!(line_count(&usage.encode()), 5);
        assert!(usage.encode().starts_with(b"= 4\n"));
    }

    #[test]
    fn a_shard_is_compacted_once_enough_lines_came_since_the_last_compaction() {
        let pool = KeyPool::new(["AIzaSyONE0000000000000000000000000001"]);
        let tried: Vec<_> = pool.iter().map(|key| (key.fingerprint, true)).collect();
        let line = lines(&tried, "app", Some("m"), true, Tokens::default());
        // Many distinct names (a big pool): compacted once, then left alone until 200 more lines.
        let mut big = Usage::default();
        for n in 0..1_000u64 {
            big.add(format!("k {:016x} m 1 0\n", n).as_bytes());
        }
        let mut item = big.encode();
        assert_eq!(compacted(&item), None);
        for _ in 0..COMPACT_AFTER_LINES / 2 - 1 {
            item.extend_from_slice(line.as_bytes());
        }
        assert_eq!(compacted(&item), None, "199 new lines");
        item.extend_from_slice(line.as_bytes());
        let again = compacted(&item).expect("200 new lines");
        let mut counts = Usage::default();
        counts.add(&again);
        assert_eq!(counts.keys.len(), 1_001);
        assert_eq!(counts.clients[&("app".to_string(), "m".to_string())], Count { ok: 100, ..Count::default() });
        // An item never compacted (or written by an older version) counts every line as new.
        assert_eq!(compacted(line.repeat(99).as_bytes()), None);
        assert!(compacted(line.repeat(100).as_bytes()).is_some());
        assert!(compacted(b"= x\ngarbage\n").is_none());
    }

    #[test]
    fn model_names_are_capped_with_the_busiest_kept() {
        let mut usage = Usage::default();
        for n in 0..100u64 {
            let lines = format!("k {:016x} m{n} {} 0\nc app m{n} {} 0\n", n, n + 1, n + 1);
            usage.add(lines.as_bytes());
        }
        let capped = usage.clone().capped(MAX_MODELS);
        let models: std::collections::BTreeSet<&str> = capped.clients.keys().map(|(_, m)| m.as_str()).collect();
        assert_eq!(models.len(), MAX_MODELS);
        assert!(models.contains("m99") && models.contains(OTHER_MODEL) && !models.contains("m0"));
        let total = |u: &Usage| u.clients.values().map(|c| c.ok).sum::<u64>();
        assert_eq!(total(&capped), total(&usage), "nothing is lost, only folded");
        assert_eq!(capped.keys.len(), 100, "every key keeps its line");
        // A compaction keeps the cap.
        let mut item = usage.encode();
        item.extend_from_slice(&b"c app m5 1 0\n".repeat(COMPACT_AFTER_LINES));
        let mut again = Usage::default();
        again.add(&compacted(&item).expect("due"));
        assert!(again.clients.keys().map(|(_, m)| m).collect::<std::collections::BTreeSet<_>>().len() <= MAX_MODELS);
    }

    #[test]
    fn a_request_counts_in_the_shard_of_the_first_key_it_tried() {
        let text: Vec<String> = (0..64).map(|n| format!("AIzaSyKEY{n:031}")).collect();
        let text = text.join("\n");
        let pool = KeyPool::new([text.as_str()]);
        let mut shards = [0usize; SHARDS];
        for key in pool.iter() {
            let append =
                UsageAppend::new(&[(key, true)], "app", Some("m"), true, 0, ResetZone::Fixed(0), 30, &mut Rng::new(1));
            assert_eq!(append.shard, shard_of(key.fingerprint));
            shards[append.shard] += 1;
        }
        assert!(shards.iter().all(|&n| n > 0), "64 keys over every shard: {shards:?}");
    }
}
