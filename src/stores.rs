//! The Fastly stores: client tokens and settings (config stores), API keys (secret store),
//! cooling state (KV store). Each is read at most once per request and every operation is
//! counted in [`Ops`]. A KV failure is logged and never fails the client's request.

use crate::log::log;
use crate::ops::{add_elapsed, bump, Ops};
use fastly::kv_store::{InsertMode, KVStore, KVStoreError, PendingLookupHandle};
use fastly::{ConfigStore, SecretStore};
use gemini_pool_core::keys::KeyPool;
use gemini_pool_core::state::{Change, Item, Marks, PoolState};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use thiserror::Error;

pub const AUTH_TOKENS: &str = "auth_tokens";
pub const PROXY_SETTINGS: &str = "proxy_settings";
pub const GEMINI_KEYS: &str = "gemini_keys";
pub const KEY_STATE: &str = "key_state";

/// Names of the secret-store entries holding keys, in order.
const KEY_ENTRIES: [&str; 4] = ["keys", "keys_2", "keys_3", "keys_4"];

/// A store or entry the service cannot run without (answered as 500 "Service configuration error").
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config store `{0}` is missing")]
    MissingConfigStore(&'static str),
    #[error("config store `{0}` could not be read")]
    ConfigLookup(&'static str),
    #[error("secret store `{GEMINI_KEYS}` is missing")]
    MissingSecretStore,
    #[error("secret `{GEMINI_KEYS}/{0}` is missing")]
    MissingSecret(&'static str),
    #[error("secret `{GEMINI_KEYS}/{0}` could not be read")]
    SecretLookup(&'static str),
    #[error("secret `{GEMINI_KEYS}/keys` holds no API keys")]
    EmptyPool,
    #[error("{0}")]
    Setting(#[from] gemini_pool_core::settings::SettingError),
}

/// The label of `token` in `auth_tokens`, or `None` if the token is unknown.
pub fn token_label(token: &str, ops: &Ops) -> Result<Option<String>, ConfigError> {
    let store = ConfigStore::try_open(AUTH_TOKENS).map_err(|_| ConfigError::MissingConfigStore(AUTH_TOKENS))?;
    bump(&ops.config_reads);
    store.try_get(token).map_err(|_| ConfigError::ConfigLookup(AUTH_TOKENS))
}

/// `proxy_settings`, which may be absent (every knob has a default).
pub struct Settings {
    store: Option<ConfigStore>,
}

impl Settings {
    pub fn open() -> Self {
        Settings { store: ConfigStore::try_open(PROXY_SETTINGS).ok() }
    }

    pub fn get(&self, name: &str, ops: &Ops) -> Option<String> {
        let store = self.store.as_ref()?;
        bump(&ops.config_reads);
        store.try_get(name).ok().flatten()
    }
}

/// The key lists: `keys`, then `keys_2` … up to `count` entries.
pub fn key_lists(count: usize, ops: &Ops) -> Result<Vec<String>, ConfigError> {
    let store = SecretStore::open(GEMINI_KEYS).map_err(|_| ConfigError::MissingSecretStore)?;
    let mut lists = Vec::with_capacity(count);
    for name in KEY_ENTRIES.iter().take(count) {
        bump(&ops.secret_reads);
        let secret = store
            .try_get(name)
            .map_err(|_| ConfigError::SecretLookup(name))?
            .ok_or(ConfigError::MissingSecret(name))?;
        let bytes = secret.try_plaintext().map_err(|_| ConfigError::SecretLookup(name))?;
        lists.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(lists)
}

/// An item as read: its marks and the generation to write against (`None`: it did not exist).
#[derive(Default)]
struct Snapshot {
    marks: Marks,
    generation: Option<u64>,
}

/// The KV store `key_state`, if it exists.
pub struct StateStore {
    kv: Option<KVStore>,
    generations: Vec<(Item, Option<u64>)>,
}

/// Attempts at a compare-and-swap write before giving up (and logging).
const WRITE_TRIES: usize = 3;

impl StateStore {
    pub fn open() -> Self {
        let kv = match KVStore::open(KEY_STATE) {
            Ok(Some(kv)) => Some(kv),
            Ok(None) => {
                log(format_args!("kv: store `{KEY_STATE}` is missing; cooling state is not kept"));
                None
            }
            Err(e) => {
                log(format_args!("kv: cannot open `{KEY_STATE}`: {e}; cooling state is not kept"));
                None
            }
        };
        StateStore { kv, generations: Vec::new() }
    }

    /// Reads `keys` and, for a model, `model/<model>`, in parallel.
    pub fn read(&mut self, model: Option<&str>, ops: &Ops) -> PoolState {
        let Some(kv) = &self.kv else { return PoolState::default() };
        let started = Instant::now();
        let keys_item = Item::Keys;
        let model_item = model.map(|m| Item::Model(m.to_string()));
        let pending_keys = start_lookup(kv, &keys_item, ops);
        let pending_model = model_item.as_ref().map(|item| start_lookup(kv, item, ops));
        let keys = finish_lookup(kv, &keys_item, pending_keys);
        let model_snapshot = match (pending_model, &model_item) {
            (Some(pending), Some(item)) => finish_lookup(kv, item, pending),
            _ => Snapshot::default(),
        };
        add_elapsed(&ops.kv_ms, started);
        self.generations.push((keys_item, keys.generation));
        if let Some(item) = model_item {
            self.generations.push((item, model_snapshot.generation));
        }
        PoolState { keys: keys.marks, model: model_snapshot.marks }
    }

    /// Writes the items `changes` touched (compare-and-swap on the generation read), pruned
    /// of expired marks and of keys no longer in the pool. Nothing to change: no write.
    pub fn write(&self, state: &PoolState, changes: &[Change], pool: &KeyPool<'_>, now_ms: u64, ops: &Ops) {
        let Some(kv) = &self.kv else { return };
        if changes.is_empty() {
            return;
        }
        let started = Instant::now();
        let known = pool_names(pool);
        for (item, generation) in &self.generations {
            let item_changes: Vec<&Change> = changes.iter().filter(|c| c.item() == item).collect();
            if item_changes.is_empty() {
                continue;
            }
            let current = match item {
                Item::Keys => state.keys.clone(),
                Item::Model(_) => state.model.clone(),
            };
            write_item(kv, item, current, *generation, &item_changes, &known, now_ms, ops);
        }
        add_elapsed(&ops.kv_ms, started);
    }

    /// Every item, for `/v1/status`: the `keys` marks and each model's marks.
    pub fn read_all(&self, ops: &Ops) -> (Marks, Vec<(String, Marks)>) {
        let Some(kv) = &self.kv else { return (Marks::default(), Vec::new()) };
        let started = Instant::now();
        let keys = finish_lookup(kv, &Item::Keys, start_lookup(kv, &Item::Keys, ops)).marks;
        let mut names = Vec::new();
        for page in kv.build_list().prefix(Item::model_prefix()).iter() {
            bump(&ops.kv_reads);
            match page {
                Ok(page) => names.extend(page.into_keys()),
                Err(e) => {
                    log(format_args!("kv: list failed: {e}"));
                    break;
                }
            }
        }
        let models = names
            .iter()
            .filter_map(|name| match Item::from_kv_key(name) {
                Some(Item::Model(model)) => Some(model),
                _ => None,
            })
            .map(|model| {
                let item = Item::Model(model.clone());
                (model, finish_lookup(kv, &item, start_lookup(kv, &item, ops)).marks)
            })
            .collect();
        add_elapsed(&ops.kv_ms, started);
        (keys, models)
    }
}

type Pending = Result<PendingLookupHandle, KVStoreError>;

fn start_lookup(kv: &KVStore, item: &Item, ops: &Ops) -> Pending {
    bump(&ops.kv_reads);
    kv.build_lookup().execute_async(&item.kv_key())
}

fn finish_lookup(kv: &KVStore, item: &Item, pending: Pending) -> Snapshot {
    let result = pending.and_then(|handle| kv.pending_lookup_wait(handle));
    match result {
        Ok(mut found) => {
            let generation = Some(found.current_generation());
            let marks = Marks::decode(found.take_body_bytes()).unwrap_or_else(|e| {
                log(format_args!("kv: {}: {e}; starting from empty state", item.kv_key()));
                Marks::default()
            });
            Snapshot { marks, generation }
        }
        Err(KVStoreError::ItemNotFound) => Snapshot::default(),
        Err(e) => {
            log(format_args!("kv: lookup {} failed: {e}; carrying on without it", item.kv_key()));
            Snapshot::default()
        }
    }
}

/// Every name a mark of this pool may have: fingerprints, `k:<fingerprint>`, `p:<project>`.
fn pool_names(pool: &KeyPool<'_>) -> HashSet<String> {
    let mut names = HashSet::with_capacity(pool.len() * 2);
    for key in pool.iter() {
        let fp = key.fingerprint().to_string();
        names.insert(format!("k:{fp}"));
        names.insert(fp);
        if let Some(project) = key.project {
            names.insert(format!("p:{project}"));
        }
    }
    names
}

#[allow(clippy::too_many_arguments)]
fn write_item(
    kv: &KVStore,
    item: &Item,
    mut marks: Marks,
    mut generation: Option<u64>,
    changes: &[&Change],
    known: &HashSet<String>,
    now_ms: u64,
    ops: &Ops,
) {
    // `marks` already carries this request's changes; after a lost race they are applied
    // again to the winner's version.
    let key = item.kv_key();
    for _ in 0..WRITE_TRIES {
        marks.prune(now_ms, |name| known.contains(name));
        bump(&ops.kv_writes);
        match put(kv, &key, &marks, generation, now_ms) {
            Ok(()) => return,
            Err(KVStoreError::ItemPreconditionFailed) => {
                // Another instance wrote first: start again from its version.
                bump(&ops.kv_reads);
                let fresh = finish_lookup(kv, item, kv.build_lookup().execute_async(&key));
                marks = fresh.marks;
                generation = fresh.generation;
                for change in changes {
                    marks.apply(change);
                }
            }
            Err(e) => {
                log(format_args!("kv: write {key} failed: {e}; cooling not saved"));
                return;
            }
        }
    }
    log(format_args!("kv: write {key} lost {WRITE_TRIES} races; cooling not saved"));
}

fn put(kv: &KVStore, key: &str, marks: &Marks, generation: Option<u64>, now_ms: u64) -> Result<(), KVStoreError> {
    if marks.is_empty() {
        return match kv.delete(key) {
            Ok(()) | Err(KVStoreError::ItemNotFound) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let mut insert = kv.build_insert();
    insert = match generation {
        Some(generation) => insert.if_generation_match(generation),
        None => insert.mode(InsertMode::Add),
    };
    if let Some(ttl) = marks.ttl_secs(now_ms) {
        insert = insert.time_to_live(Duration::from_secs(ttl));
    }
    insert.execute(key, marks.encode())
}
