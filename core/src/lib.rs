//! gemini-pool-core: every decision of gemini-edge-pool, as pure functions and state machines
//! over plain data.
//!
//! What this crate does **not** do: no I/O, no clock, no entropy of its own. The edge (Fastly
//! Compute, Cloudflare Workers) reads stores, sends requests, passes the time and a random
//! seed, and hands back what happened.
//!
//! A request, from the edge's side: [`route`] it (a 404 or 405 here), then
//! [`Forward::prepare`] — the client's facts and policy, the alias, what goes to Google — which
//! hands back the [`Outgoing`] request and the [`Work`] to drive: a [`Flow`] (or a [`Listing`])
//! behind the client's [`Gated`] gate. The edge asks the machine for its next [`Step`], does it,
//! hands the result back, until [`Step::Done`]; then [`Forward::deliver`] says what the client
//! gets ([`Delivery`]: Google's success passed through as [`Passing`] says, JSON, or an error)
//! and what is counted afterwards. The key check ([`Check`]) and `/v1/status` ([`Status`]) are
//! machines driven by the same loop; `testing::Rig` (feature `testing`) is that loop over an
//! in-memory store.
//!
//! The modules, by floor (a module uses only its own floor and those below it;
//! `core/tests/layers.rs` holds it to that):
//! - `pool` — the keys: the key lists read lazily by part (`keys`), the names of marks and
//!   pins (`names`), the order candidates are offered in (`pick`), randomness (`rng`), the key
//!   scrub (`scrub`);
//! - `google` — what Google's answers mean: its error bodies (`google_error`), the verdict
//!   (`classify`), the reasons (`reason`), answers with nothing in them (`empty`), the tokens
//!   they cost (`tokens`), its stateful resources by kind and id (`resource`), text search
//!   (`find`);
//! - `state` — what every instance shares: marks and their merge rule (`marks`), items and
//!   availability (`items`), the write protocol (`commit`), usage counts (`usage`) and how an
//!   instance holds them to write them together (`batch`), the recent failures (`failures`), a
//!   client's index (`index`), limit item (`limit_item`) and limit entries (`limit_entries`,
//!   where a store takes few writes per item), store operations as bytes
//!   (`frames`), the quota day (`clock`);
//! - `client` — what clients send and see: the allow-list of paths (`route`), what a body says
//!   (`body`, one pass over its decoded JSON), tokens and roles (`auth`), model names
//!   (`model`), OpenAI bodies (`openai_body`), the error envelopes (`envelope`), client
//!   policies (`policy`), aliased answers (`relabel`), query strings (`query`), resources an
//!   answer names (`spot`), uploads (`upload`), the coding agents' dialects translated —
//!   Anthropic's Messages API (`messages`, `messages_answer`) and OpenAI's Responses API
//!   (`responses`, `responses_answer`) — with what they share: the native request's turns
//!   (`native`), Google's answer read piece by piece (`pieces`), server-sent events (`sse`),
//!   tools (`tools`); what happens to a success as it passes (`transform`);
//! - `settings` — the operator's knobs;
//! - `decide` — what to do: the machine protocol (`machine`), a request's front and back
//!   (`forward`), its [`Flow`] and attempts (`flow`, `attempts`), the cooling policy
//!   (`cooling`), what a verdict changes (`judge`), how the attempts end (`ending`), resources
//!   kept with their project (`affinity`) and listed across projects (`listing`), a client's
//!   gate (`limits`), what stays held after the answer (`linger`);
//! - `admin` — the operator's pages: `/v1/status` (`status`), `/v1/usage` (`history`), the
//!   console (`console`), the key check (`keycheck`).
//!
//! # Glossary
//!
//! - **key** — one Gemini API key of the pool. Never shown: a **mask** (`…WXYZ`, the last four
//!   characters) or a **fingerprint** (FNV-1a 64 of the key, 16 hex digits; admins only).
//! - **key list**, **entry** — an operator's list of keys (a secret or a variable), one entry
//!   per key: `KEY` or `project:KEY`. An entry that is not a key is **rejected** (skipped,
//!   reported by where and why).
//! - **part** — one key list of a pool of up to four (`keys`, `keys_2` …); a request reads the
//!   part it starts in, and **widens** to the others only when that one has no key left.
//! - **project**, **bucket** — the unit Google counts quota in: a key's declared project, or
//!   the key alone when none is declared. Quota verdicts cool the bucket.
//! - **answer** — what Google sent back to one call (a status and body, or no answer). An
//!   **empty answer** is a 200 with nothing for the client (no parts, only thoughts).
//! - **verdict**, **outcome** — what an answer means for the key that got it ([`classify`]):
//!   per-day quota, dead key, upstream trouble, client error, …
//! - **reason** — why a mark was set, as stored ([`Reason`]).
//! - **cooldown**, **scope** — the policy's order for a verdict ([`decide`]): how long, and what
//!   it covers (a bucket for a model, a key for a model, a whole key, a whole bucket).
//! - **dead**, **probation** — a key Google rejects itself is dead for every model until a
//!   **probation** request (one, after `dead_probation`) shows it works again (**revival**).
//! - **strike** — one bare 429 in a row: the backoff doubles with each.
//! - **mark** — one key's or bucket's standing in the shared state: cooling until a time, or
//!   dead ([`Mark`]); named by its **mark name** (`k:<fingerprint>`, `p:<project>`).
//! - **item** — one KV item (one Durable Object entry) holding marks: a part's `keys` item and
//!   its `model/<model>` items ([`Item`]); a sorted part of binary records and appended lines.
//! - **verdict entry**, **index**, **confirm** — on a store that takes few writes per item a
//!   second (Fastly's KV), each mark is also an entry of its own (`v/<item>/<mark name>`); the
//!   items are then an **index**, written best-effort; a key the index calls free while it may
//!   be behind is **confirmed** against its entries before a call ([`Choice::Confirm`]).
//! - **change** — one line a request writes to an item ([`Change`]): a mark set or a dead mark
//!   cleared. **Commit** writes changes the moment a verdict is reached and reads them back;
//!   **compaction** rewrites an item sorted, with a compare-and-swap on its **generation**.
//! - **attempt**, **budget** — one call to Google with one key; `max_attempts` bounds the
//!   attempts whose failure could hit any key. Verdicts that **name the fault** (a quota 429, a
//!   dead key) move on without spending it.
//! - **suspect** — a 403 that may be about what the request names: held until another
//!   project answers. **Blast radius** — what one request may change, whatever the answers.
//! - **machine**, **step** — a state machine of the core ([`Machine`]) and one instruction it
//!   hands the edge ([`Step`]). The steps: **Fetch** a key list part; **Read** items (marks,
//!   whole); **Look** up named items (records, exactly as stored); **Configure** (the cooling
//!   knobs); **Send** a request to Google with keys; **Commit** changes (write, then read back);
//!   **Remember** a record (only if no record holds the name) and **Forget** one; **Claim** a
//!   place in a limit item (append, read back) and **Swap** it compacted; **Knob**, **List**,
//!   **Policies** (read a setting, item names, clients' policies); **Rate** (the platform's
//!   counter); **Append** counts; **Log**; **Wait**; **Done**.
//! - **flow** — a request for Google's API as a machine ([`Flow`]); **finish** / **ending** —
//!   how it ends (served, or an error reply). **Forward** — a request's front ([`Forward::prepare`]:
//!   what goes out, the [`Work`] to drive) and back ([`Forward::deliver`]: the [`Delivery`]).
//! - **fence** — the projects a client's policy lets serve it; keys of others are never tried.
//! - **dialect**, **envelope** — the API a client spoke (OpenAI's, Google's native, or
//!   Anthropic's Messages API) and the error shape it gets back. **Scrub** — masking any key in
//!   text that leaves the proxy.
//! - **translation**, **agent** — a coding agent's request (Claude Code: Anthropic's Messages
//!   API; Codex: OpenAI's Responses API) made a native request ([`MessagesRequest`],
//!   [`ResponsesRequest`]) and Google's answer made the agent's ([`MessagesAnswer`],
//!   [`ResponsesAnswer`]), read as **pieces** (usage, text, a call, the finish, an error); the knob `agent_models` says which Gemini model an agent's model name
//!   means ([`AgentModels`]). A **transform** is what happens to a success's bytes as they pass:
//!   a relabel or a translation ([`Transform`]).
//! - **usage shard**, **quota day** — usage counts live in eight items per day; the day ends at
//!   midnight in `daily_reset_zone`, like Google's daily quotas. **Held** usage — lines an
//!   instance keeps up to a second to write them with its next requests' ([`UsageBatch`]).
//! - **resource** — one of Google's stateful objects (an interaction, a file, a cached content,
//!   an upload session, a batch, an operation), living in the project of the key that made it.
//!   Its **record** (item `res/<name>`) says which bucket holds it and which client made it; a
//!   request naming resources is **pinned** to that bucket ([`Pin`]). A client's **index**
//!   (item `own/<client>`) lists what it made, for lists across projects ([`Listing`]). A file
//!   Google generates (a batch's results, a video) is **adopted**: recorded when a pinned
//!   answer names it.
//! - **policy**, **label** — what the operator allows one client (its token's **label**):
//!   models, **aliases** (a client's model name → a Gemini model; the answer is **relabelled**
//!   back), limits, projects ([`Policy`]). A client with limits passes a **gate** before
//!   anything else ([`Gate`]; the machine behind it is [`Gated`]); its **limit item**
//!   (`limit/<day>/<label>`) counts its admissions and tokens — on a store that takes few
//!   writes per item a second, **limit entries** do: a request's **slot** of its minute (one
//!   request holds it), its tokens, and the **head** (the day's counts through a minute).
//! - **tokens** — what Google reports an answer cost (prompt, completion, thinking, cached),
//!   read by a **meter** as the answer passes ([`Meter`]).
//! - **history** — the usage counts of past quota days (`/v1/usage`: [`UsageQuery`]); the
//!   **recent failures** — the last 100 failed attempts ([`Failure`]).
//! - **linger** — what an edge does after the client has its answer ([`Linger`]): counts kept
//!   for a later batch, writes that must not be lost.
//! - **knob** — one operator setting (`proxy_settings` on Fastly, a variable on Workers).
//! - **edge** — the platform layer that executes the core's steps (`src/`, `cloudflare/`).

