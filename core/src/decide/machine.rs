//! The protocol between the core and an edge (the rustls / quinn-proto shape): a core
//! **machine** decides every step and its order and hands the edge one [`Step`] at a time; the
//! edge does it (Fastly synchronously, Workers asynchronously) and hands back what happened.
//! Nothing on this side performs I/O or reads a clock. The machines: a request's
//! [`Flow`](crate::decide::flow::Flow) (behind its client's
//! [`Gated`](crate::decide::limits::Gated) gate), a list's
//! [`Listing`](crate::decide::listing::Listing), the [`Linger`](crate::decide::linger::Linger)
//! after an answer, the key check's [`Check`](crate::admin::keycheck::Check).
//!
//! The edge's whole loop, for any [`Machine`]:
//!
//! ```text
//! loop {
//!     match machine.step(now) {
//!         Step::Fetch(part)                  => machine.fetched(part, that part's key list),
//!         Step::Read(items)                  => machine.read(each item with its marks),
//!         Step::Configure                    => machine.configured(the cooling settings),
//!         Step::Send(keys)                   => machine.answered(one Answer per key, sent side by side),
//!         Step::Commit { writes, read_back } => execute the writes in order; then
//!                                               machine.read(read_back with its marks),
//!                                               or machine.written() if read_back is empty,
//!         Step::Look(items)                  => machine.looked(each item's bytes, or none),
//!         Step::Remember { .. }              => store the record unless there is one; if stored,
//!                                               append the index line; machine.remembered(stored),
//!         Step::Forget { .. }                => delete the record, append the index line,
//!         Step::List(prefix)                 => machine.listed(the names of the items with it),
//!         Step::Policies(labels)             => machine.policies(each label's policy, if any),
//!         Step::Knob(name)                   => machine.knob(the knob's text, if set),
//!         Step::Rate(entry)                  => machine.rated(the platform's count of the minute),
//!         Step::Claim { .. }                 => append the bytes, then
//!                                               machine.claimed(the item with its generation),
//!         Step::Swap { .. }                  => replace the item if still at that generation,
//!         Step::Append { .. }                => append the bytes to the item,
//!         Step::Log(line)                    => log it,
//!         Step::Wait(ms)                     => sleep that long,
//!         Step::Done(done)                   => break,
//!     }
//! }
//! ```
//!

use crate::client::policy::Policy;
use crate::google::resource::Resource;
use crate::pool::keys::ApiKey;
use crate::settings::CoolingSettings;
use crate::state::commit::Write;
use crate::state::items::Item;
use crate::state::marks::Marks;
use crate::state::usage::Append;

/// What the edge does next. `D` is what the machine ends with.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a, D> {
    /// Fetch this part's key list (its secret or variable) and hand the bytes to
    /// [`Machine::fetched`]. They must live as long as the machine.
    Fetch(usize),
    /// Read these state items and hand each with its marks to [`Machine::read`] (an item the
    /// store does not have comes back empty).
    Read(Vec<Item>),
    /// Read the cooling settings and hand them to [`Machine::configured`].
    Configure,
    /// Send the request to Google with each of these keys, side by side, and hand the answers
    /// to [`Machine::answered`] in the same order.
    Send(Vec<ApiKey<'a>>),
    /// Execute these writes in order; then read `read_back` and hand it to [`Machine::read`],
    /// or if it is empty call [`Machine::written`].
    Commit {
        /// Appends and replacements ([`crate::state::commit`]).
        writes: Vec<Write>,
        /// The items to read after writing.
        read_back: Vec<Item>,
    },
    /// Read these resource records (store items by name: [`crate::decide::affinity`]) and hand
    /// each one's bytes, or `None` if the store has none, to [`Machine::looked`] in this order.
    Look(Vec<String>),
    /// Store this record under `item`, kept for `ttl_secs`, unless the store has one already (a
    /// resource a success made; a limited client's place: [`crate::state::limit_entries`]); if
    /// it stored one, append `index` (a line of the maker's index: [`crate::decide::listing`];
    /// read back and compacted if it says so, like a count). Then hand whether it stored the
    /// record to [`Machine::remembered`].
    Remember {
        /// The store item's name.
        item: String,
        /// The record's bytes.
        record: Vec<u8>,
        /// How long the store keeps it.
        ttl_secs: u64,
        /// The index line, if one is kept.
        index: Option<Append>,
    },
    /// Google deleted this resource: remove its record (`item`) and append `index` (the
    /// maker's index line that says so). Then ask for the next step.
    Forget {
        /// The store item's name.
        item: String,
        /// The index line.
        index: Append,
    },
    /// Append `bytes` to `item` (kept `ttl_secs`), then read it back and hand its bytes and
    /// generation (`None`: the store has none) to [`Machine::claimed`].
    Claim {
        /// The store item's name.
        item: String,
        /// What to append.
        bytes: Vec<u8>,
        /// How long the store keeps the item.
        ttl_secs: u64,
    },
    /// Replace `item` with `bytes` (kept `ttl_secs`) if it is still at `generation` — a
    /// compaction: if another write came first, nothing happens; with no generation, whatever
    /// it holds (a limited client's head: [`crate::state::limit_entries`]). Then ask for the
    /// next step.
    Swap {
        /// The store item's name.
        item: String,
        /// Its new bytes.
        bytes: Vec<u8>,
        /// The generation the bytes were derived from (`None`: any).
        generation: Option<u64>,
        /// How long the store keeps the item.
        ttl_secs: u64,
    },
    /// List the names of the store's items that start with this prefix and hand them to
    /// [`Machine::listed`].
    List(String),
    /// Read these client labels' policies and hand each (`None`: none, or one that does not
    /// read) to [`Machine::policies`] in this order.
    Policies(Vec<String>),
    /// Read the knob of this name (`proxy_settings` on Fastly, a variable on Workers) and hand
    /// its text, or `None` if it is not set, to [`Machine::knob`].
    Knob(&'static str),
    /// Ask the platform's rate counter how many requests `entry` made in the last minute,
    /// count this one, and hand the count (or `None`: no counter) to [`Machine::rated`].
    Rate(String),
    /// Append `bytes` to `item` (kept `ttl_secs`), then ask for the next step.
    Append {
        /// The store item's name.
        item: String,
        /// What to append.
        bytes: Vec<u8>,
        /// How long the store keeps the item.
        ttl_secs: u64,
    },
    /// Log this line (a failed attempt, a dead key found, a store that keeps losing writes).
    /// It holds no key.
    Log(String),
    /// Wait this long (ms), then ask for the next step (a [`Linger`](crate::decide::linger::Linger) lets a throttled store's
    /// budget refill).
    Wait(u64),
    /// Over.
    Done(D),
}

impl<'a, D> Step<'a, D> {
    /// The same step, its end (if it is one) made another machine's.
    pub fn map_done<E>(self, end: impl FnOnce(D) -> E) -> Step<'a, E> {
        match self {
            Step::Fetch(part) => Step::Fetch(part),
            Step::Read(items) => Step::Read(items),
            Step::Configure => Step::Configure,
            Step::Send(keys) => Step::Send(keys),
            Step::Commit { writes, read_back } => Step::Commit { writes, read_back },
            Step::Look(names) => Step::Look(names),
            Step::Remember { item, record, ttl_secs, index } => Step::Remember { item, record, ttl_secs, index },
            Step::Forget { item, index } => Step::Forget { item, index },
            Step::Claim { item, bytes, ttl_secs } => Step::Claim { item, bytes, ttl_secs },
            Step::Swap { item, bytes, generation, ttl_secs } => Step::Swap { item, bytes, generation, ttl_secs },
            Step::List(prefix) => Step::List(prefix),
            Step::Policies(labels) => Step::Policies(labels),
            Step::Knob(name) => Step::Knob(name),
            Step::Rate(entry) => Step::Rate(entry),
            Step::Append { item, bytes, ttl_secs } => Step::Append { item, bytes, ttl_secs },
            Step::Log(line) => Step::Log(line),
            Step::Wait(ms) => Step::Wait(ms),
            Step::Done(done) => Step::Done(end(done)),
        }
    }
}

