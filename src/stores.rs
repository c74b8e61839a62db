//! The Fastly stores: client tokens and settings (config stores), API keys (secret store),
//! cooling state (KV store): reads and writes as the core's machines ask
//! ([`crate::steps`]). Each is read at most once per step and every operation is counted in
//! [`Timing`]. A KV failure is logged and never fails the client's request.

use crate::log::log;
use crate::timing::{add_elapsed, bump, Timing};
use crate::warm;
use bytes::Bytes;
use fastly::kv_store::{InsertMode, KVStore, KVStoreError, PendingLookupHandle};
use fastly::secret_store::Secret;
use fastly::{ConfigStore, SecretStore};
use gemini_pool_core::{Append, ErrorReply, Item, Marks, Policy, Write};
use std::cell::OnceCell;
use std::time::{Duration, Instant};
use thiserror::Error;

pub const AUTH_TOKENS: &str = "auth_tokens";
pub const ADMIN_TOKENS: &str = "admin_tokens";
pub const PROXY_SETTINGS: &str = "proxy_settings";
pub const CLIENT_POLICIES: &str = "client_policies";
/// Fastly Edge Rate Limiting's counter for clients' `rpm` (`rate_limiter = platform`).
pub const RATE_COUNTER: &str = "client_rpm";
pub const GEMINI_KEYS: &str = "gemini_keys";
pub const KEY_STATE: &str = "key_state";

/// Names of the secret-store entries holding keys, in order.
pub const KEY_ENTRIES: [&str; 4] = ["keys", "keys_2", "keys_3", "keys_4"];
/// The first key list, as a configuration error names it.
pub const FIRST_LIST: &str = "gemini_keys/keys";

