//! A client's limits (`rpm`, `rpd`, `tokens_per_day` of its [`Policy`](crate::client::policy::Policy)):
//! where each is counted, and the verdict before a request goes out.
//!
//! - **Requests** (`rpd`, and `rpm` with knob `rate_limiter = store`, the default) count in the
//!   client's own item of the quota day, `limit/<day>/<client>`. A request first **claims** a
//!   place: it appends `r <minute> <id>` (its own random id), then reads the item, and is
//!   admitted if its line is among the first `rpd` of the day and the first `rpm` of the minute
//!   (a fixed one-minute window). A refused request appends `x <id>`, which takes its place back.
//!   Places are given in the order the store took the appends, so concurrent requests cannot
//!   all see room for one more: on a consistent store a limit is never passed (a stale read
//!   can miss lines appended elsewhere in the meantime, and admit as many more).
//! - **Tokens** (`tokens_per_day`): a request's tokens append `t <n>` after the client has its
//!   answer; a request is refused once the day's sum reaches the limit.
//! - Where the store takes few writes per item a second (Fastly's KV: `Setup::verdict_entries`),
//!   requests and tokens count in **entries of their own** instead
//!   ([`crate::state::limit_entries`]): a request reads the client's head, lists the minutes
//!   after it, and takes a free slot of its minute below its limits (stored only if no request
//!   holds it); slots taken together are tried again, and a due head is written. A busy client
//!   then writes one entry per request, never one item many times a second.
//! - With `rate_limiter = platform`, `rpm` is the platform's rate counter instead (Fastly's
//!   Edge Rate Limiting: per POP, a sliding 60 s window, may undercount by up to 10 %), asked
//!   with [`Step::Rate`](crate::decide::machine::Step::Rate).
//!
//! Answers to a limited client carry `x-ratelimit-*` headers (the ones OpenAI's SDKs read), and
//! a refusal carries `Retry-After`. docs/policies.md gives the accuracy measured and modelled.

use crate::client::envelope::ErrorReply;
use crate::client::policy::Limits;
use crate::decide::flow::{Finish, Flow};
use crate::decide::listing::Listed;
use crate::decide::machine::{Answer, Machine, Step};
use crate::pool::names::escape;
use crate::pool::rng::Rng;
use crate::settings::{CoolingSettings, Limiter, RequestSettings, SettingsReader};
use crate::state::clock::{self, ResetZone};
use crate::state::items::Item;
use crate::state::limit_entries::{Claims, TokenItem};
use crate::state::limit_item::{self, compacted, Tally};
use crate::state::marks::Marks;
use crate::state::usage::UsageAppend;

/// One client's gate at one moment: what to count, where, and the verdict.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: Limits,
    limiter: Limiter,
    client: String,
    now_ms: u64,
    zone: ResetZone,
    tally: Tally,
    /// Requests the platform counted in the last minute (platform limiter only).
    platform_minute: Option<u64>,
    /// This request's id in the limit item, once it claimed a place.
    claimed: Option<u64>,
    /// The client counted in entries of its own (`None`: in its limit item).
    claims: Option<Claims>,
    /// This request's random id: its claim in the limit item, or its tokens' entry, names it.
    id: u64,
}

/// Collisions on slots after which a request of a client counted in entries is refused
/// ([`ErrorReply::contended`]): that many requests of one client took slots together.
const MAX_COLLISIONS: u32 = 6;

