//! Usage counts for the operator: requests per (key, model) and per (client, model) for the
//! current day, successes and failures.
//!
//! The day is the quota day: it ends at midnight in `daily_reset_zone`, like Google's daily
//! quotas. Counts live in KV items of their own, `usage/<day>/<shard>`, never in the cooling
//! items: a request appends one group of lines to one of [`SHARDS`] shards *after the client
//! has its response* (so counting never delays an answer), each line
//! `k <fingerprint> <model> <ok> <failed>` or `c <client> <model> <ok> <failed>` (client
//! labels escaped by [`crate::pool::names::escape`]). Reading adds the lines up.
//!
//! The shard is the one of the first key the request tried, so a shard holds the lines of
//! one eighth of the pool's keys: its size, and what an append or a compaction costs, does not
//! grow with the pool beyond that (writes spread over the shards as traffic spreads over the
//! keys). A writer that reads its shard (one in [`COMPACT_CHECK_ONE_IN`]) compacts it into one
//! line per name once [`COMPACT_AFTER_LINES`] lines were appended since the last compaction
//! (a compacted item starts with `= <lines>`), with a compare-and-swap, so nothing is lost.
//! Every append sets the item's TTL to the end of the next day: old days disappear on their
//! own.
//!
//! Counts are approximate under contention in production (KV is eventually consistent across
//! POPs and an append may be throttled); they never touch the cooling state.
//!
//! **Bounded by construction.** Clients choose model names, so a name counts as itself only
//! if Google accepted the request ([`crate::decide::attempts::Attempts::counted_model`]); otherwise
//! the line says [`OTHER_MODEL`]. And a compaction, like every reading, keeps at most
//! [`MAX_MODELS`] names (the busiest), folding the rest into [`OTHER_MODEL`].

use crate::operator::clock::{civil_from_days, ResetZone};
use crate::pool::keys::{ApiKey, Fingerprint};
use crate::pool::names::{escape, unescape};
use crate::pool::rng::Rng;
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

/// Successes and failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Answered by Google with a success.
    pub ok: u64,
    /// Failed (an attempt with this key; or a request the client got an error for).
    pub failed: u64,
}

/// A day's counts, added up from its items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// By key fingerprint and model.
    pub keys: BTreeMap<(Fingerprint, String), Count>,
    /// By client label and model.
    pub clients: BTreeMap<(String, String), Count>,
}

/// The quota day `now_ms` falls in, as `YYYY-MM-DD` in `zone`.
fn day(now_ms: u64, zone: ResetZone) -> String {
    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX / 2);
    let local = now + zone.offset_at(now);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The KV key of a day's shard.
fn item_name(day: &str, shard: usize) -> String {
    format!("usage/{day}/{shard}")
}

/// Seconds an append keeps its item: until the end of the next quota day.
pub(crate) fn ttl_secs(now_ms: u64, zone: ResetZone) -> u64 {
    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX / 2);
    let next = zone.next_midnight(now);
    u64::try_from(next - now).unwrap_or(0) + 86_400
}

