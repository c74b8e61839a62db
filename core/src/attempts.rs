//! The retry loop as a sans-I/O state machine: which key to try next, what each answer
//! changes in the cooling state, and when to stop. The edge does the sending.
//!
//! Choosing: keys that are dead or cooling for the requested model are skipped; among the
//! rest the first key is drawn uniformly (both strategies), and on a retry `round-robin`
//! walks on in pool order while `random` draws again. A dead key whose probation is due is
//! an ordinary candidate, at most once per request.
//!
//! Budget: `max_attempts` counts the attempts that failed for reasons that could hit any key
//! (5xx, timeouts, bare 429s). An answer that pins the blame on one key or one quota bucket
//! (a quota 429, a dead key) takes that key or bucket out for everyone and moves on without
//! spending the budget — so a request finds the bucket that still has quota — bounded by the
//! pool size and Fastly's 32 backend requests.

use crate::classify::{Outcome, Verdict};
use crate::cooling::{self, Context, Scope};
use crate::keys::{Bucket, KeyPool};
use crate::rng::Rng;
use crate::settings::{CoolingSettings, RequestSettings, Strategy, WhenAllCooling};
use crate::state::{Availability, Change, Item, Mark, PoolState, RETAIN_MS};

/// Fastly allows 32 backend requests per client request.
pub const MAX_UPSTREAM_REQUESTS: usize = 32;

/// How many random draws to make before scanning the whole pool (with 90% of the pool
/// cooling, 64 draws all miss once in a thousand requests).
const SAMPLES: usize = 64;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// Send the request with the key at this pool index.
    Try(usize),
    /// Nothing tried yet and every usable key is cooling for this model.
    AllCooling { retry_after_ms: u64 },
    /// Nothing tried yet and every key is dead.
    AllDead,
    /// The attempt budget is spent, or no untried key is usable: deliver the last answer.
    Exhausted,
}

pub struct Attempts<'p, 'a> {
    pool: &'p KeyPool<'a>,
    state: PoolState,
    model: Option<String>,
    strategy: Strategy,
    when_all_cooling: WhenAllCooling,
    jitter_ms: u64,
    budget: usize,
    rng: Rng,
    tried: Vec<bool>,
    made: usize,
    spent: usize,
    last: Option<usize>,
    probed: bool,
    changes: Vec<Change>,
}

impl<'p, 'a> Attempts<'p, 'a> {
    pub fn new(
        pool: &'p KeyPool<'a>,
        state: PoolState,
        model: Option<String>,
        settings: &RequestSettings,
        seed: u64,
    ) -> Self {
        let budget = settings.max_attempts.min(MAX_UPSTREAM_REQUESTS);
        Attempts {
            pool,
            state,
            model,
            strategy: settings.strategy,
            when_all_cooling: settings.when_all_cooling,
            jitter_ms: settings.jitter.as_millis() as u64,
            budget,
            rng: Rng::new(seed),
            tried: vec![false; pool.len()],
            made: 0,
            spent: 0,
            last: None,
            probed: false,
            changes: Vec::new(),
        }
    }

    /// Upstream attempts made so far.
    pub fn made(&self) -> usize {
        self.made
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    pub fn state(&self) -> &PoolState {
        &self.state
    }

    pub fn into_parts(self) -> (PoolState, Vec<Change>) {
        (self.state, self.changes)
    }

    pub fn next(&mut self, now_ms: u64) -> Choice {
        if self.spent >= self.budget || self.made >= self.pool.len().min(MAX_UPSTREAM_REQUESTS) {
            return Choice::Exhausted;
        }
        let found = match (self.strategy, self.last) {
            (Strategy::RoundRobin, Some(last)) => self.walk_from(last, now_ms),
            _ => self.sample(now_ms).or_else(|| self.scan_usable(now_ms)),
        };
        if let Some(index) = found {
            return self.take(index, now_ms);
        }
        self.when_none_usable(now_ms)
    }

    /// The answer to the attempt at `index` was a success.
    pub fn succeeded(&mut self, index: usize) {
        self.made += 1;
        self.revive_if_dead(index);
    }

    /// The attempt at `index` failed with `verdict`; returns whether to try another key.
    pub fn failed(&mut self, index: usize, verdict: &Verdict, cooling: &CoolingSettings, now_ms: u64) -> bool {
        self.made += 1;
        if !blames_one_key_or_bucket(&verdict.outcome) {
            self.spent += 1;
        }
        if proves_key_alive(&verdict.outcome) {
            self.revive_if_dead(index);
        }
        let ctx = Context {
            now_ms,
            previous_strikes: self.recent_strikes(index, now_ms),
            jitter_ms: self.rng.below(self.jitter_ms as usize + 1) as u64,
        };
        let action = cooling::decide(verdict, cooling, ctx);
        if let Some(cooldown) = action.cooldown {
            let mark = Mark {
                until_ms: cooldown.until_ms,
                reason: cooldown.reason,
                dead: cooldown.scope == Scope::Dead,
                strikes: cooldown.strikes,
                since_ms: now_ms,
            };
            self.record(index, cooldown.scope, mark);
        }
        action.retry
    }

    /// When the first key of this request's model recovers (for `Retry-After`).
    pub fn soonest_recovery_ms(&self, now_ms: u64) -> Option<u64> {
        self.pool
            .iter()
            .filter_map(|key| match self.state.availability(key, now_ms) {
                Availability::Cooling { until_ms } => Some(until_ms - now_ms),
                Availability::Ready | Availability::Probation => Some(0),
                Availability::Dead => None,
            })
            .min()
    }

    fn usable(&self, index: usize, now_ms: u64) -> bool {
        if self.tried[index] {
            return false;
        }
        let Some(key) = self.pool.get(index) else { return false };
        match self.state.availability(key, now_ms) {
            Availability::Ready => true,
            Availability::Probation => !self.probed,
            Availability::Cooling { .. } | Availability::Dead => false,
        }
    }

    /// A few uniform draws: cheap when most keys are usable, whatever the pool size.
    fn sample(&mut self, now_ms: u64) -> Option<usize> {
        let n = self.pool.len();
        (0..SAMPLES.min(n * 2)).find_map(|_| {
            let index = self.rng.below(n);
            self.usable(index, now_ms).then_some(index)
        })
    }

    /// Every usable key, one drawn uniformly.
    fn scan_usable(&mut self, now_ms: u64) -> Option<usize> {
        let usable: Vec<usize> = (0..self.pool.len()).filter(|&i| self.usable(i, now_ms)).collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[self.rng.below(usable.len())])
    }

