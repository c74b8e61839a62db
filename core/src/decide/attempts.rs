//! The retry loop as a sans-I/O state machine: which key to try next, what each answer
//! changes in the cooling state, and when to stop. The edge sends, stores and reads.
//!
//! Choosing ([`crate::pool::pick`]): keys that are dead or cooling for the requested model are
//! skipped; a dead key whose probation is due is an ordinary candidate, at most once per
//! request.
//!
//! Budget: `max_attempts` counts the attempts that failed for reasons that could hit any key
//! (5xx, timeouts, bare 429s). An answer that pins the blame on one key or one quota bucket
//! (a quota 429, a dead key: [`Outcome::names_the_fault`]) takes that key or bucket out for
//! everyone and moves on without spending the budget — so a request finds the bucket that
//! still has quota — bounded by the pool and by Fastly's 32 backend requests.
//!
//! **Blast radius.** Whatever Google answers, one request changes the shared state only this
//! far:
//! - answers that name the fault ([`Outcome::names_the_fault`]) each cool or kill the one key
//!   or bucket they name — Google's own fields say so, and no text of a request can;
//! - every other change (a bare 429's backoff, no answer, a 5xx when `cool_upstream_trouble`
//!   is set) spends the budget: at most `max_attempts` (default 3) of them;
//! - a 403 that may be about what the request names ([`Outcome::may_be_the_requests`]) changes
//!   nothing at once: the request tries a key of another project, and the first 403's verdict
//!   is committed only if that project serves (at most one such change). If it refuses too, the
//!   answer is the request's own: delivered, nothing recorded.
//! - answers of the request's own fault (400, 404, …) are delivered at once.
//!
//! The free walk past buckets that name the fault rests on everyone learning of each: an
//! attempt whose verdict the store refused to commit ([`Attempts::uncommitted`]) spends the
//! budget too, so a throttled store cannot make a request walk the whole pool.
//!
//! So at most `max_attempts + 1` changes per request rest on anything but Google's word about
//! the key (`fuzz/checks`, `attempt_loop`, checks it for arbitrary answers in `make test`).
//!
//! [`Outcome::names_the_fault`]: crate::google::classify::Outcome::names_the_fault
//! [`Outcome::may_be_the_requests`]: crate::google::classify::Outcome::may_be_the_requests

use crate::client::policy::in_projects;
use crate::decide::judge::{judge, revival};
use crate::google::classify::Verdict;
use crate::google::reason::Reason;
use crate::pool::keys::{ApiKey, KeyPool, Position};
use crate::pool::names::Bucket;
use crate::pool::names::Pinned;
use crate::pool::pick::Picker;
use crate::pool::scrub::scrub;
use crate::settings::{CoolingSettings, RetrySettings, WhenAllCooling};
use crate::state::items::{Availability, Change, Entry, Item, PartState, PoolState};
use crate::state::marks::Marks;
use crate::state::usage::OTHER_MODEL;
use std::cell::Cell;

