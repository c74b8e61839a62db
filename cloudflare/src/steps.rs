//! The one loop that runs a core machine — a request's [`Flow`](gemini_pool_core::Flow)
//! or the key check's [`Check`](gemini_pool_core::Check) — doing each step's I/O on
//! Workers: key lists from the environment, items from the state object (a `Record`'s writes
//! and read-back in one call), calls to Google through a [`Sender`], the cooling knobs from
//! the environment. The machine decides everything else.

use crate::context::{now_ms, Cx, Rejection};
use crate::stores::StateStore;
use gemini_pool_core::ApiKey;
use gemini_pool_core::{Answer, Machine, Step};

/// Calls Google with each key (side by side when there are several), answers in order.
pub(crate) trait Sender<'a> {
    async fn send(&mut self, keys: &[ApiKey<'a>]) -> Vec<Answer>;
}

/// Runs `machine` to its end over the key lists `lists`.
pub(crate) async fn run<'a, M: Machine<'a>>(
    machine: &mut M,
    sender: &mut impl Sender<'a>,
    store: &StateStore,
    lists: &'a [String],
    cx: &mut Cx,
) -> Result<M::Done, Rejection> {
    loop {
        match machine.step(now_ms()) {
            Step::Fetch(part) => machine.fetched(part, lists.get(part).map_or(&[][..], |l| l.as_bytes())),
            Step::Read(items) => machine.read(store.write_and_read(Vec::new(), &items).await),
            Step::Configure => machine.configured(cx.cooling()?),
            Step::Send(keys) => {
                cx.timing.attempts += keys.len() as u32;
                let answers = sender.send(&keys).await;
                machine.answered(answers);
            }
            Step::Record { writes, read_back } if read_back.is_empty() => {
                store.execute(writes).await;
                machine.written();
            }
            Step::Record { writes, read_back } => machine.read(store.write_and_read(writes, &read_back).await),
            Step::Log(line) => worker::console_log!("{line}"),
            Step::Done(done) => return Ok(done),
        }
    }
}
