//! A client's policy: what the operator allows one client label (config store
//! `client_policies` on Fastly, variable `CLIENT_POLICIES` on Workers), every field optional:
//!
//! ```json
//! {"models": ["gemini-3.5-flash", "gemini-3.1-*"],
//!  "aliases": {"gpt-4o-mini": "gemini-3.5-flash"},
//!  "rpm": 60, "rpd": 1000, "tokens_per_day": 2000000,
//!  "projects": ["team-a"]}
//! ```
//!
//! - `models`: the Gemini models the client may use, exact names or `prefix*`; any other
//!   model is a 403 naming it, and model lists show only these.
//! - `aliases`: a model name the client sends → the Gemini model it means. The alias is
//!   applied first (routing, the allow-list, cooling and usage see the Gemini model) and the
//!   answer carries the client's name back ([`Relabel`](crate::client::relabel::Relabel)).
//! - `rpm`, `rpd`, `tokens_per_day`: limits ([`crate::decide::limits`]).
//! - `projects`: the key projects the client may draw from (keys written `project:KEY`).
//!
//! A policy that does not read is the operator's error: a 500 naming the label and the field,
//! never a panic and never "no policy".

use crate::client::body::RequestFacts;
use crate::client::envelope::ErrorReply;
use crate::client::model::{normalize_model, valid_model};
use crate::client::relabel::Relabel;
use crate::client::route::Route;
use crate::pool::keys::ApiKey;
use crate::pool::names::Bucket;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// One client's policy. The default allows everything and limits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Allowed models (exact, or `prefix*`); `None`: every model.
    pub models: Option<Vec<String>>,
    /// The client's model name → a Gemini model.
    pub aliases: BTreeMap<String, String>,
    /// The limits.
    pub limits: Limits,
    /// Projects the client's requests may draw keys from; `None`: the whole pool.
    pub projects: Option<Vec<String>>,
}

/// A client's limits; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Requests per quota day.
    pub rpd: Option<u64>,
    /// Tokens (prompt and answer, as Google counts them) per quota day.
    pub tokens_per_day: Option<u64>,
}

impl Limits {
    /// Is any limit set?
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.rpd.is_some() || self.tokens_per_day.is_some()
    }
}

/// What a client's policy makes of one request (the default: nothing changes).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The route with the Gemini model in its path, if an alias changed it.
    pub route: Option<Route>,
    /// The body with the Gemini model in it, if an alias changed it.
    pub body: Option<Vec<u8>>,
    /// The Gemini model the request uses (cooling and usage count it).
    pub model: Option<String>,
    /// Rewrites the answer to carry the client's name back, if an alias changed it.
    pub relabel: Option<Relabel>,
    /// The query to send instead of the client's: a native model list for a client with an
    /// allow-list asks for every model at once (a filtered page could be empty, which Google's
    /// SDKs do not expect of a page with a next one).
    pub query: Option<&'static str>,
}

/// The query of a native model list filtered for a client: Google's largest page.
const WHOLE_MODEL_LIST: &str = "pageSize=1000";

/// A policy that does not read: which label, which field, what is wrong.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("client_policies.{label}: {field}: {problem}")]
pub struct PolicyError {
    /// The client label.
    pub label: String,
    /// The field (`(policy)` for the whole value).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Longest policy value read (Fastly's config store holds 8,000 characters per entry).
const MAX_POLICY_BYTES: usize = 64 * 1024;

impl Policy {
    /// Reads `label`'s policy from its JSON text.
    pub fn parse(label: &str, text: &str) -> Result<Policy, PolicyError> {
        let fail = |field: &str, problem: &str| PolicyError {
            label: label.to_string(),
            field: field.to_string(),
            problem: problem.to_string(),
        };
        if text.len() > MAX_POLICY_BYTES {
            return Err(fail("(policy)", "longer than 64 KiB"));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| fail("(policy)", &format!("not JSON: {e}")))?;
        let Value::Object(fields) = value else { return Err(fail("(policy)", "not a JSON object")) };
        let mut policy = Policy::default();
        for (field, value) in &fields {
            let read = match field.as_str() {
                "models" => names(value, true).map(|m| policy.models = Some(m)),
                "projects" => names(value, false).map(|p| policy.projects = Some(p)),
                "aliases" => aliases(value).map(|a| policy.aliases = a),
                "rpm" => limit(value).map(|n| policy.limits.rpm = Some(n)),
                "rpd" => limit(value).map(|n| policy.limits.rpd = Some(n)),
                "tokens_per_day" => limit(value).map(|n| policy.limits.tokens_per_day = Some(n)),
                _ => Err("unknown field (models, aliases, rpm, rpd, tokens_per_day, projects)".to_string()),
            };
            read.map_err(|problem| fail(field, &problem))?;
        }
        Ok(policy)
    }

