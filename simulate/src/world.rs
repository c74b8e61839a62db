//! The simulated world: clients arrive (steadily, and in bursts) at POPs; each request is the
//! core's real [`Flow`] — the machine both edges run — whose steps take simulated time against
//! a modelled store and a modelled Google. A discrete-event loop, seeded: the same scenario
//! gives the same numbers.

use crate::google::{Google, GoogleConfig};
use crate::kv::{Kv, KvConfig};
use crate::object::{ObjectConfig, Objects};
use gemini_pool_core::{
    Answer, Change, CoolingSettings, Entry, Flow, Gate, Gated, Item, Limiter, Limits, Linger, Machine, Marks,
    ResetZone, Rng, Step, Write,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A write as the store took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Executed (stored, or a compare-and-swap that found a newer version).
    Done,
    /// Refused: `TooManyRequests` on Fastly, `overloaded` on Workers.
    Refused,
}

/// A modelled store. `at` is where the request runs: a POP (Fastly), an isolate (Workers).
pub trait Store {
    /// Reads `items`: what was read, and how long it took.
    fn read(&mut self, at: usize, items: &[Item], now: u64) -> (Vec<(Item, Marks)>, u64);
    /// Executes `writes`: each write's outcome, and how long it took.
    fn write(&mut self, at: usize, writes: Vec<Write>, now: u64) -> (Vec<WriteOutcome>, u64);
    /// The store's final state of an item.
    fn truth(&self, item: &Item) -> Marks;
    /// Calls that count against the store's limits: on KV the inserts tried (reads come from
    /// the POP's cache), on Durable Objects every call (reads and writes go in one call).
    fn calls(&self) -> u64;
    /// Calls refused (throttled inserts on Fastly, `overloaded` on Workers).
    fn refused(&self) -> u64;
    /// State items read (KV lookups; 0 where not counted).
    fn reads(&self) -> u64 {
        0
    }
    /// The size of the largest item at the end, bytes.
    fn largest_item(&self) -> usize {
        0
    }
    /// Reads items by name (a client's limit item): each one's bytes, and how long it took.
    fn look(&mut self, at: usize, names: &[String], now: u64) -> (Vec<Option<Vec<u8>>>, u64);
    /// Appends `bytes` to the item `name`: how long it took.
    fn append(&mut self, at: usize, name: &str, bytes: Vec<u8>, now: u64) -> u64;
    /// Appends a claim to `name` and reads the item back: its bytes, and how long it took
    /// (Fastly: an append, then a lookup).
    fn claim(&mut self, at: usize, name: &str, bytes: Vec<u8>, now: u64) -> (Option<Vec<u8>>, u64) {
        let took = self.append(at, name, bytes, now);
        let (mut found, read) = self.look(at, &[name.to_string()], now + took);
        (found.pop().flatten(), took + read)
    }
    /// Lists the names that start with `prefix` (a client's limit entries): the names, and how
    /// long it took. Only a store that counts limits in entries is asked (Fastly's KV; Durable
    /// Objects count in the limit item): others list nothing.
    fn list(&mut self, _at: usize, _prefix: &str, _now: u64) -> (Vec<String>, u64) {
        (Vec::new(), 1)
    }
    /// Stores `bytes` under `name` unless the store holds it (a limit entry's slot): whether it
    /// stored them, and how long it took. Asked only of a store that counts limits in entries.
    fn add(&mut self, _at: usize, _name: &str, _bytes: Vec<u8>, _now: u64) -> (bool, u64) {
        (false, 1)
    }
    /// Replaces `name` whatever it holds (a client's head): how long it took. Asked only of a
    /// store that counts limits in entries.
    fn put(&mut self, _at: usize, _name: &str, _bytes: Vec<u8>, _now: u64) -> u64 {
        1
    }
    /// Writes then reads back (Workers batches both in one call per object).
    fn record(
        &mut self,
        at: usize,
        writes: Vec<Write>,
        read_back: &[Item],
        now: u64,
    ) -> (Vec<WriteOutcome>, Vec<(Item, Marks)>, u64) {
        let (outcomes, wrote) = self.write(at, writes, now);
        let (read, took) = self.read(at, read_back, now + wrote);
        (outcomes, read, wrote + took)
    }
}

