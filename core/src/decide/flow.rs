//! One request for Google's API, start to end, as a state machine (the rustls / quinn-proto
//! shape): the core decides every step and its order — which key list to fetch, which items to
//! read, which key to send with, what to write and read back, when to stop — and hands the edge
//! one [`Step`] at a time. The edge does it (Fastly synchronously, Workers asynchronously) and
//! hands back what happened. Nothing here performs I/O or reads a clock.
//!
//! The edge's whole loop, for any [`Machine`] (this [`Flow`], or the key check's
//! [`crate::decide::keycheck::Check`]):
//!
//! ```text
//! loop {
//!     match machine.step(now) {
//!         Step::Fetch(part)                  => machine.fetched(part, that part's key list),
//!         Step::Read(items)                  => machine.read(each item with its marks),
//!         Step::Configure                    => machine.configured(the cooling settings),
//!         Step::Send(keys)                   => machine.answered(one Answer per key, sent side by side),
//!         Step::Record { writes, read_back } => execute the writes in order; then
//!                                               machine.read(read_back with its marks),
//!                                               or machine.written() if read_back is empty,
//!         Step::Look(items)                  => machine.looked(each item's bytes, or none),
//!         Step::Remember { .. }              => store the record, append the index line,
//!         Step::Rate(entry)                  => machine.rated(the platform's count of the minute),
//!         Step::Append { .. }                => append the bytes to the item,
//!         Step::Log(line)                    => log it,
//!         Step::Wait(ms)                     => sleep that long,
//!         Step::Done(done)                   => break,
//!     }
//! }
//! ```
//!
//! A request's steps, in order:
//! 0. **Gate** (only for a client with limits: [`crate::decide::limits`]): `Rate` (the
//!    platform's counter) and / or `Append` a claim to the client's limit item and `Look` at
//!    it; the request is admitted, or refused (429) and its claim given back (`Append`).
//! 0. **Look** (only if it names stateful resources: [`crate::decide::affinity`]): read their
//!    records; the request is pinned to the project holding them and starts in its part — or
//!    ends here (not found, two projects).
//! 1. **Start**: draw the part of the pool to start in, in proportion to the parts' sizes
//!    ([`crate::pool::keys`]): `Fetch` the drawn part's key list, accept it or draw again; if the
//!    part holds no key, `Fetch` every other part. `Read` the items of the parts fetched.
//! 2. **Attempt**: [`Attempts`] chooses a key → `Send`; or the parts read have no key left →
//!    `Fetch` and `Read` the others (widening); or the knobs past the first key are needed →
//!    `Configure`; or nothing can serve → `Done`.
//! 3. **Judge and record**: the answer becomes a verdict and the changes it makes; a failure
//!    is logged. The changes are written at once and read back ([`crate::shared::record::Recorder`]):
//!    `Record` with the items to read back — again while a concurrent rewrite lost one — then
//!    `Record` of the compactions due. The state read back is what the next attempt chooses
//!    from. Then 2 again, until `Done`.
//!
//! A success that made a resource `Remember`s its record just before `Done`, so a follow-up
//! finds it. Usage is counted after the client has its answer: [`Flow::usage`].

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::decide::affinity::{self, Pin, Record, Resource};
use crate::decide::attempts::{Attempts, Choice};
use crate::decide::ending::Ending;
use crate::decide::limits::{Gate, RateHeaders};
use crate::decide::listing;
use crate::google::classify::Verdict;
use crate::operator::settings::{CoolingSettings, RequestSettings};
use crate::pool::keys::{self, ApiKey, KeyPool};
use crate::pool::rng::Rng;
use crate::shared::failures::Failure;
use crate::shared::marks::Entry;
use crate::shared::marks::Marks;
use crate::shared::record::{Recorder, Round, Write};
use crate::shared::state::{Change, Item, PartState, PoolState};
use crate::shared::usage;