/// The headroom a limited client is told of on every answer.
pub type RateHeaders = Vec<(&'static str, String)>;

impl Gate {
    /// `client`'s gate under `limits`, at `now_ms` in the quota day of `zone`.
    pub fn new(limits: Limits, limiter: Limiter, client: &str, now_ms: u64, zone: ResetZone) -> Self {
        Gate {
            limits,
            limiter,
            client: client.to_string(),
            now_ms,
            zone,
            tally: Tally::default(),
            platform_minute: None,
            claimed: None,
            claims: None,
            id: 0,
        }
    }

    /// Counts in entries of its own (`on`: the store takes few writes per item a second), if
    /// it counts in the store at all.
    pub fn entries(mut self, on: bool) -> Self {
        self.claims = self.store_item().filter(|_| on).map(Claims::new);
        self
    }

    /// Are this client's counts in entries of their own?
    fn in_entries(&self) -> bool {
        self.claims.is_some() && self.counts_in_store()
    }

    /// Does the gate need the day's counts (`rpd`, `tokens_per_day`), not only the minute's?
    fn counts_day(&self) -> bool {
        self.limits.rpd.is_some() || self.limits.tokens_per_day.is_some()
    }

    /// The head to read (entries, a client with day limits).
    fn head_item(&self) -> Option<String> {
        let claims = self.claims.as_ref().filter(|_| self.counts_day())?;
        Some(claims.head_item().to_string())
    }

    /// The head as read.
    fn head_read(&mut self, bytes: Option<&[u8]>) {
        if let Some(claims) = self.claims.as_mut() {
            claims.read_head(bytes);
        }
    }

    /// What to list of the client's entries: the minutes after its head (only this one when
    /// no day limit counts).
    fn prefixes(&mut self) -> Vec<String> {
        let (minute, day) = (self.minute(), self.counts_day());
        match self.claims.as_mut() {
            Some(claims) if day => claims.prefixes(minute),
            _ => self.relist(),
        }
    }

    /// This minute, to list again after a collision.
    fn relist(&mut self) -> Vec<String> {
        let minute = self.minute();
        self.claims.as_mut().map(|claims| vec![claims.relist(minute)]).unwrap_or_default()
    }

    /// The names a listing of the client's entries found.
    fn entries_listed(&mut self, names: &[String]) {
        let minute = self.minute();
        if let Some(claims) = self.claims.as_mut() {
            claims.listed(names);
            self.tally = claims.tally(minute, None);
        }
    }

    /// The slot this request would take (`draw`: its random pick among the lowest free), its
    /// place counted as taken for the verdict; `None` when requests do not count.
    fn pick(&mut self, draw: u64) -> Option<u64> {
        if !self.counts_requests() {
            return None;
        }
        let minute = self.minute();
        let rpm = self.limits.rpm.filter(|_| self.limiter == Limiter::Store);
        let claims = self.claims.as_ref()?;
        let cap = claims.cap(minute, rpm, self.limits.rpd);
        let slot = claims.free_slot(minute, cap, draw).unwrap_or_else(|over| over);
        self.tally = claims.tally(minute, Some(slot));
        Some(slot)
    }

    /// The entry of `slot` in this minute.
    fn slot_entry(&self, slot: u64) -> Option<String> {
        Some(self.claims.as_ref()?.slot_entry(self.minute(), slot))
    }

    /// Whether this request holds `slot` now (else another request took it first).
    fn took(&mut self, slot: u64, stored: bool) {
        let minute = self.minute();
        if let Some(claims) = self.claims.as_mut() {
            claims.taken(minute, slot);
            self.tally = if stored { claims.held_tally(minute) } else { claims.tally(minute, None) };
        }
    }

    /// The client's new head, if one is due.
    fn folded(&self) -> Option<(String, Vec<u8>)> {
        let claims = self.claims.as_ref().filter(|_| self.counts_day())?;
        Some((claims.head_item().to_string(), claims.folded(self.now_ms)?))
    }

    /// Does the client have an `rpm`?
    pub(crate) fn counts_rpm(&self) -> bool {
        self.limits.rpm.is_some()
    }

    /// Where `rpm` counts, as knob `rate_limiter` says.
    pub(crate) fn set_limiter(&mut self, limiter: Limiter) {
        self.limiter = limiter;
    }

    /// The platform counter's entry to ask, if `rpm` is counted there.
    pub fn platform_entry(&self) -> Option<String> {
        (self.limits.rpm.is_some() && self.limiter == Limiter::Platform).then(|| escape(&self.client))
    }

    /// The client's limit item, if a limit is counted in the store.
    pub fn store_item(&self) -> Option<String> {
        self.counts_in_store().then(|| limit_item::item(&self.client, self.now_ms, self.zone))
    }

    /// Does a limit count in the store (requests there, or tokens)? Knob `rate_limiter` may
    /// move `rpm` out of it after the gate was made.
    fn counts_in_store(&self) -> bool {
        self.counts_requests() || self.limits.tokens_per_day.is_some()
    }

    /// Where the request's tokens count after the answer — its limit item, or an entry of their
    /// own — for a client with a daily token limit.
    pub fn token_item(&self) -> Option<TokenItem> {
        self.limits.tokens_per_day.map(|_| TokenItem {
            item: limit_item::item(&self.client, self.now_ms, self.zone),
            ttl_secs: self.ttl_secs(),
            entry: self.in_entries().then_some(self.id),
        })
    }

    /// The line that claims this request's place (`id`: its own, random), if requests count in
    /// the store: appended before the item is read.
    pub(crate) fn claim(&mut self, id: u64) -> Option<Vec<u8>> {
        if !self.counts_requests() {
            return None;
        }
        self.claimed = Some(id);
        Some(format!("r {} {id:x}\n", self.minute()).into_bytes())
    }

    /// The line that gives a refused request's place back.
    pub(crate) fn cancel(&self) -> Option<Vec<u8>> {
        self.claimed.map(|id| format!("x {id:x}\n").into_bytes())
    }

    /// The platform counted `count` requests in the last minute (`None`: it could not say).
    pub fn platform_counted(&mut self, count: Option<u64>) {
        self.platform_minute = count;
    }

    /// The limit item as read (`None`: the store has none yet).
    pub fn store_read(&mut self, bytes: Option<&[u8]>) {
        self.tally = bytes.map(|b| Tally::read(b, self.minute(), self.claimed)).unwrap_or_default();
    }

    /// The verdict: admitted, or the 429 to answer with.
    pub fn verdict(&self) -> Result<(), ErrorReply> {
        let (day_place, minute_place) = self.tally.places();
        if let Some(rpm) = self.limits.rpm.filter(|&rpm| self.minute_used(minute_place) >= rpm) {
            return Err(ErrorReply::over_limit("rpm", rpm, self.minute_reset_ms()));
        }
        if let Some(rpd) = self.limits.rpd.filter(|&rpd| day_place >= rpd) {
            return Err(ErrorReply::over_limit("rpd", rpd, self.day_reset_ms()));
        }
        if let Some(tpd) = self.limits.tokens_per_day.filter(|&tpd| self.tally.day_tokens >= tpd) {
            return Err(ErrorReply::over_limit("tokens_per_day", tpd, self.day_reset_ms()));
        }
        Ok(())
    }

    /// Do requests count in the store (`rpd`, or `rpm` there)?
    fn counts_requests(&self) -> bool {
        (self.limits.rpm.is_some() && self.limiter == Limiter::Store) || self.limits.rpd.is_some()
    }

    /// Requests of this minute before this one: its place (store), or the platform's count.
    fn minute_used(&self, minute_place: u64) -> u64 {
        match self.limiter {
            Limiter::Store => minute_place,
            Limiter::Platform => self.platform_minute.unwrap_or(0),
        }
    }

    /// How long the limit item is kept: until the end of the next quota day.
    pub fn ttl_secs(&self) -> u64 {
        clock::ttl_secs(self.now_ms, self.zone)
    }

    /// `x-ratelimit-*` for this client (this request counted as admitted when `admitted`):
    /// requests against `rpm` (else `rpd`), tokens against `tokens_per_day`.
    pub fn headers(&self, admitted: bool) -> RateHeaders {
        let mut headers = Vec::new();
        let (day_place, minute_place) = self.tally.places();
        let this = u64::from(admitted);
        let requests = match (self.limits.rpm, self.limits.rpd) {
            (Some(rpm), _) => Some((rpm, self.minute_used(minute_place) + this, self.minute_reset_ms())),
            (None, Some(rpd)) => Some((rpd, day_place + this, self.day_reset_ms())),
            (None, None) => None,
        };
        if let Some((limit, used, reset_ms)) = requests {
            let remaining = if admitted { limit.saturating_sub(used) } else { 0 };
            headers.push(("x-ratelimit-limit-requests", limit.to_string()));
            headers.push(("x-ratelimit-remaining-requests", remaining.to_string()));
            headers.push(("x-ratelimit-reset-requests", go_duration(reset_ms)));
        }
        if let Some(limit) = self.limits.tokens_per_day {
            headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
            headers.push(("x-ratelimit-remaining-tokens", limit.saturating_sub(self.tally.day_tokens).to_string()));
            headers.push(("x-ratelimit-reset-tokens", go_duration(self.day_reset_ms())));
        }
        headers
    }

    /// What `/v1/status` shows of this client: its limits and what it used (this minute, by
    /// the store; today), and what is left today.
    pub fn to_json(&self) -> serde_json::Value {
        let Limits { rpm, rpd, tokens_per_day } = self.limits;
        let Tally { day_requests, minute_requests, day_tokens, .. } = self.tally;
        serde_json::json!({
            "client": self.client,
            "rpm": rpm,
            "rpd": rpd,
            "tokensPerDay": tokens_per_day,
            "requestsThisMinute": (self.limiter == Limiter::Store).then_some(minute_requests),
            "requestsToday": day_requests,
            "tokensToday": day_tokens,
            "requestsLeftToday": rpd.map(|n| n.saturating_sub(day_requests)),
            "tokensLeftToday": tokens_per_day.map(|n| n.saturating_sub(day_tokens)),
        })
    }

    pub(crate) fn minute(&self) -> u64 {
        self.now_ms / 60_000
    }

    fn minute_reset_ms(&self) -> u64 {
        60_000 - self.now_ms % 60_000
    }

    fn day_reset_ms(&self) -> u64 {
        let now = i64::try_from(self.now_ms / 1000).unwrap_or(i64::MAX / 2);
        let midnight = self.zone.next_midnight(now);
        u64::try_from(midnight - now).unwrap_or(0) * 1000 - self.now_ms % 1000
    }
}

/// How a machine ends when the client's gate refuses the request.
pub trait Refusable {
    /// The refusal, as this machine's ending.
    fn refused(reply: ErrorReply) -> Self;
}

impl Refusable for Finish {
    fn refused(reply: ErrorReply) -> Self {
        Finish::Error(reply)
    }
}

impl Refusable for Listed {
    fn refused(reply: ErrorReply) -> Self {
        Listed::Error(reply)
    }
}

/// Where a [`Gated`] machine's gate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Read knob `rate_limiter` (a client with `rpm`, where the gate was told to ask).
    Knob,
    /// Awaiting it.
    Knobbed,
    /// Ask the platform's counter (if `rpm` counts there).
    Platform,
    /// Awaiting its count.
    Rated,
    /// Claim a place in the limit item (or only read it: tokens count there).
    Claim,
    /// Awaiting the item a claim read back.
    Claimed,
    /// Awaiting the item a look read.
    Looked,
    /// Write the item compacted, if it has grown.
    Swap,
    /// Entries: read the client's head (a client with day limits).
    Head,
    /// Awaiting it.
    Headed,
    /// Entries: list the next prefix.
    List,
    /// Awaiting its names.
    Listed,
    /// Entries: take a free slot of the minute.
    Take,
    /// Awaiting whether the store kept it for this request.
    Taking,
    /// Entries: write the client's head, if one is due.
    Fold,
    /// Decide.
    Verdict,
    /// Refused: its claim given back, then done.
    Refused,
    /// Admitted (or no gate): the inner machine runs.
    Passed,
}