    /// `label`'s policy in `all`, one JSON object of policies by label (Workers' variable
    /// `CLIENT_POLICIES`); `None` if it names none for `label`. Only that label's policy is
    /// parsed: another label's, however broken or deeply nested, is skipped unread (serde_json
    /// steps over it without recursing), so one client's bad policy fails that client only.
    pub fn in_all(all: &str, label: &str) -> Result<Option<Policy>, PolicyError> {
        let policies: BTreeMap<String, &RawValue> = serde_json::from_str(all).map_err(|e| PolicyError {
            label: label.to_string(),
            field: "(all policies)".to_string(),
            problem: format!("not a JSON object of policies by label: {e}"),
        })?;
        policies.get(label).map(|raw| Policy::parse(label, raw.get())).transpose()
    }

    /// The model `asked` is this client's alias for, if it is one.
    pub fn alias(&self, asked: &str) -> Option<&str> {
        self.aliases.get(normalize_model(asked)).map(String::as_str)
    }

    /// The Gemini model a request for `asked` uses: its alias applied, then the allow-list
    /// checked (403 naming the model the client asked for).
    pub fn model(&self, asked: &str) -> Result<String, ErrorReply> {
        let asked = normalize_model(asked);
        let model = self.aliases.get(asked).map_or(asked, String::as_str);
        if self.allows(model) {
            Ok(model.to_string())
        } else {
            Err(ErrorReply::model_not_allowed(asked))
        }
    }

    /// The request `route` with `body`, whose model (from its path, or from its body:
    /// `facts`) is resolved: an alias applied where the model is named, the allow-list checked
    /// — for that model and for every other model or agent the request names
    /// ([`RequestFacts`]: inner requests, an interaction's `agent`).
    pub fn apply(&self, route: &Route, body: &[u8], facts: &RequestFacts) -> Result<Applied, ErrorReply> {
        for named in facts.inner_models.iter().chain(&facts.agent) {
            self.model(named)?;
        }
        // A daily token limit holds only if every token is counted: what generates tokens the
        // proxy cannot count as the answer passes is refused to such a client.
        if self.limits.tokens_per_day.is_some() && route.tokens_unknown(facts) {
            return Err(ErrorReply::new(
                403,
                "not_metered",
                "This client token has a daily token limit, and this request's tokens cannot be counted as its \
                 answer passes (a batch, a background interaction, a native embedding, a video, an image). \
                 Use generateContent, streamGenerateContent, chat completions or /v1/embeddings.",
            ));
        }
        if route.lists_models() && route.is_native() && self.restricts() {
            return Ok(Applied { query: Some(WHOLE_MODEL_LIST), ..Applied::default() });
        }
        let in_path = route.named_model();
        let Some(asked) = in_path.or(facts.model.as_deref()) else { return Ok(Applied::default()) };
        let asked = normalize_model(asked);
        let model = self.model(asked)?;
        if model == asked {
            return Ok(Applied { model: Some(model), ..Applied::default() });
        }
        let relabel = Some(Relabel::new(&model, asked));
        if in_path.is_some() {
            let route = Some(route.with_model(&model));
            return Ok(Applied { route, model: Some(model), relabel, ..Applied::default() });
        }
        let body = Some(with_body_model(body, &model)?);
        Ok(Applied { body, model: Some(model), relabel, ..Applied::default() })
    }

    /// May the client use `model` (a Gemini model, `models/` prefix or not)?
    pub fn allows(&self, model: &str) -> bool {
        let model = normalize_model(model);
        self.models.as_ref().is_none_or(|allowed| allowed.iter().any(|pattern| matches(pattern, model)))
    }

    /// Does this policy change anything about a request beyond its limits?
    pub fn restricts(&self) -> bool {
        self.models.is_some() || !self.aliases.is_empty() || self.projects.is_some()
    }