/// Google's answer to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx (a request's edge keeps the response to deliver it).
    Served,
    /// A 2xx to a list call, its body read whole (up to
    /// [`SPOT_LIMIT`](crate::client::spot::SPOT_LIMIT)): a page a
    /// [`Listing`](crate::decide::listing::Listing) merges.
    Page(Vec<u8>),
    /// A 2xx that made this resource (the edge spotted its name in the answer:
    /// [`crate::client::spot::Spotter`]); it is delivered like [`Answer::Served`].
    Made(Resource),
    /// A 2xx with nothing in it: the edge [`Peeker`](crate::google::empty::Peeker)ed at the head of
    /// an answer [`Route::answer_may_be_empty`](crate::client::route::Route::answer_may_be_empty)
    /// names. The edge keeps it: it is what the client gets if no other key serves.
    Empty,
    /// An error status, and (the first [`crate::decide::ending::ERROR_BODY_LIMIT`] bytes of) its body.
    Error {
        /// Google's status.
        status: u16,
        /// Google's body.
        body: Vec<u8>,
    },
    /// No answer: `timeout` (not in time), or the connection failed; and why.
    None {
        /// It was a timeout.
        timeout: bool,
        /// What the platform said.
        detail: String,
    },
}

/// A sans-I/O machine the edge drives with its one loop (see the module documentation).
pub trait Machine<'a> {
    /// What it ends with.
    type Done;
    /// What to do next, at `now_ms`.
    fn step(&mut self, now_ms: u64) -> Step<'a, Self::Done>;
    /// A part's key list, as fetched.
    fn fetched(&mut self, part: usize, bytes: &'a [u8]);
    /// Items as read from the store.
    fn read(&mut self, items: Vec<(Item, Marks)>);
    /// The cooling settings.
    fn configured(&mut self, cooling: &CoolingSettings);
    /// Google's answers to the last [`Step::Send`], in its order.
    fn answered(&mut self, answers: Vec<Answer>);
    /// The writes of a [`Step::Commit`] without read-back are done.
    fn written(&mut self);
    /// The store refused the writes at these indices of the last [`Step::Commit`]
    /// (`TooManyRequests` on Fastly, `overloaded` on Workers): called before
    /// [`read`](Self::read) or [`written`](Self::written).
    fn refused(&mut self, writes: Vec<usize>);
    /// The records a [`Step::Look`] asked for, in its order (machines that never look ignore it).
    fn looked(&mut self, _records: Vec<Option<Vec<u8>>>) {}
    /// The platform's count for a [`Step::Rate`] (machines that never ask ignore it).
    fn rated(&mut self, _count: Option<u64>) {}
    /// The item a [`Step::Claim`] read back, with its generation (machines that never claim
    /// ignore it).
    fn claimed(&mut self, _item: Option<(Vec<u8>, u64)>) {}
    /// Whether a [`Step::Remember`] stored its record (`false`: the store had one already).
    fn remembered(&mut self, _stored: bool) {}
    /// The text of the knob a [`Step::Knob`] asked for (`None`: not set).
    fn knob(&mut self, _value: Option<String>) {}
    /// The names a [`Step::List`] found.
    fn listed(&mut self, _names: Vec<String>) {}
    /// The policies a [`Step::Policies`] asked for, in its order.
    fn policies(&mut self, _policies: Vec<Option<Policy>>) {}
}