/// Which store the scenario runs on.
#[derive(Debug, Clone)]
pub enum StoreModel {
    /// Fastly's KV store.
    Kv(KvConfig),
    /// Workers' Durable Objects.
    Objects(ObjectConfig),
}

/// A scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name in the table.
    pub name: &'static str,
    /// Keys in the pool, spread over `projects` projects and `parts` key lists.
    pub keys: usize,
    /// Projects the keys belong to (quota buckets).
    pub projects: usize,
    /// Key lists (parts).
    pub parts: usize,
    /// Steady arrivals per second, over `duration_ms`.
    pub rate_per_sec: f64,
    /// How long clients arrive, ms.
    pub duration_ms: u64,
    /// Bursts: (when, how many requests at once).
    pub bursts: Vec<(u64, usize)>,
    /// Clients that each send `per_client` requests back to back, all starting at once.
    pub clients: usize,
    /// Requests each of `clients` sends.
    pub per_client: usize,
    /// Run the design before instead: each request reads the state once, at its start, and
    /// writes its verdicts when it ends (to show what the bounds tell apart).
    pub read_once: bool,
    /// POPs (or, on Workers, locations; each has its own isolates).
    pub pops: usize,
    /// Google's quotas.
    pub google: GoogleConfig,
    /// The store.
    pub store: StoreModel,
    /// Every request comes from one client with these limits ([`Gate`]; counted in the store).
    pub limits: Option<Limits>,
    /// The seed.
    pub seed: u64,
    /// Verdicts get entries of their own, the items are an index written best-effort (as the
    /// Fastly edge runs the flow; `false`: the items alone hold them, as on Workers).
    pub verdict_entries: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests, and those served.
    pub requests: u64,
    /// Requests Google served.
    pub served: u64,
    /// What the quotas allowed.
    pub capacity: u64,
    /// Calls to Google.
    pub calls: u64,
    /// Calls on a bucket after Google first refused it in its window, by how long after:
    /// ≤ 0.5 s, 0.5–1.3 s, > 1.3 s; and the latest.
    pub late: [u64; 3],
    /// The latest late hit, ms after the refusal.
    pub latest_late_ms: u64,
    /// Changes the flows made (marks set), and those the store does not hold at the end.
    pub verdicts: u64,
    /// Verdicts the store does not hold at the end.
    pub lost: u64,
    /// Calls that count against the store's limits ([`Store::calls`]).
    pub store_calls: u64,
    /// Store calls refused (throttled inserts, `overloaded` objects).
    pub refused_writes: u64,
    /// State items read (KV lookups of the index items and of verdict entries).
    pub item_reads: u64,
    /// The largest item at the end, bytes.
    pub largest_item: usize,
    /// Requests the client's own limit refused ([`Scenario::limits`]).
    pub over_limit: u64,
    /// Requests an exact count of the client's limits would admit: per fixed minute at most
    /// `rpm` of those that arrived in it, and at most `rpd` in all (none without limits).
    pub allowed: u64,
    /// Each request's CPU time in the core's machines (its flow and its linger), ns, by the
    /// order requests started in (the same every run of a scenario).
    pub cpu_ns: Vec<u64>,
    /// Each request's steps outside the core (store calls, calls to Google, waits).
    pub steps: Vec<u64>,
}

impl Report {
    /// Requests past the client's gate.
    pub fn admitted(&self) -> u64 {
        self.requests - self.over_limit
    }

    /// Requests admitted past what an exact count allows.
    pub fn over_admitted(&self) -> u64 {
        self.admitted().saturating_sub(self.allowed)
    }

    /// Requests refused that an exact count would have admitted.
    pub fn wrongly_refused(&self) -> u64 {
        self.allowed.saturating_sub(self.admitted())
    }

    /// Upstream calls per success.
    pub fn calls_per_success(&self) -> f64 {
        self.calls as f64 / self.served.max(1) as f64
    }

    /// Store calls per verdict.
    pub fn store_calls_per_verdict(&self) -> f64 {
        self.store_calls as f64 / self.verdicts.max(1) as f64
    }

    /// The median request's CPU time and the dearest's, µs.
    pub fn cpu_us(&self) -> (f64, f64) {
        let mut sorted = self.cpu_ns.clone();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
        let dearest = sorted.last().copied().unwrap_or(0);
        (median as f64 / 1_000.0, dearest as f64 / 1_000.0)
    }