    /// A model list (OpenAI's `data`, Google's `models`) keeping only the models this client
    /// may use, plus an entry for each alias; `None` if the body is not such a list. A native
    /// list was asked whole ([`Applied::query`]): it has no next page.
    pub fn model_list(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut list: Map<String, Value> = serde_json::from_slice(body).ok()?;
        list.remove("nextPageToken");
        let (field, name_of) = if list.contains_key("data") { ("data", "id") } else { ("models", "name") };
        let Some(Value::Array(entries)) = list.get_mut(field) else { return None };
        entries.retain(|entry| entry.get(name_of).and_then(Value::as_str).is_some_and(|name| self.allows(name)));
        for (alias, target) in &self.aliases {
            let named = entries.iter().find(|e| {
                e.get(name_of).and_then(Value::as_str).is_some_and(|n| normalize_model(n) == target.as_str())
            });
            if let Some(mut entry) = named.cloned() {
                let name = if field == "models" { format!("models/{alias}") } else { alias.clone() };
                entry[name_of] = Value::String(name);
                entries.push(entry);
            }
        }
        serde_json::to_vec(&list).ok()
    }
}

/// `body` (a JSON object) with its `model` field set to `model` (`models/` kept if it had it).
fn with_body_model(body: &[u8], model: &str) -> Result<Vec<u8>, ErrorReply> {
    let invalid = || ErrorReply::bad_request("invalid_json", "Request body is not a JSON object.");
    let mut object: Map<String, Value> = serde_json::from_slice(body).map_err(|_| invalid())?;
    let prefixed = object.get("model").and_then(Value::as_str).is_some_and(|m| m.starts_with("models/"));
    let name = if prefixed { format!("models/{model}") } else { model.to_string() };
    object.insert("model".to_string(), Value::String(name));
    serde_json::to_vec(&object).map_err(|_| invalid())
}

/// Is `key` in one of `projects` (`None`: any key)? A key with no declared project is in none.
pub(crate) fn in_projects(projects: Option<&[String]>, key: &ApiKey<'_>) -> bool {
    match (projects, Bucket::of(key)) {
        (None, _) => true,
        (Some(projects), Bucket::Project(project)) => projects.iter().any(|p| p == project),
        (Some(_), Bucket::Key(_)) => false,
    }
}

/// `pattern` is an exact name or `prefix*`.
fn matches(pattern: &str, model: &str) -> bool {
    let pattern = normalize_model(pattern);
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => model == pattern,
    }
}

/// A list of names (model patterns, or project names).
fn names(value: &Value, models: bool) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else { return Err("not a list of strings".to_string()) };
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(name) if models && !valid_model(normalize_model(name).trim_end_matches('*')) => {
                Err(format!("{name:?} is not a model name or `prefix*`"))
            }
            Some("") => Err("an empty name".to_string()),
            Some(name) => Ok(name.to_string()),
            None => Err("not a list of strings".to_string()),
        })
        .collect()
}

fn aliases(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = value else { return Err("not an object of model names".to_string()) };
    map.iter()
        .map(|(alias, target)| {
            let target = target.as_str().map(normalize_model).unwrap_or_default();
            if !valid_model(normalize_model(alias)) || !valid_model(target) {
                return Err(format!("{alias:?} → {target:?}: both must be model names"));
            }
            Ok((normalize_model(alias).to_string(), target.to_string()))
        })
        .collect()
}

