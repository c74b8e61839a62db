//! Affinity: each of Google's stateful resources — an interaction, an uploaded file, a cached
//! content, an upload session — lives in the Google project of the key that made it, and only
//! keys of that project can use it. A pool that picks any key would send a follow-up to another
//! project most of the time, and Google would answer 403 or 404.
//!
//! Which resources a request **names** — in its path (`files/{id}`, `interactions/{id}`, …)
//! and in its decoded body (`fileData.fileUri`, `cachedContent`, `previous_interaction_id`) —
//! is read with the rest of what a request says ([`crate::client::route::Route::facts`]).
//! Which resource a success makes is the route's to say
//! ([`Route::makes`](crate::client::route::Route::makes)), and how its name is spotted in
//! Google's answer the spotter's ([`crate::client::spot`], [`crate::client::upload`]) — or, for
//! a batch or an operation, the file Google generated that the answer names, which the proxy
//! **adopts**. This module owns:
//! - the **record** kept of each resource made through the proxy: its bucket (the project, or
//!   the key alone when none is declared), the part of the pool its key is in, and the client
//!   that made it ([`Record`]), stored as one item per resource ([`Resource::item`]) for as
//!   long as Google keeps the resource ([`Kind::ttl_secs`]);
//! - the rule from records to a **pin** ([`pin`]): every named resource must have a record
//!   made by the caller (admins: by anyone) — else 404, the same answer for a missing one and
//!   another client's — and all of them must live in one bucket — else 400. A pinned request
//!   tries keys of that bucket only ([`crate::decide::attempts::Attempts::pin`]); when they are
//!   all cooling, it gets a 429 with `Retry-After`, never a key of another project.
//!
//! A resource the proxy has no record of (made before the proxy, or by a key outside it, or
//! its record expired) is not found: the proxy cannot know whose it is or which project holds
//! it. A request naming no resource pays nothing here: no store read.

use crate::client::auth::Caller;
use crate::client::envelope::ErrorReply;
use crate::google::resource::{Kind, Resource};
use crate::pool::keys::ApiKey;
use crate::pool::names::{escape, unescape, Pinned};

/// What the proxy keeps about a resource it saw made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The bucket that holds it.
    pub bucket: Pinned,
    /// The part of the pool the key that made it is in (where a request starts looking).
    pub part: usize,
    /// The label of the client that made it.
    pub client: String,
}

impl Record {
    /// The record of a resource `key` made for `client`.
    pub fn new(key: &ApiKey<'_>, client: &str) -> Self {
        Record { bucket: Pinned::of(key), part: key.at.list, client: client.to_string() }
    }

    /// As stored: `1 <mark name> <part> <client, escaped>`.
    pub fn encode(&self) -> Vec<u8> {
        format!("1 {} {} {}", self.bucket.mark(), self.part, escape(&self.client)).into_bytes()
    }

    /// Reads a stored record back (`None`: not one [`encode`](Self::encode) wrote).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut fields = text.split(' ');
        if fields.next()? != "1" {
            return None;
        }
        let bucket = Pinned::parse(fields.next()?)?;
        let part = fields.next()?.parse().ok()?;
        let client = unescape(fields.next()?)?;
        fields.next().is_none().then_some(Record { bucket, part, client })
    }
}

/// Is `pin`'s bucket one of `projects` (`None`: any)?
pub(crate) fn within(pin: &Pin, projects: Option<&[String]>) -> bool {
    match (projects, &pin.bucket) {
        (None, _) => true,
        (Some(projects), Pinned::Project(project)) => projects.contains(project),
        (Some(_), Pinned::Key(_)) => false,
    }
}

/// Where a request is pinned: the bucket, the part to start in, and the client that owns
/// what it makes (the caller — or, for an upload session's bytes, the client that started it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The bucket every resource named lives in.
    pub bucket: Pinned,
    /// The part of the pool to start in.
    pub part: usize,
    /// The owner of what this request makes.
    pub owner: String,
}

