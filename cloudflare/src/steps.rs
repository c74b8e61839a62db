//! The one loop that runs a core machine — a request's [`Flow`](gemini_pool_core::Flow), the
//! key check's [`Check`](gemini_pool_core::Check), or a request's
//! [`Linger`](gemini_pool_core::Linger) after its answer — doing each step's I/O on Workers:
//! items from the state objects (a `Record`'s writes and read-back in one call per object),
//! and through [`Io`] key lists from the environment, the cooling knobs, calls to Google. The
//! machine decides everything else.

use crate::config;
use crate::context::{now_ms, Context};
use crate::reply::Timing;
use crate::stores::StateStore;
use gemini_pool_core::{Answer, ApiKey, CoolingSettings, ErrorReply, Machine, Policy, Step};
use std::rc::Rc;
use std::time::Duration;

/// What a machine's steps need beside the state objects: the request's key lists and context
/// (`None` after the answer, when only the store is left), and how to call Google.
pub(crate) trait Io<'a> {
    /// The key lists and the request's context.
    fn env(&self) -> Option<(&'a [Rc<str>], &Context)>;

    /// Calls Google with each key (side by side when there are several), answers in order.
    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer>;

    /// A part's key list.
    fn fetch(&self, part: usize) -> &'a [u8] {
        self.env().and_then(|(lists, _)| lists.get(part)).map_or(&[][..], |l| l.as_bytes())
    }

    /// The cooling knobs.
    fn cooling(&self) -> Result<CoolingSettings, ErrorReply> {
        self.env().map_or_else(|| Ok(CoolingSettings::default()), |(_, cx)| cx.cooling().cloned())
    }

    /// One knob's text, if set.
    fn knob(&self, name: &str) -> Option<String> {
        self.env().and_then(|(_, cx)| config::knob(&cx.env, name))
    }

    /// A client label's policy, if it has one that reads (one that does not shows no limits in
    /// a status; its client gets the 500).
    fn policy(&self, label: &str) -> Option<Policy> {
        self.env().and_then(|(_, cx)| config::policy(&cx.env, label).ok().flatten())
    }
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
            Step::Commit { writes, read_back } => {
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
                if let (true, Some(index)) = (stored, &index) {
                    store.count(index).await;
                }
                machine.remembered(stored);
            }
            Step::Forget { item, index } => {
                store.delete(&item).await;
                store.count(&index).await;
            }
            Step::Claim { item, bytes, ttl_secs } => machine.claimed(store.claim(&item, bytes, ttl_secs).await),
            Step::Swap { item, bytes, generation: Some(generation), ttl_secs } => {
                store.swap(&item, bytes, generation, ttl_secs).await
            }
            // Only a client counted in entries of its own replaces an item whatever it holds, and
            // the Workers edge counts in the limit item (`Setup::verdict_entries` is off).
            Step::Swap { item, generation: None, .. } => {
                worker::console_error!("state: {item}: no generation to swap at")
            }
            Step::Append { item, bytes, ttl_secs } => store.append(&item, &bytes, ttl_secs).await,
            Step::Knob(name) => machine.knob(io.knob(name)),
            Step::List(prefix) => machine.listed(store.list(&prefix).await),
            Step::Policies(labels) => machine.policies(labels.iter().map(|label| io.policy(label)).collect()),
            // Workers have no platform counter a per-client limit fits.
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
    fn env(&self) -> Option<(&'static [Rc<str>], &Context)> {
        None
    }

    async fn send(&mut self, keys: &[ApiKey<'static>]) -> Vec<Answer> {
        keys.iter().map(|_| Answer::None { timeout: false, detail: "not sent after the answer".into() }).collect()
    }
}
