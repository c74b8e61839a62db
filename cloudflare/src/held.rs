//! The usage lines this isolate holds, written together (the core's [`UsageBatch`] decides
//! what may wait and for how long): the request whose lines start a batch waits — in its
//! `wait_until`, costing no CPU — until the batch is due, then writes it, one call to each
//! object for all the isolate's requests of that time. They go only to the store: no request
//! reads them.

use crate::context::now_ms;
use crate::reply::Timing;
use crate::steps::{self, StoreOnly};
use crate::stores::StateStore;
use futures_channel::oneshot;
use gemini_pool_core::{Append, Linger, Meter, UsageAppend, UsageBatch};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::Delay;

thread_local! {
    static HELD: RefCell<UsageBatch> = RefCell::default();
}

/// What a request leaves after its answer, in `ctx.wait_until`: the changes the store refused
/// (`linger`), then its counts. An answer that has passed already (read whole, or nothing to
/// meter: `passed` is over) has its counts handed to the isolate's batch now — most requests
/// then leave nothing to do; a metered stream's wait for it to pass (`meter` has its tokens).
pub fn after_answer(
    ctx: &worker::Context,
    env: &worker::Env,
    linger: Option<Linger>,
    mut usage: Option<UsageAppend>,
    meter: Option<Rc<RefCell<Meter>>>,
    mut passed: oneshot::Receiver<()>,
) {
    let passed_now = meter.is_none() || !matches!(passed.try_recv(), Ok(None));
    let held = match usage.take_if(|_| passed_now) {
        Some(mut counted) => {
            if let Some(meter) = &meter {
                counted.tokens = meter.borrow().tokens();
            }
            Some(take(counted.appends())).filter(|held| !held.is_empty())
        }
        None => None,
    };
    if linger.is_none() && usage.is_none() && held.is_none() {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move {
        let store = StateStore::open(&env);
        if let Some(mut linger) = linger {
            let _ = steps::run(&mut linger, &mut StoreOnly, &store, &mut Timing::default()).await;
        }
        if let Some(held) = held {
            return write(&store, held).await;
        }
        let Some(mut usage) = usage else { return };
        if let Some(meter) = meter {
            let _ = passed.await;
            usage.tokens = meter.borrow().tokens();
        }
        count(&store, usage.appends()).await;
    });
}

/// A request's appends, after its answer: what cannot wait is written now, the rest is held
/// (and written now if due). The request that starts a batch writes it once due.
pub async fn count(store: &StateStore, appends: Vec<Append>) {
    write(store, take(appends)).await;
}

/// What a request's appends leave it to write: at once, and (if it started the batch) the
/// batch once due.
pub struct Held {
    now: Vec<Append>,
    starts: bool,
}

impl Held {
    /// Nothing to write: the lines joined a batch another request writes.
    pub fn is_empty(&self) -> bool {
        self.now.is_empty() && !self.starts
    }
}

/// Hands a request's appends to this isolate's batch (no I/O): what is left to [`write`].
pub fn take(appends: Vec<Append>) -> Held {
    let now = now_ms();
    HELD.with_borrow_mut(|held| {
        let starts = held.due_in_ms(now).is_none();
        Held { now: held.count(appends, now), starts }
    })
}

/// Writes what [`take`] left: the appends that cannot wait, then — for the request that
/// started the batch — the batch once due.
pub async fn write(store: &StateStore, held: Held) {
    for append in &held.now {
        store.count(append).await;
    }
    if !held.starts {
        return;
    }
    if let Some(wait) = HELD.with_borrow(|held| held.due_in_ms(now_ms())).filter(|&ms| ms > 0) {
        Delay::from(Duration::from_millis(wait)).await;
    }
    // Whatever is held now, even a batch another request started since: written early, never late.
    let due = HELD.with_borrow_mut(UsageBatch::take);
    for append in &due {
        store.count(append).await;
    }
}
