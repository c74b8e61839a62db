//! The usage lines this sandbox holds between the requests it serves, written together (the
//! core's [`UsageBatch`] decides what may wait and for how long): due ones at the end of a
//! request, or while the sandbox waits for its next request (`main.rs`), and the rest when it
//! ends. They go only to the store: no request reads them.

use crate::context::now_ms;
use crate::stores::StateStore;
use crate::timing::Timing;
use gemini_pool_core::{Append, UsageBatch};
use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    static HELD: RefCell<UsageBatch> = RefCell::default();
}

/// A request's appends, after its answer: what cannot wait is written now, the rest is held;
/// what is due is written too.
pub fn count(kv: &StateStore, appends: Vec<Append>) {
    let now = now_ms();
    let write = HELD.with_borrow_mut(|held| held.count(appends, now));
    // After the answer: its operations are in no request's `Server-Timing`.
    let timing = Timing::default();
    write.iter().for_each(|append| kv.count(append, &timing));
}

/// How long until what is held is due; `None`: nothing is held.
pub fn due_in() -> Option<Duration> {
    HELD.with_borrow(|held| held.due_in_ms(now_ms())).map(Duration::from_millis)
}

/// Writes everything held (between requests, or as the sandbox ends).
pub fn write() {
    let appends = HELD.with_borrow_mut(UsageBatch::take);
    if appends.is_empty() {
        return;
    }
    let kv = StateStore::open();
    let timing = Timing::default();
    appends.iter().for_each(|append| kv.count(append, &timing));
}