#![warn(missing_docs, unreachable_pub)]

// The floors, from the ground up: a module uses only modules of its own floor or below
// (`core/tests/layers.rs` holds it to that).
mod pool {
    pub(crate) mod keys;
    pub(crate) mod names;
    pub(crate) mod pick;
    pub(crate) mod rng;
    pub(crate) mod scrub;
}
mod google {
    pub(crate) mod classify;
    pub(crate) mod empty;
    pub(crate) mod find;
    pub(crate) mod google_error;
    pub(crate) mod reason;
    pub(crate) mod resource;
    pub(crate) mod tokens;
}
mod state {
    pub(crate) mod batch;
    pub(crate) mod clock;
    pub(crate) mod commit;
    pub(crate) mod failures;
    pub(crate) mod frames;
    pub(crate) mod index;
    pub(crate) mod items;
    pub(crate) mod limit_entries;
    pub(crate) mod limit_item;
    pub(crate) mod marks;
    pub(crate) mod usage;
}
mod client {
    pub(crate) mod auth;
    pub(crate) mod body;
    pub(crate) mod envelope;
    pub(crate) mod messages;
    pub(crate) mod messages_answer;
    pub(crate) mod model;
    pub(crate) mod native;
    pub(crate) mod openai_body;
    pub(crate) mod pieces;
    pub(crate) mod policy;
    pub(crate) mod query;
    pub(crate) mod relabel;
    pub(crate) mod responses;
    pub(crate) mod responses_answer;
    pub(crate) mod route;
    pub(crate) mod spot;
    pub(crate) mod sse;
    pub(crate) mod tools;
    pub(crate) mod transform;
    pub(crate) mod upload;
}
mod settings;
mod decide {
    pub(crate) mod affinity;
    pub(crate) mod attempts;
    pub(crate) mod cooling;
    pub(crate) mod ending;
    pub(crate) mod flow;
    pub(crate) mod forward;
    pub(crate) mod judge;
    pub(crate) mod limits;
    pub(crate) mod linger;
    pub(crate) mod listing;
    pub(crate) mod machine;
}
mod admin {
    pub(crate) mod console;
    pub(crate) mod history;
    pub(crate) mod keycheck;
    pub(crate) mod status;
}

