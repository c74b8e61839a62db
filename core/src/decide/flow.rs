//! One request for Google's API, start to end, as a [`Machine`](crate::decide::machine::Machine):
//! which key list to fetch, which items to read, which key to send with, what to write and
//! read back, when to stop.
//!
//! A request's steps, in order:
//! 0. **Gate** (only for a client with limits: [`crate::decide::limits::Gated`], which wraps
//!    the flow): `Rate` (the platform's counter) and / or `Claim` a place in the client's limit
//!    item (and `Swap` it compacted when it has grown); the request is admitted, or refused
//!    (429) and its claim given back (`Append`).
//! 0. **Look** (only if it names stateful resources: [`crate::decide::affinity`]): read their
//!    records; the request is pinned to the project holding them and starts in its part — or
//!    ends here (not found, two projects).
//! 1. **Start**: draw the part of the pool to start in, in proportion to the parts' sizes
//!    ([`crate::pool::keys`]): `Fetch` the drawn part's key list, accept it or draw again; if the
//!    part holds no key, `Fetch` every other part. `Read` the items of the parts fetched.
//! 2. **Attempt**: [`Attempts`] chooses a key → `Send` (with verdict entries, while the index
//!    may be behind, `Read` the key's entries first: it may be out after all); or the parts
//!    read have no key left → `Fetch` and `Read` the others (widening); or the knobs past the
//!    first key are needed → `Configure`; or nothing can serve → `Done`.
//! 3. **Judge and commit**: the answer becomes a verdict and the changes it makes; a failure
//!    is logged. The changes are written at once and read back ([`crate::state::commit::Committer`]):
//!    `Commit` with the items to read back — again while a concurrent rewrite lost one — then
//!    `Record` of the compactions due. The state read back is what the next attempt chooses
//!    from. Then 2 again, until `Done`.
//!
//! A success that made a resource `Remember`s its record just before `Done`, so a follow-up
//! finds it. Usage is counted after the client has its answer: [`Flow::usage`].

use crate::client::auth::Caller;
use crate::client::body::RequestFacts;
use crate::client::envelope::ErrorReply;
use crate::client::route::Route;
use crate::decide::affinity::{self, Pin, Record};
use crate::decide::attempts::{Attempts, Choice};
use crate::decide::ending::Ending;
use crate::decide::linger::Linger;
use crate::decide::machine::{Answer, Machine, Step};
use crate::google::classify::Verdict;
use crate::google::resource::{Kind, Resource};
use crate::pool::keys::{self, ApiKey, KeyPool};
use crate::pool::rng::Rng;
use crate::settings::{CoolingSettings, RequestSettings};
use crate::state::commit::{self, Committer, Round};
use crate::state::failures::Failure;
use crate::state::index;
use crate::state::items::{state_of, Change, Item, PartState};
use crate::state::limit_entries::TokenItem;
use crate::state::marks::Marks;
use crate::state::usage::{self, Append, Compaction};

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
    /// The projects the client's keys must come from (its policy).
    fence: Option<Vec<String>>,
    /// The failed attempts, for the recent-failures list ([`crate::state::failures`]).
    failures: Vec<Failure>,
    /// Verdicts have entries of their own ([`crate::state::items`]).
    entries: bool,
}

/// A request's stateful resources: what it names (looked up first), the name it chooses for
/// what it makes (which must be free), the pin the records give, what a success made (its
/// record, stored before the answer goes out) and what a success deleted (its record, removed).
#[derive(Default)]
struct Resources {
    named: Vec<Resource>,
    /// The file id an upload's metadata chose: no record may hold it.
    chosen: Option<Resource>,
    caller: Option<Caller>,
    pin: Option<Pin>,
    /// What a success of this route makes (another resource in its answer is adopted).
    makes: Option<Kind>,
    /// What a success of this route deletes, and the client that made it.
    deletes: Option<Resource>,
    maker: Option<String>,
    /// The steps after a success, in order: a record to store, a record to remove.
    after: Vec<Step<'static, Finish>>,
    /// The resource a fresh record is for, until the store says it took it.
    fresh: Option<Resource>,
}

