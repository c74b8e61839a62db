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
//! The Worker sends a batch of operations as JSON (item bytes in hex) and gets the results in
//! the same order; the object runs a batch without interleaving another (storage operations
//! hold its input gate).

use futures_util::future::join_all;
use gemini_pool_core::Item;
use gemini_pool_core::Marks;
use gemini_pool_core::Write;
use gemini_pool_core::{PartMarks, MAX_MODEL_ITEMS};
use gemini_pool_core::{Usage, UsageAppend};
use serde_json::{json, Value};
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
        let mut batch: Value = req.json().await?;
        let ops = match batch["ops"].take() {
            Value::Array(ops) => ops,
            _ => Vec::new(),
        };
        let mut results = Vec::with_capacity(ops.len());
        for op in &ops {
            results.push(self.run(op).await?);
        }
        Response::from_json(&json!({ "results": results }))
    }
}

impl StateObject {
    async fn run(&self, op: &Value) -> Result<Value> {
        let key = |name: &str| format!("i:{}", op[name].as_str().unwrap_or_default());
        if op.get("get").is_some() {
            return Ok(match self.load(&key("get")).await? {
                Some((generation, bytes)) => json!({"hex": hex(&bytes), "generation": generation}),
                None => Value::Null,
            });
        }
        if op.get("append").is_some() {
            let k = key("append");
            let (generation, mut bytes) = self.load(&k).await?.unwrap_or((0, Vec::new()));
            bytes.extend(unhex(op["hex"].as_str().unwrap_or_default()));
            self.save(&k, generation + 1, op["ttl"].as_u64(), &bytes).await?;
            return Ok(json!({"ok": true}));
        }
        if op.get("replace").is_some() {
            let k = key("replace");
            let current = self.load(&k).await?.map(|(generation, _)| generation);
            if current != op["generation"].as_u64() {
                return Ok(json!({"ok": false}));
            }
            let bytes = unhex(op["hex"].as_str().unwrap_or_default());
            self.save(&k, current.unwrap_or(0) + 1, op["ttl"].as_u64(), &bytes).await?;
            return Ok(json!({"ok": true}));
        }
        if let Some(prefix) = op["list"].as_str() {
            let full = format!("i:{prefix}");
            let options = ListOptions::new().prefix(&full);
            let listed = self.state.storage().list_with_options(options).await?;
            let names: Vec<String> = listed
                .keys()
                .into_iter()
                .filter_map(|k| k.ok().and_then(|k| k.as_string()))
                .filter_map(|k| k.strip_prefix("i:").map(str::to_string))
                .collect();
            return Ok(json!({ "keys": names }));
        }
        Ok(Value::Null)
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xF)]));
    }
    out
}

fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

/// The Worker's side: batches of operations sent to the object. A failure is logged and never
/// fails the client's request (the state is then read as empty, as on Fastly).
pub struct StateStore {
    namespace: Option<ObjectNamespace>,
    stub: Option<Stub>,
    /// Calls made to the object (subrequests), for `Server-Timing`.
    pub calls: std::cell::Cell<u32>,
}

impl StateStore {
    pub fn open(env: &Env) -> Self {
        let namespace = env.durable_object(BINDING);
        let stub = match &namespace {
            Ok(ns) => ns.id_from_name(INSTANCE).and_then(|id| id.get_stub()),
            Err(e) => Err(worker::Error::RustError(e.to_string())),
        };
        if let Err(e) = &stub {
            worker::console_error!("state: Durable Object `{BINDING}` unavailable: {e}; cooling state is not kept");
        }
        StateStore { namespace: namespace.ok(), stub: stub.ok(), calls: std::cell::Cell::new(0) }
    }

    /// A batch on the pool's instance.
    async fn batch(&self, ops: Vec<Value>) -> Vec<Value> {
        self.batch_on(self.stub.as_ref(), ops).await
    }

    /// A batch on usage shard `shard`'s instance.
    async fn usage_batch(&self, shard: usize, ops: Vec<Value>) -> Vec<Value> {
        let stub = self.namespace.as_ref().and_then(|ns| ns.id_from_name(&usage_instance(shard)).ok()?.get_stub().ok());
        self.batch_on(stub.as_ref(), ops).await
    }

    async fn batch_on(&self, stub: Option<&Stub>, ops: Vec<Value>) -> Vec<Value> {
        let Some(stub) = stub else { return Vec::new() };
        self.calls.set(self.calls.get() + 1);
        let body = json!({ "ops": ops }).to_string();
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let answer = async {
            let request = Request::new_with_init("https://pool-state/ops", &init)?;
            stub.fetch_with_request(request).await?.json::<Value>().await
        };
        match answer.await {
            Ok(value) => value["results"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                worker::console_error!("state: call failed: {e}; carrying on without it");
                Vec::new()
            }
        }
    }