/// The rig that drives the machines in tests (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

// The machines and what they say to the edge.
pub use admin::keycheck::{Check, Checked};
pub use decide::attempts::{Attempts, Choice, MAX_UPSTREAM_REQUESTS};
pub use decide::ending::{Ending, ERROR_BODY_LIMIT};
pub use decide::flow::{Finish, Flow};
pub use decide::forward::{Answering, Ask, Client, Delivery, Ended, Forward, Outgoing, Passing, Rewrite, Setup, Work};
pub use decide::limits::{Gate, Gated, RateHeaders, Refusable};
pub use decide::linger::Linger;
pub use decide::listing::{Listed, Listing};
pub use decide::machine::{Answer, Machine, Step};

// What clients send and see.
pub use client::auth::{caller, client_token, lookup_order, same_token, Caller, Presented, Role};
pub use client::body::RequestFacts;
pub use client::envelope::{Dialect, ErrorReply};
pub use client::messages::MessagesRequest;
pub use client::messages_answer::MessagesAnswer;
pub use client::model::valid_model;
pub use client::native::PLACEHOLDER_SIGNATURE;
pub use client::openai_body::{peek, strip_model_prefixes};
pub use client::policy::{Applied, Limits, Policy, PolicyError};
pub use client::query::{forwarded_query, query_param};
pub use client::relabel::Relabel;
pub use client::responses::ResponsesRequest;
pub use client::responses_answer::ResponsesAnswer;
pub use client::route::{
    may_be_anthropic, may_be_native, route, Access, Endpoint, Reading, ResourceCall, Route, Version,
};
pub use client::tools::{clean_schema, ToolNames};
pub use client::transform::Transform;