/// What the edge does next. `D` is what the machine ends with.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a, D> {
    /// Fetch this part's key list (its secret or variable) and hand the bytes to
    /// [`Machine::fetched`]. They must live as long as the machine.
    Fetch(usize),
    /// Read these state items and hand each with its marks to [`Machine::read`] (an item the
    /// store does not have comes back empty).
    Read(Vec<Item>),
    /// Read the cooling settings and hand them to [`Machine::configured`].
    Configure,
    /// Send the request to Google with each of these keys, side by side, and hand the answers
    /// to [`Machine::answered`] in the same order.
    Send(Vec<ApiKey<'a>>),
    /// Execute these writes in order; then read `read_back` and hand it to [`Machine::read`],
    /// or if it is empty call [`Machine::written`].
    Record {
        /// Appends and replacements ([`crate::shared::record`]).
        writes: Vec<Write>,
        /// The items to read after writing.
        read_back: Vec<Item>,
    },
    /// Read these resource records (store items by name: [`crate::decide::affinity`]) and hand
    /// each one's bytes, or `None` if the store has none, to [`Machine::looked`] in this order.
    Look(Vec<String>),
    /// Store this resource record (a success made the resource) under `item`, kept for
    /// `ttl_secs`, unless the store has one already; if it stored one, append `line` to the
    /// maker's `index` item (kept as long as the longest record: [`crate::decide::listing`]).
    /// Then ask for the next step.
    Remember {
        /// The store item's name.
        item: String,
        /// The record's bytes.
        record: Vec<u8>,
        /// How long the store keeps it.
        ttl_secs: u64,
        /// The maker's index item.
        index: String,
        /// The line to append to it.
        line: Vec<u8>,
    },
    /// Ask the platform's rate counter how many requests `entry` made in the last minute,
    /// count this one, and hand the count (or `None`: no counter) to [`Machine::rated`].
    Rate(String),
    /// Append `bytes` to `item` (kept `ttl_secs`), then ask for the next step.
    Append {
        /// The store item's name.
        item: String,
        /// What to append.
        bytes: Vec<u8>,
        /// How long the store keeps the item.
        ttl_secs: u64,
    },
    /// Log this line (a failed attempt, a dead key found, a store that keeps losing writes).
    /// It holds no key.
    Log(String),
    /// Wait this long (ms), then ask for the next step (a [`Linger`] lets a throttled store's
    /// budget refill).
    Wait(u64),
    /// Over.
    Done(D),
}

/// Google's answer to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx (a request's edge keeps the response to deliver it).
    Served,
    /// A 2xx to a list call, its body read whole (up to
    /// [`SPOT_LIMIT`](crate::decide::affinity::SPOT_LIMIT)): a page a
    /// [`Listing`](crate::decide::listing::Listing) merges.
    Page(Vec<u8>),
    /// A 2xx that made this resource (the edge spotted its name in the answer:
    /// [`crate::decide::affinity::Spotter`]); it is delivered like [`Answer::Served`].
    Made(Resource),
    /// A 2xx with nothing in it: the edge [`Peeker`](crate::google::empty::Peeker)ed at the head of
    /// an answer [`Route::answer_may_be_empty`](crate::client::route::Route::answer_may_be_empty)
    /// names. The edge keeps it: it is what the client gets if no other key serves.
    Empty,
    /// An error status, and (the first [`crate::decide::ending::ERROR_BODY_LIMIT`] bytes of) its body.
    Error {
        /// Google's status.
        status: u16,
        /// Google's body.
        body: Vec<u8>,
    },
    /// No answer: `timeout` (not in time), or the connection failed; and why.
    None {
        /// It was a timeout.
        timeout: bool,
        /// What the platform said.
        detail: String,
    },
}

/// A sans-I/O machine the edge drives with its one loop (see the module documentation).
pub trait Machine<'a> {
    /// What it ends with.
    type Done;
    /// What to do next, at `now_ms`.
    fn step(&mut self, now_ms: u64) -> Step<'a, Self::Done>;
    /// A part's key list, as fetched.
    fn fetched(&mut self, part: usize, bytes: &'a [u8]);
    /// Items as read from the store.
    fn read(&mut self, items: Vec<(Item, Marks)>);
    /// The cooling settings.
    fn configured(&mut self, cooling: &CoolingSettings);
    /// Google's answers to the last [`Step::Send`], in its order.
    fn answered(&mut self, answers: Vec<Answer>);
    /// The writes of a [`Step::Record`] without read-back are done.
    fn written(&mut self);
    /// The store refused the writes at these indices of the last [`Step::Record`]
    /// (`TooManyRequests` on Fastly, `overloaded` on Workers): called before
    /// [`read`](Self::read) or [`written`](Self::written).
    fn refused(&mut self, writes: Vec<usize>);
    /// The records a [`Step::Look`] asked for, in its order (machines that never look ignore it).
    fn looked(&mut self, _records: Vec<Option<Vec<u8>>>) {}
    /// The platform's count for a [`Step::Rate`] (machines that never ask ignore it).
    fn rated(&mut self, _count: Option<u64>) {}
}