/// The pin for a request that names `looked` resources (each with its record, if the store
/// had one), made by `caller`: or the error it gets instead.
pub(crate) fn pin(caller: &Caller, looked: &[(Resource, Option<Record>)]) -> Result<Pin, ErrorReply> {
    let mut pin: Option<(Pin, &Resource)> = None;
    for (resource, record) in looked {
        // An upload session's bytes carry no token: the session is the credential.
        let mine = |r: &Record| resource.kind == Kind::Upload || caller.admin || r.client == caller.label;
        let Some(record) = record.as_ref().filter(|r| mine(r)) else {
            return Err(not_found(resource));
        };
        match &pin {
            Some((first, named)) if first.bucket != record.bucket => return Err(two_projects(named, resource)),
            Some(_) => {}
            None => {
                let owner = if resource.kind == Kind::Upload { &record.client } else { &caller.label };
                let first = Pin { bucket: record.bucket.clone(), part: record.part, owner: owner.clone() };
                pin = Some((first, resource));
            }
        }
    }
    pin.map(|(pin, _)| pin).ok_or_else(|| ErrorReply::new(500, "internal", "No resource to pin to."))
}

/// 404: no such resource — or not the caller's (the same answer, so ids cannot be probed).
pub(crate) fn not_found(resource: &Resource) -> ErrorReply {
    ErrorReply::new(404, "not_found", format!("Requested entity was not found: {}.", resource.name()))
}

/// 409: a resource of this name exists already (made through the proxy, maybe in another
/// project of the pool): a client that chooses a file's name must choose one not taken.
pub(crate) fn already_exists(resource: &Resource) -> ErrorReply {
    ErrorReply::new(
        409,
        "already_exists",
        format!("{} already exists in this pool; choose another name.", resource.name()),
    )
}

fn two_projects(first: &Resource, second: &Resource) -> ErrorReply {
    ErrorReply::bad_request(
        "resources_of_two_projects",
        format!(
            "This request names {} and {}, which live in different Google projects of the pool; \
             a request can use the resources of one project only.",
            first.name(),
            second.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::keys::KeyPool;

    #[test]
    fn records_read_back() {
        let list = "team a:AIzaSyA0000000000000000000000000000000001\nAIzaSyB0000000000000000000000000000000002";
        let pool = KeyPool::new([list.as_bytes()]);
        for key in pool.iter() {
            for client in ["app", "my app", "名前", ""] {
                let record = Record::new(&key, client);
                assert_eq!(Record::decode(&record.encode()), Some(record.clone()));
                assert!(record.bucket.holds(&key));
            }
        }
        assert_eq!(Record::decode(b"2 k:00 0 a"), None);
        assert_eq!(Record::decode(b"1 k:0000000000000001 0 a extra"), None);
    }

    fn caller(label: &str, admin: bool) -> Caller {
        Caller { label: label.into(), admin }
    }

    #[test]
    fn pins_to_the_one_project_of_the_callers_resources() {
        let file = Resource::new(Kind::File, "f").expect("id");
        let cache = Resource::new(Kind::Cache, "c").expect("id");
        let mine = Record { bucket: Pinned::Project("p1".into()), part: 1, client: "a".into() };
        let other_project = Record { bucket: Pinned::Project("p2".into()), ..mine.clone() };
        let pin = pin(&caller("a", false), &[(file.clone(), Some(mine.clone())), (cache.clone(), Some(mine.clone()))]);
        assert_eq!(pin.map(|p| (p.bucket, p.part)), Ok((Pinned::Project("p1".into()), 1)));
        let foreign = super::pin(&caller("b", false), &[(file.clone(), Some(mine.clone()))]).expect_err("404");
        let missing = super::pin(&caller("b", false), &[(file.clone(), None)]).expect_err("404");
        assert_eq!((foreign.status, &foreign.message), (missing.status, &missing.message));
        assert!(super::pin(&caller("root", true), &[(file.clone(), Some(mine.clone()))]).is_ok());
        let mixed = super::pin(&caller("a", false), &[(file, Some(mine)), (cache, Some(other_project))]);
        assert_eq!(mixed.map_err(|e| e.status), Err(400));
    }
}