/// A machine behind a client's gate: the gate's steps first — the platform's count, a claim
/// of a place in the limit item read back (and compacted by this claimer once it has grown),
/// the verdict — then, if admitted, the inner machine's (a request's [`Flow`], a
/// [`Listing`](crate::decide::listing::Listing)). Refused, it ends with the 429 and gives its
/// place back. One gate for everything a client's request can cost.
pub struct Gated<M> {
    inner: M,
    gate: Option<Gate>,
    at: At,
    /// The limit item compacted, and the generation it was derived from.
    swap: Option<(Vec<u8>, u64)>,
    headers: RateHeaders,
    refusal: Option<ErrorReply>,
    /// Ask knob `rate_limiter` for `rpm` (`Some`), and whether the edge has a platform counter.
    ask_limiter: Option<bool>,
    /// Entries: prefixes still to list; the slot being taken; slots found taken; draws.
    to_list: Vec<String>,
    slot: u64,
    collisions: u32,
    draws: Rng,
}

impl<M> Gated<M> {
    /// `inner` behind `gate` (`None`: a client without limits; the gate is open). `id`: the
    /// request's random id, for its claim.
    pub fn new(inner: M, gate: Option<Gate>, id: u64) -> Self {
        let at = if gate.is_some() { At::Platform } else { At::Passed };
        let mut gate = gate;
        if let Some(gate) = gate.as_mut() {
            gate.id = id;
        }
        Gated {
            inner,
            gate,
            at,
            swap: None,
            headers: Vec::new(),
            refusal: None,
            ask_limiter: None,
            to_list: Vec::new(),
            slot: 0,
            collisions: 0,
            draws: Rng::new(id ^ 0x5bd1_e995),
        }
    }