/// How a request ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Google served: the response the last [`Step::Send`] got goes to the client as it is.
    Served,
    /// This error goes to the client (Google's last answer in the client's envelope, or the
    /// proxy's own: every key cooling or dead, Google unreachable).
    Error(ErrorReply),
    /// No part of the pool holds a key: a configuration error.
    EmptyPool,
}

/// One request's flow. See the module documentation for the call order.
pub struct Flow<'a> {
    model: Option<String>,
    seed: u64,
    rng: Rng,
    upstream_limit: usize,
    /// Each part's key list, once fetched.
    lists: Vec<Option<&'a [u8]>>,
    /// The parts the attempts choose from, until the attempts begin.
    pool: Option<KeyPool<'a>>,
    attempts: Option<Attempts<'a>>,
    cooling: Option<CoolingSettings>,
    stage: Stage<'a>,
    /// A line to log before the next step.
    log: Option<String>,
    /// How the attempts ended so far (Google's last answer, or none yet).
    last: Ending<'a>,
    /// Changes the store refused: they go out with the next write, or after the answer.
    carry: Vec<Change>,
    /// The stateful resources the request names and what it makes ([`crate::decide::affinity`]).
    resources: Resources,
    /// The client's limits, if it has any ([`crate::decide::limits`]).
    gate: Option<Gate>,
    /// What a limited client is told of its headroom.
    rate_headers: RateHeaders,
    /// Refused by the client's own limit: nothing counts.
    over_limit: bool,
    /// The projects the client's keys must come from (its policy).
    fence: Option<Vec<String>>,
    /// The failed attempts, for the recent-failures list ([`crate::shared::failures`]).
    failures: Vec<Failure>,
}

/// A request's stateful resources: what it names (looked up first), the pin the records give,
/// and the record of what a success made, to store before the answer goes out.
#[derive(Default)]
struct Resources {
    named: Vec<Resource>,
    caller: Option<Caller>,
    pin: Option<Pin>,
    remember: Option<Step<'static, Finish>>,
}

/// Where a [`Stage::Gate`] is.
enum GateAt {
    /// Ask the platform's counter (if `rpm` counts there).
    Platform,
    /// Awaiting its count.
    Rated,
    /// Claim a place in the limit item (if requests count in the store).
    Claim,
    /// Read the limit item (if a limit counts in the store).
    Store,
    /// Awaiting the item.
    Looked,
    /// Decide.
    Verdict,
}

