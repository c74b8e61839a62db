//! The one loop that runs a core machine — a request's [`Flow`](gemini_pool_core::Flow), the
//! key check's [`Check`](gemini_pool_core::Check), or a request's
//! [`Linger`](gemini_pool_core::Linger) after its answer — doing each step's I/O on Workers:
//! items from the state objects (a `Record`'s writes and read-back in one call per object),
//! and through [`Io`] key lists from the environment, the cooling knobs, calls to Google. The
//! machine decides everything else.

use crate::context::now_ms;
use crate::reply::Timing;
use crate::stores::StateStore;
use gemini_pool_core::{Answer, ApiKey, CoolingSettings, ErrorReply, Machine, Step};
use std::time::Duration;

/// What a machine's steps need beside the state objects.
pub(crate) trait Io<'a> {
    /// A part's key list.
    fn fetch(&self, part: usize) -> &'a [u8];
    /// The cooling knobs.
    fn cooling(&self) -> Result<CoolingSettings, ErrorReply>;
    /// One knob's text, if set.
    fn knob(&self, name: &str) -> Option<String>;
    /// A client label's policy, if it has one that reads.
    fn policy(&self, label: &str) -> Option<gemini_pool_core::Policy>;
    /// Calls Google with each key (side by side when there are several), answers in order.
    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer>;
}

/// Runs `machine` to its end.
pub(crate) async fn run<'a, M: Machine<'a>>(
    machine: &mut M,
    io: &mut impl Io<'a>,
    store: &StateStore,
    timing: &mut Timing,
) -> Result<M::Done, ErrorReply> {
    loop {
        match machine.step(now_ms()) {
            Step::Fetch(part) => machine.fetched(part, io.fetch(part)),
            Step::Read(items) => machine.read(store.read(&items).await),
            Step::Configure => machine.configured(&io.cooling()?),
            Step::Send(keys) => {
                timing.attempts += keys.len() as u32;
                let answers = io.send(&keys).await;
                machine.answered(answers);
            }
            Step::Record { writes, read_back } => {
                let (read, refused) = store.write_and_read(writes, &read_back).await;
                if !refused.is_empty() {
                    machine.refused(refused);
                }
                match read_back.is_empty() {
                    true => machine.written(),
                    false => machine.read(read),
                }
            }
            Step::Look(names) => machine.looked(store.look(&names).await),
            // A record the object had already (an adopted file seen again) adds no index line.
            Step::Remember { item, record, ttl_secs, index } => {
                let stored = store.keep_record(&item, record, ttl_secs).await;
                if stored {
                    store.count(&index).await;
                }
                machine.remembered(stored);
            }
            Step::Forget { item, index } => {
                store.delete(&item).await;
                store.count(&index).await;
            }
            Step::Claim { item, bytes, ttl_secs } => machine.claimed(store.claim(&item, bytes, ttl_secs).await),
            Step::Swap { item, bytes, generation, ttl_secs } => store.swap(&item, bytes, generation, ttl_secs).await,
            Step::Append { item, bytes, ttl_secs } => store.append(&item, &bytes, ttl_secs).await,
            // Workers have no platform counter a per-client limit fits (`Cx::limiter`).
            Step::Knob(name) => machine.knob(io.knob(name)),
            Step::List(prefix) => machine.listed(store.list(&prefix).await),
            Step::Policies(labels) => {
                // A policy that does not read shows no limits here; its client gets the 500.
                machine.policies(labels.iter().map(|label| io.policy(label)).collect())
            }
            Step::Rate(_) => machine.rated(None),
            Step::Log(line) => worker::console_log!("{line}"),
            Step::Wait(ms) => worker::Delay::from(Duration::from_millis(ms)).await,
            Step::Done(done) => return Ok(done),
        }
    }
}

/// After the answer: a machine that only reads and writes the state (a [`Linger`]).
///
/// [`Linger`]: gemini_pool_core::Linger
pub(crate) struct StoreOnly;

impl Io<'static> for StoreOnly {
    fn fetch(&self, _: usize) -> &'static [u8] {
        &[]
    }

    fn cooling(&self) -> Result<CoolingSettings, ErrorReply> {
        Ok(CoolingSettings::default())
    }

    fn knob(&self, _: &str) -> Option<String> {
        None
    }

    fn policy(&self, _: &str) -> Option<gemini_pool_core::Policy> {
        None
    }

    async fn send(&mut self, keys: &[ApiKey<'static>]) -> Vec<Answer> {
        keys.iter().map(|_| Answer::None { timeout: false, detail: "not sent after the answer".into() }).collect()
    }
}