fn limit(value: &Value) -> Result<u64, String> {
    value.as_u64().filter(|&n| n > 0).ok_or_else(|| "not a whole number above 0".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::keys::KeyPool;

    #[test]
    fn a_policy_reads_every_field() {
        let policy = Policy::parse(
            "app",
            r#"{"models":["gemini-3.5-flash","gemini-3.1-*"],"aliases":{"gpt-4o":"gemini-3.5-flash"},
                "rpm":5,"rpd":100,"tokens_per_day":1000,"projects":["team-a"]}"#,
        )
        .expect("reads");
        assert_eq!(policy.limits, Limits { rpm: Some(5), rpd: Some(100), tokens_per_day: Some(1000) });
        assert_eq!(policy.model("gpt-4o"), Ok("gemini-3.5-flash".to_string()));
        assert_eq!(policy.model("models/gemini-3.1-pro"), Ok("gemini-3.1-pro".to_string()));
        let refused = policy.model("gemini-2.5-pro").expect_err("403");
        assert_eq!((refused.status, refused.code.as_str()), (403, "model_not_allowed"));
        assert!(refused.message.contains("gemini-2.5-pro"));
        assert_eq!(Policy::parse("x", "{}"), Ok(Policy::default()));
    }

    #[test]
    fn a_bad_policy_names_its_label_and_field() {
        for (text, field) in [
            ("[1]", "(policy)"),
            ("{", "(policy)"),
            (r#"{"rpm":"many"}"#, "rpm"),
            (r#"{"rpm":0}"#, "rpm"),
            (r#"{"models":"gemini"}"#, "models"),
            (r#"{"models":["a/b"]}"#, "models"),
            (r#"{"aliases":{"x":"../y"}}"#, "aliases"),
            (r#"{"modles":[]}"#, "modles"),
        ] {
            let e = Policy::parse("team", text).expect_err(text);
            assert_eq!((e.label.as_str(), e.field.as_str()), ("team", field), "{text}");
            assert!(e.to_string().starts_with("client_policies.team: "), "{e}");
        }
    }

    #[test]
    fn an_alias_rewrites_the_path_or_the_body_and_the_answer() {
        let policy = Policy::parse("t", r#"{"models":["gemini-3.5-*"],"aliases":{"gpt-4o":"gemini-3.5-flash"}}"#)
            .expect("reads");
        let native =
            crate::client::route::route("POST", "/v1beta/models/gpt-4o:generateContent", None, true).expect("routes");
        let applied = policy.apply(&native, b"{}", &native.facts(b"{}").expect("reads")).expect("allowed");
        let path = applied.route.and_then(|r| r.upstream_path());
        assert_eq!(path.as_deref(), Some("/v1beta/models/gemini-3.5-flash:generateContent"));
        let mut relabel = applied.relabel.expect("relabels");
        assert_eq!(relabel.feed(br#"{"modelVersion":"gemini-3.5-flash"}"#), br#"{"modelVersion":"gpt-4o"}"#);
        let chat = crate::client::route::route("POST", "/v1/chat/completions", None, false).expect("routes");
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"gpt-4o"}]}"#;
        let applied = policy.apply(&chat, body, &chat.facts(body).expect("reads")).expect("allowed");
        let sent: Value = serde_json::from_slice(&applied.body.expect("rewritten")).expect("json");
        assert_eq!(
            (sent["model"].as_str(), sent["messages"][0]["content"].as_str()),
            (Some("gemini-3.5-flash"), Some("gpt-4o"))
        );
        assert_eq!(applied.model.as_deref(), Some("gemini-3.5-flash"));
        let apply = |route: &Route, body: &[u8]| policy.apply(route, body, &route.facts(body).expect("reads"));
        let plain = apply(&chat, br#"{"model":"gemini-3.5-pro"}"#).expect("allowed");
        assert!(plain.body.is_none() && plain.relabel.is_none() && plain.route.is_none());
        let refused = apply(&chat, br#"{"model":"gemini-2.5-pro"}"#);
        assert_eq!(refused.map(|_| ()).map_err(|e| e.status), Err(403));
        // Every model a body names passes the allow-list: an agent, inner requests.
        let route = |path: &str| crate::client::route::route("POST", path, None, true).expect("routes");
        let interactions = route("/v1beta/interactions");
        for body in [
            &br#"{"agent":"deep-research-pro-preview-12-2025","input":"x"}"#[..],
            br#"{"model":"gemini-3.5-flash","agent":"deep-research-pro-preview-12-2025"}"#,
        ] {
            assert_eq!(apply(&interactions, body).map(|_| ()).map_err(|e| e.status), Err(403));
        }
        let count = route("/v1beta/models/gemini-3.5-flash:countTokens");
        let inner = br#"{"generateContentRequest":{"model":"models/gemini-2.5-pro","contents":[]}}"#;
        assert_eq!(apply(&count, inner).map(|_| ()).map_err(|e| e.status), Err(403));
        let embed = route("/v1beta/models/gemini-3.5-flash:batchEmbedContents");
        let inner = br#"{"requests":[{"model":"models/gemini-3.5-flash"},{"model":"models/text-embedding-9"}]}"#;
        assert_eq!(apply(&embed, inner).map(|_| ()).map_err(|e| e.status), Err(403));
        let batch = route("/v1beta/models/gemini-3.5-flash:batchGenerateContent");
        let inner = br#"{"batch":{"inputConfig":{"requests":{"requests":[{"request":{"model":"gemini-9-ultra"}}]}}}}"#;
        assert_eq!(apply(&batch, inner).map(|_| ()).map_err(|e| e.status), Err(403));
        let allowed = br#"{"requests":[{"model":"models/gemini-3.5-flash"}]}"#;
        assert!(apply(&embed, allowed).is_ok());
    }

    #[test]
    fn a_client_with_a_token_limit_makes_only_requests_whose_tokens_are_counted() {
        let policy = Policy::parse("t", r#"{"tokens_per_day":1000}"#).expect("reads");
        let status = |method: &str, path: &str, body: &[u8]| {
            let route = crate::client::route::route(method, path, None, true).expect("routes");
            policy.apply(&route, body, &route.facts(body).expect("reads")).map(|_| ()).map_err(|e| (e.status, e.code))
        };
        let refused = Err((403, "not_metered".to_string()));
        assert_eq!(status("POST", "/v1beta/models/m:batchGenerateContent", b"{}"), refused);
        assert_eq!(status("POST", "/v1beta/models/m:embedContent", b"{}"), refused);
        assert_eq!(status("POST", "/v1beta/models/m:batchEmbedContents", b"{}"), refused);
        assert_eq!(status("POST", "/v1beta/models/veo:predictLongRunning", b"{}"), refused);
        assert_eq!(status("POST", "/v1beta/interactions", br#"{"model":"m","background":true}"#), refused);
        assert_eq!(status("POST", "/v1/images/generations", br#"{"model":"imagen"}"#), refused);
        for (method, path, body) in [
            ("POST", "/v1beta/models/m:generateContent", &b"{}"[..]),
            ("POST", "/v1beta/models/m:streamGenerateContent", b"{}"),
            ("POST", "/v1beta/models/m:countTokens", b"{}"),
            ("POST", "/v1beta/interactions", br#"{"model":"m"}"#),
            ("POST", "/v1/chat/completions", br#"{"model":"m"}"#),
            ("POST", "/v1/embeddings", br#"{"model":"m"}"#),
            ("GET", "/v1beta/files", b""),
        ] {
            assert_eq!(status(method, path, body), Ok(()), "{path}");
        }
        assert!(Policy::default()
            .apply(
                &crate::client::route::route("POST", "/v1beta/models/m:embedContent", None, true).expect("routes"),
                b"{}",
                &RequestFacts::default()
            )
            .is_ok());
    }

    #[test]
    fn one_labels_policy_is_read_out_of_all_of_them() {
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let all = format!(r#"{{"broken": {{"models": {deep}}}, "app": {{"rpm": 5}}, "also broken": {{"rpm": "x"}}}}"#);
        assert_eq!(Policy::in_all(&all, "app").map(|p| p.map(|p| p.limits.rpm)), Ok(Some(Some(5))));
        assert_eq!(Policy::in_all(&all, "nobody"), Ok(None));
        assert_eq!(Policy::in_all(&all, "also broken").map_err(|e| e.field), Err("rpm".to_string()));
        assert!(Policy::in_all(&all, "broken").is_err());
        assert!(Policy::in_all("[1]", "app").is_err());
    }

    #[test]
    fn projects_fence_the_keys() {
        let pool =
            KeyPool::new(["team-a:AIzaSyA0000000000000000000000000000001\nAIzaSyB0000000000000000000000000000002"]);
        let keys: Vec<_> = pool.iter().collect();
        let policy = Policy::parse("t", r#"{"projects":["team-a"]}"#).expect("reads");
        let projects = policy.projects.as_deref();
        assert!(in_projects(projects, &keys[0]) && !in_projects(projects, &keys[1]));
        assert!(in_projects(Policy::default().projects.as_deref(), &keys[1]));
    }

    #[test]
    fn model_lists_keep_what_the_client_may_use_and_its_aliases() {
        let policy = Policy::parse("t", r#"{"models":["gemini-3.5-*"],"aliases":{"gpt-4o":"gemini-3.5-flash"}}"#)
            .expect("reads");
        let openai = br#"{"object":"list","data":[{"id":"gemini-3.5-flash"},{"id":"gemini-2.5-pro"}]}"#;
        let kept: Value = serde_json::from_slice(&policy.model_list(openai).expect("a list")).expect("json");
        let ids: Vec<&str> = kept["data"].as_array().expect("data").iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids, ["gemini-3.5-flash", "gpt-4o"]);
        let native = br#"{"models":[{"name":"models/gemini-3.5-flash"},{"name":"models/gemini-2.5-pro"}]}"#;
        let kept: Value = serde_json::from_slice(&policy.model_list(native).expect("a list")).expect("json");
        let names: Vec<&str> =
            kept["models"].as_array().expect("models").iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(names, ["models/gemini-3.5-flash", "models/gpt-4o"]);
        assert_eq!(policy.model_list(b"not json"), None);
    }
}