/// Where the flow is.
enum Stage<'a> {
    /// The `tries`th draw of the starting part chose `part`; its size decides.
    Choose { part: usize, tries: usize },
    /// Every part is fetched to draw the starting part by size.
    DrawBySize,
    /// The client's limits are checked first (`at`), then `then`.
    Gate { at: GateAt, then: Box<Stage<'a>> },
    /// The records of the resources the request names are read first.
    Look,
    /// `part` is the starting part; if it holds no key every part is used.
    Start(usize),
    /// The items of `parts` are being read (to begin the attempts, or to widen them).
    Read { parts: Vec<usize>, widen: bool },
    /// The parts read have no key left: `parts` are fetched, then read.
    Widen(Vec<usize>),
    /// The attempts decide.
    Next,
    /// A key was sent; its answer is awaited.
    Sent(ApiKey<'a>),
    /// An answer awaits judging (the cooling settings are read first if need be).
    Judge(ApiKey<'a>, Answer),
    /// Changes are being recorded.
    Record(Recorder),
    /// Over.
    Done(Finish),
}

impl<'a> Flow<'a> {
    /// The flow of a request about `model` (`None`: an endpoint without one) over a pool of
    /// `parts` key lists, with the request's random `seed`, making at most `upstream_limit`
    /// calls to Google (the edge's limit; at most 32).
    pub fn new(parts: usize, model: Option<&str>, seed: u64, upstream_limit: usize) -> Self {
        let mut rng = Rng::new(seed);
        let parts = parts.max(1);
        let stage = match parts {
            1 => Stage::Start(0),
            _ => Stage::Choose { part: rng.below(parts), tries: 1 },
        };
        Flow {
            model: model.map(str::to_string),
            seed,
            rng,
            upstream_limit,
            lists: vec![None; parts],
            pool: None,
            attempts: None,
            cooling: None,
            stage,
            log: None,
            last: Ending::nothing_yet(),
            carry: Vec::new(),
            resources: Resources::default(),
            gate: None,
            rate_headers: Vec::new(),
            over_limit: false,
            fence: None,
            failures: Vec::new(),
        }
    }

    /// A request by a client with limits: checked (and counted) before anything else, after
    /// the resources it names are known (call after [`with_resources`](Self::with_resources)).
    pub fn with_limits(mut self, gate: Gate) -> Self {
        let then = std::mem::replace(&mut self.stage, Stage::Next);
        self.stage = Stage::Gate { at: GateAt::Platform, then: Box::new(then) };
        self.gate = Some(gate);
        self
    }

    /// Only keys of these projects may serve (the client's policy `projects`).
    pub fn within(mut self, projects: Option<Vec<String>>) -> Self {
        self.fence = projects;
        self
    }

    /// Did the client's own limit refuse the request?
    pub fn over_limit(&self) -> bool {
        self.over_limit
    }

    /// The `x-ratelimit-*` headers every answer to a limited client carries.
    pub fn rate_headers(&self) -> &RateHeaders {
        &self.rate_headers
    }

    /// A request by `caller` that names `named` resources (their records are read first: the
    /// request is pinned to the project holding them, or refused). A success the edge answers
    /// as [`Answer::Made`] has its record stored before the answer goes out. See
    /// [`crate::decide::affinity`].
    pub fn with_resources(mut self, named: Vec<Resource>, caller: &Caller) -> Self {
        if !named.is_empty() {
            self.stage = Stage::Look;
        }
        self.resources = Resources { named, caller: Some(caller.clone()), pin: None, remember: None };
        self
    }

    /// The model the request is about.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// This request's counts for `client`, appended once the client has its answer: its usage
    /// (if `usage_counts` is on: each key tried, whether the client was served, in the quota
    /// day at `now_ms`, kept `history_days`) and, for a client with a daily token limit, its
    /// tokens in its limit item. None for a request its client's own limit refused, or when
    /// there is nothing to count.
    pub fn usage(&mut self, client: &str, now_ms: u64, settings: &RequestSettings) -> Option<usage::UsageAppend> {
        let token_item = self.gate.as_ref().and_then(Gate::token_item);
        if self.over_limit || !settings.usage_counts && token_item.is_none() {
            return None;
        }
        // An upload session's bytes count for the client that started it.
        let client = self.resources.pin.as_ref().map_or(client, |pin| pin.owner.as_str());
        let served = matches!(self.stage, Stage::Done(Finish::Served));
        let (history, model): (&[(ApiKey<'a>, bool)], Option<&str>) = match &self.attempts {
            Some(attempts) => (attempts.history(), attempts.counted_model()),
            None => (&[], self.model.as_deref()),
        };
        // A model Google did not accept is not shown by the name the client invented.
        for failure in &mut self.failures {
            failure.model = model.unwrap_or("-").to_string();
        }
        let (zone, keep_days) = (settings.reset_zone, settings.history_days);
        let mut append =
            usage::UsageAppend::new(history, client, model, served, now_ms, zone, keep_days, &mut self.rng)
                .with_failures(&self.failures);
        if let Some((item, ttl_secs)) = token_item {
            append = append.count_tokens_in(item, now_ms, ttl_secs);
        }
        Some(if settings.usage_counts { append } else { append.only_limit() })
    }

    /// After [`Step::Done`]: the changes the store refused and the request could not record,
    /// as a machine the edge runs once the client has its answer ([`Linger`]).
    pub fn linger(&mut self) -> Option<Linger> {
        let changes = std::mem::take(&mut self.carry);
        let seed = self.rng.next_u64();
        (!changes.is_empty()).then(|| Linger::new(changes, self.lists.len(), self.model.as_deref(), seed))
    }

    /// This request's changes so far, in order (for checks and tests).
    pub fn changes(&self) -> &[Change] {
        self.attempts.as_ref().map_or(&[], Attempts::own_changes)
    }

    /// Moves one stage on: the next stage, and the step to hand out (none: go on at once).
    fn advance(&mut self, stage: Stage<'a>, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        match stage {
            Stage::Choose { part, tries } => self.choose(part, tries),
            Stage::DrawBySize => self.draw_by_size(),
            Stage::Gate { at, then } => self.gate(at, then),
            Stage::Look => {
                let items = self.resources.named.iter().map(Resource::item).collect();
                (Stage::Look, Some(Step::Look(items)))
            }
            Stage::Start(part) => self.start(part),
            Stage::Read { parts, widen } => {
                let items = self.items(&parts);
                (Stage::Read { parts, widen }, Some(Step::Read(items)))
            }
            Stage::Widen(parts) => match parts.iter().find(|&&p| self.lists[p].is_none()) {
                Some(&missing) => (Stage::Widen(parts), Some(Step::Fetch(missing))),
                None => (Stage::Read { parts, widen: true }, None),
            },
            Stage::Next => self.next(now_ms),
            Stage::Sent(key) => (Stage::Sent(key), Some(Step::Send(vec![key]))),
            Stage::Judge(key, answer) => self.judge(key, answer, now_ms),
            Stage::Record(recorder) => self.record(recorder, now_ms),
            Stage::Done(Finish::Served) if self.resources.remember.is_some() => {
                (Stage::Done(Finish::Served), self.resources.remember.take())
            }
            Stage::Done(finish) => (Stage::Done(finish.clone()), Some(Step::Done(finish))),
        }
    }

    /// The client's limits: the platform's count, the limit item, the verdict.
    fn gate(&mut self, at: GateAt, then: Box<Stage<'a>>) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(gate) = self.gate.as_mut() else { return (*then, None) };
        match at {
            GateAt::Platform => match gate.platform_entry() {
                Some(entry) => (Stage::Gate { at: GateAt::Rated, then }, Some(Step::Rate(entry))),
                None => (Stage::Gate { at: GateAt::Claim, then }, None),
            },
            GateAt::Claim => {
                let claim = gate.claim(self.rng.next_u64()).and_then(|bytes| {
                    Some(Step::Append { item: gate.store_item()?, bytes, ttl_secs: gate.ttl_secs() })
                });
                (Stage::Gate { at: GateAt::Store, then }, claim)
            }
            GateAt::Store => match gate.store_item() {
                Some(item) => (Stage::Gate { at: GateAt::Looked, then }, Some(Step::Look(vec![item]))),
                None => (Stage::Gate { at: GateAt::Verdict, then }, None),
            },
            // The edge did not hand the count or the item back: go on as if none.
            GateAt::Rated => (Stage::Gate { at: GateAt::Claim, then }, None),
            GateAt::Looked => (Stage::Gate { at: GateAt::Verdict, then }, None),
            GateAt::Verdict => match gate.verdict() {
                // A refused request gives its place back.
                Err(reply) => {
                    self.rate_headers = gate.headers(false);
                    self.over_limit = true;
                    let cancel = gate.cancel().and_then(|bytes| {
                        Some(Step::Append { item: gate.store_item()?, bytes, ttl_secs: gate.ttl_secs() })
                    });
                    (Stage::Done(Finish::Error(reply)), cancel)
                }
                Ok(()) => {
                    self.rate_headers = gate.headers(true);
                    (*then, None)
                }
            },
        }
    }

    /// The part drawn at the `tries`th draw is accepted in proportion to its size.
    fn choose(&mut self, part: usize, tries: usize) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(bytes) = self.lists[part] else {
            return (Stage::Choose { part, tries }, Some(Step::Fetch(part)));
        };
        if keys::accepts_part(&mut self.rng, bytes.len()) {
            return (Stage::Start(part), None);
        }
        if tries >= self.lists.len() * 4 {
            return (Stage::DrawBySize, None);
        }
        let next = self.rng.below(self.lists.len());
        (Stage::Choose { part: next, tries: tries + 1 }, None)
    }

    /// Small parts were rejected every time: every part is fetched and one drawn by size.
    fn draw_by_size(&mut self) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        if let Some(part) = self.missing() {
            return (Stage::DrawBySize, Some(Step::Fetch(part)));
        }
        let sizes: Vec<usize> = self.lists.iter().map(|l| l.map_or(0, <[u8]>::len)).collect();
        (Stage::Start(keys::part_by_size(&mut self.rng, &sizes)), None)
    }

    /// The starting part alone, or every part when it holds no key.
    fn start(&mut self, part: usize) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(bytes) = self.lists[part] else {
            return (Stage::Start(part), Some(Step::Fetch(part)));
        };
        let mut pool = KeyPool::with_parts(self.lists.len());
        pool.add(part, bytes);
        if !pool.is_empty() {
            self.pool = Some(pool);
            return (Stage::Read { parts: vec![part], widen: false }, None);
        }
        if let Some(missing) = self.missing() {
            return (Stage::Start(part), Some(Step::Fetch(missing)));
        }
        let pool = KeyPool::new(self.lists.iter().map(|l| l.unwrap_or_default()));
        if pool.is_empty() {
            return (Stage::Done(Finish::EmptyPool), None);
        }
        self.pool = Some(pool);
        (Stage::Read { parts: (0..self.lists.len()).collect(), widen: false }, None)
    }

    /// The attempts decide.
    fn next(&mut self, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(attempts) = self.attempts.as_mut() else {
            return (Stage::Done(Finish::EmptyPool), None);
        };
        match attempts.next(now_ms) {
            Choice::Try(key) => (Stage::Sent(key), Some(Step::Send(vec![key]))),
            Choice::Widen => {
                let parts = (0..self.lists.len()).filter(|&p| !attempts.pool().has(p)).collect();
                (Stage::Widen(parts), None)
            }
            Choice::Configure => match &self.cooling {
                Some(cooling) => {
                    attempts.configure(&cooling.retry);
                    (Stage::Next, None)
                }
                None => (Stage::Next, Some(Step::Configure)),
            },
            Choice::Deliver => (Stage::Done(self.finish(now_ms)), None),
            refusal => {
                if let Some(ending) = Ending::refusal(&refusal, attempts.model()) {
                    self.last = ending;
                }
                (Stage::Done(self.finish(now_ms)), None)
            }
        }
    }

    /// Turns an answer into a verdict and the changes it makes (a failure needs the cooling
    /// settings: asked for first), logs a failure, and records the changes.
    fn judge(&mut self, key: ApiKey<'a>, answer: Answer, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        if answer != Answer::Served && self.cooling.is_none() {
            return (Stage::Judge(key, answer), Some(Step::Configure));
        }
        let (Some(attempts), cooling) = (self.attempts.as_mut(), self.cooling.as_ref()) else {
            return (Stage::Done(Finish::EmptyPool), None);
        };
        let (verdict, ending) = match answer {
            Answer::Served | Answer::Page(_) => (None, Ending::Served),
            Answer::Made(resource) => {
                self.resources.remember(&key, &resource);
                (None, Ending::Served)
            }
            Answer::Empty => (Some(Verdict::empty()), Ending::Served),
            Answer::Error { status, body } => {
                let (verdict, ending) = Ending::upstream(status, body, &key);
                (Some(verdict), ending)
            }
            Answer::None { timeout, detail } => {
                let (verdict, ending) = Ending::no_answer(timeout, detail);
                (Some(verdict), ending)
            }
        };
        let changes = match (&verdict, cooling) {
            (Some(verdict), Some(cooling)) => {
                self.failures.push(Failure {
                    at_ms: now_ms,
                    fingerprint: key.fingerprint,
                    model: String::new(),
                    status: verdict.status.unwrap_or(0),
                    reason: verdict.outcome.to_string(),
                });
                let changes = attempts.failed(&key, verdict, cooling, now_ms);
                self.log = Some(attempts.failure_line(&key, verdict));
                changes
            }
            _ => attempts.succeeded(&key, now_ms),
        };
        // An empty answer the edge keeps is still better than a later error.
        if !matches!(self.last, Ending::Served) {
            self.last = ending;
        }
        // After a failure the state is read again even without changes (unless the request is
        // over): the next attempt chooses from what every instance has recorded by now.
        if changes.is_empty() && attempts.finished() {
            return (Stage::Next, None);
        }
        let mut changes = changes;
        changes.append(&mut self.carry);
        (Stage::Record(Recorder::new(changes, attempts.state())), None)
    }

    /// The recorder's next round, as a step.
    fn record(&mut self, mut recorder: Recorder, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(attempts) = self.attempts.as_ref() else {
            return (Stage::Done(Finish::EmptyPool), None);
        };
        match recorder.round(attempts.state(), now_ms) {
            Round::WriteAndRead(writes) => {
                let read_back = self.items(&attempts.state().read_parts());
                (Stage::Record(recorder), Some(Step::Record { writes, read_back }))
            }
            Round::Write(writes) => (Stage::Record(recorder), Some(Step::Record { writes, read_back: Vec::new() })),
            Round::Done => {
                self.carry = recorder.unrecorded();
                if !self.carry.is_empty() {
                    if let Some(attempts) = self.attempts.as_mut() {
                        attempts.unrecorded();
                    }
                }
                (Stage::Next, None)
            }
        }
    }

    /// The items of `parts` a request for this model reads.
    fn items(&self, parts: &[usize]) -> Vec<Item> {
        parts.iter().flat_map(|&p| Item::of_part(p, self.model.as_deref())).collect()
    }

    /// A part not fetched yet.
    fn missing(&self) -> Option<usize> {
        self.lists.iter().position(Option::is_none)
    }

    /// How the request ends, from the last ending.
    fn finish(&mut self, now_ms: u64) -> Finish {
        let last = std::mem::replace(&mut self.last, Ending::nothing_yet());
        let Some(attempts) = self.attempts.as_ref() else { return Finish::EmptyPool };
        match last.into_reply(attempts, now_ms) {
            Ok(()) => Finish::Served,
            Err(reply) => Finish::Error(reply),
        }
    }

    /// The items of `parts` are read: the attempts begin, or take the parts in.
    fn begin(&mut self, parts: Vec<usize>, widen: bool, items: Vec<(Item, Marks)>) -> Stage<'a> {
        let mut state = state_of(self.lists.len(), self.model.as_deref(), items);
        for &part in &parts {
            if !state.read_parts().contains(&part) {
                state.set(part, PartState::default());
            }
        }
        if widen {
            if let Some(attempts) = self.attempts.as_mut() {
                let read = parts.iter().map(|&p| (p, self.lists[p].unwrap_or_default(), state.take(p))).collect();
                attempts.widen(read);
            }
            return Stage::Next;
        }
        let Some(pool) = self.pool.take() else { return Stage::Done(Finish::EmptyPool) };
        let mut attempts = Attempts::new(pool, state, self.seed.rotate_left(32));
        attempts.limit_upstream(self.upstream_limit);
        if let Some(pin) = &self.resources.pin {
            attempts.pin(pin.bucket.clone());
        }
        if let Some(projects) = self.fence.take() {
            attempts.fence(projects);
        }
        self.attempts = Some(attempts);
        Stage::Next
    }
}

