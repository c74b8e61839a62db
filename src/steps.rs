//! The one loop that runs a core machine — a request's [`Flow`](gemini_pool_core::Flow)
//! or the key check's [`Check`](gemini_pool_core::Check) — doing each step's I/O on
//! Fastly: key lists from the secret store, items from the KV store, calls to Google through
//! `send`, the cooling knobs from the config store. The machine decides everything else.

use crate::context::{now_ms, Context, Rejection};
use crate::log::log;
use crate::ops::bump;
use crate::stores::StateStore;
use gemini_pool_core::ApiKey;
use gemini_pool_core::{Answer, Machine, Step};

/// Runs `machine` to its end. `send` calls Google with each key (side by side when there are
/// several) and gives the answers in the same order.
pub fn run<'a, M: Machine<'a>>(
    machine: &mut M,
    send: &mut dyn FnMut(&[ApiKey<'a>]) -> Vec<Answer>,
    kv: &StateStore,
    cx: &'a Context<'_>,
) -> Result<M::Done, Rejection> {
    loop {
        match machine.step(now_ms()) {
            Step::Fetch(part) => {
                let bytes = cx.secrets.get(part, cx.ops).map_err(|e| Rejection::config(cx.dialect, e))?;
                machine.fetched(part, bytes);
            }
            Step::Read(items) => machine.read(kv.read(&items, cx.ops)),
            Step::Configure => machine.configured(cx.cooling()?),
            Step::Send(keys) => {
                keys.iter().for_each(|_| bump(&cx.ops.attempts));
                machine.answered(send(&keys));
            }
            Step::Record { writes, read_back } => {
                kv.execute(writes, cx.ops);
                match read_back.is_empty() {
                    true => machine.written(),
                    false => machine.read(kv.read(&read_back, cx.ops)),
                }
            }
            Step::Log(line) => log(format_args!("{line}")),
            Step::Done(done) => return Ok(done),
        }
    }
}
