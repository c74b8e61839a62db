//! Lists of stateful resources (`GET files`, `GET cachedContents`, `GET batches`) through a
//! pool: Google lists one project's resources per call, and a client's live in several. A
//! [`Listing`] asks one key of each project that holds something of the caller's, side by
//! side, and merges the pages, keeping only the caller's own resources (an admin's listing
//! asks every project of the pool and keeps everything).
//!
//! Which projects hold the caller's resources, and which resources are the caller's, comes
//! from the caller's **index** ([`index_item`]): one line per resource it made, appended when
//! the record is stored ([`index_line`]). A resource Google has deleted drops out of Google's
//! lists, whatever the index says. Each project's first page (up to [`PAGE_SIZE`] entries) is
//! read; the merged list carries no `nextPageToken`.
//!
//! Steps: `Look` (the caller's index; clients only) → `Fetch` the parts holding those
//! projects (an admin: every part) → `Send` one key per project (at most
//! [`MAX_UPSTREAM_REQUESTS`](crate::decide::attempts::MAX_UPSTREAM_REQUESTS)) → `Done` with the
//! merged list.

use crate::client::auth::Caller;
use crate::decide::affinity::{Kind, Pinned};
use crate::decide::attempts::MAX_UPSTREAM_REQUESTS;
use crate::decide::flow::{Answer, Machine, Step};
use crate::operator::settings::CoolingSettings;
use crate::pool::keys::{ApiKey, KeyPool};
use crate::pool::names::escape;
use crate::shared::marks::Marks;
use crate::shared::state::Item;
use serde_json::{json, Value};

/// Entries asked of each project (Google's largest page for files).
pub(crate) const PAGE_SIZE: usize = 100;

/// The store item listing what `client` made (`own/<client, escaped>`).
pub(crate) fn index_item(client: &str) -> String {
    format!("own/{}", escape(client))
}

/// The index line for a resource of `kind` with `id` in `bucket`, part `part`.
pub(crate) fn index_line(kind: Kind, id: &str, bucket: &Pinned, part: usize) -> String {
    format!("{} {id} {} {part}\n", kind.collection(), bucket.mark())
}

/// The field of Google's list answer that holds the entries (batches are listed as their
/// operations).
fn list_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Batch => "operations",
        other => other.collection(),
    }
}

/// How a listing ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    /// The merged list, as Google's JSON (`{"files": [...]}`).
    Answer(Vec<u8>),
}

/// What a client's index says about one kind of resource.
#[derive(Debug, Clone, Default, PartialEq)]
struct Index {
    /// The ids of the client's resources.
    ids: Vec<String>,
    /// The projects holding them, each with the part of the pool it is in.
    buckets: Vec<(Pinned, usize)>,
}

/// One listing. See the module documentation for its steps.
pub struct Listing<'a> {
    kind: Kind,
    caller: Caller,
    lists: Vec<Option<&'a [u8]>>,
    /// The caller's index; `None` until it is read (an admin's listing needs none).
    index: Option<Index>,
    sent: bool,
    merged: Option<Vec<Value>>,
}

impl<'a> Listing<'a> {
    /// A listing of `kind` for `caller` over a pool of `parts` key lists.
    pub fn new(kind: Kind, caller: &Caller, parts: usize) -> Self {
        let index = caller.admin.then(Index::default);
        Listing { kind, caller: caller.clone(), lists: vec![None; parts.max(1)], index, sent: false, merged: None }
    }

    /// The parts to read: those the caller's projects are in (an admin's: all).
    fn parts_needed(&self) -> Vec<usize> {
        match (&self.index, self.caller.admin) {
            (_, true) => (0..self.lists.len()).collect(),
            (Some(index), false) => {
                let mut parts: Vec<usize> =
                    index.buckets.iter().map(|(_, p)| (*p).min(self.lists.len().saturating_sub(1))).collect();
                parts.sort_unstable();
                parts.dedup();
                parts
            }
            (None, false) => Vec::new(),
        }
    }

