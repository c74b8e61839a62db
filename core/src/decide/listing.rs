//! Lists of stateful resources (`GET files`, `GET cachedContents`, `GET batches`) through a
//! pool: Google lists one project's resources per call, and a client's live in several. A
//! [`Listing`] asks one key of each project that holds something of the caller's, side by
//! side, and merges the pages, keeping only the caller's own resources (an admin's listing
//! asks every project of the pool and keeps everything).
//!
//! Which projects hold the caller's resources, and which resources are the caller's, comes
//! from the caller's **index** ([`index_item`]): one line per resource it made, appended when
//! the record is stored ([`crate::state::index`]), with the resource's end (its record's); a
//! DELETE the proxy passed appends a removal line. An entry counts as the caller's only
//! in the project its line names. A resource Google has deleted drops out of Google's lists,
//! whatever the index says. Each project's first page (up to [`PAGE_SIZE`](crate::client::route::PAGE_SIZE) entries) is read;
//! the merged list carries no `nextPageToken`.
//!
//! The index is bounded: a writer that appends to it reads it back now and then and compacts it
//! ([`crate::state::index::compacted`]) — lines of resources that ended or were deleted go, and past
//! [`MAX_INDEX_LINES`](crate::state::index::MAX_INDEX_LINES) the oldest go (those resources are still reachable by name, only no
//! longer listed).
//!
//! Steps: `Look` (the caller's index; clients only) → `Fetch` the parts holding those
//! projects (an admin: every part) → `Send` one key per project (at most
//! [`MAX_UPSTREAM_REQUESTS`](crate::decide::attempts::MAX_UPSTREAM_REQUESTS)) → `Done` with the
//! merged list.

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::decide::attempts::MAX_UPSTREAM_REQUESTS;
use crate::decide::machine::{Answer, Machine, Step};
use crate::google::resource::Kind;
use crate::pool::keys::{ApiKey, KeyPool};
use crate::pool::names::Pinned;
use crate::settings::CoolingSettings;
use crate::state::index::{index_item, live};
use crate::state::items::Item;
use crate::state::marks::Marks;
use serde_json::{json, Value};
use std::collections::HashSet;

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
    /// The client's own limit refused the listing ([`crate::decide::limits::Gated`]).
    Error(ErrorReply),
}

/// What a client's index says about one kind of resource.
#[derive(Debug, Clone, Default, PartialEq)]
struct Index {
    /// The client's resources: each id with the project holding it.
    owned: HashSet<(String, Pinned)>,
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
    /// The project of each key asked, in the order sent (its page is checked against it).
    asked: Option<Vec<Pinned>>,
    merged: Option<Vec<Value>>,
    now_secs: u64,
}

impl<'a> Listing<'a> {
    /// A listing of `kind` for `caller` over a pool of `parts` key lists, at `now_ms`.
    pub fn new(kind: Kind, caller: &Caller, parts: usize, now_ms: u64) -> Self {
        let index = caller.admin.then(Index::default);
        let lists = vec![None; parts.max(1)];
        Listing { kind, caller: caller.clone(), lists, index, asked: None, merged: None, now_secs: now_ms / 1000 }
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
        let keys = if self.asked.is_some() { Vec::new() } else { self.keys() };
        if keys.is_empty() {
            self.merged = Some(Vec::new());
            return Step::Done(Listed::Answer(self.answer()));
        }
        self.asked = Some(keys.iter().map(Pinned::of).collect());
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
        let asked = self.asked.clone().unwrap_or_default();
        for (answer, bucket) in answers.into_iter().zip(&asked) {
            let Answer::Page(body) = answer else { continue };
            let Ok(page) = serde_json::from_slice::<Value>(&body) else { continue };
            let Some(entries) = page.get(field).and_then(Value::as_array) else { continue };
            merged.extend(entries.iter().filter(|entry| self.mine(entry, bucket)).cloned());
        }
        self.merged = Some(merged);
    }

    fn written(&mut self) {}

    fn refused(&mut self, _writes: Vec<usize>) {}

    fn looked(&mut self, records: Vec<Option<Vec<u8>>>) {
        let text = records.into_iter().next().flatten().unwrap_or_default();
        self.index = Some(parse_index(self.kind, &String::from_utf8_lossy(&text), self.now_secs));
    }
}

impl Listing<'_> {
    /// Is this entry of a page from `bucket` the caller's — its id, in that project? (An
    /// admin's: all.)
    fn mine(&self, entry: &Value, bucket: &Pinned) -> bool {
        if self.caller.admin {
            return true;
        }
        let Some(name) = entry.get("name").and_then(Value::as_str) else { return false };
        let id = name.rsplit('/').next().unwrap_or(name);
        self.index.as_ref().is_some_and(|index| index.owned.contains(&(id.to_string(), bucket.clone())))
    }
}

/// What an index's text says about `kind`, at `now_secs`.
fn parse_index(kind: Kind, text: &str, now_secs: u64) -> Index {
    let mut index = Index::default();
    for line in live(text, now_secs).into_iter().filter(|l| l.collection == kind.collection()) {
        if !index.buckets.iter().any(|(b, _)| *b == line.bucket) {
            index.buckets.push((line.bucket.clone(), line.part));
        }
        index.owned.insert((line.id.to_string(), line.bucket));
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::keys::Fingerprint;
    use crate::state::index::{index_line, removal_line};

    #[test]
    fn an_index_names_the_callers_live_resources_and_their_projects() {
        let a = Pinned::Project("team a".into());
        let k = Pinned::Key(Fingerprint(7));
        let text = [
            index_line(Kind::File, "f1", &a, 0, 100),
            index_line(Kind::Cache, "c1", &a, 0, 100),
            index_line(Kind::File, "f2", &k, 1, 100),
            index_line(Kind::File, "f3", &a, 0, 100),
            index_line(Kind::File, "gone", &a, 0, 100),
            removal_line(Kind::File, "gone"),
            index_line(Kind::File, "old", &k, 1, 10),
            "garbage line\n".to_string(),
            "files legacy p:team%20a 0\n".to_string(),
        ]
        .concat();
        let index = parse_index(Kind::File, &text, 50);
        let mut owned: Vec<&str> = index.owned.iter().map(|(id, _)| id.as_str()).collect();
        owned.sort_unstable();
        assert_eq!(owned, ["f1", "f2", "f3", "legacy"]);
        assert!(
            index.owned.contains(&("f2".to_string(), k.clone()))
                && !index.owned.contains(&("f2".to_string(), a.clone()))
        );
        assert_eq!(index.buckets, [(a, 0), (k, 1)]);
    }
}