    /// The dearest request's CPU time over the median's.
    pub fn dearest_over_median(&self) -> f64 {
        let (median, dearest) = self.cpu_us();
        dearest / median.max(f64::MIN_POSITIVE)
    }

    /// The dearest request's CPU time per step over the median request's: what must not grow
    /// with the state (a request that waits on thirty answers judges thirty of them; each
    /// judgement must not cost more because the pool is relearning).
    pub fn dearest_step_over_median(&self) -> f64 {
        let mut per_step: Vec<f64> =
            self.cpu_ns.iter().zip(&self.steps).map(|(&ns, &steps)| ns as f64 / steps.max(1) as f64).collect();
        per_step.sort_by(f64::total_cmp);
        let median = per_step.get(per_step.len() / 2).copied().unwrap_or(0.0);
        per_step.last().copied().unwrap_or(0.0) / median.max(f64::MIN_POSITIVE)
    }

    /// Keeps, for each request, the lesser CPU time of this run and `other` (a run of the same
    /// scenario): noise (preemption, a cold cache) only ever adds time, so the least of a few
    /// runs is what the request itself costs.
    pub fn least_cpu_of(&mut self, other: &Report) {
        for (mine, theirs) in self.cpu_ns.iter_mut().zip(&other.cpu_ns) {
            *mine = (*mine).min(*theirs);
        }
    }
}

/// A request in flight: its flow (or, once the client has its answer, its linger), where it
/// runs, and the result its current step awaits.
struct Live<'a> {
    machine: Running<'a>,
    at: usize,
    result: Option<Awaited>,
    /// The closed-loop client that sent it, if any.
    owner: Option<usize>,
    /// The design before (see [`Scenario::read_once`]): what the request read first, and the
    /// writes it holds until its end.
    snapshot: Snapshot,
}

/// The design before the flow recorded each verdict at once: the state is read once at the
/// start of a request, and its writes go out when it ends.
#[derive(Default)]
struct Snapshot {
    items: std::collections::HashMap<String, Marks>,
    deferred: Vec<Write>,
}

/// A store as the design before used it, for one request: reads after the first come from
/// what it read first; writes wait for the request's end.
struct ReadOnce<'s> {
    inner: &'s mut dyn Store,
    snapshot: &'s mut Snapshot,
}

impl Store for ReadOnce<'_> {
    fn read(&mut self, at: usize, items: &[Item], now: u64) -> (Vec<(Item, Marks)>, u64) {
        if items.iter().all(|i| self.snapshot.items.contains_key(&i.kv_key())) {
            return (items.iter().map(|i| (i.clone(), self.snapshot.items[&i.kv_key()].clone())).collect(), 0);
        }
        let (read, took) = self.inner.read(at, items, now);
        for (item, marks) in &read {
            self.snapshot.items.insert(item.kv_key(), marks.clone());
        }
        (read, took)
    }

    fn write(&mut self, _: usize, writes: Vec<Write>, _: u64) -> (Vec<WriteOutcome>, u64) {
        let done = vec![WriteOutcome::Done; writes.len()];
        self.snapshot.deferred.extend(writes);
        (done, 0)
    }

    fn truth(&self, item: &Item) -> Marks {
        self.inner.truth(item)
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }

    fn refused(&self) -> u64 {
        self.inner.refused()
    }

    fn look(&mut self, at: usize, names: &[String], now: u64) -> (Vec<Option<Vec<u8>>>, u64) {
        self.inner.look(at, names, now)
    }

    fn append(&mut self, at: usize, name: &str, bytes: Vec<u8>, now: u64) -> u64 {
        self.inner.append(at, name, bytes, now)
    }
}

enum Running<'a> {
    Flow(Box<Gated<Flow<'a>>>),
    Linger(Box<Linger>),
}

enum Awaited {
    Read(Vec<(Item, Marks)>, Vec<usize>),
    Looked(Vec<Option<Vec<u8>>>),
    /// A claim's item read back (the model keeps no generation for named items).
    Claimed(Option<Vec<u8>>),
    Answer(Answer),
    Written(Vec<usize>),
    Listed(Vec<String>),
    Remembered(bool),
    Nothing,
}

