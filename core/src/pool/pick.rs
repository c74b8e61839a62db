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
//! picks of the same request choose among those, checking only the one they choose (one found
//! unfit is dropped), instead of scanning again — so a request in a storm over a pool of
//! thousands scans it once, and each later pick costs about one key, not one pass.

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
    /// After a scan: the keys usable then (those found unfit since dropped).
    scanned: Option<Scanned>,
    /// Keys are drawn whatever the strategy ([`Picker::draw_from_now`]).
    drawing: bool,
}

/// The keys a scan found usable, in pool order, for the parts read then; one found unfit later
/// is marked dropped (the list is compacted when most are).
#[derive(Debug, Clone)]
struct Scanned {
    parts: usize,
    keys: Vec<Position>,
    dropped: Vec<bool>,
    live: usize,
}

impl Scanned {
    fn drop_key(&mut self, i: usize) {
        if !self.dropped[i] {
            self.dropped[i] = true;
            self.live -= 1;
        }
        if self.live * 2 < self.keys.len() {
            let keys = self.keys.iter().zip(&self.dropped).filter(|(_, dropped)| !**dropped);
            self.keys = keys.map(|(at, _)| *at).collect();
            self.dropped = vec![false; self.keys.len()];
        }
    }
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
            drawing: false,
        }
    }

    /// How keys after the first are offered (after [`draw_from_now`](Self::draw_from_now),
    /// drawn whatever the strategy).
    pub(crate) fn set_strategy(&mut self, strategy: Strategy) {
        if !self.drawing {
            self.strategy = strategy;
        }
    }

    /// From now on every key is drawn uniformly: a walk in pool order that keeps meeting keys
    /// out of rotation is in a block of them (keys of one age, spent together), and each one
    /// costs a read to confirm.
    pub(crate) fn draw_from_now(&mut self) {
        (self.strategy, self.drawing) = (Strategy::Random, true);
    }

    /// The next untried key that is `usable`, or `None`.
    pub(crate) fn pick<'a>(&mut self, pool: &KeyPool<'a>, usable: impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        let tried = std::mem::take(&mut self.tried);
        let fresh = |k: &ApiKey<'a>| !tried.contains(&k.fingerprint) && usable(k);
        let found = match (self.strategy, self.last) {
            (Strategy::RoundRobin, Some(last)) => self.walk(pool, last, &fresh),
            // After a scan, draws come from what it kept (sampling the pool would judge again
            // keys it found unfit).
            _ if self.scanned_for(pool) => self.scan(pool, &fresh),
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
        if !self.scanned_for(pool) {
            if let Some(key) = pool.walk(last).take(SAMPLES).find(|k| fresh(k)) {
                return Some(key);
            }
            self.scan_all(pool, fresh);
        }
        loop {
            let scanned = self.scanned.as_mut()?;
            if scanned.live == 0 {
                return None;
            }
            let after = scanned.keys.partition_point(|at| *at <= last);
            let count = scanned.keys.len();
            let next = (0..count).map(|step| (after + step) % count).find(|&i| !scanned.dropped[i])?;
            match pool.key_at(scanned.keys[next]).filter(|k| fresh(k)) {
                Some(key) => return Some(key),
                None => scanned.drop_key(next),
            }
        }
    }

    /// A usable key drawn uniformly: among the keys a scan found usable (scanning the pool if
    /// none did for these parts), each checked as it is drawn.
    fn scan<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) -> Option<ApiKey<'a>> {
        if !self.scanned_for(pool) {
            self.scan_all(pool, fresh);
        }
        loop {
            let scanned = self.scanned.as_mut()?;
            if scanned.live == 0 {
                return None;
            }
            let i = self.rng.below(scanned.keys.len());
            if scanned.dropped[i] {
                continue;
            }
            match pool.key_at(scanned.keys[i]).filter(|k| fresh(k)) {
                Some(key) => return Some(key),
                None => scanned.drop_key(i),
            }
        }
    }

    /// Judges every key of the parts read, keeping the usable ones.
    fn scan_all<'a>(&mut self, pool: &KeyPool<'a>, fresh: &impl Fn(&ApiKey<'a>) -> bool) {
        let keys: Vec<Position> = pool.iter().filter(|k| fresh(k)).map(|k| k.at).collect();
        let live = keys.len();
        self.scanned = Some(Scanned { parts: parts_read(pool), dropped: vec![false; live], keys, live });
    }

    /// Is there a scan's list for the parts read now (none added since)?
    fn scanned_for(&self, pool: &KeyPool<'_>) -> bool {
        self.scanned.as_ref().is_some_and(|s| s.parts == parts_read(pool))
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

    #[test]
    fn after_a_scan_each_pick_judges_about_one_key_under_both_strategies() {
        let text = list(10_000);
        let pool = KeyPool::new([text.as_str()]);
        let entry_bytes = text.len() / 10_000;
        for strategy in [Strategy::RoundRobin, Strategy::Random] {
            // One key in 200 usable (the draws miss: the first pick scans), and keys found out
            // during the request stay out (as keys whose entries said so).
            let out = RefCell::new(Vec::new());
            let judged = RefCell::new(0);
            let usable = |k: &ApiKey<'_>| {
                *judged.borrow_mut() += 1;
                (k.at.start / entry_bytes).is_multiple_of(200) && !out.borrow().contains(&k.at)
            };
            let mut picker = Picker::new(9);
            picker.set_strategy(strategy);
            let first = picker.pick(&pool, usable).expect("a usable key");
            let after_scan = *judged.borrow();
            assert!(after_scan >= 10_000, "the first pick scanned: {after_scan}");
            let mut offered = vec![first.at];
            for round in 0..40 {
                let key = picker.pick(&pool, usable).expect("a usable key");
                assert!(!offered.contains(&key.at) && (key.at.start / entry_bytes).is_multiple_of(200));
                offered.push(key.at);
                // Every other key turns out to be out after all.
                if round % 2 == 0 {
                    out.borrow_mut().push(key.at);
                }
            }
            // Judging every scanned key again on each pick: ~50 × 40.
            let later = *judged.borrow() - after_scan;
            assert!(later <= 120, "{strategy:?}: {later} judged in 40 picks");
        }
    }
}