/// Where the flow is.
enum Stage<'a> {
    /// The `tries`th draw of the starting part chose `part`; its size decides.
    Choose { part: usize, tries: usize },
    /// Every part is fetched to draw the starting part by size.
    DrawBySize,
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
    /// The entries of a key the index calls free are being read.
    Confirm(ApiKey<'a>),
    /// They are read: the attempts judge the key again.
    Confirmed(ApiKey<'a>, Vec<(Item, Marks)>),
    /// A key was sent; its answer is awaited.
    Sent(ApiKey<'a>),
    /// An answer awaits judging (the cooling settings are read first if need be).
    Judge(ApiKey<'a>, Answer),
    /// Changes are being committed.
    Commit(Committer),
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
        let stage = first_stage(&mut rng, parts);
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
            fence: None,
            failures: Vec::new(),
            entries: false,
        }
    }

    /// Verdicts have entries of their own (a store that takes few writes per item a second:
    /// Fastly's KV): each is written to its entry and, best-effort, to the index, and a key the
    /// index calls free while it may be behind is confirmed first. See [`crate::state::items`].
    pub fn verdict_entries(mut self, on: bool) -> Self {
        self.entries = on;
        self
    }

    /// Only keys of these projects may serve (the client's policy `projects`).
    pub fn within(mut self, projects: Option<Vec<String>>) -> Self {
        self.fence = projects;
        self
    }

    /// A request for `route` by `caller` that names `facts.resources` (their records are read
    /// first: the request is pinned to the project holding them, or refused) and may choose the
    /// id of what it makes (`facts.new_file`: refused if a record holds it). A success the edge
    /// answers as [`Answer::Made`] has its record stored before the answer goes out; a DELETE's
    /// success removes the record. See [`crate::decide::affinity`].
    pub fn with_resources(mut self, route: &Route, facts: &RequestFacts, caller: &Caller) -> Self {
        let named = facts.resources.clone();
        let chosen = facts.new_file.clone();
        if !named.is_empty() || chosen.is_some() {
            self.stage = Stage::Look;
        }
        let deletes = if route.deletes { facts.resources.first().cloned() } else { None };
        self.resources = Resources {
            named,
            chosen,
            caller: Some(caller.clone()),
            makes: route.makes(),
            deletes,
            ..Resources::default()
        };
        self
    }

    /// The model the request is about.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// This request's counts for `client`, appended once the client has its answer: its usage
    /// (if `usage_counts` is on: each key tried, whether the client was served, in the quota
    /// day at `now_ms`, kept `history_days`) and, for a client with a daily token limit, its
    /// tokens in its limit item or entries (`token_item`). None when
    /// there is nothing to count.
    pub fn usage(
        &mut self,
        client: &str,
        now_ms: u64,
        settings: &RequestSettings,
        token_item: Option<TokenItem>,
    ) -> Option<usage::UsageAppend> {
        if !settings.usage_counts && token_item.is_none() {
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
        if let Some(token_item) = token_item {
            append = append.count_tokens_in(token_item, now_ms);
        }
        Some(if settings.usage_counts { append } else { append.only_limit() })
    }

    /// After [`Step::Done`]: the changes the store refused and the request could not commit,
    /// and (verdict entries) the lines of the entries it read that the index lacked, as a
    /// machine the edge runs once the client has its answer ([`Linger`]), at `now_ms`.
    pub fn linger(&mut self, now_ms: u64) -> Option<Linger> {
        let changes = std::mem::take(&mut self.carry);
        let seed = self.rng.next_u64();
        let repair = match (&self.attempts, self.entries) {
            (Some(attempts), true) => commit::repairs(attempts.state(), now_ms),
            _ => Vec::new(),
        };
        let linger = Linger::new(changes, self.lists.len(), self.model.as_deref(), seed, self.entries).repair(repair);
        (!linger.is_idle()).then_some(linger)
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
            Stage::Look => {
                let looked = self.resources.named.iter().chain(&self.resources.chosen);
                (Stage::Look, Some(Step::Look(looked.map(Resource::item).collect())))
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
            Stage::Confirm(key) => {
                let entries = self.attempts.as_ref().map(|a| a.entries_of(&key, now_ms)).unwrap_or_default();
                (Stage::Confirm(key), Some(Step::Read(entries)))
            }
            Stage::Confirmed(key, entries) => match self.attempts.as_mut() {
                Some(attempts) => match attempts.confirmed(key, entries, now_ms) {
                    Some(key) => (Stage::Sent(key), Some(Step::Send(vec![key]))),
                    None => (Stage::Next, None),
                },
                None => (Stage::Done(Finish::EmptyPool), None),
            },
            Stage::Sent(key) => (Stage::Sent(key), Some(Step::Send(vec![key]))),
            Stage::Judge(key, answer) => self.judge(key, answer, now_ms),
            Stage::Commit(recorder) => self.record(recorder, now_ms),
            Stage::Done(Finish::Served) if !self.resources.after.is_empty() => {
                let step = self.resources.after.remove(0);
                (Stage::Done(Finish::Served), Some(step))
            }
            Stage::Done(finish) => (Stage::Done(finish.clone()), Some(Step::Done(finish))),
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
            Choice::Confirm(key) => (Stage::Confirm(key), None),
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
    /// settings: asked for first), logs a failure, and commits the changes.
    fn judge(&mut self, key: ApiKey<'a>, answer: Answer, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        if answer != Answer::Served && self.cooling.is_none() {
            return (Stage::Judge(key, answer), Some(Step::Configure));
        }
        let (Some(attempts), cooling) = (self.attempts.as_mut(), self.cooling.as_ref()) else {
            return (Stage::Done(Finish::EmptyPool), None);
        };
        let (verdict, ending) = match answer {
            Answer::Served | Answer::Page(_) => {
                self.resources.forget(now_ms, &mut self.rng);
                (None, Ending::Served)
            }
            Answer::Made(resource) => {
                self.resources.remember(&key, &resource, now_ms, &mut self.rng);
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
        (Stage::Commit(Committer::new(changes, attempts.state(), self.entries)), None)
    }

    /// The recorder's next round, as a step.
    fn record(&mut self, mut recorder: Committer, now_ms: u64) -> (Stage<'a>, Option<Step<'a, Finish>>) {
        let Some(attempts) = self.attempts.as_ref() else {
            return (Stage::Done(Finish::EmptyPool), None);
        };
        match recorder.round(attempts.state(), now_ms) {
            Round::WriteAndRead(writes) => {
                let mut read_back = self.items(&attempts.state().read_parts());
                read_back.extend(recorder.entry_items());
                (Stage::Commit(recorder), Some(Step::Commit { writes, read_back }))
            }
            Round::Write(writes) => (Stage::Commit(recorder), Some(Step::Commit { writes, read_back: Vec::new() })),
            Round::Done => {
                self.carry = recorder.uncommitted();
                if let Some(attempts) = self.attempts.as_mut() {
                    // A refused entry was written by another instance within the second: the
                    // verdict is being recorded, and the walk goes on free.
                    if !self.carry.is_empty() && !self.entries {
                        attempts.uncommitted();
                    }
                    attempts.throttled(recorder.refused_items());
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
        attempts.verdict_entries(self.entries);
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
            Stage::Commit(mut recorder) => {
                let fresh = state_of(self.lists.len(), self.model.as_deref(), items);
                self.log = recorder.read_back(&fresh);
                if let Some(attempts) = self.attempts.as_mut() {
                    attempts.refresh(fresh);
                }
                Stage::Commit(recorder)
            }
            Stage::Confirm(key) => Stage::Confirmed(key, items),
            other => other,
        };
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        self.cooling = Some(cooling.clone());
    }

    fn answered(&mut self, answers: Vec<Answer>) {
        if let (Stage::Sent(key), Some(answer)) = (&self.stage, answers.into_iter().next()) {
            self.stage = Stage::Judge(*key, answer);
        }
    }

    fn written(&mut self) {
        if let Stage::Commit(recorder) = &mut self.stage {
            recorder.written();
        }
    }

    fn refused(&mut self, writes: Vec<usize>) {
        if let Stage::Commit(recorder) = &mut self.stage {
            recorder.refused(&writes);
        }
    }

    fn looked(&mut self, mut records: Vec<Option<Vec<u8>>>) {
        if !matches!(self.stage, Stage::Look) {
            return;
        }
        let named = std::mem::take(&mut self.resources.named);
        records.resize(named.len() + usize::from(self.resources.chosen.is_some()), None);
        if let Some(chosen) = &self.resources.chosen {
            if records.pop().flatten().is_some() {
                self.stage = Stage::Done(Finish::Error(affinity::already_exists(chosen)));
                return;
            }
        }
        if named.is_empty() {
            self.stage = first_stage(&mut self.rng, self.lists.len());
            return;
        }
        let looked: Vec<(Resource, Option<Record>)> = named
            .into_iter()
            .zip(records)
            .map(|(resource, bytes)| (resource, bytes.and_then(|b| Record::decode(&b))))
            .collect();
        // A DELETE strikes the line from its maker's index (an admin may delete any client's).
        if let Some(deleted) = &self.resources.deletes {
            let maker = looked.iter().find(|(r, _)| r == deleted).and_then(|(_, record)| record.as_ref());
            self.resources.maker = maker.map(|record| record.client.clone());
        }
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

    fn remembered(&mut self, stored: bool) {
        let Some(fresh) = self.resources.fresh.take() else { return };
        // Another request made a resource of the same name first (in another project): this
        // one is not the caller's to reach through the proxy. Say so rather than serve it.
        if !stored && matches!(self.stage, Stage::Done(Finish::Served)) {
            self.resources.after.clear();
            self.stage = Stage::Done(Finish::Error(affinity::already_exists(&fresh)));
        }
    }
}

/// Where a request starts when no pin decides: the only part, or a part drawn.
fn first_stage<'a>(rng: &mut Rng, parts: usize) -> Stage<'a> {
    match parts {
        0 | 1 => Stage::Start(0),
        _ => Stage::Choose { part: rng.below(parts), tries: 1 },
    }
}

impl Resources {
    /// The owner of what this request makes: the pin's (an upload's bytes count for the client
    /// that started it), or the caller.
    fn owner(&self) -> Option<&str> {
        match (&self.pin, &self.caller) {
            (Some(pin), _) => Some(pin.owner.as_str()),
            (None, Some(caller)) => Some(caller.label.as_str()),
            (None, None) => None,
        }
    }

    /// `key` served and made (or named a generated) `resource`: its record, for the owner,
    /// with its line in the owner's index; then, for a DELETE, the removal.
    fn remember(&mut self, key: &ApiKey<'_>, resource: &Resource, now_ms: u64, rng: &mut Rng) {
        let Some(owner) = self.owner().map(str::to_string) else { return };
        let record = Record::new(key, &owner);
        let until_secs = now_ms / 1000 + resource.kind.ttl_secs();
        let line = index::index_line(resource.kind, &resource.id, &record.bucket, record.part, until_secs);
        if self.makes == Some(resource.kind) {
            self.fresh = Some(resource.clone());
        }
        self.after.push(Step::Remember {
            item: resource.item(),
            record: record.encode(),
            ttl_secs: resource.kind.ttl_secs(),
            index: Some(index_append(&owner, line, now_ms, rng)),
        });
    }

    /// A DELETE served: its record goes, and its line in the owner's index is struck.
    fn forget(&mut self, now_ms: u64, rng: &mut Rng) {
        let (Some(resource), Some(owner)) = (self.deletes.take(), self.maker.take()) else { return };
        let line = index::removal_line(resource.kind, &resource.id);
        self.after.push(Step::Forget { item: resource.item(), index: index_append(&owner, line, now_ms, rng) });
    }
}

/// A line appended to `owner`'s index; one writer in [`usage::COMPACT_CHECK_ONE_IN`] reads the
/// index back and compacts it ([`index::compacted`]).
fn index_append(owner: &str, line: String, now_ms: u64, rng: &mut Rng) -> Append {
    let check = rng.below(usage::COMPACT_CHECK_ONE_IN) == 0;
    Append {
        item: index::index_item(owner),
        bytes: line.into_bytes(),
        ttl_secs: index::INDEX_TTL_SECS,
        compact: check.then_some(Compaction::Index(now_ms / 1000)),
        shard: None,
        may_wait: false,
    }
}
