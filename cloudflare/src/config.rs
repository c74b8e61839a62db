//! The Worker's configuration, named as the original Worker named it: the secret
//! `GEMINI_API_KEYS` (our key-list format, `project:KEY` included; `GEMINI_API_KEYS_2` … `_4`
//! continue a larger pool, like Fastly's `keys_2` … `keys_4`), client tokens in
//! `VALID_AUTH_TOKENS` (comma-separated, spaces trimmed; `token=label` names a client), admin
//! tokens in `ADMIN_TOKENS` (same form), `LOAD_BALANCE_STRATEGY`, and every knob of Fastly's
//! `proxy_settings` as a variable of the same name. `GEMINI_BASE_URL` is Google's address
//! (the tests point it at the simulator); `SUBREQUEST_LIMIT` is the plan's subrequests per
//! request (50 on the free plan); `FIRST_BYTE_TIMEOUT_MS` how long Google may take to answer.
//! `CLIENT_POLICIES` holds the clients' policies: one JSON object, a policy per client label
//! (Fastly's `client_policies` holds one entry per label).

use gemini_pool_core::{same_token, Policy, RequestSettings, SettingError, SettingsReader};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::Env;

thread_local! {
    /// Every variable and secret this isolate has read. An isolate runs one version of the
    /// Worker, whose bindings never change (a new deploy starts new isolates), so what it read
    /// once stays true: later requests skip the calls into JavaScript and the string copies.
    static READ: RefCell<HashMap<String, Option<Rc<str>>>> = RefCell::default();
    /// The settings every request needs, parsed (an error is not kept).
    static SETTINGS: RefCell<Option<RequestSettings>> = RefCell::default();
    /// Client policies parsed, by label (at most 256; an error is not kept).
    static POLICIES: RefCell<HashMap<String, Option<Policy>>> = RefCell::default();
}

/// The variables holding key lists, in order (the pool's parts).
pub const KEY_VARS: [&str; 4] = ["GEMINI_API_KEYS", "GEMINI_API_KEYS_2", "GEMINI_API_KEYS_3", "GEMINI_API_KEYS_4"];

/// Subrequests per request on Workers' free plan; paid plans allow more (`SUBREQUEST_LIMIT`).
pub const FREE_PLAN_SUBREQUESTS: usize = 50;

/// The first-byte timeout unless `FIRST_BYTE_TIMEOUT_MS` says otherwise (as in `fastly.toml`).
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 300_000;

/// Google's API unless `GEMINI_BASE_URL` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// A variable or secret, if set (read once per isolate).
pub fn text(env: &Env, name: &str) -> Option<String> {
    shared_text(env, name).map(|text| text.to_string())
}

/// A variable or secret, if set, without a copy of its own (key lists are tens of KB).
pub fn shared_text(env: &Env, name: &str) -> Option<Rc<str>> {
    if let Some(read) = READ.with_borrow(|read| read.get(name).cloned()) {
        return read;
    }
    let value: Option<Rc<str>> = env.secret(name).ok().or_else(|| env.var(name).ok()).map(|v| v.to_string().into());
    READ.with_borrow_mut(|read| read.insert(name.to_string(), value.clone()));
    value
}

/// A knob of `proxy_settings`, read from the variable of the same name
/// (`LOAD_BALANCE_STRATEGY` stands for `strategy`, as in the original Worker).
pub fn knob(env: &Env, name: &str) -> Option<String> {
    if name == "strategy" {
        return text(env, "LOAD_BALANCE_STRATEGY").or_else(|| text(env, name));
    }
    text(env, name)
}

/// The settings every request needs, parsed once per isolate.
pub fn request_settings(env: &Env) -> Result<RequestSettings, SettingError> {
    if let Some(kept) = SETTINGS.with_borrow(|kept| kept.clone()) {
        return Ok(kept);
    }
    let read = SettingsReader::new(|name: &str| knob(env, name)).request()?;
    SETTINGS.with_borrow_mut(|kept| *kept = Some(read.clone()));
    Ok(read)
}

/// The label of `token` in a token list (`VALID_AUTH_TOKENS` or `ADMIN_TOKENS`), if it is
/// there. Every entry is compared, each in constant time.
pub fn token_label(list: Option<&str>, token: &str) -> Option<String> {
    let mut found = None;
    for (i, entry) in list?.split(',').enumerate() {
        let entry = entry.trim();
        let (name, label) = entry.split_once('=').map_or((entry, None), |(t, l)| (t.trim(), Some(l.trim())));
        if same_token(name, token) && !name.is_empty() && found.is_none() {
            found = Some(label.map_or_else(|| format!("client {}", i + 1), str::to_string));
        }
    }
    found
}

/// Client `label`'s policy in `CLIENT_POLICIES` (absent: none), parsed once per isolate; an
/// error names the label and the field, or says the variable is not a JSON object.
pub fn policy(env: &Env, label: &str) -> Result<Option<Policy>, String> {
    if let Some(found) = POLICIES.with_borrow(|read| read.get(label).cloned()) {
        return Ok(found);
    }
    let found = read_policy(env, label)?;
    POLICIES.with_borrow_mut(|read| {
        if read.len() >= 256 {
            read.clear();
        }
        read.insert(label.to_string(), found.clone());
    });
    Ok(found)
}

fn read_policy(env: &Env, label: &str) -> Result<Option<Policy>, String> {
    let Some(text) = text(env, "CLIENT_POLICIES") else { return Ok(None) };
    Policy::in_all(&text, label).map_err(|e| e.to_string())
}

/// Where Google is.
pub fn base_url(env: &Env) -> String {
    text(env, "GEMINI_BASE_URL").map_or_else(|| DEFAULT_BASE_URL.to_string(), |u| u.trim_end_matches('/').to_string())
}

/// Subrequests one request may make: `SUBREQUEST_LIMIT` if set (a whole number, at least 8),
/// else the free plan's 50.
pub fn subrequest_limit(env: &Env) -> Result<usize, String> {
    let Some(text) = text(env, "SUBREQUEST_LIMIT") else { return Ok(FREE_PLAN_SUBREQUESTS) };
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 8 => Ok(n),
        _ => Err(format!("SUBREQUEST_LIMIT must be a whole number of at least 8, not {:?}", text.trim())),
    }
}

/// How long Google may take to send its answer's first byte (headers), in ms:
/// `FIRST_BYTE_TIMEOUT_MS` if set, else 300,000 (the Fastly edge's `first_byte_timeout_ms`).
pub fn first_byte_timeout_ms(env: &Env) -> Result<u64, String> {
    let Some(text) = text(env, "FIRST_BYTE_TIMEOUT_MS") else { return Ok(DEFAULT_FIRST_BYTE_TIMEOUT_MS) };
    match text.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err(format!("FIRST_BYTE_TIMEOUT_MS must be a whole number of milliseconds, not {:?}", text.trim())),
    }
}

/// The configuration error of a key list without a key.
pub fn empty_pool() -> String {
    format!("secret `{}` holds no API keys", KEY_VARS[0])
}