impl<'a> Machine<'a> for Flow<'a> {
    type Done = Finish;

    fn step(&mut self, now_ms: u64) -> Step<'a, Finish> {
        loop {
            if let Some(line) = self.log.take() {
                return Step::Log(line);
            }
            let stage = std::mem::replace(&mut self.stage, Stage::Next);
            let (stage, step) = self.advance(stage, now_ms);
            self.stage = stage;
            if let Some(step) = step {
                return step;
            }
        }
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        if let Some(slot) = self.lists.get_mut(part) {
            *slot = Some(bytes);
        }
    }

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        let stage = std::mem::replace(&mut self.stage, Stage::Next);
        self.stage = match stage {
            Stage::Read { parts, widen } => self.begin(parts, widen, items),
            Stage::Record(mut recorder) => {
                let fresh = state_of(self.lists.len(), self.model.as_deref(), items);
                self.log = recorder.read_back(&fresh);
                if let Some(attempts) = self.attempts.as_mut() {
                    attempts.refresh(fresh);
                }
                Stage::Record(recorder)
            }
            other => other,
        };
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        self.cooling = Some(cooling.clone());
    }

    fn rated(&mut self, count: Option<u64>) {
        if let Stage::Gate { at: at @ GateAt::Rated, .. } = &mut self.stage {
            if let Some(gate) = self.gate.as_mut() {
                gate.platform_counted(count);
            }
            *at = GateAt::Claim;
        }
    }

    fn answered(&mut self, answers: Vec<Answer>) {
        if let (Stage::Sent(key), Some(answer)) = (&self.stage, answers.into_iter().next()) {
            self.stage = Stage::Judge(*key, answer);
        }
    }

    fn written(&mut self) {
        if let Stage::Record(recorder) = &mut self.stage {
            recorder.written();
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        if let Stage::Record(recorder) = &mut self.stage {
            recorder.refused(&writes);
        }
    }

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        if let Stage::Gate { at: at @ GateAt::Looked, .. } = &mut self.stage {
            if let Some(gate) = self.gate.as_mut() {
                gate.store_read(records.into_iter().next().flatten().as_deref());
            }
            *at = GateAt::Verdict;
            return;
        }
        if !matches!(self.stage, Stage::Look) {
            return;
        }
        let named = std::mem::take(&mut self.resources.named);
        let looked: Vec<(Resource, Option<Record>)> = named
            .into_iter()
            .zip(records.into_iter().chain(std::iter::repeat(None)))
            .map(|(resource, bytes)| (resource, bytes.and_then(|b| Record::decode(&b))))
            .collect();
        let caller = self.resources.caller.clone().unwrap_or(Caller { label: String::new(), admin: false });
        self.stage = match affinity::pin(&caller, &looked) {
            Ok(pin) if !affinity::within(&pin, self.fence.as_deref()) => {
                Stage::Done(Finish::Error(ErrorReply::resource_outside_projects()))
            }
            Ok(pin) => {
                let part = pin.part.min(self.lists.len().saturating_sub(1));
                self.resources.pin = Some(pin);
                Stage::Start(part)
            }
            Err(reply) => Stage::Done(Finish::Error(reply)),
        };
    }
}

