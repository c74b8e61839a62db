//! Choosing the next key: the order in which candidates are offered, kept apart from whether a
//! candidate may serve (the caller's `usable` predicate), as in pingora's selection.
//!
//! Order: the first key is drawn uniformly (both strategies): a few random draws, then — only
//! if they all missed — a scan of the whole pool. On a retry `round-robin` walks on in pool
//! order from the last key tried, `random` draws again. No key is offered twice — not even a
//! key the operator listed twice (keys are told apart by fingerprint) — and while drawing, no
//! entry is judged twice: one found unfit is passed over before it is parsed, so a small pool
//! most of whose keys are cooling costs a request each key once, not a draw of each key again
//! and again.
//!
//! A scan of the whole pool (the draws all missed, or a walk found nothing within
//! [`SAMPLES`] keys: most of the pool is cooling) keeps the keys that were usable then: later
//! picks of the same request choose among those, checked again, instead of scanning again —
//! so a request in a storm over a pool of thousands scans it once, not once per attempt.

use crate::pool::keys::{ApiKey, Fingerprint, KeyPool, Position};
use crate::pool::rng::Rng;

/// How to pick among the keys that may serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A uniformly chosen starting key, then the following keys in pool order on retries.
    RoundRobin,
    /// A uniformly chosen key on every attempt.
    Random,
}

/// Random draws before scanning the whole pool. With 90 % of the pool cooling, 128 draws all
/// miss about once in a million requests (64 missed once in a thousand). A scan judges every
/// key of the parts read, as much work as ~1,500 draws for one full part: in
/// `make bench-instructions` a single scan in a hundred requests raised a 6,000-key cell's
/// mean by 6 %.
const SAMPLES: usize = 128;

/// The keys offered so far and the source of randomness.
#[derive(Debug, Clone)]
pub(crate) struct Picker {
    strategy: Strategy,
    rng: Rng,
    tried: Vec<Fingerprint>,
    /// Entries drawn and found unfit (offered already, or not usable): not drawn again.
    passed: Vec<Position>,
    last: Option<Position>,
    /// After a scan: the parts read then, and the keys usable then, in pool order.
    scanned: Option<(usize, Vec<Position>)>,
}

impl Picker {
    /// A picker for one request (round-robin until [`set_strategy`](Self::set_strategy): the
    /// first key is drawn the same way under both).
    pub(crate) fn new(seed: u64) -> Self {
        Picker {
            strategy: Strategy::RoundRobin,
            rng: Rng::new(seed),
            tried: Vec::new(),
            passed: Vec::new(),
            last: None,
            scanned: None,
        }
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
            (Strategy::RoundRobin, Some(last)) => self.walk(pool, last, &fresh),
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

    /// Up to [`SAMPLES`] draws, none of an entry found unfit before (in a small pool most of
    /// whose keys are cooling, drawing the same cooling key again would cost a parse and two
    /// lookups each time). A draw that misses ends the sampling: what is left is best scanned.
    fn sample<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        for _ in 0..SAMPLES {
            let key = pool.draw(&mut self.rng, &self.passed)?;
            if fresh(&key) {
                return Some(key);
            }
            self.passed.push(key.at);
        }
        None
    }

    /// The next usable key in pool order after `last`: a short walk, then the scanned keys.
    fn walk<'a>(
        &mut self,
        pool: &KeyPool<'a>,
        last: Position,
        fresh: &impl Fn(&ApiKey<'a>) -> bool,
    ) -> Option<ApiKey<'a>> {
        if self.scanned_for(pool).is_none() {
            if let Some(key) = pool.walk(last).take(SAMPLES).find(|k| fresh(k)) {
                return Some(key);
            }
        }
        let usable = self.usable(pool, fresh);
        let after = usable.iter().position(|k| k.at > last).unwrap_or(0);
        usable.get(after).copied()
    }

    /// Every usable key, one drawn uniformly.
    fn scan<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        let usable = self.usable(pool, fresh);
        usable.get(self.rng.below(usable.len())).copied()
    }

    /// The usable keys in pool order: from the last scan (checked again) while no part was
    /// added since, else from a scan of the whole pool.
    fn usable<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Vec<ApiKey<'a>> {
        let usable: Vec<ApiKey<'a>> = match self.scanned_for(pool) {
            Some(positions) => positions.iter().filter_map(|&at| pool.key_at(at)).filter(|k| fresh(k)).collect(),
            None => pool.iter().filter(|k| fresh(k)).collect(),
        };
        self.scanned = Some((parts_read(pool), usable.iter().map(|k| k.at).collect()));
        usable
    }

    /// The last scan's keys, if no part was added to the pool since.
    fn scanned_for(&self, pool: &KeyPool<'_>) -> Option<&[Position]> {
        let (parts, positions) = self.scanned.as_ref()?;
        (*parts == parts_read(pool)).then_some(positions.as_slice())
    }
}

/// How many parts of the pool have been read.
fn parts_read(pool: &KeyPool<'_>) -> usize {
    (0..pool.parts()).filter(|&p| pool.has(p)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn list(n: usize) -> String {
        (0..n).map(|i| format!("AIzaPICK{i:031}\n")).collect()
    }

    #[test]
    fn sampling_judges_each_entry_once_and_stays_uniform_among_the_usable() {
        let text = list(10);
        let pool = KeyPool::new([text.as_str()]);
        let usable = |k: &ApiKey<'_>| k.secret.ends_with('3') || k.secret.ends_with('7');
        let mut chosen = [0usize; 10];
        for seed in 0..4_000 {
            let judged = RefCell::new(Vec::new());
            let mut picker = Picker::new(seed);
            let key = picker.pick(&pool, |k| {
                judged.borrow_mut().push(k.at);
                usable(k)
            });
            let key = key.expect("a usable key is found");
            let mut judged = judged.into_inner();
            let count = judged.len();
            judged.sort();
            judged.dedup();
            assert_eq!(judged.len(), count, "an entry judged twice (seed {seed})");
            chosen[pool.iter().position(|k| k.at == key.at).unwrap_or(0)] += 1;
        }
        assert_eq!(chosen.iter().sum::<usize>(), chosen[3] + chosen[7], "{chosen:?}");
        assert!((1_850..=2_150).contains(&chosen[3]), "{chosen:?}");
    }

    #[test]
    fn a_pool_with_nothing_usable_is_judged_once_per_entry_then_scanned() {
        let text = list(10);
        let pool = KeyPool::new([text.as_str()]);
        let judged = RefCell::new(0);
        let mut picker = Picker::new(1);
        let key = picker.pick(&pool, |_| {
            *judged.borrow_mut() += 1;
            false
        });
        assert!(key.is_none());
        // At most each entry once while sampling, then once each in the scan.
        assert!(*judged.borrow() <= 20, "{}", judged.borrow());
    }
}
