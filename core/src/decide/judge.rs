//! What a verdict on one key changes in the shared state — the one rule for every answer
//! Google gives, whether a request's attempt got it ([`crate::decide::attempts`]) or the key check's
//! probe did ([`crate::admin::keycheck`]):
//! - an answer only a working key can get brings a dead key back (its dead mark is cleared);
//! - the cooling policy ([`crate::decide::cooling`]) decides the cooldown, which is stored where its
//!   scope says: the key's or its bucket's mark, in the part's `keys` item (every model) or
//!   its model item. A call without a model (a model list, a probe) cools no model.

use crate::decide::cooling::{self, Moment, Scope};
use crate::google::classify::{Outcome, Verdict};
use crate::pool::keys::ApiKey;
use crate::pool::names::{Bucket, MarkName};
use crate::settings::CoolingSettings;
use crate::state::items::{Change, Entry, Item, Mark, PoolState};
use crate::state::marks::RETAIN_MS;

/// The changes a verdict makes, and whether the request may go on to another key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// A dead key proved alive: its dead mark goes.
    pub revival: Option<Change>,
    /// The cooldown the policy orders, where it is stored.
    pub cooldown: Option<Change>,
    /// Try another key (or give this answer to the client).
    pub retry: bool,
}

impl Judgement {
    /// Both changes, in the order they are committed.
    pub(crate) fn changes(self) -> Vec<Change> {
        self.revival.into_iter().chain(self.cooldown).collect()
    }
}

/// Judges `verdict` on `key`, given the state as read (`state`'s model is the call's) and a
/// random `jitter_ms` for per-minute cooldowns.
pub(crate) fn judge(
    key: &ApiKey<'_>,
    verdict: &Verdict,
    state: &PoolState,
    cooling: &CoolingSettings,
    now_ms: u64,
    jitter_ms: u64,
) -> Judgement {
    let revival = if proves_key_alive(&verdict.outcome) { revival(key, state, now_ms) } else { None };
    let ctx = Moment { now_ms, previous_strikes: recent_strikes(key, state, now_ms), jitter_ms };
    let action = cooling::decide(verdict, cooling, ctx);
    let cooldown = action.cooldown.and_then(|cooldown| {
        let mark = Mark {
            until_ms: cooldown.until_ms,
            reason: cooldown.reason,
            dead: cooldown.scope == Scope::Dead,
            strikes: cooldown.strikes,
            since_ms: now_ms,
        };
        placed(key, state.model(), cooldown.scope, mark)
    });
    Judgement { revival, cooldown, retry: action.retry }
}

/// Answers only a working key can get.
fn proves_key_alive(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Success
            | Outcome::EmptyAnswer
            | Outcome::DailyQuota
            | Outcome::NoFreeTier
            | Outcome::MinuteQuota { .. }
            | Outcome::Throttled
            | Outcome::ModelForbidden
            | Outcome::ModelRetired
            | Outcome::BillingDepleted
            | Outcome::ClientError
    )
}

/// The change that brings a dead `key` back, if it is dead (a success needs nothing else).
pub(crate) fn revival(key: &ApiKey<'_>, state: &PoolState, now_ms: u64) -> Option<Change> {
    let name = MarkName::key(key);
    let item = Item::keys(key.at.list);
    let dead = state.marks(&item).get(&name).is_some_and(|m| m.dead);
    dead.then_some(Change { item, name, entry: Entry::Clear(now_ms) })
}

/// Bare 429s this key had for the model recently (for the growing backoff).
fn recent_strikes(key: &ApiKey<'_>, state: &PoolState, now_ms: u64) -> u32 {
    let Some(model) = state.model() else { return 0 };
    state
        .marks(&Item::model(key.at.list, model))
        .get(&MarkName::key(key))
        .filter(|m| now_ms < m.until_ms.saturating_add(RETAIN_MS))
        .map_or(0, |m| m.strikes)
}

/// Where a cooldown of `scope` on `key` is stored.
fn placed(key: &ApiKey<'_>, model: Option<&str>, scope: Scope, mark: Mark) -> Option<Change> {
    let part = key.at.list;
    let model_item = || model.map(|m| Item::model(part, m));
    let (item, name) = match scope {
        Scope::Key | Scope::Dead => (Item::keys(part), MarkName::key(key)),
        Scope::Bucket => (Item::keys(part), MarkName::of(Bucket::of(key))),
        // A call without a model (a model list, the key check's probe) has no model to cool.
        Scope::BucketModel => (model_item()?, MarkName::of(Bucket::of(key))),
        Scope::KeyModel => (model_item()?, MarkName::key(key)),
    };
    Some(Change { item, name, entry: Entry::Set(mark) })
}