impl Resources {
    /// `key` served and made `resource`: its record, for the pin's owner (or the caller).
    fn remember(&mut self, key: &ApiKey<'_>, resource: &Resource) {
        let owner = match (&self.pin, &self.caller) {
            (Some(pin), _) => pin.owner.as_str(),
            (None, Some(caller)) => caller.label.as_str(),
            (None, None) => return,
        };
        let record = Record::new(key, owner);
        let line = listing::index_line(resource.kind, &resource.id, &record.bucket, record.part).into_bytes();
        self.remember = Some(Step::Remember {
            item: resource.item(),
            record: record.encode(),
            ttl_secs: resource.kind.ttl_secs(),
            index: listing::index_item(owner),
            line,
        });
    }
}

/// How long a [`Linger`] first waits for a throttled store, ms; doubled on each try, plus up to
/// as much again at random (so the requests a storm left lingering do not retry together).
const LINGER_WAIT_MS: u64 = 1_000;
/// Tries a [`Linger`] makes before it logs the changes as not recorded: waits of 1–2, 2–4,
/// 4–8 and 8–16 s, under Workers' 30 s for work after the answer.
const LINGER_TRIES: u32 = 4;

/// The tail of a request, after the client has its answer: changes the store refused
/// (throttled, overloaded) are written again after a wait that lets the store's budget
/// refill, doubling from about a second — unless the state already says them by then (another
/// instance recorded the same verdict), or the cooldown they set has ended (nothing left to
/// say). A verdict is logged as not recorded only after [`LINGER_TRIES`] refusals. It owns its
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
}

