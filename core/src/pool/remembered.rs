//! What a warm instance remembers between requests: the keys it found **cooling**, by model,
//! each until its cooldown ends, so that a later request passes over them before it parses
//! them (a draw lands on a remembered entry and draws again).
//!
//! Why it is safe: a cooldown never shortens — the merge rule keeps the later end
//! ([`crate::state::marks`]) — so until its end a key found cooling stays out whatever the
//! store says next. A **dead** key is never remembered: a key check (or a probation request)
//! revives it with a `clear`, which the next request must see. An entry is never used at or
//! past its end. Positions are byte offsets in the key lists, so the memory holds only for the
//! lists it was learned over: the edge forgets it whenever it reads the lists again (Fastly:
//! every 30 s, with the rest of what a sandbox keeps). The operator who wipes the state store
//! sees a remembered key return at its cooldown's end or that refresh, whichever comes first.

use crate::pool::keys::Position;
use std::collections::HashMap;

/// Models remembered at most (the least recently used goes first).
const MAX_MODELS: usize = 8;
/// Positions remembered per model at most (past it, no more are added until some end).
const MAX_POSITIONS: usize = 100_000;

/// Keys found cooling, by model: position → when the cooldown ends (unix ms).
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    /// Most recently used last.
    models: Vec<(String, Cooling)>,
}

/// One model's remembered keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cooling {
    ends: HashMap<Position, u64>,
    /// The soonest end among them: nothing needs forgetting before.
    soonest: u64,
}

impl Remembered {
    /// Nothing remembered.
    pub fn new() -> Self {
        Remembered::default()
    }

    /// Takes out `model`'s keys for one request; hand them back with [`keep`](Self::keep).
    pub(crate) fn take(&mut self, model: &str) -> Cooling {
        match self.models.iter().position(|(m, _)| m == model) {
            Some(i) => self.models.remove(i).1,
            None => Cooling::default(),
        }
    }

    /// Keeps `model`'s keys (taken out with [`take`](Self::take)) for the next request, those
    /// ended by `now_ms` forgotten.
    pub(crate) fn keep(&mut self, model: &str, mut cooling: Cooling, now_ms: u64) {
        cooling.forget_ended(now_ms);
        if cooling.ends.is_empty() {
            return;
        }
        if self.models.len() >= MAX_MODELS {
            self.models.remove(0);
        }
        self.models.push((model.to_string(), cooling));
    }

    /// Keys remembered, over every model.
    pub fn len(&self) -> usize {
        self.models.iter().map(|(_, c)| c.ends.len()).sum()
    }

    /// Nothing remembered?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Cooling {
    /// Is the key at `at` out at `now_ms`?
    pub(crate) fn out(&self, at: Position, now_ms: u64) -> bool {
        self.ends.get(&at).is_some_and(|&end| now_ms < end)
    }

    /// The key at `at` was found cooling until `end`.
    pub(crate) fn found(&mut self, at: Position, end: u64) {
        if self.ends.len() >= MAX_POSITIONS && !self.ends.contains_key(&at) {
            return;
        }
        let kept = self.ends.entry(at).or_insert(end);
        *kept = (*kept).max(end);
        self.soonest = if self.ends.len() == 1 { end } else { self.soonest.min(end) };
    }

    /// Forgets the keys whose cooldown ended by `now_ms` (only once the soonest has).
    fn forget_ended(&mut self, now_ms: u64) {
        if now_ms < self.soonest {
            return;
        }
        self.ends.retain(|_, end| now_ms < *end);
        self.soonest = self.ends.values().copied().min().unwrap_or(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: usize) -> Position {
        Position { list: 0, start }
    }

    #[test]
    fn a_key_is_out_until_its_end_and_never_at_or_after_it() {
        let mut remembered = Remembered::new();
        let mut cooling = remembered.take("m");
        cooling.found(at(0), 5_000);
        cooling.found(at(40), 3_000);
        cooling.found(at(40), 2_000);
        assert!(cooling.out(at(40), 2_999), "the later end is kept");
        assert!(!cooling.out(at(40), 3_000) && cooling.out(at(0), 3_000) && !cooling.out(at(0), 5_000));
        remembered.keep("m", cooling, 3_000);
        let cooling = remembered.take("m");
        assert_eq!(cooling.ends.len(), 1, "the ended one is forgotten");
        assert!(!remembered.take("other").out(at(0), 3_000), "by model");
    }

    #[test]
    fn the_least_recently_used_model_goes_first() {
        let mut remembered = Remembered::new();
        for n in 0..=MAX_MODELS {
            let mut cooling = remembered.take(&format!("m{n}"));
            cooling.found(at(n), 10);
            remembered.keep(&format!("m{n}"), cooling, 0);
        }
        assert_eq!(remembered.len(), MAX_MODELS);
        assert!(!remembered.take("m0").out(at(0), 0));
        assert!(remembered.take(&format!("m{MAX_MODELS}")).out(at(MAX_MODELS), 0));
    }
}
