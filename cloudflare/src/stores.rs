//! The shared state on Workers: one Durable Object (`StateObject`) holds the same items as
//! Fastly's KV store — the same names, the same bytes — and offers the same four operations:
//! read, append, replace if still at a generation, list by prefix. The core decides what to
//! write and read, and when ([`gemini_pool_core::flow`]); the object only stores.
//!
//! Why a Durable Object: it is one single-threaded instance with strongly consistent storage,
//! so every isolate in every location sees a verdict as soon as it is written (Workers KV takes
//! up to a minute to reach other locations, and allows one write per second per key). Its cost
//! is a round trip to the object's location per call; a request makes one call on its success
//! path (its two items in one batch) and one per failed attempt (the writes and the read-back
//! in one batch).
//!
//! The cooling items live in one instance (`pool`): a verdict must be seen by every request.
//! Usage counts live apart, one instance per shard (`usage/0` … `usage/7`): they are written
//! after every response, and an object holds its answers until its writes are stored — in the
//! pool's instance they would make every next request wait for the last one's count.
//!
//! The Worker sends a batch of operations as bytes (the core's [`StoreOp`] frames: item bytes
//! as they are) and gets the results in the same order; the object runs a batch without
//! interleaving another (storage operations hold its input gate).

use futures_util::future::join_all;
use gemini_pool_core::{Append, Item, Marks, StoreOp, StoreResult, Usage, Write};
use worker::{
    durable_object, js_sys, Date, Env, ListOptions, Method, ObjectNamespace, Request, RequestInit, Response, Result,
    State, Stub,
};

/// The binding of the object in `wrangler.toml`, and the name of the instance holding the
/// cooling items.
pub const BINDING: &str = "POOL_STATE";
const INSTANCE: &str = "pool";

/// The instance holding usage shard `shard`.
fn usage_instance(shard: usize) -> String {
    format!("usage/{shard}")
}

/// The Durable Object: items by name, each stored as generation (8 bytes), expiry in unix ms
/// (8 bytes, 0 = none), then the item's bytes.
#[durable_object]
pub struct StateObject {
    state: State,
}

impl DurableObject for StateObject {
    fn new(state: State, _env: Env) -> Self {
        StateObject { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ops = StoreOp::decode_batch(&req.bytes().await?).map_err(frame_error)?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(self.run(op).await?);
        }
        Response::from_bytes(StoreResult::encode_all(&results).map_err(frame_error)?)
    }
}

impl StateObject {
    async fn run(&self, op: StoreOp) -> Result<StoreResult> {
        let key = |item: &str| format!("i:{item}");
        match op {
            StoreOp::Get { item } => Ok(match self.load(&key(&item)).await? {
                Some((generation, bytes)) => StoreResult::Found { bytes, generation },
                None => StoreResult::Absent,
            }),
            StoreOp::Append { item, bytes, ttl_secs } => {
                let k = key(&item);
                let (generation, mut stored) = self.load(&k).await?.unwrap_or((0, Vec::new()));
                stored.extend_from_slice(&bytes);
                self.save(&k, generation + 1, ttl_secs, &stored).await?;
                Ok(StoreResult::Done)
            }
            StoreOp::Replace { item, bytes, generation, ttl_secs } => {
                let k = key(&item);
                let current = self.load(&k).await?.map(|(generation, _)| generation);
                if current != generation {
                    return Ok(StoreResult::Refused);
                }
                self.save(&k, current.unwrap_or(0) + 1, ttl_secs, &bytes).await?;
                Ok(StoreResult::Done)
            }
            StoreOp::Delete { item } => {
                self.state.storage().delete(&key(&item)).await?;
                Ok(StoreResult::Done)
            }
            StoreOp::List { prefix } => {
                let prefix = key(&prefix);
                let options = ListOptions::new().prefix(&prefix);
                let listed = self.state.storage().list_with_options(options).await?;
                let names = listed
                    .keys()
                    .into_iter()
                    .filter_map(|k| k.ok().and_then(|k| k.as_string()))
                    .filter_map(|k| k.strip_prefix("i:").map(str::to_string))
                    .collect();
                Ok(StoreResult::Names(names))
            }
        }
    }

