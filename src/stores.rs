//! The Fastly stores: client tokens and settings (config stores), API keys (secret store),
//! cooling state (KV store). Each is read at most once per request and every operation is
//! counted in [`Ops`]. A KV failure is logged and never fails the client's request.

use crate::log::log;
use crate::ops::{add_elapsed, bump, Ops};
use fastly::kv_store::{InsertMode, KVStore, KVStoreError, PendingLookupHandle};
use fastly::{ConfigStore, SecretStore};
use gemini_pool_core::record::Write;
use gemini_pool_core::state::{Item, Marks, PoolState};
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

/// The key lists: `keys`, then `keys_2` … up to `count` entries, as bytes (the core reads
/// them lazily; nothing is validated or copied here).
pub fn key_lists(count: usize, ops: &Ops) -> Result<Vec<impl AsRef<[u8]>>, ConfigError> {
    let store = SecretStore::open(GEMINI_KEYS).map_err(|_| ConfigError::MissingSecretStore)?;
    let mut lists = Vec::with_capacity(count);
    for name in KEY_ENTRIES.iter().take(count) {
        bump(&ops.secret_reads);
        let secret = store
            .try_get(name)
            .map_err(|_| ConfigError::SecretLookup(name))?
            .ok_or(ConfigError::MissingSecret(name))?;
        lists.push(secret.try_plaintext().map_err(|_| ConfigError::SecretLookup(name))?);
    }
    Ok(lists)
}

/// The KV store `key_state`, if it exists. It reads items and executes the core's
/// [`Write`]s; what to write and when is decided in `gemini_pool_core::record`.
pub struct StateStore {
    kv: Option<KVStore>,
}

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
        StateStore { kv }
    }

    /// Reads `keys` and, for a model, `model/<model>`, in parallel.
    pub fn read(&self, model: Option<&str>, ops: &Ops) -> PoolState {
        let Some(kv) = &self.kv else { return PoolState::default() };
        let started = Instant::now();
        let model_item = model.map(|m| Item::Model(m.to_string()));
        let pending_keys = start_lookup(kv, &Item::Keys, ops);
        let pending_model = model_item.as_ref().map(|item| (item, start_lookup(kv, item, ops)));
        let keys = finish_lookup(kv, &Item::Keys, pending_keys);
        let model = pending_model.map_or_else(Marks::default, |(item, pending)| finish_lookup(kv, item, pending));
        add_elapsed(&ops.kv_ms, started);
        PoolState { keys, model }
    }

    /// Executes writes (each is logged if it fails; none fails the request).
    pub fn execute(&self, writes: Vec<Write>, ops: &Ops) {
        let Some(kv) = &self.kv else { return };
        let started = Instant::now();
        for write in writes {
            bump(&ops.kv_writes);
            let (key, result) = match write {
                Write::Append { item, bytes } => {
                    let key = item.kv_key();
                    let result = kv.build_insert().mode(InsertMode::Append).execute(&key, bytes);
                    (key, result)
                }
                Write::Replace { item, bytes, generation, ttl_secs } => {
                    let key = item.kv_key();
                    let insert = kv.build_insert().time_to_live(Duration::from_secs(ttl_secs));
                    let insert = match generation {
                        Some(generation) => insert.if_generation_match(generation),
                        None => insert.mode(InsertMode::Add),
                    };
                    match insert.execute(&key, bytes) {
                        // Someone wrote meanwhile: their version stands; ours is re-derived
                        // from it the next time.
                        Err(KVStoreError::ItemPreconditionFailed) => (key, Ok(())),
                        other => (key, other),
                    }
                }
            };
            if let Err(e) = result {
                log(format_args!("kv: write {key} failed: {e}; carrying on"));
            }
        }
        add_elapsed(&ops.kv_ms, started);
    }

    /// Every item, for `/v1/status`: the `keys` marks and each model's marks.
    pub fn read_all(&self, ops: &Ops) -> (Marks, Vec<(String, Marks)>) {
        let Some(kv) = &self.kv else { return (Marks::default(), Vec::new()) };
        let started = Instant::now();
        let keys = finish_lookup(kv, &Item::Keys, start_lookup(kv, &Item::Keys, ops));
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
        let items: Vec<Item> = names.iter().filter_map(|name| Item::from_kv_key(name)).collect();
        let pending: Vec<(&Item, Pending)> = items.iter().map(|item| (item, start_lookup(kv, item, ops))).collect();
        let models = pending
            .into_iter()
            .filter_map(|(item, pending)| match item {
                Item::Model(model) => Some((model.clone(), finish_lookup(kv, item, pending))),
                Item::Keys => None,
            })
            .collect();
        add_elapsed(&ops.kv_ms, started);
        (keys, models)
    }
}

type Pending = Result<PendingLookupHandle, KVStoreError>;

/// Initial buffer for reading a KV item.
const READ_CAPACITY: usize = 64 * 1024;

fn start_lookup(kv: &KVStore, item: &Item, ops: &Ops) -> Pending {
    bump(&ops.kv_reads);
    kv.build_lookup().execute_async(&item.kv_key())
}

fn finish_lookup(kv: &KVStore, item: &Item, pending: Pending) -> Marks {
    match pending.and_then(|handle| kv.pending_lookup_wait(handle)) {
        Ok(mut found) => {
            let generation = Some(found.current_generation());
            // One large read: far fewer copies than the crate's buffered `take_body_bytes`.
            let mut bytes = Vec::with_capacity(READ_CAPACITY);
            if let Err(e) = std::io::Read::read_to_end(&mut found.take_body(), &mut bytes) {
                log(format_args!("kv: reading {} failed: {e}; carrying on without it", item.kv_key()));
                return Marks::default();
            }
            Marks::decode(bytes, generation)
        }
        Err(KVStoreError::ItemNotFound) => Marks::default(),
        Err(e) => {
            log(format_args!("kv: lookup {} failed: {e}; carrying on without it", item.kv_key()));
            Marks::default()
        }
    }
}
