//! Google's stateful resources by kind and id: what an id may be (it goes into a path and a
//! store item's name), each kind's collection and how long Google keeps it, and how a request
//! writes a reference to one (`files/abc`, Google's URI for it, `cachedContents/c`, an
//! interaction's bare id). What the proxy does with them — records, pins, adoption — is
//! [`crate::decide::affinity`]'s.

/// The kinds of stateful resource the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `interactions/{id}` (Google keeps stored interactions up to 55 days on paid tiers).
    Interaction,
    /// `files/{id}` (48 hours).
    File,
    /// `cachedContents/{id}` (until its `expireTime`, which a client may extend).
    Cache,
    /// An upload session, `uploads/{upload_id}` (Google's upload URLs last about a week; a file
    /// is uploaded in minutes).
    Upload,
    /// `batches/{id}` (a batch runs up to 24 hours; its results are kept for days after).
    Batch,
    /// A long-running operation, `models/{m}/operations/{id}` (a generated video is kept two
    /// days).
    Operation,
}

impl Kind {
    /// The collection in the resource's name.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Interaction => "interactions",
            Kind::File => "files",
            Kind::Cache => "cachedContents",
            Kind::Upload => "uploads",
            Kind::Batch => "batches",
            Kind::Operation => "operations",
        }
    }

    /// How long its record is kept: at least as long as Google keeps the resource. A record
    /// that outlives its resource is harmless (Google answers that it is gone).
    pub fn ttl_secs(self) -> u64 {
        const DAY: u64 = 24 * 3600;
        match self {
            Kind::Interaction => 60 * DAY,
            Kind::File => 2 * DAY,
            Kind::Cache => 30 * DAY,
            Kind::Upload | Kind::Batch | Kind::Operation => 7 * DAY,
        }
    }
}

/// One resource, by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// Its kind.
    pub kind: Kind,
    /// Its id (letters, digits, `-`, `_`, `.`).
    pub id: String,
}

impl Resource {
    /// A resource of `kind` with `id`, if the id is one Google could have made.
    pub fn new(kind: Kind, id: &str) -> Option<Self> {
        valid_id(id).then(|| Resource { kind, id: id.to_string() })
    }

    /// Google's name for it (`files/abc`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind.collection(), self.id)
    }

    /// The name of the store item holding its record (`res/files/abc`).
    pub fn item(&self) -> String {
        format!("res/{}", self.name())
    }
}

/// Is `id` a resource id as Google writes them (letters, digits, `-`, `_`, `.`; at most 256)?
/// Nothing else goes into a path or a store item's name.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && id != "."
        && id != ".."
}

/// A reference that looks like one of Google's resources but is not written the one way the
/// proxy reads it (a stray space, another letter case, an encoded slash, a path Google's host
/// would resolve otherwise): refused, never passed on unpinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// The file a reference names (`fileUri`, `uri`, `fileName`, `responsesFile`): `files/abc`, or
/// Google's URI for it (`https://generativelanguage.googleapis.com/v1beta/files/abc`, a
/// generated one's ending `:download?alt=media`). A reference to anything else — an external
/// URL, a `gs://` object, a name — is none; one that looks like a file of Google's but is not
/// written canonically is [`Unreadable`].
pub(crate) fn file_named(text: &str) -> Result<Option<Resource>, Unreadable> {
    if starts_with_ignoring_case(text.trim_start(), "files/") {
        let id = text.strip_prefix("files/").ok_or(Unreadable)?;
        return Resource::new(Kind::File, id).map(Some).ok_or(Unreadable);
    }
    let Some(path) = google_path(text) else { return Ok(None) };
    // `/{version}/files/{id}`, then `:download` and a query at most.
    let rest = path.strip_prefix('/').and_then(|p| p.split_once('/')).map(|(_, rest)| rest).ok_or(Unreadable)?;
    let id = rest.strip_prefix("files/").ok_or(Unreadable)?;
    let id = id.split_once('?').map_or(id, |(id, _)| id);
    let id = id.strip_suffix(":download").unwrap_or(id);
    Resource::new(Kind::File, id).map(Some).ok_or(Unreadable)
}

/// The cached content a reference names (`cachedContent`): `cachedContents/c`. Anything that
/// mentions the collection otherwise is [`Unreadable`].
pub(crate) fn cache_named(text: &str) -> Result<Option<Resource>, Unreadable> {
    let mentions = text.to_ascii_lowercase().contains("cachedcontents") || google_path(text).is_some();
    if !mentions {
        return Ok(None);
    }
    let id = text.strip_prefix("cachedContents/").ok_or(Unreadable)?;
    Resource::new(Kind::Cache, id).map(Some).ok_or(Unreadable)
}

/// The interaction a `previous_interaction_id` names (its bare id; empty: none).
pub(crate) fn interaction_named(text: &str) -> Result<Option<Resource>, Unreadable> {
    if text.is_empty() {
        return Ok(None);
    }
    Resource::new(Kind::Interaction, text).map(Some).ok_or(Unreadable)
}

/// The path (and query) of a URL on one of Google's API hosts (`generativelanguage.…`, any
/// letter case, with a port or a trailing dot), if `text` is one.
fn google_path(text: &str) -> Option<&str> {
    let (_, rest) = text.trim().split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = host.split_once(':').map_or(host, |(host, _)| host).trim_end_matches('.');
    starts_with_ignoring_case(host, "generativelanguage.").then_some(path)
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str) -> Result<Option<Resource>, Unreadable> {
        Ok(Resource::new(Kind::File, id))
    }

    #[test]
    fn file_references() {
        assert_eq!(file_named("files/abc"), file("abc"));
        assert_eq!(file_named("https://generativelanguage.googleapis.com/v1beta/files/abc"), file("abc"));
        assert_eq!(
            file_named("https://generativelanguage.googleapis.com/v1beta/files/a-1:download?alt=media"),
            file("a-1")
        );
        for external in
            ["https://example.com/files/report.pdf", "gs://bucket/files/abc", "report.pdf", "", "https://youtu.be/x"]
        {
            assert_eq!(file_named(external), Ok(None), "{external}");
        }
        for odd in [
            "Files/abc",
            " files/abc",
            "files/abc/",
            "files/a%2Fb",
            "HTTPS://GenerativeLanguage.GoogleAPIs.com/v1beta/FILES/abc",
            "https://generativelanguage.googleapis.com./v1beta/%66iles/abc",
            "https://generativelanguage.googleapis.com:443/v1beta/files/abc/../x",
            "https://user@generativelanguage.googleapis.com/files",
        ] {
            assert_eq!(file_named(odd), Err(Unreadable), "{odd}");
        }
    }

    #[test]
    fn cache_and_interaction_references() {
        assert_eq!(cache_named("cachedContents/c-1"), Ok(Resource::new(Kind::Cache, "c-1")));
        assert_eq!(cache_named("something"), Ok(None));
        assert_eq!(cache_named("cachedcontents/c-1"), Err(Unreadable));
        assert_eq!(cache_named("cachedContents/c 1"), Err(Unreadable));
        assert_eq!(interaction_named("v1_x"), Ok(Resource::new(Kind::Interaction, "v1_x")));
        assert_eq!(interaction_named("../x"), Err(Unreadable));
        assert_eq!(interaction_named(""), Ok(None));
    }
}