    /// An item's generation and bytes, if it exists and has not expired.
    async fn load(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>> {
        // Read as the raw Uint8Array and copied at once (`get::<Vec<u8>>` would convert it
        // byte by byte, the most of a request's CPU time once an item holds a few KB).
        let found = self.state.storage().get_multiple(vec![key]).await?.get(&key.into());
        if found.is_undefined() {
            return Ok(None);
        }
        let mut stored = js_sys::Uint8Array::new(&found).to_vec();
        if stored.len() < 16 {
            return Ok(None);
        }
        let number = |range: std::ops::Range<usize>| stored[range].iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        let (generation, expires) = (number(0..8), number(8..16));
        if expires != 0 && Date::now().as_millis() >= expires {
            self.state.storage().delete(key).await?;
            return Ok(None);
        }
        let bytes = stored.split_off(16);
        Ok(Some((generation, bytes)))
    }

    async fn save(&self, key: &str, generation: u64, ttl_secs: Option<u64>, bytes: &[u8]) -> Result<()> {
        let expires = ttl_secs.map_or(0, |ttl| Date::now().as_millis().saturating_add(ttl.saturating_mul(1000)));
        let mut stored = Vec::with_capacity(16 + bytes.len());
        stored.extend_from_slice(&generation.to_be_bytes());
        stored.extend_from_slice(&expires.to_be_bytes());
        stored.extend_from_slice(bytes);
        let array = js_sys::Uint8Array::new_with_length(stored.len() as u32);
        array.copy_from(&stored);
        self.state.storage().put_raw(key, array).await
    }
}

/// The Worker's side: batches of operations sent to the objects. A failure is logged and never
/// fails the client's request (the state is then read as empty, as on Fastly).
///
/// The cooling items are spread over `STATE_SHARDS` objects by the hash of the item's name,
/// so no one object's ceiling (about 1,000 requests/s) caps the service; a batch touching
/// items of several objects becomes one call per object, side by side. The default is 16
/// objects on a paid plan (`SUBREQUEST_LIMIT` above 50) and 1 on the free plan, whose 50
/// subrequests per request are better spent on keys (and whose 100,000 requests a day never
/// reach one object's ceiling). An isolate keeps the items it read for `STATE_CACHE_MS`
/// (default 1,000 ms; 0: off) and reads an item it does not write from there — its own writes
/// refresh it at once, so it never hides a refusal it recorded, and hides another isolate's
/// for at most that long.
pub struct StateStore {
    namespace: Option<ObjectNamespace>,
    shards: usize,
    cache_ms: u64,
    /// Calls made to the objects (subrequests), for `Server-Timing`.
    pub calls: std::cell::Cell<u32>,
}

/// Objects the cooling items are spread over on a paid plan unless `STATE_SHARDS` says
/// otherwise.
const DEFAULT_SHARDS: usize = 16;
/// How long an isolate serves an item it read unless `STATE_CACHE_MS` says otherwise.
const DEFAULT_CACHE_MS: u64 = 1_000;
/// Items an isolate's cache holds at most (it starts afresh past this).
const CACHE_ITEMS: usize = 512;

/// An item as an object holds it: its bytes and generation, or `None` if absent.
type Stored = Option<(Vec<u8>, u64)>;

/// One object's share of a batch: its operations, and which writes and which reads they are.
#[derive(Default)]
struct Share {
    ops: Vec<StoreOp>,
    writes: Vec<usize>,
    reads: Vec<usize>,
}

thread_local! {
    /// The objects' binding, how many share the cooling items, how long an item read is served.
    static SETUP: std::cell::OnceCell<(Option<ObjectNamespace>, usize, u64)> = const { std::cell::OnceCell::new() };
    /// This isolate's items: name → (the item, read at, unix ms).
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, (Stored, u64)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl StateStore {
    /// The store as this isolate's bindings and variables set it up (read by its first
    /// request: an isolate's bindings never change).
    pub fn open(env: &Env) -> Self {
        let (namespace, shards, cache_ms) = SETUP.with(|setup| setup.get_or_init(|| Self::setup(env)).clone());
        StateStore { namespace, shards, cache_ms, calls: std::cell::Cell::new(0) }
    }

    fn setup(env: &Env) -> (Option<ObjectNamespace>, usize, u64) {
        let namespace = env.durable_object(BINDING);
        if let Err(e) = &namespace {
            worker::console_error!("state: Durable Object `{BINDING}` unavailable: {e}; cooling state is not kept");
        }
        let number = |name: &str| crate::config::text(env, name).and_then(|v| v.trim().parse::<u64>().ok());
        let paid = crate::config::subrequest_limit(env).is_ok_and(|n| n > crate::config::FREE_PLAN_SUBREQUESTS);
        let default_shards = if paid { DEFAULT_SHARDS } else { 1 };
        let shards = number("STATE_SHARDS").map_or(default_shards, |n| n.clamp(1, 256) as usize);
        let cache_ms = number("STATE_CACHE_MS").unwrap_or(DEFAULT_CACHE_MS);
        (namespace.ok(), shards, cache_ms)
    }

    /// The object holding `item` (one object: the instance the first version used).
    fn shard_of(&self, item: &str) -> usize {
        let hash = item.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (hash % self.shards as u64) as usize
    }

    fn stub(&self, instance: &str) -> Option<Stub> {
        self.namespace.as_ref().and_then(|ns| ns.id_from_name(instance).ok()?.get_stub().ok())
    }

    /// A batch on cooling shard `shard`'s object.
    async fn batch(&self, shard: usize, ops: Vec<StoreOp>) -> Option<Vec<StoreResult>> {
        let instance = if self.shards == 1 { INSTANCE.to_string() } else { format!("{INSTANCE}/{shard}") };
        self.batch_on(self.stub(&instance).as_ref(), ops).await
    }

    /// A batch on usage shard `shard`'s object.
    async fn usage_batch(&self, shard: usize, ops: Vec<StoreOp>) -> Vec<StoreResult> {
        self.batch_on(self.stub(&usage_instance(shard)).as_ref(), ops).await.unwrap_or_default()
    }

    /// The results, or `None` if the call failed (an `overloaded` object among others).
    async fn batch_on(&self, stub: Option<&Stub>, ops: Vec<StoreOp>) -> Option<Vec<StoreResult>> {
        let stub = stub?;
        self.calls.set(self.calls.get() + 1);
        let answer = async {
            let body = StoreOp::encode_batch(&ops).map_err(frame_error)?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
            let request = Request::new_with_init("https://pool-state/ops", &init)?;
            let mut answer = stub.fetch_with_request(request).await?;
            if answer.status_code() != 200 {
                return Err(worker::Error::RustError(format!("the object answered {}", answer.status_code())));
            }
            StoreResult::decode_all(&ops, &answer.bytes().await?).map_err(frame_error)
        };
        match answer.await {
            Ok(results) => Some(results),
            Err(e) => {
                worker::console_error!("state: call failed: {e}; carrying on without it");
                None
            }
        }
    }

    /// Reads `items` (from this isolate's cache when fresh enough).
    pub async fn read(&self, items: &[Item]) -> Vec<(Item, Marks)> {
        self.write_and_read(Vec::new(), items).await.0
    }

    /// Executes `writes`, then reads `items`: one call per object involved (side by side),
    /// which the object runs without interleaving another, so the read sees the writes. An item
    /// this call does not write comes from this isolate's cache when fresh enough. Returns
    /// the items read and the indices of the writes the store refused (their object's call
    /// failed).
    pub async fn write_and_read(&self, writes: Vec<Write>, items: &[Item]) -> (Vec<(Item, Marks)>, Vec<usize>) {
        self.exchange(writes, items, true).await
    }

    /// How many objects one batch may call at most (for the subrequest budget).
    pub fn calls_per_batch(&self) -> usize {
        self.shards.min(2)
    }

    /// [`write_and_read`](Self::write_and_read), reading from the cache or not.
    async fn exchange(&self, writes: Vec<Write>, items: &[Item], cache: bool) -> (Vec<(Item, Marks)>, Vec<usize>) {
        let now = worker::Date::now().as_millis();
        let written: Vec<String> = writes.iter().map(|w| write_item(w).kv_key()).collect();
        let from_cache = |key: String| (cache && !written.contains(&key)).then(|| self.cached(&key, now)).flatten();
        let mut found: Vec<Option<Stored>> = items.iter().map(|item| from_cache(item.kv_key())).collect();
        let mut shares: std::collections::BTreeMap<usize, Share> = Default::default();
        for (i, write) in writes.into_iter().enumerate() {
            let share = shares.entry(self.shard_of(&write_item(&write).kv_key())).or_default();
            share.ops.push(write_op(write));
            share.writes.push(i);
        }
        for (i, item) in items.iter().enumerate().filter(|(i, _)| found[*i].is_none()) {
            let share = shares.entry(self.shard_of(&item.kv_key())).or_default();
            share.ops.push(StoreOp::Get { item: item.kv_key() });
            share.reads.push(i);
        }
        let calls = shares
            .into_iter()
            .map(|(shard, share)| async move { (self.batch(shard, share.ops).await, share.writes, share.reads) });
        let mut refused = Vec::new();
        for (results, wrote, read) in join_all(calls).await {
            let Some(results) = results else {
                refused.extend(wrote);
                continue;
            };
            let reads = results.into_iter().skip(wrote.len()).chain(std::iter::repeat(StoreResult::Absent));
            for (&i, result) in read.iter().zip(reads) {
                let value = stored_of(result);
                self.remember(&items[i].kv_key(), value.clone(), now);
                found[i] = Some(value);
            }
        }
        refused.sort_unstable();
        let read = items
            .iter()
            .zip(found)
            .map(|(item, value)| {
                let marks = match value.flatten() {
                    Some((bytes, generation)) => Marks::decode(bytes, Some(generation)),
                    None => Marks::default(),
                };
                (item.clone(), marks)
            })
            .collect();
        (read, refused)
    }

    /// An item from this isolate's cache, if read within `cache_ms`.
    fn cached(&self, key: &str, now: u64) -> Option<Stored> {
        if self.cache_ms == 0 {
            return None;
        }
        CACHE.with(|cache| {
            let cache = cache.borrow();
            let (value, at) = cache.get(key)?;
            (now < at + self.cache_ms).then(|| value.clone())
        })
    }

    fn remember(&self, key: &str, value: Stored, now: u64) {
        if self.cache_ms == 0 {
            return;
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() >= CACHE_ITEMS {
                cache.clear();
            }
            cache.insert(key.to_string(), (value, now));
        });
    }

    /// The names of the items that start with `prefix`, from every object holding cooling
    /// items.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let list = || vec![StoreOp::List { prefix: prefix.to_string() }];
        let mut names = Vec::new();
        for listed in join_all((0..self.shards).map(|shard| self.batch(shard, list()))).await.into_iter().flatten() {
            if let Some(StoreResult::Names(found)) = listed.into_iter().next() {
                names.extend(found);
            }
        }
        names
    }