/// Runs `scenario`.
pub fn run(scenario: &Scenario) -> Report {
    let lists = key_lists(scenario);
    let mut base: Box<dyn Store> = match &scenario.store {
        StoreModel::Kv(config) => Box::new(Kv::new(KvConfig { pops: scenario.pops, ..config.clone() }, scenario.seed)),
        StoreModel::Objects(config) => Box::new(Objects::new(config.clone())),
    };
    let isolates = match &scenario.store {
        StoreModel::Objects(config) => config.isolates.max(1),
        StoreModel::Kv(_) => 1,
    };
    let mut google = Google::new(scenario.google.clone());
    let mut rng = Rng::new(scenario.seed ^ 0x5eed);
    let cooling = CoolingSettings::default();
    let mut events: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut live: Vec<Option<Live<'_>>> = Vec::new();
    let mut seq = 0u64;
    let mut started_at: Vec<u64> = Vec::new();
    let mut start = |time: u64,
                     owner: Option<usize>,
                     live: &mut Vec<Option<Live<'_>>>,
                     rng: &mut Rng,
                     events: &mut BinaryHeap<_>| {
        let at = rng.below(scenario.pops) * isolates + rng.below(isolates);
        let seed = rng.next_u64();
        let flow = Flow::new(lists.len(), Some("m"), seed, 32).verdict_entries(scenario.verdict_entries);
        let gate = scenario.limits.map(|limits| {
            Gate::new(limits, Limiter::Store, "app", time, ResetZone::Fixed(0)).entries(scenario.verdict_entries)
        });
        // The claim's id from the request's seed: no draw of the world's own.
        let flow = Gated::new(flow, gate, seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15);
        let snapshot = Snapshot::default();
        started_at.push(time);
        live.push(Some(Live { machine: Running::Flow(Box::new(flow)), at, result: None, owner, snapshot }));
        events.push(Reverse((time, seq, live.len() - 1)));
        seq += 1;
    };
    for time in arrivals(scenario, &mut rng) {
        start(time, None, &mut live, &mut rng, &mut events);
    }
    let mut left = vec![scenario.per_client.saturating_sub(1); scenario.clients];
    for client in 0..scenario.clients {
        start(0, Some(client), &mut live, &mut rng, &mut events);
    }
    let mut verdicts: Vec<Change> = Vec::new();
    let mut over_limit = 0;
    let mut cpu_ns: Vec<u64> = Vec::new();
    let mut steps: Vec<u64> = Vec::new();
    while let Some(Reverse((now, _, id))) = events.pop() {
        cpu_ns.resize(live.len(), 0);
        steps.resize(live.len(), 0);
        let Some(request) = live[id].as_mut() else { continue };
        let mut read_once = ReadOnce { inner: base.as_mut(), snapshot: &mut request.snapshot };
        let store: &mut dyn Store = if scenario.read_once { &mut read_once } else { &mut *read_once.inner };
        let spent = &mut cpu_ns[id];
        let next = match &mut request.machine {
            Running::Flow(flow) => advance(
                flow.as_mut(),
                request.at,
                &mut request.result,
                &lists,
                store,
                &mut google,
                &cooling,
                now,
                spent,
            ),
            Running::Linger(linger) => {
                advance(linger.as_mut(), request.at, &mut request.result, &[], store, &mut google, &cooling, now, spent)
            }
        };
        if let Some(delay) = next {
            steps[id] += 1;
            events.push(Reverse((now + delay, u64::MAX - id as u64, id)));
            continue;
        }
        if scenario.read_once {
            let deferred = std::mem::take(&mut request.snapshot.deferred);
            base.write(request.at, deferred, now);
        }
        // The client has its answer: a linger goes on where the request ran.
        let lingers = match &mut request.machine {
            Running::Flow(flow) => {
                verdicts.extend(flow.inner().changes().iter().filter(|c| matches!(c.entry, Entry::Set(_))).cloned());
                over_limit += u64::from(flow.over_limit());
                flow.inner_mut().linger(now)
            }
            Running::Linger(_) => None,
        };
        let owner = request.owner;
        match lingers {
            Some(linger) => {
                request.machine = Running::Linger(Box::new(linger));
                request.owner = None;
                events.push(Reverse((now, u64::MAX - id as u64, id)));
            }
            None => live[id] = None,
        }
        if let Some(client) = owner.filter(|&c| left[c] > 0) {
            left[client] -= 1;
            start(now, Some(client), &mut live, &mut rng, &mut events);
        }
    }
    let mut report = Report { requests: live.len() as u64, ..Report::default() };
    report.served = google.served;
    report.calls = google.calls;
    report.capacity = google.capacity(scenario.projects, scenario.duration_ms);
    for &late in &google.late {
        let slot = if late <= 500 {
            0
        } else if late <= 1_300 {
            1
        } else {
            2
        };
        report.late[slot] += 1;
        report.latest_late_ms = report.latest_late_ms.max(late);
    }
    report.verdicts = verdicts.len() as u64;
    // A verdict holds if its item says it, or its entry does.
    let holds =
        |c: &Change| [c.item.clone(), c.item.entry(&c.name)].iter().any(|i| base.truth(i).covers(&c.name, &c.entry));
    report.lost = verdicts.iter().filter(|c| !holds(c)).count() as u64;
    report.store_calls = base.calls();
    report.refused_writes = base.refused();
    report.item_reads = base.reads();
    report.largest_item = base.largest_item();
    report.over_limit = over_limit;
    report.cpu_ns = cpu_ns;
    report.steps = steps;
    report.allowed = scenario.limits.map_or(0, |limits| allowed(&started_at, limits));
    report
}