    /// The gate reads knob `rate_limiter` itself, for a client with `rpm` (`platform`: the edge
    /// has a per-client rate counter; where it has none, `platform` is a configuration error).
    pub fn reading_limiter(mut self, platform: bool) -> Self {
        if self.gate.as_ref().is_some_and(Gate::counts_rpm) {
            self.ask_limiter = Some(platform);
            self.at = At::Knob;
        }
        self
    }

    /// The inner machine.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The inner machine, to ask it for what it holds after the answer.
    pub fn inner_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// The `x-ratelimit-*` headers every answer to a limited client carries.
    pub fn rate_headers(&self) -> &RateHeaders {
        &self.headers
    }

    /// Did the client's own limit refuse the request?
    pub fn over_limit(&self) -> bool {
        self.refusal.is_some()
    }

    /// Whether the store kept the slot being taken for this request: if not, another request
    /// took it first — try another, listing the minute again every second time, and refuse
    /// after [`MAX_COLLISIONS`].
    fn took(&mut self, stored: bool) {
        let Some(gate) = self.gate.as_mut() else { return };
        gate.took(self.slot, stored);
        if stored {
            self.at = At::Fold;
            return;
        }
        self.collisions += 1;
        self.at = At::Take;
        if self.collisions >= MAX_COLLISIONS {
            self.headers = gate.headers(false);
            self.refusal = Some(ErrorReply::contended());
            self.at = At::Refused;
        } else if self.collisions.is_multiple_of(2) {
            self.to_list = gate.relist();
            self.at = At::List;
        }
    }