    /// Reads items by name (`None`: absent): a usage shard from its own object, any other item
    /// from the object its name hashes to; one call per object involved, side by side.
    pub async fn look(&self, names: &[String]) -> Vec<Option<Vec<u8>>> {
        // `Ok(shard)`: a cooling object; `Err(shard)`: a usage object.
        let mut shares: std::collections::BTreeMap<Result<usize, usize>, Vec<usize>> = Default::default();
        for (i, name) in names.iter().enumerate() {
            let object = Usage::shard_of_item(name).map_or_else(|| Ok(self.shard_of(name)), Err);
            shares.entry(object).or_default().push(i);
        }
        let calls = shares.into_iter().map(|(object, which)| async move {
            let ops = which.iter().map(|&i| StoreOp::Get { item: names[i].clone() }).collect();
            let results = match object {
                Ok(shard) => self.batch(shard, ops).await.unwrap_or_default(),
                Err(shard) => self.usage_batch(shard, ops).await,
            };
            (results, which)
        });
        let mut found = vec![None; names.len()];
        for (results, which) in join_all(calls).await {
            for (&i, result) in which.iter().zip(results) {
                found[i] = stored_of(result).map(|(bytes, _)| bytes);
            }
        }
        found
    }

    /// Stores a resource record for `ttl_secs` unless the object has one already (an adopted
    /// file seen again); says whether it stored one. A failed call is logged: the resource is
    /// then not found through the proxy.
    pub async fn keep_record(&self, item: &str, record: Vec<u8>, ttl_secs: u64) -> bool {
        let op = StoreOp::Replace { item: item.to_string(), bytes: record, generation: None, ttl_secs: Some(ttl_secs) };
        let Some(results) = self.batch(self.shard_of(item), vec![op]).await else {
            worker::console_error!("state: storing the record {item} failed");
            return false;
        };
        results.first() == Some(&StoreResult::Done)
    }