/// A store or entry the service cannot run without (answered as 500 "Service configuration error").
#[derive(Debug, Clone, Error)]
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
    Setting(#[from] gemini_pool_core::SettingError),
    #[error("{0}")]
    Policy(#[from] gemini_pool_core::PolicyError),
}

impl From<ConfigError> for ErrorReply {
    fn from(e: ConfigError) -> Self {
        ErrorReply::config(e)
    }
}

/// The label of `token` in config store `store`, or `None` if the token is not there.
/// `auth_tokens` must exist; `admin_tokens` is optional (absent: no admins).
/// A warm sandbox answers from what it read before ([`warm`]).
pub fn token_label(store: &'static str, token: &str, timing: &Timing) -> Result<Option<String>, ConfigError> {
    warm::token(store, token, || {
        let Ok(config) = ConfigStore::try_open(store) else {
            return if store == AUTH_TOKENS { Err(ConfigError::MissingConfigStore(store)) } else { Ok(None) };
        };
        bump(&timing.config_reads);
        config.try_get(token).map_err(|_| ConfigError::ConfigLookup(store))
    })
}

/// Client `label`'s policy in config store `client_policies` (optional: absent, no client has
/// one). A warm sandbox answers from what it read before ([`warm`]).
pub fn policy(label: &str, timing: &Timing) -> Result<Option<Policy>, ConfigError> {
    let text = warm::policy(label, || {
        let Ok(config) = ConfigStore::try_open(CLIENT_POLICIES) else { return Ok(None) };
        bump(&timing.config_reads);
        config.try_get(label).map_err(|_| ConfigError::ConfigLookup(CLIENT_POLICIES))
    })?;
    Ok(text.map(|text| Policy::parse(label, &text)).transpose()?)
}

/// `proxy_settings`, which may be absent (every knob has a default); opened only when a knob
/// is not warm ([`warm`]).
#[derive(Default)]
pub struct Settings {
    store: OnceCell<Option<ConfigStore>>,
}

impl Settings {
    pub fn get(&self, name: &str, timing: &Timing) -> Option<String> {
        warm::knob(name, || {
            let store = self.store.get_or_init(|| ConfigStore::try_open(PROXY_SETTINGS).ok()).as_ref()?;
            bump(&timing.config_reads);
            store.try_get(name).ok().flatten()
        })
    }
}

/// The key lists (`keys`, `keys_2`, … — the parts of the pool): every one is looked up at
/// once (a missing one is a configuration error), but its bytes are fetched only the first
/// time they are needed, and kept for the rest of the request — and by a warm sandbox for
/// its next requests ([`warm`]), which then look up nothing.
pub struct Secrets {
    parts: Vec<Part>,
}

/// One key list: its entry name, its handle (none when the sandbox had it warm), and its
/// bytes once fetched.
struct Part {
    name: &'static str,
    secret: Option<Secret>,
    bytes: OnceCell<Result<Bytes, ConfigError>>,
}

impl Secrets {
    /// Looks up the first `count` key lists (those this sandbox does not have warm).
    pub fn open(count: usize, timing: &Timing) -> Result<Self, ConfigError> {
        let mut store = None;
        let mut parts = Vec::with_capacity(count);
        for (part, name) in KEY_ENTRIES.iter().enumerate().take(count) {
            if let Some(bytes) = warm::key_list(part) {
                parts.push(Part { name, secret: None, bytes: OnceCell::from(Ok(bytes)) });
                continue;
            }
            let store = match &mut store {
                Some(store) => store,
                None => store.insert(SecretStore::open(GEMINI_KEYS).map_err(|_| ConfigError::MissingSecretStore)?),
            };
            bump(&timing.secret_lookups);
            let secret = store.try_get(name).map_err(|_| ConfigError::SecretLookup(name))?;
            let secret = Some(secret.ok_or(ConfigError::MissingSecret(name))?);
            parts.push(Part { name, secret, bytes: OnceCell::new() });
        }
        Ok(Secrets { parts })
    }

    /// How many parts the pool has.
    pub fn count(&self) -> usize {
        self.parts.len()
    }

    /// Part `part`'s bytes (fetched the first time).
    pub fn get(&self, part: usize, timing: &Timing) -> Result<&[u8], ConfigError> {
        let Some(Part { name, secret, bytes }) = self.parts.get(part) else {
            return Err(ConfigError::MissingSecret(KEY_ENTRIES[part.min(KEY_ENTRIES.len() - 1)]));
        };
        let fetched = bytes.get_or_init(|| {
            let secret = secret.as_ref().ok_or(ConfigError::MissingSecret(name))?;
            bump(&timing.secret_reads);
            let read = secret.try_plaintext().map_err(|_| ConfigError::SecretLookup(name));
            if let Ok(bytes) = &read {
                warm::keep_key_list(part, bytes);
            }
            read
        });
        match fetched {
            Ok(bytes) => Ok(bytes.as_ref()),
            Err(e) => Err(e.clone()),
        }
    }
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

    /// Reads `items`, all in parallel (a missing item, or one that cannot be read, is empty).
    pub fn read(&self, items: &[Item], timing: &Timing) -> Vec<(Item, Marks)> {
        let Some(kv) = &self.kv else {
            return items.iter().map(|item| (item.clone(), Marks::default())).collect();
        };
        let started = Instant::now();
        let pending: Vec<Pending> = items.iter().map(|item| start_lookup(kv, item, timing)).collect();
        // A request reads its two items (a few more when it widens); `/v1/status` up to a
        // hundred, each sized as it grows rather than reserved up front.
        let capacity = if items.len() <= 8 { READ_CAPACITY } else { STATUS_READ_CAPACITY };
        let read = items
            .iter()
            .zip(pending)
            .map(|(item, lookup)| (item.clone(), finish_lookup(kv, item, lookup, capacity)))
            .collect();
        add_elapsed(&timing.kv_ms, started);
        read
    }

    /// Executes writes; returns the indices of those the store refused (`TooManyRequests`,
    /// or any other failure: the write is stored nowhere). A failure is logged and never
    /// fails the request.
    pub fn execute(&self, writes: Vec<Write>, timing: &Timing) -> Vec<usize> {
        let Some(kv) = &self.kv else { return Vec::new() };
        let started = Instant::now();
        let mut refused = Vec::new();
        for (i, write) in writes.into_iter().enumerate() {
            bump(&timing.kv_writes);
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
                log(format_args!("kv: write {key} failed: {e}; kept to write again"));
                refused.push(i);
            }
        }
        add_elapsed(&timing.kv_ms, started);
        refused
    }

    /// Reads resource records by item name, in parallel (`None`: absent or unreadable).
    pub fn look(&self, names: &[String], timing: &Timing) -> Vec<Option<Vec<u8>>> {
        let Some(kv) = &self.kv else { return vec![None; names.len()] };
        let started = Instant::now();
        let pending: Vec<Pending> = names
            .iter()
            .map(|name| {
                bump(&timing.kv_reads);
                kv.build_lookup().execute_async(name)
            })
            .collect();
        let found = names
            .iter()
            .zip(pending)
            .map(|(name, lookup)| match lookup.and_then(|handle| kv.pending_lookup_wait(handle)) {
                Ok(mut found) => Some(found.take_body_bytes()),
                Err(KVStoreError::ItemNotFound) => None,
                Err(e) => {
                    log(format_args!("kv: lookup {name} failed: {e}; taken as absent"));
                    None
                }
            })
            .collect();
        add_elapsed(&timing.kv_ms, started);
        found
    }

    /// Stores a resource record for `ttl_secs` unless the store has one already (an adopted
    /// file seen again); says whether it stored one. A failure is logged: the resource is then
    /// not found through the proxy.
    pub fn keep_record(&self, item: &str, record: Vec<u8>, ttl_secs: u64, timing: &Timing) -> bool {
        let Some(kv) = &self.kv else { return false };
        bump(&timing.kv_writes);
        let started = Instant::now();
        let insert = kv.build_insert().mode(InsertMode::Add).time_to_live(Duration::from_secs(ttl_secs));
        let stored = match insert.execute(item, record) {
            Ok(()) => true,
            Err(KVStoreError::ItemPreconditionFailed) => false,
            Err(e) => {
                log(format_args!("kv: storing the record {item} failed: {e}"));
                false
            }
        };
        add_elapsed(&timing.kv_ms, started);
        stored
    }

    /// Appends bytes to an item (a line of a client's index of what it made, a client's
    /// admission to its limit item), kept `ttl_secs`.
    pub fn append(&self, item: &str, bytes: Vec<u8>, ttl_secs: u64, timing: &Timing) {
        let Some(kv) = &self.kv else { return };
        bump(&timing.kv_writes);
        let started = Instant::now();
        let ttl = Duration::from_secs(ttl_secs);
        if let Err(e) = kv.build_insert().mode(InsertMode::Append).time_to_live(ttl).execute(item, bytes) {
            log(format_args!("kv: appending to {item} failed: {e}"));
        }
        add_elapsed(&timing.kv_ms, started);
    }

    /// Appends a client's claim to its limit item, then reads the item back with its
    /// generation (`None`: unreadable, or no store).
    pub fn claim(&self, item: &str, bytes: Vec<u8>, ttl_secs: u64, timing: &Timing) -> Option<(Vec<u8>, u64)> {
        self.append(item, bytes, ttl_secs, timing);
        let kv = self.kv.as_ref()?;
        bump(&timing.kv_reads);
        let started = Instant::now();
        let found = match kv.lookup(item) {
            Ok(mut found) => Some((found.take_body_bytes(), found.current_generation())),
            Err(KVStoreError::ItemNotFound) => None,
            Err(e) => {
                log(format_args!("kv: reading {item} back failed: {e}"));
                None
            }
        };
        add_elapsed(&timing.kv_ms, started);
        found
    }

    /// Replaces an item if it is still at `generation` (a compaction: if another write came
    /// first, theirs stands and nothing is lost); with no generation, whatever it holds.
    pub fn swap(&self, item: &str, bytes: Vec<u8>, generation: Option<u64>, ttl_secs: u64, timing: &Timing) {
        let Some(kv) = &self.kv else { return };
        bump(&timing.kv_writes);
        let started = Instant::now();
        let mut insert = kv.build_insert().time_to_live(Duration::from_secs(ttl_secs));
        if let Some(generation) = generation {
            insert = insert.if_generation_match(generation);
        }
        match insert.execute(item, bytes) {
            Ok(()) | Err(KVStoreError::ItemPreconditionFailed) => {}
            Err(e) => log(format_args!("kv: compacting {item} failed: {e}")),
        }
        add_elapsed(&timing.kv_ms, started);
    }

    /// Removes an item (the record of a resource Google deleted).
    pub fn delete(&self, item: &str, timing: &Timing) {
        let Some(kv) = &self.kv else { return };
        bump(&timing.kv_writes);
        let started = Instant::now();
        match kv.delete(item) {
            Ok(()) | Err(KVStoreError::ItemNotFound) => {}
            Err(e) => log(format_args!("kv: removing {item} failed: {e}")),
        }
        add_elapsed(&timing.kv_ms, started);
    }

    /// A request's counts (usage lines, a limited client's tokens, a line of a client's
    /// index); an append the core marks is read back and compacted if it is due, with a
    /// compare-and-swap.
    pub fn count(&self, append: &Append, timing: &Timing) {
        let Some(kv) = &self.kv else { return };
        bump(&timing.kv_writes);
        let item = append.item.as_str();
        let ttl = Duration::from_secs(append.ttl_secs);
        let appended = kv.build_insert().mode(InsertMode::Append).time_to_live(ttl).execute(item, append.bytes.clone());
        if let Err(e) = appended {
            log(format_args!("kv: counting in {item} failed: {e}"));
            return;
        }
        if append.compact.is_none() {
            return;
        }
        bump(&timing.kv_reads);
        let Ok(mut found) = kv.lookup(item) else { return };
        let generation = found.current_generation();
        let Some(compacted) = append.compacted(&found.take_body_bytes()) else { return };
        // If another request appended meanwhile the swap fails and its lines stay.
        self.swap(item, compacted, Some(generation), append.ttl_secs, timing);
    }

    /// The names of the items that start with `prefix`, every page of them (a listing that
    /// fails is logged and ends there). Each page is one call to the store, counted (an empty
    /// listing is one too).
    pub fn list(&self, prefix: &str, timing: &Timing) -> Vec<String> {
        let Some(kv) = &self.kv else { return Vec::new() };
        let started = Instant::now();
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            bump(&timing.kv_reads);
            let mut list = kv.build_list().prefix(prefix);
            if let Some(cursor) = &cursor {
                list = list.cursor(cursor);
            }
            match list.execute() {
                Ok(page) => {
                    cursor = page.next_cursor().filter(|_| !page.keys().is_empty());
                    names.extend(page.into_keys());
                }
                Err(e) => {
                    log(format_args!("kv: list failed: {e}"));
                    break;
                }
            }
            if cursor.is_none() {
                break;
            }
        }
        add_elapsed(&timing.kv_ms, started);
        names
    }
}

type Pending = Result<PendingLookupHandle, KVStoreError>;

/// Initial buffer for reading a KV item on a request's path: one large read, far fewer copies
/// than the crate's buffered `take_body_bytes` (a request reads two items).
const READ_CAPACITY: usize = 64 * 1024;
/// Initial buffer for the items `/v1/status` reads (up to a hundred of them): sized by the
/// item as it grows, not reserved up front.
const STATUS_READ_CAPACITY: usize = 1024;

fn start_lookup(kv: &KVStore, item: &Item, timing: &Timing) -> Pending {
    bump(&timing.kv_reads);
    kv.build_lookup().execute_async(&item.kv_key())
}

fn finish_lookup(kv: &KVStore, item: &Item, pending: Pending, capacity: usize) -> Marks {
    match pending.and_then(|handle| kv.pending_lookup_wait(handle)) {
        Ok(mut found) => {
            let generation = Some(found.current_generation());
            let mut bytes = Vec::with_capacity(capacity);
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