    /// The gate cannot be read as configured: the request ends with the configuration error.
    fn misconfigured(&mut self, what: impl std::fmt::Display) {
        self.refusal = Some(ErrorReply::config(what));
        self.at = At::Refused;
    }

    /// The gate's next step, or `None` once it is passed.
    fn gate_step<'a, D: Refusable>(&mut self) -> Option<Step<'a, D>> {
        if self.at == At::Taking {
            // The edge did not say whether the store kept the slot: as if another request held it.
            self.took(false);
        }
        let gate = self.gate.as_mut()?;
        loop {
            match self.at {
                At::Passed => return None,
                At::Knob => {
                    self.at = At::Knobbed;
                    return Some(Step::Knob("rate_limiter"));
                }
                // The edge did not hand the knob back: the default.
                At::Knobbed => self.at = At::Platform,
                At::Platform => match gate.platform_entry() {
                    Some(entry) => {
                        self.at = At::Rated;
                        return Some(Step::Rate(entry));
                    }
                    None => self.at = At::Claim,
                },
                // The edge did not hand the count, or the item, back: go on as if none.
                At::Rated => self.at = At::Claim,
                At::Claimed | At::Looked => self.at = At::Verdict,
                At::Claim if gate.claims.is_some() => {
                    self.at = if gate.in_entries() { At::Head } else { At::Verdict };
                }
                At::Claim => {
                    let (item, ttl_secs) = match gate.store_item() {
                        Some(item) => (item, gate.ttl_secs()),
                        None => {
                            self.at = At::Verdict;
                            continue;
                        }
                    };
                    let id = gate.id;
                    match gate.claim(id) {
                        Some(bytes) => {
                            self.at = At::Claimed;
                            return Some(Step::Claim { item, bytes, ttl_secs });
                        }
                        None => {
                            self.at = At::Looked;
                            return Some(Step::Look(vec![item]));
                        }
                    }
                }
                At::Swap => {
                    self.at = At::Verdict;
                    if let (Some((bytes, generation)), Some(item)) = (self.swap.take(), gate.store_item()) {
                        return Some(Step::Swap {
                            item,
                            bytes,
                            generation: Some(generation),
                            ttl_secs: gate.ttl_secs(),
                        });
                    }
                }
                At::Head => match gate.head_item() {
                    Some(head) => {
                        self.at = At::Headed;
                        return Some(Step::Look(vec![head]));
                    }
                    None => self.at = At::List,
                },
                At::Headed => self.at = At::List,
                At::List => {
                    if self.to_list.is_empty() {
                        self.to_list = gate.prefixes();
                        self.to_list.reverse();
                    }
                    match self.to_list.pop() {
                        Some(prefix) => {
                            self.at = At::Listed;
                            return Some(Step::List(prefix));
                        }
                        None => self.at = At::Take,
                    }
                }
                At::Listed => self.at = if self.to_list.is_empty() { At::Take } else { At::List },
                At::Take => {
                    let Some(slot) = gate.pick(self.draws.next_u64()) else {
                        self.at = At::Fold;
                        continue;
                    };
                    match (gate.verdict(), gate.slot_entry(slot)) {
                        (Ok(()), Some(item)) => {
                            self.slot = slot;
                            self.at = At::Taking;
                            let ttl_secs = gate.ttl_secs();
                            return Some(Step::Remember { item, record: b"\n".to_vec(), ttl_secs, index: None });
                        }
                        _ => self.at = At::Fold,
                    }
                }
                // Handled before the loop (the edge did not say whether the slot was kept).
                At::Taking => self.at = At::Take,
                At::Fold => {
                    self.at = At::Verdict;
                    if let Some((item, bytes)) = gate.folded() {
                        return Some(Step::Swap { item, bytes, generation: None, ttl_secs: gate.ttl_secs() });
                    }
                }
                At::Verdict => match gate.verdict() {
                    Ok(()) => {
                        self.headers = gate.headers(true);
                        self.at = At::Passed;
                    }
                    Err(reply) => {
                        self.headers = gate.headers(false);
                        self.refusal = Some(reply);
                        self.at = At::Refused;
                        // A refused request gives its place back.
                        if let (Some(bytes), Some(item)) = (gate.cancel(), gate.store_item()) {
                            return Some(Step::Append { item, bytes, ttl_secs: gate.ttl_secs() });
                        }
                    }
                },
                At::Refused => return self.refusal.clone().map(|reply| Step::Done(D::refused(reply))),
            }
        }
    }
}

