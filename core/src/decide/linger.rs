//! After a request's answer: the changes the store refused while it ran (throttled,
//! overloaded), written again once the store's budget has refilled ([`Linger`]).

use crate::decide::machine::{Answer, Machine, Step};
use crate::pool::rng::Rng;
use crate::settings::CoolingSettings;
use crate::state::commit::{Committer, Round, Write};
use crate::state::items::{state_of, Change, Item, PoolState};
use crate::state::marks::{Entry, Marks};

/// How long a [`Linger`] first waits for a throttled store, ms; doubled on each try, plus up to
/// as much again at random (so the requests a storm left lingering do not retry together).
const LINGER_WAIT_MS: u64 = 1_000;
/// Tries a [`Linger`] makes before it logs the changes as not committed: waits of 1–2, 2–4,
/// 4–8 and 8–16 s, under Workers' 30 s for work after the answer.
const LINGER_TRIES: u32 = 4;

/// The tail of a request, after the client has its answer: changes the store refused
/// (throttled, overloaded) are written again after a wait that lets the store's budget
/// refill, doubling from about a second — unless the state already says them by then (another
/// instance committed the same verdict), or the cooldown they set has ended (nothing left to
/// say). A verdict is logged as not committed only after [`LINGER_TRIES`] refusals. It owns its
/// data (nothing borrowed from the request).
pub struct Linger {
    changes: Vec<Change>,
    rng: Rng,
    parts: usize,
    model: Option<String>,
    tries: u32,
    state: PoolState,
    stage: LingerStage,
    log: Option<String>,
    /// Verdicts have entries of their own (written, and read, with their items).
    entries: bool,
}

enum LingerStage {
    /// Index lines a request learned from entries, written once, first ([`Linger::repair`]).
    Repair(Vec<Write>),
    Wait,
    Read,
    Commit(Committer),
    Done,
}

impl Linger {
    pub(crate) fn new(changes: Vec<Change>, parts: usize, model: Option<&str>, seed: u64, entries: bool) -> Self {
        Linger {
            changes,
            rng: Rng::new(seed),
            parts,
            model: model.map(str::to_string),
            tries: 0,
            state: PoolState::new(parts, model),
            stage: LingerStage::Wait,
            log: None,
            entries,
        }
    }

    /// First, before anything else, `writes`: the index lines the request learned from
    /// verdict entries the index lacked, appended once, best-effort (no read, no retry).
    pub(crate) fn repair(mut self, writes: Vec<Write>) -> Self {
        if !writes.is_empty() {
            self.stage = LingerStage::Repair(writes);
        }
        self
    }

    /// Has it nothing to do?
    pub(crate) fn is_idle(&self) -> bool {
        self.changes.is_empty() && !matches!(self.stage, LingerStage::Repair(_))
    }

    /// The items the changes go to (with their entries, if verdicts have them).
    fn items(&self) -> Vec<Item> {
        let entries = self.changes.iter().filter(|_| self.entries).map(|c| c.item.entry(&c.name));
        let mut items: Vec<Item> = self.changes.iter().map(|c| c.item.clone()).chain(entries).collect();
        items.sort();
        items.dedup();
        items
    }

    /// The recorder's rounds are over, leaving `uncommitted`: done, or another try after a
    /// longer wait.
    fn tried(&mut self, uncommitted: Vec<Change>) -> LingerStage {
        self.changes = uncommitted;
        self.tries += 1;
        if self.changes.is_empty() {
            return LingerStage::Done;
        }
        if self.tries >= LINGER_TRIES {
            let names: Vec<String> = self.changes.iter().map(|c| c.name.to_string()).collect();
            self.log = Some(format!(
                "state: the store refused the writes of {} {} times; not committed",
                names.join(", "),
                self.tries
            ));
            return LingerStage::Done;
        }
        LingerStage::Wait
    }
}

impl Machine<'static> for Linger {
    type Done = ();

    fn step(&mut self, now_ms: u64) -> Step<'static, ()> {
        loop {
            if let Some(line) = self.log.take() {
                return Step::Log(line);
            }
            match &mut self.stage {
                LingerStage::Repair(writes) => {
                    let writes = std::mem::take(writes);
                    self.stage = if self.changes.is_empty() { LingerStage::Done } else { LingerStage::Wait };
                    return Step::Commit { writes, read_back: Vec::new() };
                }
                LingerStage::Wait => {
                    self.stage = LingerStage::Read;
                    let wait = LINGER_WAIT_MS << self.tries;
                    return Step::Wait(wait + self.rng.below(wait as usize + 1) as u64);
                }
                LingerStage::Read => {
                    // A cooldown that has ended says nothing any more.
                    self.changes.retain(|c| !matches!(c.entry, Entry::Set(m) if !m.dead && m.until_ms <= now_ms));
                    if self.changes.is_empty() {
                        self.stage = LingerStage::Done;
                        continue;
                    }
                    return Step::Read(self.items());
                }
                LingerStage::Commit(recorder) => match recorder.round(&self.state, now_ms) {
                    Round::WriteAndRead(writes) => return Step::Commit { writes, read_back: self.items() },
                    Round::Write(writes) => return Step::Commit { writes, read_back: Vec::new() },
                    Round::Done => {
                        let uncommitted = recorder.uncommitted();
                        self.stage = self.tried(uncommitted);
                    }
                },
                LingerStage::Done => return Step::Done(()),
            }
        }
    }

    fn fetched(&mut self, _: usize, _: &'static [u8]) {}

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        let mut fresh = state_of(self.parts, self.model.as_deref(), items);
        match &mut self.stage {
            LingerStage::Read => {
                let recorder = Committer::new(self.changes.clone(), &fresh, self.entries);
                for change in &self.changes {
                    fresh.apply(change);
                }
                self.state = fresh;
                self.stage = LingerStage::Commit(recorder);
            }
            LingerStage::Commit(recorder) => {
                self.log = recorder.read_back(&fresh);
                for change in &self.changes {
                    fresh.apply(change);
                }
                self.state = fresh;
            }
            _ => {}
        }
    }

    fn configured(&mut self, _: &CoolingSettings) {}

    fn answered(&mut self, _: Vec<Answer>) {}

    fn written(&mut self) {
        if let LingerStage::Commit(recorder) = &mut self.stage {
            recorder.written();
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        if let LingerStage::Commit(recorder) = &mut self.stage {
            recorder.refused(&writes);
        }
    }
}