    /// Appends a client's claim to its limit item and reads the item back with its
    /// generation, in one call (the object runs the two without interleaving another).
    pub async fn claim(&self, item: &str, bytes: Vec<u8>, ttl_secs: u64) -> Option<(Vec<u8>, u64)> {
        let ops = vec![
            StoreOp::Append { item: item.to_string(), bytes, ttl_secs: Some(ttl_secs) },
            StoreOp::Get { item: item.to_string() },
        ];
        let Some(results) = self.batch(self.shard_of(item), ops).await else {
            worker::console_error!("state: claiming in {item} failed");
            return None;
        };
        results.into_iter().nth(1).and_then(stored_of)
    }

    /// Replaces an item if it is still at `generation` (a compaction: another write first
    /// stands, and nothing is lost).
    pub async fn swap(&self, item: &str, bytes: Vec<u8>, generation: u64, ttl_secs: u64) {
        let op =
            StoreOp::Replace { item: item.to_string(), bytes, generation: Some(generation), ttl_secs: Some(ttl_secs) };
        let _ = self.batch(self.shard_of(item), vec![op]).await;
    }

    /// Removes an item (the record of a resource Google deleted).
    pub async fn delete(&self, item: &str) {
        if self.batch(self.shard_of(item), vec![StoreOp::Delete { item: item.to_string() }]).await.is_none() {
            worker::console_error!("state: removing {item} failed");
        }
    }