    /// Executes `writes`, then reads `items`: one call, which the object runs without
    /// interleaving another, so the read sees the writes.
    pub async fn write_and_read(&self, writes: Vec<Write>, items: &[Item]) -> Vec<(Item, Marks)> {
        let written = writes.len();
        let mut ops = write_ops(writes);
        ops.extend(items.iter().map(|item| json!({"get": item.kv_key()})));
        let results = self.batch(ops).await;
        let reads = results.iter().skip(written).chain(std::iter::repeat(&Value::Null));
        items.iter().zip(reads).map(|(item, result)| (item.clone(), marks_of(result))).collect()
    }

    /// Executes the core's writes, in one call.
    pub async fn execute(&self, writes: Vec<Write>) {
        if !writes.is_empty() {
            self.batch(write_ops(writes)).await;
        }
    }

    /// Every part's `keys` item and at most [`MAX_MODEL_ITEMS`] model items (`/v1/status`);
    /// and how many model items were left unread.
    pub async fn read_all(&self, parts: usize) -> (Vec<PartMarks>, usize) {
        let mut all = vec![PartMarks::default(); parts];
        let listed = self.batch(vec![json!({"list": Item::model_prefix()})]).await;
        let mut models: Vec<Item> = Vec::new();
        if let Some(keys) = listed.first().and_then(|r| r["keys"].as_array()) {
            models.extend(keys.iter().filter_map(|k| k.as_str()).filter_map(Item::from_kv_key));
        }
        models.retain(|item| item.part < parts);
        let omitted = models.len().saturating_sub(MAX_MODEL_ITEMS);
        models.truncate(MAX_MODEL_ITEMS);
        let mut items: Vec<Item> = (0..parts).map(Item::keys).collect();
        items.extend(models);
        let results = self.batch(items.iter().map(|item| json!({"get": item.kv_key()})).collect()).await;
        for (item, result) in items.into_iter().zip(results.iter()) {
            let marks = marks_of(result);
            match item.model {
                None => all[item.part].keys = marks,
                Some(model) => all[item.part].models.push((model, marks)),
            }
        }
        (all, omitted)
    }

    /// Appends a request's usage lines to their shard (after the response),
    /// compacting the shard now and then.
    pub async fn count_usage(&self, append: &UsageAppend) {
        let (item, shard, ttl_secs) = (append.item(), append.shard, append.ttl_secs);
        self.usage_batch(shard, vec![json!({"append": item, "hex": hex(append.lines.as_bytes()), "ttl": ttl_secs})])
            .await;
        if !append.check {
            return;
        }
        let read = self.usage_batch(shard, vec![json!({"get": item})]).await;
        let Some(found) = read.first().filter(|r| !r.is_null()) else { return };
        let Some(compacted) = Usage::compacted(&unhex(found["hex"].as_str().unwrap_or_default())) else { return };
        let replace =
            json!({"replace": item, "hex": hex(&compacted), "generation": found["generation"], "ttl": ttl_secs});
        self.usage_batch(shard, vec![replace]).await;
    }

    /// A day's counts, every shard added up (one call per shard, all at once).
    pub async fn read_usage(&self, day: &str) -> Usage {
        let reads =
            (0..Usage::SHARDS).map(|shard| self.usage_batch(shard, vec![json!({"get": Usage::item(day, shard)})]));
        let mut counts = Usage::default();
        for found in join_all(reads).await.iter().flatten().filter(|r| !r.is_null()) {
            counts.add(&unhex(found["hex"].as_str().unwrap_or_default()));
        }
        counts
    }
}

/// The object's operations for the core's writes.
fn write_ops(writes: Vec<Write>) -> Vec<Value> {
    writes
        .into_iter()
        .map(|write| match write {
            Write::Append { item, bytes } => json!({"append": item.kv_key(), "hex": hex(&bytes), "ttl": null}),
            Write::Replace { item, bytes, generation, ttl_secs } => {
                json!({"replace": item.kv_key(), "hex": hex(&bytes), "generation": generation, "ttl": ttl_secs})
            }
        })
        .collect()
}

fn marks_of(result: &Value) -> Marks {
    if result.is_null() {
        return Marks::default();
    }
    Marks::decode(unhex(result["hex"].as_str().unwrap_or_default()), result["generation"].as_u64())
}

use worker::DurableObject;