/// What an exact count of `limits` admits of requests arriving at `times` (fixed minutes).
fn allowed(times: &[u64], limits: Limits) -> u64 {
    let mut per_minute: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for &time in times {
        *per_minute.entry(time / 60_000).or_default() += 1;
    }
    let rpm = limits.rpm.unwrap_or(u64::MAX);
    let within_rpm: u64 = per_minute.values().map(|&n| n.min(rpm)).sum();
    within_rpm.min(limits.rpd.unwrap_or(u64::MAX))
}

/// Feeds the awaited result, then steps the machine until a step takes time: its duration,
/// or `None` when the machine is done. The thread's CPU time in the machine (not in the
/// modelled store or Google) is added to `spent`.
#[allow(clippy::too_many_arguments)]
fn advance<'a, M: Machine<'a>>(
    machine: &mut M,
    at: usize,
    result: &mut Option<Awaited>,
    lists: &'a [String],
    store: &mut dyn Store,
    google: &mut Google,
    cooling: &CoolingSettings,
    now: u64,
    spent: &mut u64,
) -> Option<u64> {
    let began = cpu_ns();
    feed(machine, result.take());
    let step = next_outside(machine, lists, cooling, now);
    *spent += cpu_ns().saturating_sub(began);
    execute(step, at, result, store, google, now)
}

/// Hands the machine what its last step awaited.
fn feed<'a, M: Machine<'a>>(machine: &mut M, result: Option<Awaited>) {
    match result {
        Some(Awaited::Read(items, no)) => {
            if !no.is_empty() {
                machine.refused(no);
            }
            machine.read(items);
        }
        Some(Awaited::Answer(answer)) => machine.answered(vec![answer]),
        Some(Awaited::Looked(found)) => machine.looked(found),
        // Generation 0: the model does not compact limit items (their `Swap` is not made).
        Some(Awaited::Claimed(found)) => machine.claimed(found.map(|bytes| (bytes, 0))),
        Some(Awaited::Written(no)) => {
            if !no.is_empty() {
                machine.refused(no);
            }
            machine.written();
        }
        Some(Awaited::Listed(names)) => machine.listed(names),
        Some(Awaited::Remembered(stored)) => machine.remembered(stored),
        Some(Awaited::Nothing) | None => {}
    }
}

/// Steps the machine through what the world answers at once (key lists, settings, the
/// platform's counters, logs) to the next step that goes outside: the store, Google, a wait,
/// or the end.
fn next_outside<'a, M: Machine<'a>>(
    machine: &mut M,
    lists: &'a [String],
    cooling: &CoolingSettings,
    now: u64,
) -> Step<'a, M::Done> {
    loop {
        match machine.step(now) {
            Step::Fetch(part) => machine.fetched(part, lists[part].as_bytes()),
            Step::Configure => machine.configured(cooling),
            Step::Rate(_) => machine.rated(None),
            Step::Knob(_) => machine.knob(None),
            Step::Policies(labels) => machine.policies(vec![None; labels.len()]),
            // The model does not compact limit items.
            Step::Log(_) | Step::Forget { .. } | Step::Swap { generation: Some(_), .. } => {}
            outside => return outside,
        }
    }
}