    /// Round-robin on retry: the next usable key after `last`, in pool order.
    fn walk_from(&self, last: usize, now_ms: u64) -> Option<usize> {
        let n = self.pool.len();
        (1..=n).map(|step| (last + step) % n).find(|&i| self.usable(i, now_ms))
    }

    fn take(&mut self, index: usize, now_ms: u64) -> Choice {
        self.tried[index] = true;
        self.last = Some(index);
        if let Some(key) = self.pool.get(index) {
            if self.state.availability(key, now_ms) == Availability::Probation {
                self.probed = true;
            }
        }
        Choice::Try(index)
    }

    fn when_none_usable(&mut self, now_ms: u64) -> Choice {
        let soonest = (0..self.pool.len())
            .filter(|&i| !self.tried[i])
            .filter_map(|i| match self.pool.get(i).map(|k| self.state.availability(k, now_ms)) {
                Some(Availability::Cooling { until_ms }) => Some((until_ms, i)),
                _ => None,
            })
            .min();
        if self.made > 0 {
            return Choice::Exhausted;
        }
        match soonest {
            Some((until_ms, index)) => {
                let wait_ms = until_ms.saturating_sub(now_ms);
                let try_anyway = self.when_all_cooling == WhenAllCooling::ShortestCooldown || wait_ms <= self.jitter_ms;
                if try_anyway {
                    self.take(index, now_ms)
                } else {
                    Choice::AllCooling { retry_after_ms: wait_ms }
                }
            }
            None if self.tried.iter().all(|&t| t) => Choice::Exhausted,
            None => Choice::AllDead,
        }
    }

    fn recent_strikes(&self, index: usize, now_ms: u64) -> u32 {
        let Some(key) = self.pool.get(index) else { return 0 };
        self.state
            .model
            .get(&Bucket::Key(key.fingerprint()).to_string())
            .filter(|m| now_ms < m.until_ms.saturating_add(RETAIN_MS))
            .map_or(0, |m| m.strikes)
    }

    fn revive_if_dead(&mut self, index: usize) {
        let Some(key) = self.pool.get(index) else { return };
        let name = key.fingerprint().to_string();
        if self.state.keys.get(&name).is_some_and(|m| m.dead) {
            self.push(Change::Clear { item: Item::Keys, name });
        }
    }

    fn record(&mut self, index: usize, scope: Scope, mark: Mark) {
        let Some(key) = self.pool.get(index) else { return };
        let (item, name) = match (scope, &self.model) {
            (Scope::Key | Scope::Dead, _) => (Item::Keys, key.fingerprint().to_string()),
            (Scope::BucketModel, Some(model)) => (Item::Model(model.clone()), key.bucket().to_string()),
            (Scope::KeyModel, Some(model)) => (Item::Model(model.clone()), Bucket::Key(key.fingerprint()).to_string()),
            // A request without a model (listing models) has no model to cool.
            (Scope::BucketModel | Scope::KeyModel, None) => return,
        };
        self.push(Change::Set { item, name, mark });
    }

    fn push(&mut self, change: Change) {
        match change.item() {
            Item::Keys => self.state.keys.apply(&change),
            Item::Model(_) => self.state.model.apply(&change),
        }
        self.changes.push(change);
    }
}

/// Answers that say exactly which key or quota bucket is at fault (and cool it).
fn blames_one_key_or_bucket(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::KeyDead(_)
            | Outcome::DailyQuota
            | Outcome::NoFreeTier
            | Outcome::MinuteQuota { .. }
            | Outcome::ModelForbidden
    )
}

/// Answers only a working key can get.
fn proves_key_alive(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Success
            | Outcome::DailyQuota
            | Outcome::NoFreeTier
            | Outcome::MinuteQuota { .. }
            | Outcome::Throttled
            | Outcome::ModelForbidden
            | Outcome::ClientError
    )
}
