//! The one loop that runs a core machine — a request's [`Flow`](gemini_pool_core::Flow), the
//! key check's [`Check`](gemini_pool_core::Check), or a request's
//! [`Linger`](gemini_pool_core::Linger) after its answer — doing each step's I/O on Fastly:
//! items from the KV store, and through [`Io`] key lists from the secret store, the cooling
//! knobs from the config store, calls to Google. The machine decides everything else.

use crate::context::{now_ms, Context};
use crate::log::log;
use crate::stores::{StateStore, RATE_COUNTER};
use crate::timing::{bump, Timing};
use gemini_pool_core::{Answer, ApiKey, CoolingSettings, ErrorReply, Machine, Step};

/// What a machine's steps need beside the KV store.
pub trait Io<'a> {
    /// A part's key list.
    fn fetch(&mut self, part: usize) -> Result<&'a [u8], ErrorReply>;
    /// The cooling knobs.
    fn cooling(&mut self) -> Result<CoolingSettings, ErrorReply>;
    /// One knob's text, if set.
    fn knob(&mut self, name: &str) -> Option<String>;
    /// Calls Google with each key (side by side when there are several), answers in order.
    fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer>;
}

/// A request's I/O: its context, and how it calls Google.
pub struct RequestIo<'a, 'r, S> {
    pub cx: &'a Context<'r>,
    pub send: S,
}

impl<'a, S: FnMut(&[ApiKey<'a>]) -> Vec<Answer>> Io<'a> for RequestIo<'a, '_, S> {
    fn fetch(&mut self, part: usize) -> Result<&'a [u8], ErrorReply> {
        Ok(self.cx.secrets.get(part, self.cx.timing)?)
    }

    fn cooling(&mut self) -> Result<CoolingSettings, ErrorReply> {
        self.cx.cooling().cloned()
    }

    fn knob(&mut self, name: &str) -> Option<String> {
        self.cx.knob(name)
    }

    fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer> {
        (self.send)(keys)
    }
}

/// Runs `machine` to its end.
pub fn run<'a, M: Machine<'a>>(
    machine: &mut M,
    io: &mut impl Io<'a>,
    kv: &StateStore,
    timing: &Timing,
) -> Result<M::Done, ErrorReply> {
    loop {
        match machine.step(now_ms()) {
            Step::Fetch(part) => machine.fetched(part, io.fetch(part)?),
            Step::Read(items) => machine.read(kv.read(&items, timing)),
            Step::Configure => machine.configured(&io.cooling()?),
            Step::Send(keys) => {
                keys.iter().for_each(|_| bump(&timing.attempts));
                machine.answered(io.send(&keys));
            }
            Step::Commit { writes, read_back } => {
                let refused = kv.execute(writes, timing);
                if !refused.is_empty() {
                    machine.refused(refused);
                }
                match read_back.is_empty() {
                    true => machine.written(),
                    false => machine.read(kv.read(&read_back, timing)),
                }
            }
            Step::Look(names) => machine.looked(kv.look(&names, timing)),
            // A record the store had already (an adopted file seen again) adds no index line.
            Step::Remember { item, record, ttl_secs, index } => {
                let stored = kv.keep_record(&item, record, ttl_secs, timing);
                if let (true, Some(index)) = (stored, &index) {
                    kv.count(index, timing);
                }
                machine.remembered(stored);
            }
            Step::Forget { item, index } => {
                kv.delete(&item, timing);
                kv.count(&index, timing);
            }
            Step::Claim { item, bytes, ttl_secs } => machine.claimed(kv.claim(&item, bytes, ttl_secs, timing)),
            Step::Swap { item, bytes, generation, ttl_secs } => kv.swap(&item, bytes, generation, ttl_secs, timing),
            Step::Append { item, bytes, ttl_secs } => kv.append(&item, bytes, ttl_secs, timing),
            Step::Knob(name) => machine.knob(io.knob(name)),
            Step::List(prefix) => machine.listed(kv.list(&prefix, timing)),
            Step::Policies(labels) => {
                // A policy that does not read shows no limits here; its client gets the 500.
                machine
                    .policies(labels.iter().map(|label| crate::stores::policy(label, timing).ok().flatten()).collect())
            }
            Step::Rate(entry) => machine.rated(platform_count(&entry, timing)),
            Step::Log(line) => log(format_args!("{line}")),
            Step::Wait(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
            Step::Done(done) => return Ok(done),
        }
    }
}

/// The requests `entry` made in the last minute by Fastly's Edge Rate Limiting counter (per
/// POP, approximate; Viceroy's always says 0), this one then counted; `None` if the counter
/// cannot be asked.
fn platform_count(entry: &str, timing: &Timing) -> Option<u64> {
    use fastly::erl::{CounterDuration, RateCounter};
    bump(&timing.rate_checks);
    let counter = RateCounter::open(RATE_COUNTER);
    let count = counter.lookup_count(entry, CounterDuration::SixtySecs).ok().map(u64::from);
    if let Err(e) = counter.increment(entry, 1) {
        log(format_args!("rate counter: counting failed: {e:?}"));
    }
    count
}

/// After the answer: a machine that only reads and writes the store (a [`Linger`]).
///
/// [`Linger`]: gemini_pool_core::Linger
pub struct StoreOnly;

impl Io<'static> for StoreOnly {
    fn fetch(&mut self, _: usize) -> Result<&'static [u8], ErrorReply> {
        Ok(&[])
    }

    fn cooling(&mut self) -> Result<CoolingSettings, ErrorReply> {
        Ok(CoolingSettings::default())
    }

    fn knob(&mut self, _: &str) -> Option<String> {
        None
    }

    fn send(&mut self, keys: &[ApiKey<'static>]) -> Vec<Answer> {
        keys.iter().map(|_| Answer::None { timeout: false, detail: "not sent after the answer".into() }).collect()
    }
}