/// Fastly allows 32 backend requests per client request (the default cap; an edge with other
/// limits sets its own with [`Attempts::limit_upstream`]).
pub const MAX_UPSTREAM_REQUESTS: usize = 32;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Send the request with this key.
    Try(ApiKey<'a>),
    /// The parts read so far have no key left to try: read every other part (its secret and
    /// its items), hand them to [`Attempts::widen`], and ask again.
    Widen,
    /// No key can serve, and what happens then depends on knobs not read yet: read the
    /// [`CoolingSettings`], hand them to [`Attempts::configure`], and ask again.
    Configure,
    /// Stop and give the client the last answer.
    Deliver,
    /// Stop: nothing was tried and every usable key is cooling for this model.
    AllCooling {
        /// Until the first one recovers.
        retry_after_ms: u64,
        /// Every one of them cools because Google retired the model for its project.
        retired: bool,
    },
    /// Stop: nothing was tried and every key is dead.
    AllDead,
    /// The index may be behind: read this key's verdict entries there ([`Attempts::entries_of`])
    /// and hand them to [`Attempts::confirmed`] before a call.
    Confirm(ApiKey<'a>),
}

/// Keys in a row that the index called free and their entries showed out, after which a
/// round-robin walk draws instead ([`Picker::draw_from_now`]): in a pool whose index is behind,
/// a walk through a block of spent keys reads each one's entries.
const WALK_CONFIRMS: u32 = 4;

/// Keys the index called free that their entries showed out, after which a request looks no
/// further: an index this far behind is in a storm that leaves most keys out, and each further
/// key would cost a read (as many as Fastly's backend requests: the design before called Google
/// instead, and stopped after `max_attempts` refusals it could not record).
const MAX_CONFIRMED_OUT: u32 = 32;

/// One request's attempts.
///
/// Call order — the edge does the I/O, this decides:
/// 1. [`next`](Self::next) → [`Choice::Try`]: send the request with that key;
///    [`Choice::Widen`]: read the other parts, [`widen`](Self::widen), ask again;
///    [`Choice::Configure`]: read the cooling settings, [`configure`](Self::configure), ask
///    again. Any other [`Choice`] is the one way to stop.
/// 2. The answer goes to [`succeeded`](Self::succeeded) (then deliver it) or to
///    [`failed`](Self::failed). Both return the [`Change`]s to record now
///    ([`crate::state::commit`]).
/// 3. After a failure the edge reads the state again and hands it to
///    [`refresh`](Self::refresh) (this request's own changes stay applied), then goes back to 1.
///
/// With verdict entries ([`verdict_entries`](Self::verdict_entries)), a key the index calls
/// free while the index may be behind comes as [`Choice::Confirm`] first.
pub struct Attempts<'a> {
    pool: KeyPool<'a>,
    state: PoolState,
    picker: Picker,
    /// The knobs past the first key (`None` until [`configure`](Self::configure)).
    retry: Option<RetrySettings>,
    upstream_limit: usize,
    spent: usize,
    made: usize,
    probed: bool,
    go_on: bool,
    own: Vec<Change>,
    /// Every key tried, and whether it served.
    history: Vec<(ApiKey<'a>, bool)>,
    /// The cooling candidates judged so far, in brief (for `Retry-After`, and for the choice
    /// when no key is usable).
    soonest_seen: Cell<Soonest>,
    /// The first answer that may be the request's own fault, until another project serves.
    suspect: Option<Suspect<'a>>,
    /// Google refused the request itself (400, 404, a 403 about what it names), or no key was
    /// alive to ask: the model it names is not one Google accepted.
    model_unconfirmed: bool,
    /// The only bucket whose keys may serve: the one holding the resources the request names.
    pin: Option<Pinned>,
    /// The only projects whose keys may serve: the client's policy's `projects`.
    fence: Option<Vec<String>>,
    /// Verdicts have entries of their own (the index items may be behind).
    entries: bool,
    /// Items the store refused one of this request's writes to: behind for the rest of it.
    throttled: Vec<Item>,
    /// Keys the index called free that their entries showed out: in a row, and in all.
    confirmed_out: (u32, u32),
}

/// What the request learned of the cooling candidates it judged: the one whose cooldown ends
/// first (its end and place), and whether every one was cooling because its model is retired.
/// A request that found no usable key has judged every candidate it may try (the picker scans
/// the pool before it gives up), so this spares it a second pass over the pool.
#[derive(Debug, Clone, Copy)]
struct Soonest {
    first: Option<(u64, Position)>,
    all_retired: bool,
}

impl Soonest {
    const NONE: Soonest = Soonest { first: None, all_retired: true };

    fn with(self, until_ms: u64, at: Position, reason: Reason) -> Self {
        let first = match self.first {
            Some((until, _)) if until <= until_ms => self.first,
            _ => Some((until_ms, at)),
        };
        Soonest { first, all_retired: self.all_retired && reason == Reason::ModelRetired }
    }
}

/// An answer that may be the request's fault ([`may_be_the_requests`]): the bucket
/// that gave it, and the changes its verdict would make — held until another bucket serves
/// the same request, which shows the fault was that bucket's.
///
/// [`may_be_the_requests`]: crate::google::classify::Outcome::may_be_the_requests
struct Suspect<'a> {
    bucket: Bucket<'a>,
    held: Vec<Change>,
}

impl<'a> Attempts<'a> {
    /// The attempts of one request, over the parts of `pool` read so far and their `state`
    /// (whose model is the request's; `None`: an endpoint without a model). The first key
    /// needs no knobs; the rest need the [`RetrySettings`], which [`failed`](Self::failed) and
    /// [`configure`](Self::configure) bring.
    pub fn new(pool: KeyPool<'a>, state: PoolState, seed: u64) -> Self {
        Attempts {
            pool,
            state,
            picker: Picker::new(seed),
            retry: None,
            upstream_limit: MAX_UPSTREAM_REQUESTS,
            spent: 0,
            made: 0,
            probed: false,
            go_on: true,
            own: Vec::new(),
            history: Vec::new(),
            soonest_seen: Cell::new(Soonest::NONE),
            suspect: None,
            model_unconfirmed: false,
            pin: None,
            fence: None,
            entries: false,
            throttled: Vec::new(),
            confirmed_out: (0, 0),
        }
    }