impl<'a> Gated<Flow<'a>> {
    /// The request's counts once the client has its answer ([`Flow::usage`]), its tokens in
    /// its limit item if it has a daily token limit; none for a request its own limit refused.
    pub fn usage(&mut self, client: &str, now_ms: u64, settings: &RequestSettings) -> Option<UsageAppend> {
        if self.over_limit() {
            return None;
        }
        let token_item = self.gate.as_ref().and_then(Gate::token_item);
        self.inner.usage(client, now_ms, settings, token_item)
    }
}

impl<'a, M: Machine<'a>> Machine<'a> for Gated<M>
where
    M::Done: Refusable,
{
    type Done = M::Done;

    fn step(&mut self, now_ms: u64) -> Step<'a, M::Done> {
        match self.gate_step() {
            Some(step) => step,
            None => self.inner.step(now_ms),
        }
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        self.inner.fetched(part, bytes);
    }

    fn read(&mut self, items: Vec<(Item, Marks)>) {
        self.inner.read(items);
    }

    fn configured(&mut self, cooling: &CoolingSettings) {
        self.inner.configured(cooling);
    }

    fn answered(&mut self, answers: Vec<Answer>) {
        self.inner.answered(answers);
    }

    fn written(&mut self) {
        self.inner.written();
    }

    fn refused(&mut self, writes: Vec<usize>) {
        self.inner.refused(writes);
    }

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        match (self.at, self.gate.as_mut()) {
            (At::Looked, Some(gate)) => {
                gate.store_read(records.into_iter().next().flatten().as_deref());
                self.at = At::Verdict;
            }
            (At::Headed, Some(gate)) => {
                gate.head_read(records.into_iter().next().flatten().as_deref());
                self.at = At::List;
            }
            _ => self.inner.looked(records),
        }
    }

    fn rated(&mut self, count: Option<u64>) {
        match (self.at, self.gate.as_mut()) {
            (At::Rated, Some(gate)) => {
                gate.platform_counted(count);
                self.at = At::Claim;
            }
            _ => self.inner.rated(count),
        }
    }

    fn remembered(&mut self, stored: bool) {
        match self.at {
            At::Taking => self.took(stored),
            _ => self.inner.remembered(stored),
        }
    }

    fn listed(&mut self, names: Vec<String>) {
        match (self.at, self.gate.as_mut()) {
            (At::Listed, Some(gate)) => gate.entries_listed(&names),
            _ => self.inner.listed(names),
        }
    }

    fn knob(&mut self, value: Option<String>) {
        let (At::Knobbed, Some(gate), Some(platform)) = (self.at, self.gate.as_mut(), self.ask_limiter) else {
            return self.inner.knob(value);
        };
        self.at = At::Platform;
        match SettingsReader::new(|_: &str| value.clone()).limiter() {
            Ok(Limiter::Platform) if !platform => self.misconfigured(
                "rate_limiter = platform: this edge has no per-client rate counter (Cloudflare's Rate Limiting \
                 binding has one limit per binding); use store",
            ),
            Ok(limiter) => gate.set_limiter(limiter),
            Err(e) => self.misconfigured(e),
        }
    }

    fn claimed(&mut self, item: Option<(Vec<u8>, u64)>) {
        let (At::Claimed, Some(gate)) = (self.at, self.gate.as_mut()) else { return self.inner.claimed(item) };
        gate.store_read(item.as_ref().map(|(bytes, _)| bytes.as_slice()));
        self.swap = item.and_then(|(bytes, generation)| Some((compacted(&bytes, gate.minute())?, generation)));
        self.at = At::Swap;
    }
}