/// Executes a step that goes outside: what it awaits goes to `result`; its duration, or
/// `None` when the machine is done.
fn execute<D>(
    step: Step<'_, D>,
    at: usize,
    result: &mut Option<Awaited>,
    store: &mut dyn Store,
    google: &mut Google,
    now: u64,
) -> Option<u64> {
    let refused = |outcomes: &[WriteOutcome]| -> Vec<usize> {
        outcomes.iter().enumerate().filter(|(_, o)| **o == WriteOutcome::Refused).map(|(i, _)| i).collect()
    };
    let (awaited, took) = match step {
        Step::Look(names) => {
            let (found, took) = store.look(at, &names, now);
            (Awaited::Looked(found), took)
        }
        Step::Append { item, bytes, .. } => (Awaited::Nothing, store.append(at, &item, bytes, now)),
        Step::Claim { item, bytes, .. } => {
            let (found, took) = store.claim(at, &item, bytes, now);
            (Awaited::Claimed(found), took)
        }
        Step::Wait(ms) => (Awaited::Nothing, ms),
        Step::List(prefix) => {
            let (names, took) = store.list(at, &prefix, now);
            (Awaited::Listed(names), took)
        }
        Step::Remember { item, record, .. } => {
            let (stored, took) = store.add(at, &item, record, now);
            (Awaited::Remembered(stored), took)
        }
        Step::Swap { item, bytes, generation: None, .. } => (Awaited::Nothing, store.put(at, &item, bytes, now)),
        Step::Read(items) => {
            let (read, took) = store.read(at, &items, now);
            (Awaited::Read(read, Vec::new()), took)
        }
        Step::Send(keys) => {
            let project = keys[0].project.unwrap_or("?");
            let (answer, took) = google.call(project, "m", now);
            (Awaited::Answer(answer), took)
        }
        Step::Commit { writes, read_back } if read_back.is_empty() => {
            let (outcomes, took) = store.write(at, writes, now);
            (Awaited::Written(refused(&outcomes)), took)
        }
        Step::Commit { writes, read_back } => {
            let (outcomes, read, took) = store.record(at, writes, &read_back, now);
            (Awaited::Read(read, refused(&outcomes)), took)
        }
        Step::Done(_) => return None,
        // Answered at once by `next_outside`.
        Step::Fetch(_) | Step::Configure | Step::Rate(_) | Step::Knob(_) | Step::Policies(_) => return None,
        Step::Log(_) | Step::Forget { .. } | Step::Swap { .. } => return None,
    };
    *result = Some(awaited);
    Some(took.max(1))
}

/// This thread's CPU time, ns: what a request costs, whatever else the machine runs.
fn cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes one `timespec` through a pointer to a live local.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    if failed {
        return 0;
    }
    (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

/// The pool: `keys` keys over `projects` projects, dealt over `parts` key lists.
fn key_lists(scenario: &Scenario) -> Vec<String> {
    let mut lists = vec![String::new(); scenario.parts.max(1)];
    for i in 0..scenario.keys {
        let list = &mut lists[i % scenario.parts.max(1)];
        list.push_str(&format!("p{}:AIzaSySIM{i:029}\n", i % scenario.projects.max(1)));
    }
    lists
}

/// When requests arrive: steadily (exponential gaps at the rate) and in bursts, sorted.
fn arrivals(scenario: &Scenario, rng: &mut Rng) -> Vec<u64> {
    let mut times = Vec::new();
    if scenario.rate_per_sec > 0.0 {
        let mut t = 0.0;
        loop {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            t += -(1.0 - u).ln() / scenario.rate_per_sec * 1000.0;
            if t >= scenario.duration_ms as f64 {
                break;
            }
            times.push(t as u64);
        }
    }
    for &(at, count) in &scenario.bursts {
        times.extend(std::iter::repeat_n(at, count));
    }
    times.sort_unstable();
    times
}