    /// Only keys of these projects may serve this request (the client's policy:
    /// [`crate::client::policy`]); when they are all cooling the request ends with a 429.
    pub fn fence(&mut self, projects: Vec<String>) {
        self.fence = Some(projects);
    }

    /// May `key` serve this request at all (its pin and its client's projects)?
    fn may_serve(pin: &Option<Pinned>, fence: &Option<Vec<String>>, key: &ApiKey<'_>) -> bool {
        pin.as_ref().is_none_or(|bucket| bucket.holds(key)) && in_projects(fence.as_deref(), key)
    }

    /// Only keys of `bucket` may serve this request (it names resources that live there:
    /// [`crate::decide::affinity`]). When they are all cooling the request ends with a 429
    /// and `Retry-After`, never with a key of another project.
    pub fn pin(&mut self, bucket: Pinned) {
        self.pin = Some(bucket);
    }

    /// The state as this request sees it (what was read, and its own changes).
    pub fn state(&self) -> &PoolState {
        &self.state
    }

    /// The model this request is for.
    pub fn model(&self) -> Option<&str> {
        self.state.model()
    }

    /// The pool, as far as it has been read.
    pub fn pool(&self) -> &KeyPool<'a> {
        &self.pool
    }

    /// Adds parts just read (after [`Choice::Widen`]): each part's bytes and state.
    pub fn widen(&mut self, parts: Vec<(usize, &'a [u8], PartState)>) {
        for (part, bytes, mut state) in parts {
            for change in self.own.iter().filter(|c| c.item.part == part) {
                let marks = if change.item.model.is_none() { &mut state.keys } else { &mut state.model };
                marks.apply(change.name.clone(), change.entry);
            }
            self.pool.add(part, bytes);
            self.state.set(part, state);
        }
    }

    /// Will [`next`](Self::next) certainly stop? (The last answer ends the request, or the
    /// budget is spent.)
    pub fn finished(&self) -> bool {
        !self.go_on || self.spent >= self.budget() || self.made >= self.upstream_limit
    }

    /// The knobs past the first key (after [`Choice::Configure`]; [`failed`](Self::failed)
    /// takes them from its settings).
    pub fn configure(&mut self, retry: &RetrySettings) {
        self.retry = Some(*retry);
        self.picker.set_strategy(retry.strategy);
    }

    /// Failures that could hit any key, at most: `max_attempts`, 32 and the upstream limit.
    fn budget(&self) -> usize {
        let max_attempts = self.retry.map_or(MAX_UPSTREAM_REQUESTS, |r| r.max_attempts);
        max_attempts.min(MAX_UPSTREAM_REQUESTS).min(self.upstream_limit)
    }

    /// The log line for a failed attempt, once [`failed`](Self::failed) has taken it: which
    /// attempt, the key's mask and fingerprint, the model, Google's status, the verdict, and
    /// what happens next. The model came from the client and Google's words may quote the
    /// key: both are scrubbed.
    pub fn failure_line(&self, key: &ApiKey<'_>, verdict: &Verdict) -> String {
        let status = verdict.status.map_or("no answer".to_string(), |s| format!("HTTP {s}"));
        let next = if self.finished() { "answering the client" } else { "trying another key" };
        format!(
            "attempt {}: key {} ({}) model {}: {status}: {} [{}]; {next}",
            self.made,
            key.mask(),
            key.fingerprint,
            scrub(self.model().unwrap_or("-"), &[key.secret]),
            verdict.outcome,
            scrub(&verdict.detail, &[key.secret]),
        )
    }

    /// Caps the upstream requests of this request at `limit` (at most the default 32).
    pub fn limit_upstream(&mut self, limit: usize) {
        self.upstream_limit = limit.clamp(1, MAX_UPSTREAM_REQUESTS);
    }

    /// This request's own changes so far (committed, or held back by the store).
    pub fn own_changes(&self) -> &[Change] {
        &self.own
    }

    /// Every key tried so far, and whether it served (for usage counts).
    pub fn history(&self) -> &[(ApiKey<'a>, bool)] {
        &self.history
    }

    /// What to do next.
    pub fn next(&mut self, now_ms: u64) -> Choice<'a> {
        if self.finished() {
            return Choice::Deliver;
        }
        let (state, probed, soonest, pin, fence) =
            (&self.state, self.probed, &self.soonest_seen, &self.pin, &self.fence);
        let suspect = self.suspect.as_ref().map(|s| s.bucket);
        let usable = |key: &ApiKey<'a>| match state.availability(key, now_ms) {
            _ if !Self::may_serve(pin, fence, key) => false,
            _ if suspect.is_some_and(|bucket| Bucket::of(key) == bucket) => false,
            Availability::Ready => true,
            Availability::Probation => !probed,
            Availability::Cooling { until_ms, reason } => {
                soonest.set(soonest.get().with(until_ms, key.at, reason));
                false
            }
            Availability::Dead => false,
        };
        let looked_enough = self.confirmed_out.1 >= MAX_CONFIRMED_OUT;
        let picked = if looked_enough { None } else { self.picker.pick(&self.pool, usable) };
        if let Some(key) = picked {
            if self.must_confirm(&key, now_ms) {
                return Choice::Confirm(key);
            }
            self.note_probation(&key, now_ms);
            return Choice::Try(key);
        }
        if !self.pool.is_whole() && !looked_enough {
            return Choice::Widen;
        }
        if self.made > 0 {
            return Choice::Deliver;
        }
        let Some(retry) = self.retry else { return Choice::Configure };
        self.when_none_usable(&retry, now_ms)
    }

    /// The attempt with `key` succeeded; returns the changes to commit (with the held verdict
    /// of a 403 another project gave this request before: it was that project's after all).
    pub fn succeeded(&mut self, key: &ApiKey<'a>, now_ms: u64) -> Vec<Change> {
        self.made += 1;
        self.history.push((*key, true));
        self.go_on = false;
        self.model_unconfirmed = false;
        let mut changes: Vec<Change> = revival(key, &self.state, now_ms).into_iter().collect();
        changes.extend(self.suspect.take().map(|s| s.held).unwrap_or_default());
        self.keep(&changes);
        changes
    }

    /// The attempt with `key` failed with `verdict`; returns the changes to commit.
    pub fn failed(
        &mut self,
        key: &ApiKey<'a>,
        verdict: &Verdict,
        cooling: &CoolingSettings,
        now_ms: u64,
    ) -> Vec<Change> {
        self.configure(&cooling.retry);
        self.made += 1;
        self.history.push((*key, false));
        if !verdict.outcome.names_the_fault() {
            self.spent += 1;
        }
        self.model_unconfirmed = verdict.outcome.refuses_the_request();
        let jitter_ms = cooling.retry.jitter_ms();
        let jitter = self.picker.rng().below(usize::try_from(jitter_ms).unwrap_or(usize::MAX).saturating_add(1));
        let judgement = judge(key, verdict, &self.state, cooling, now_ms, jitter as u64);
        self.go_on = judgement.retry;
        let mut changes: Vec<Change> = judgement.revival.into_iter().collect();
        if verdict.outcome.may_be_the_requests() {
            self.suspect(key, judgement.cooldown.into_iter().collect());
        } else {
            changes.extend(judgement.cooldown);
        }
        self.keep(&changes);
        changes
    }

    /// A 403 that may be the request's own fault: the first is held (the request tries
    /// another project); a second, from another project, ends the request — it is the
    /// request, not the keys — and nothing is recorded.
    fn suspect(&mut self, key: &ApiKey<'a>, held: Vec<Change>) {
        if self.suspect.is_some() {
            self.suspect = None;
            self.go_on = false;
            return;
        }
        self.suspect = Some(Suspect { bucket: Bucket::of(key), held });
    }

    /// The model to count this request's usage under: the one it names, or [`OTHER_MODEL`]
    /// when Google refused the request itself (a name Google does not know must not become a
    /// line of its own: clients can invent any number of them).
    pub fn counted_model(&self) -> Option<&str> {
        if self.model_unconfirmed {
            return self.model().map(|_| OTHER_MODEL);
        }
        self.model()
    }

    /// The store refused to commit this attempt's verdict (throttled, overloaded): the free walk
    /// past a bucket that names the fault rests on everyone learning of it, so without the
    /// record the attempt spends the budget like any other failure.
    pub fn uncommitted(&mut self) {
        self.spent += 1;
    }

    /// The state as read again after a failure; this request's own changes stay applied.
    pub fn refresh(&mut self, mut state: PoolState) {
        state.inherit(std::mem::take(&mut self.state));
        for change in &self.own {
            state.apply(change);
        }
        self.state = state;
    }

    /// Verdicts have entries of their own: a key the index calls free while it may be behind
    /// is confirmed against them first ([`Choice::Confirm`]).
    pub fn verdict_entries(&mut self, on: bool) {
        self.entries = on;
    }

    /// The store refused this request's writes to `items`: keys are confirmed against their
    /// entries there from now on.
    pub fn throttled(&mut self, items: &[Item]) {
        for item in items {
            if !self.throttled.contains(item) {
                self.throttled.push(item.clone());
            }
        }
    }

    /// `key`'s entries as read (after [`Choice::Confirm`]): the key, if they leave it free to
    /// try (else [`next`](Self::next) chooses again; the key is not offered again).
    pub fn confirmed(&mut self, key: ApiKey<'a>, entries: Vec<(Item, Marks)>, now_ms: u64) -> Option<ApiKey<'a>> {
        self.state.take_entries(entries);
        match self.state.availability(&key, now_ms) {
            Availability::Ready => {}
            Availability::Probation if !self.probed => {}
            Availability::Cooling { until_ms, reason } => {
                self.soonest_seen.set(self.soonest_seen.get().with(until_ms, key.at, reason));
                self.confirmed_out_once();
                return None;
            }
            _ => {
                self.confirmed_out_once();
                return None;
            }
        }
        self.confirmed_out.0 = 0;
        self.note_probation(&key, now_ms);
        Some(key)
    }

    /// The entries to read to confirm `key` (after [`Choice::Confirm`]).
    pub fn entries_of(&self, key: &ApiKey<'_>, now_ms: u64) -> Vec<Item> {
        self.state.entries_of(key, now_ms, &self.throttled)
    }

    /// One more key the index called free was out.
    fn confirmed_out_once(&mut self) {
        self.confirmed_out = (self.confirmed_out.0 + 1, self.confirmed_out.1 + 1);
        if self.confirmed_out.0 >= WALK_CONFIRMS {
            self.picker.draw_from_now();
        }
    }

    /// Must `key` be confirmed against its entries before a call?
    fn must_confirm(&self, key: &ApiKey<'_>, now_ms: u64) -> bool {
        self.entries && !self.entries_of(key, now_ms).is_empty() && !self.state.confirmed(key)
    }

    /// For a `Retry-After` on a final 429: until the first cooldown this request met or set
    /// ends, from `now_ms`.
    pub fn retry_after_ms(&self, now_ms: u64) -> Option<u64> {
        let set = self.own.iter().filter_map(|c| match c.entry {
            Entry::Set(m) if !m.dead => Some(m.until_ms),
            _ => None,
        });
        let seen = self.soonest_seen.get().first.map(|(until, _)| until);
        set.chain(seen).min().map(|until| until.saturating_sub(now_ms))
    }

    fn note_probation(&mut self, key: &ApiKey<'_>, now_ms: u64) {
        if self.state.availability(key, now_ms) == Availability::Probation {
            self.probed = true;
        }
    }

    /// Nothing tried yet and no usable key: every key is cooling or dead. The cooling keys the
    /// picker judged say which frees first; only if it judged none (every key dead, or kept out
    /// for this request) is the pool scanned again.
    fn when_none_usable(&mut self, retry: &RetrySettings, now_ms: u64) -> Choice<'a> {
        let seen = self.soonest_seen.get();
        let judged = seen.first.and_then(|(until_ms, at)| Some((until_ms, self.pool.key_at(at)?)));
        let (until_ms, key, retired) = match judged.filter(|(_, key)| !self.picker.tried(key)) {
            Some((until_ms, key)) => (until_ms, key, seen.all_retired),
            None => match self.soonest_by_scan(now_ms) {
                Some(found) => found,
                None => {
                    self.model_unconfirmed = true;
                    return Choice::AllDead;
                }
            },
        };
        let wait_ms = until_ms.saturating_sub(now_ms);
        if retry.when_all_cooling == WhenAllCooling::ShortestCooldown || wait_ms <= retry.jitter_ms() {
            self.picker.take(&key);
            return Choice::Try(key);
        }
        Choice::AllCooling { retry_after_ms: wait_ms, retired }
    }

    /// Of the keys not tried that may serve, the cooling one that frees first, and whether
    /// every cooling one is so because its model is retired (a pass over the pool).
    fn soonest_by_scan(&self, now_ms: u64) -> Option<(u64, ApiKey<'a>, bool)> {
        let mut retired = true;
        let soonest = self
            .pool
            .iter()
            .filter(|key| !self.picker.tried(key) && Self::may_serve(&self.pin, &self.fence, key))
            .filter_map(|key| match self.state.availability(&key, now_ms) {
                Availability::Cooling { until_ms, reason } => {
                    retired &= reason == Reason::ModelRetired;
                    Some((until_ms, key))
                }
                _ => None,
            })
            .min_by_key(|(until_ms, _)| *until_ms);
        soonest.map(|(until_ms, key)| (until_ms, key, retired))
    }

    fn keep(&mut self, changes: &[Change]) {
        for change in changes {
            self.state.apply(change);
        }
        self.own.extend_from_slice(changes);
    }
}