    /// Appends bytes to an item (a client's place given back in its limit item), kept
    /// `ttl_secs`.
    pub async fn append(&self, item: &str, bytes: &[u8], ttl_secs: u64) {
        let op = StoreOp::Append { item: item.to_string(), bytes: bytes.to_vec(), ttl_secs: Some(ttl_secs) };
        if self.batch(self.shard_of(item), vec![op]).await.is_none() {
            worker::console_error!("state: appending to {item} failed");
        }
    }

    /// One of a request's counts (usage lines to their usage shard's object; a limited
    /// client's tokens to its limit item's; a line of a client's index), read back and
    /// compacted when the core marks it due.
    pub async fn count(&self, append: &Append) {
        let (item, ttl_secs) = (append.item.as_str(), append.ttl_secs);
        let call = |ops: Vec<StoreOp>| async move {
            match append.shard {
                Some(shard) => self.usage_batch(shard, ops).await,
                None => self.batch(self.shard_of(item), ops).await.unwrap_or_default(),
            }
        };
        let ttl_secs = Some(ttl_secs);
        call(vec![StoreOp::Append { item: item.to_string(), bytes: append.bytes.clone(), ttl_secs }]).await;
        if append.compact.is_none() {
            return;
        }
        let read = call(vec![StoreOp::Get { item: item.to_string() }]).await;
        let Some((stored, generation)) = read.into_iter().next().and_then(stored_of) else { return };
        let Some(compacted) = append.compacted(&stored) else { return };
        let generation = Some(generation);
        call(vec![StoreOp::Replace { item: item.to_string(), bytes: compacted, generation, ttl_secs }]).await;
    }
}

/// Bytes that are not a batch (or not its results), as the runtime's error.
fn frame_error(e: gemini_pool_core::FrameError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

/// The object's operation for one of the core's writes.
fn write_op(write: Write) -> StoreOp {
    match write {
        Write::Append { item, bytes } => StoreOp::Append { item: item.kv_key(), bytes, ttl_secs: None },
        Write::Replace { item, bytes, generation, ttl_secs } => {
            StoreOp::Replace { item: item.kv_key(), bytes, generation, ttl_secs: Some(ttl_secs) }
        }
    }
}

/// An item as an object answered a `get`: its bytes and generation, or absent.
fn stored_of(result: StoreResult) -> Stored {
    match result {
        StoreResult::Found { bytes, generation } => Some((bytes, generation)),
        _ => None,
    }
}

/// The item a write is about.
fn write_item(write: &Write) -> &Item {
    match write {
        Write::Append { item, .. } | Write::Replace { item, .. } => item,
    }
}

use worker::DurableObject;