/// A duration as OpenAI's headers write it: `59s`, `6m0s`, `13h5m2s`.
fn go_duration(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: u64 = 1_768_478_400_000; // 2026-01-15 12:00:00 UTC
    const UTC: ResetZone = ResetZone::Fixed(0);

    fn limits(rpm: Option<u64>, rpd: Option<u64>, tpd: Option<u64>) -> Limits {
        Limits { rpm, rpd, tokens_per_day: tpd }
    }

    #[test]
    fn places_go_in_the_order_the_store_took_the_claims() {
        // Three requests claim at once with room for two: whatever order they read in, the
        // first two lines are admitted and the third is not.
        let item = b"r 0 1\nr 0 2\nr 0 3\n";
        let verdicts: Vec<bool> = (1..=3u64)
            .map(|id| {
                let mut gate = Gate::new(limits(None, Some(2), None), Limiter::Store, "app", 0, UTC);
                assert!(gate.claim(id).is_some());
                gate.store_read(Some(item));
                gate.verdict().is_ok()
            })
            .collect();
        assert_eq!(verdicts, [true, true, false]);
    }

    #[test]
    fn each_limit_refuses_with_its_window() {
        let minute = NOON / 60_000;
        let mut gate = Gate::new(limits(Some(2), None, None), Limiter::Store, "app", NOON + 15_000, UTC);
        assert_eq!(gate.claim(7), Some(format!("r {minute} 7\n").into_bytes()));
        gate.store_read(Some(format!("r {minute} 1\nr {minute} 7\n").as_bytes()));
        assert_eq!(gate.verdict(), Ok(()));
        assert_eq!(gate.headers(true)[1], ("x-ratelimit-remaining-requests", "0".to_string()));
        assert_eq!(gate.headers(true)[2], ("x-ratelimit-reset-requests", "45s".to_string()));
        gate.store_read(Some(format!("r {minute} 1\nr {minute} 2\nr {minute} 7\n").as_bytes()));
        let refused = gate.verdict().expect_err("over rpm");
        assert_eq!((refused.status, refused.retry_after_secs), (429, Some(45)));
        assert!(refused.message.contains("rpm = 2"), "{}", refused.message);
        assert_eq!(gate.cancel(), Some(b"x 7\n".to_vec()));

        let mut daily = Gate::new(limits(None, Some(1), Some(100)), Limiter::Store, "app", NOON, UTC);
        daily.store_read(None);
        assert!(daily.verdict().is_ok());
        daily.store_read(Some(b"t 100\n"));
        let refused = daily.verdict().expect_err("over tokens");
        assert_eq!(refused.retry_after_secs, Some(12 * 3600));
        assert!(refused.message.contains("tokens_per_day = 100"));
        assert_eq!(daily.headers(false)[5], ("x-ratelimit-reset-tokens", "12h0m0s".to_string()));
    }

    #[test]
    fn the_platform_counts_rpm_when_asked_and_the_store_only_what_is_left() {
        let mut gate = Gate::new(limits(Some(3), None, None), Limiter::Platform, "my app", NOON, UTC);
        assert_eq!(gate.platform_entry().as_deref(), Some("my%20app"));
        assert_eq!(gate.store_item(), None, "nothing to count in the store");
        assert_eq!(gate.claim(1), None);
        gate.platform_counted(Some(3));
        assert!(gate.verdict().is_err());
        gate.platform_counted(None);
        assert_eq!(gate.verdict(), Ok(()));
        let mut tokens_only = Gate::new(limits(None, None, Some(5)), Limiter::Store, "a", NOON, UTC);
        assert_eq!(tokens_only.store_item().as_deref(), Some("limit/2026-01-15/a"));
        assert_eq!(tokens_only.claim(1), None, "tokens are appended after the answer");
    }

    #[test]
    fn durations_read_as_openai_writes_them() {
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(59_001), "1m0s");
        assert_eq!(go_duration(47_105_000), "13h5m5s");
    }
}