enum LingerStage {
    Wait,
    Read,
    Record(Recorder),
    Done,
}

impl Linger {
    fn new(changes: Vec<Change>, parts: usize, model: Option<&str>, seed: u64) -> Self {
        Linger {
            changes,
            rng: Rng::new(seed),
            parts,
            model: model.map(str::to_string),
            tries: 0,
            state: PoolState::new(parts, model),
            stage: LingerStage::Wait,
            log: None,
        }
    }

    fn items(&self) -> Vec<Item> {
        let mut items: Vec<Item> = self.changes.iter().map(|c| c.item.clone()).collect();
        items.sort();
        items.dedup();
        items
    }

    /// The recorder's rounds are over, leaving `unrecorded`: done, or another try after a
    /// longer wait.
    fn tried(&mut self, unrecorded: Vec<Change>) -> LingerStage {
        self.changes = unrecorded;
        self.tries += 1;
        if self.changes.is_empty() {
            return LingerStage::Done;
        }
        if self.tries >= LINGER_TRIES {
            let names: Vec<String> = self.changes.iter().map(|c| c.name.to_string()).collect();
            self.log = Some(format!(
                "state: the store refused the writes of {} {} times; not recorded",
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
                LingerStage::Record(recorder) => match recorder.round(&self.state, now_ms) {
                    Round::WriteAndRead(writes) => return Step::Record { writes, read_back: self.items() },
                    Round::Write(writes) => return Step::Record { writes, read_back: Vec::new() },
                    Round::Done => {
                        let unrecorded = recorder.unrecorded();
                        self.stage = self.tried(unrecorded);
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
                let recorder = Recorder::new(self.changes.clone(), &fresh);
                for change in &self.changes {
                    fresh.apply(change);
                }
                self.state = fresh;
                self.stage = LingerStage::Record(recorder);
            }
            LingerStage::Record(recorder) => {
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
        if let LingerStage::Record(recorder) = &mut self.stage {
            recorder.written();
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        if let LingerStage::Record(recorder) = &mut self.stage {
            recorder.refused(&writes);
        }
    }
}

/// The state of items read from the store, per part (for `model`'s request).
pub(crate) fn state_of(parts: usize, model: Option<&str>, items: Vec<(Item, Marks)>) -> PoolState {
    let mut state = PoolState::new(parts, model);
    let mut read: Vec<(usize, PartState)> = Vec::new();
    for (item, marks) in items {
        let at = match read.iter().position(|(p, _)| *p == item.part) {
            Some(at) => at,
            None => {
                read.push((item.part, PartState::default()));
                read.len() - 1
            }
        };
        match item.model {
            None => read[at].1.keys = marks,
            Some(_) => read[at].1.model = marks,
        }
    }
    for (part, part_state) in read {
        state.set(part, part_state);
    }
    state
}
