//! Choosing the next key: the order in which candidates are offered, kept apart from whether a
//! candidate may serve (the caller's `usable` predicate), as in pingora's selection.
//!
//! Order: the first key is drawn uniformly (both strategies): a few random draws, then — only
//! if they all missed — a scan of the whole pool. On a retry `round-robin` walks on in pool
//! order from the last key tried, `random` draws again. No key is offered twice — not even a
//! key the operator listed twice (keys are told apart by fingerprint).

use crate::operator::settings::Strategy;
use crate::pool::keys::{ApiKey, Fingerprint, KeyPool, Position};
use crate::pool::rng::Rng;

/// Random draws before scanning the whole pool: with 90 % of the pool cooling, 64 draws all
/// miss about once in a thousand requests.
const SAMPLES: usize = 64;

/// The keys offered so far and the source of randomness.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    strategy: Strategy,
    rng: Rng,
    tried: Vec<Fingerprint>,
    last: Option<Position>,
}

impl Picker {
    /// A picker for one request (round-robin until [`set_strategy`](Self::set_strategy): the
    /// first key is drawn the same way under both).
    pub(crate) fn new(seed: u64) -> Self {
        Picker { strategy: Strategy::RoundRobin, rng: Rng::new(seed), tried: Vec::new(), last: None }
    }

    /// How keys after the first are offered.
    pub(crate) fn set_strategy(&mut self, strategy: Strategy) {
        self.strategy = strategy;
    }

    /// The next untried key that is `usable`, or `None`.
    pub(crate) fn pick<'a>(&mut self, pool: &KeyPool<'a>, usable: impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        let tried = std::mem::take(&mut self.tried);
        let fresh = |k: &ApiKey<'a>| !tried.contains(&k.fingerprint) && usable(k);
        let found = match (self.strategy, self.last) {
            (Strategy::RoundRobin, Some(last)) => pool.walk(last).find(|k| fresh(k)),
            _ => self.sample(pool, &fresh).or_else(|| self.scan(pool, &fresh)),
        };
        self.tried = tried;
        if let Some(key) = &found {
            self.take(key);
        }
        found
    }

    /// Records `key` as offered (also for a key chosen another way).
    pub(crate) fn take(&mut self, key: &ApiKey<'_>) {
        self.tried.push(key.fingerprint);
        self.last = Some(key.at);
    }

    /// Has `key` been offered already?
    pub(crate) fn tried(&self, key: &ApiKey<'_>) -> bool {
        self.tried.contains(&key.fingerprint)
    }

    /// The request's randomness (also used for jitter).
    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn sample<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        (0..SAMPLES).find_map(|_| pool.draw(&mut self.rng).filter(|k| fresh(k)))
    }

    /// Every usable key, one drawn uniformly.
    fn scan<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        let usable: Vec<ApiKey<'a>> = pool.iter().filter(|k| fresh(k)).collect();
        usable.get(self.rng.below(usable.len())).copied()
    }
}