// Stateful resources, each kept with its project.
pub use client::spot::{Spot, Spotter, SPOT_LIMIT};
pub use client::upload::{proxied_upload_url, upload_fits, upload_session};
pub use decide::affinity::{Pin, Record};
pub use google::resource::{Kind, Resource};
pub use pool::names::Pinned;
pub use pool::scrub::scrub;

// What Google's answers mean, and what they change.
pub use decide::cooling::{decide, Action, Cooldown, Moment, Scope};
pub use google::classify::{classify, Outcome, Verdict};
pub use google::empty::{Peek, Peeker, EMPTY_CHECK_LIMIT};
pub use google::reason::Reason;
pub use google::tokens::{Meter, Tokens};

// The keys.
pub use pool::keys::{choose_part, ApiKey, KeyPool};
pub use pool::names::{Bucket, MarkName};
pub use pool::pick::Strategy;
pub use pool::rng::Rng;

// The shared state.
pub use state::batch::UsageBatch;
pub use state::clock::ResetZone;
pub use state::commit::Write;
pub use state::failures::{recent as recent_failures, Failure, ITEM as FAILURES_ITEM};
pub use state::frames::{FrameError, StoreOp, StoreResult};
pub use state::items::{Change, Item, PartState, PoolState};
pub use state::marks::{Entry, Mark, Marks};
pub use state::usage::{Append, Compaction, Usage, UsageAppend, OTHER_MODEL};

// The operator's side.
pub use admin::console::Console;
pub use admin::history::UsageQuery;
pub use admin::status::{AdminInput, PartMarks, Status, StatusInput, MAX_MODEL_ITEMS};
pub use settings::{
    parse_duration, AgentModels, CoolingSettings, Limiter, Profile, RequestSettings, RetrySettings, SettingError,
    SettingsReader, WhenAllCooling, DEFAULT_HISTORY_DAYS, MAX_DURATION, MAX_UPLOAD_BYTES,
};