/// The lines one request appends: each key it tried (and whether that attempt succeeded), and
/// the client (whether it got a success).
pub(crate) fn lines(attempts: &[(ApiKey<'_>, bool)], client: &str, model: Option<&str>, served: bool) -> String {
    let model = model.unwrap_or("-");
    let mut out = String::with_capacity((attempts.len() + 1) * (30 + model.len()) + client.len() * 3);
    for (key, ok) in attempts {
        key.fingerprint.with_hex(|hex| line(&mut out, 'k', hex, model, *ok));
    }
    line(&mut out, 'c', &escape(client), model, served);
    out
}

/// `<kind> <name> <model> <ok> <failed>\n`, one success or one failure.
fn line(out: &mut String, kind: char, name: &str, model: &str, ok: bool) {
    out.push(kind);
    for field in [name, model, if ok { "1 0\n" } else { "0 1\n" }] {
        out.push(' ');
        out.push_str(field);
    }
}

/// One request's usage append: its lines, the shard they go to, how long the item lives, and
/// whether this request also reads the shard back to see if it needs compacting (one request
/// in [`COMPACT_CHECK_ONE_IN`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAppend {
    /// The quota day (see [`day`]).
    pub day: String,
    /// The shard: the first tried key's (see [`shard_of`]).
    pub shard: usize,
    /// The lines to append (see [`lines`]).
    pub lines: String,
    /// The item's time to live (see [`ttl_secs`]).
    pub ttl_secs: u64,
    /// Read the shard back after appending, to compact it if it is long.
    pub check: bool,
}

impl UsageAppend {
    /// The append for a request that tried `attempts` for `client` (`served`: it got a
    /// success), at `now_ms` in the quota day of `zone`.
    pub fn new(
        attempts: &[(ApiKey<'_>, bool)],
        client: &str,
        model: Option<&str>,
        served: bool,
        now_ms: u64,
        zone: ResetZone,
        rng: &mut Rng,
    ) -> Self {
        UsageAppend {
            day: day(now_ms, zone),
            shard: attempts.first().map_or_else(|| rng.below(SHARDS), |(key, _)| shard_of(key.fingerprint)),
            lines: lines(attempts, client, model, served),
            ttl_secs: ttl_secs(now_ms, zone),
            check: rng.below(COMPACT_CHECK_ONE_IN) == 0,
        }
    }

    /// The item the lines go to.
    pub fn item(&self) -> String {
        item_name(&self.day, self.shard)
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
        day(now_ms, zone)
    }

    /// The KV key of a day's shard.
    pub fn item(day: &str, shard: usize) -> String {
        item_name(day, shard)
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
            let [kind, name, model, ok, failed] = fields[..] else { continue };
            let (Ok(ok), Ok(failed)) = (ok.parse::<u64>(), failed.parse::<u64>()) else { continue };
            let count = Count { ok, failed };
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

    /// The counts as lines, one per name, after a head line `= <lines>` (a compacted item).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("= {}\n", self.keys.len() + self.clients.len());
        for ((fp, model), c) in &self.keys {
            out.push_str(&format!("k {fp} {model} {} {}\n", c.ok, c.failed));
        }
        for ((client, model), c) in &self.clients {
            out.push_str(&format!("c {} {model} {} {}\n", escape(client), c.ok, c.failed));
        }
        out.into_bytes()
    }
}

fn add_to(total: &mut Count, more: Count) {
    total.ok = total.ok.saturating_add(more.ok);
    total.failed = total.failed.saturating_add(more.failed);
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
        assert_eq!(day(ms, ResetZone::Pacific), "2026-01-14");
        assert_eq!(day(ms, ResetZone::Fixed(0)), "2026-01-15");
        let ttl = ttl_secs(ms, ResetZone::Pacific);
        assert!(ttl > 86_400 && ttl <= 2 * 86_400, "{ttl}");
    }

    #[test]
    fn lines_add_up_and_compact() {
        let pool = KeyPool::new(["AIzaSyONE0000000000000000000000000001\nAIzaSyTWO0000000000000000000000000002"]);
        let keys: Vec<_> = pool.iter().collect();
        let mut usage = Usage::default();
        usage.add(lines(&[(keys[0], false), (keys[1], true)], "my app", Some("m"), true).as_bytes());
        usage.add(lines(&[(keys[1], true)], "my app", Some("m"), true).as_bytes());
        usage.add(lines(&[], "équipe", None, false).as_bytes());
        usage.add(b"garbage\nk zz m 1 1\nc %ZZ m 1 1\n");
        assert_eq!(usage.keys[&(keys[1].fingerprint, "m".to_string())], Count { ok: 2, failed: 0 });
        assert_eq!(usage.keys[&(keys[0].fingerprint, "m".to_string())], Count { ok: 0, failed: 1 });
        assert_eq!(usage.clients[&("my app".to_string(), "m".to_string())], Count { ok: 2, failed: 0 });
        assert_eq!(usage.clients[&("équipe".to_string(), "-".to_string())], Count { ok: 0, failed: 1 });
        let mut again = Usage::default();
        again.add(&usage.encode());
        assert_eq!(again, usage);
        assert_eq!(line_count(&usage.encode()), 5);
        assert!(usage.encode().starts_with(b"= 4\n"));
    }

    #[test]
    fn a_shard_is_compacted_once_enough_lines_came_since_the_last_compaction() {
        let pool = KeyPool::new(["AIzaSyONE0000000000000000000000000001"]);
        let tried: Vec<_> = pool.iter().map(|key| (key, true)).collect();
        let line = lines(&tried, "app", Some("m"), true);
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
        assert_eq!(counts.clients[&("app".to_string(), "m".to_string())], Count { ok: 100, failed: 0 });
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
                UsageAppend::new(&[(key, true)], "app", Some("m"), true, 0, ResetZone::Fixed(0), &mut Rng::new(1));
            assert_eq!(append.shard, shard_of(key.fingerprint));
            shards[append.shard] += 1;
        }
        assert!(shards.iter().all(|&n| n > 0), "64 keys over every shard: {shards:?}");
    }
}