    /// One key per project to ask: an admin's every project; a client's, those in its index.
    fn keys(&self) -> Vec<ApiKey<'a>> {
        let mut pool = KeyPool::with_parts(self.lists.len());
        for (part, bytes) in self.lists.iter().enumerate() {
            if let Some(bytes) = bytes {
                pool.add(part, bytes);
            }
        }
        let mut keys: Vec<ApiKey<'a>> = Vec::new();
        let mut seen: Vec<Pinned> = Vec::new();
        for key in pool.distinct() {
            let bucket = Pinned::of(&key);
            let wanted = self.caller.admin
                || self.index.as_ref().is_some_and(|index| index.buckets.iter().any(|(b, _)| *b == bucket));
            if wanted && !seen.contains(&bucket) {
                seen.push(bucket);
                keys.push(key);
            }
        }
        keys.truncate(MAX_UPSTREAM_REQUESTS);
        keys
    }

    fn answer(&self) -> Vec<u8> {
        let field = list_field(self.kind);
        let items = self.merged.clone().unwrap_or_default();
        serde_json::to_vec(&json!({ field: items })).unwrap_or_default()
    }
}

impl<'a> Machine<'a> for Listing<'a> {
    type Done = Listed;

    fn step(&mut self, _now_ms: u64) -> Step<'a, Listed> {
        if self.merged.is_some() {
            return Step::Done(Listed::Answer(self.answer()));
        }
        if self.index.is_none() {
            return Step::Look(vec![index_item(&self.caller.label)]);
        }
        if let Some(part) = self.parts_needed().into_iter().find(|&p| self.lists[p].is_none()) {
            return Step::Fetch(part);
        }
        let keys = if self.sent { Vec::new() } else { self.keys() };
        if keys.is_empty() {
            self.merged = Some(Vec::new());
            return Step::Done(Listed::Answer(self.answer()));
        }
        self.sent = true;
        Step::Send(keys)
    }

    fn fetched(&mut self, part: usize, bytes: &'a [u8]) {
        if let Some(slot) = self.lists.get_mut(part) {
            *slot = Some(bytes);
        }
    }

    fn read(&mut self, _items: Vec<(Item, Marks)>) {}

    fn configured(&mut self, _cooling: &CoolingSettings) {}

    fn answered(&mut self, answers: Vec<Answer>) {
        let field = list_field(self.kind);
        let mut merged = Vec::new();
        for answer in answers {
            let Answer::Page(body) = answer else { continue };
            let Ok(page) = serde_json::from_slice::<Value>(&body) else { continue };
            let Some(entries) = page.get(field).and_then(Value::as_array) else { continue };
            merged.extend(entries.iter().filter(|entry| self.mine(entry)).cloned());
        }
        self.merged = Some(merged);
    }

    fn written(&mut self) {}

    fn refused(&mut self, _writes: Vec<usize>) {}

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        let text = records.into_iter().next().flatten().unwrap_or_default();
        self.index = Some(parse_index(self.kind, &String::from_utf8_lossy(&text)));
    }
}

impl Listing<'_> {
    /// Is this entry of Google's page the caller's? (An admin's: all.)
    fn mine(&self, entry: &Value) -> bool {
        if self.caller.admin {
            return true;
        }
        let Some(name) = entry.get("name").and_then(Value::as_str) else { return false };
        let id = name.rsplit('/').next().unwrap_or(name);
        self.index.as_ref().is_some_and(|index| index.ids.iter().any(|own| own == id))
    }
}

/// What an index's text says about `kind`.
fn parse_index(kind: Kind, text: &str) -> Index {
    let mut ids = Vec::new();
    let mut buckets: Vec<(Pinned, usize)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [collection, id, mark, part] = fields[..] else { continue };
        let (Some(bucket), Ok(part)) = (Pinned::parse(mark), part.parse::<usize>()) else { continue };
        if collection != kind.collection() {
            continue;
        }
        ids.push(id.to_string());
        if !buckets.iter().any(|(b, _)| *b == bucket) {
            buckets.push((bucket, part));
        }
    }
    Index { ids, buckets }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::keys::Fingerprint;

    #[test]
    fn an_index_names_the_callers_resources_and_their_projects() {
        let a = Pinned::Project("team a".into());
        let k = Pinned::Key(Fingerprint(7));
        let text = [
            index_line(Kind::File, "f1", &a, 0),
            index_line(Kind::Cache, "c1", &a, 0),
            index_line(Kind::File, "f2", &k, 1),
            index_line(Kind::File, "f3", &a, 0),
            "garbage line\n".to_string(),
        ]
        .concat();
        let index = parse_index(Kind::File, &text);
        assert_eq!(index.ids, ["f1", "f2", "f3"]);
        assert_eq!(index.buckets, [(a, 0), (k, 1)]);
    }
}
