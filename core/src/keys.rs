//! The key pool: parsing the operator's key lists, projects, fingerprints and masks.
//!
//! A key never leaves this module in clear except to be sent to Google: everything else
//! (KV names, logs, `/v1/status`) uses its [`Fingerprint`] or its [`mask`](ApiKey::mask).

use std::fmt;

/// One pooled Gemini API key, borrowed from the secret it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKey<'a> {
    pub secret: &'a str,
    /// Keys written `project-name:KEY` share one quota bucket per model.
    pub project: Option<&'a str>,
}

/// A stable, non-reversible name for a key: FNV-1a 64 of the key text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Fingerprint {
    pub fn of(secret: &str) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in secret.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint(hash)
    }

    /// `k:` and the 16 hex digits, written into a stack buffer (no allocation on the hot path).
    pub fn key_bucket_name<'b>(&self, buf: &'b mut [u8; 18]) -> &'b str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        buf[0] = b'k';
        buf[1] = b':';
        for i in 0..16 {
            buf[2 + i] = HEX[((self.0 >> (60 - 4 * i)) & 0xF) as usize];
        }
        std::str::from_utf8(&buf[..]).unwrap_or_default()
    }

    pub fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(hex, 16).ok().map(Fingerprint)
    }
}

/// The unit Google counts quota in: a declared project, or the key alone when none is declared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Project(String),
    Key(Fingerprint),
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Names go into KV text lines: anything but [A-Za-z0-9._-] becomes `_`.
            Bucket::Project(name) => {
                let safe: String = name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
                    .collect();
                write!(f, "p:{safe}")
            }
            Bucket::Key(fp) => write!(f, "k:{fp}"),
        }
    }
}

impl Bucket {
    /// Reads the form written by `Display` (`p:name` or `k:<16 hex>`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("p", name) if !name.is_empty() => Some(Bucket::Project(name.to_string())),
            ("k", hex) => Fingerprint::parse(hex).map(Bucket::Key),
            _ => None,
        }
    }
}

impl<'a> ApiKey<'a> {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.secret)
    }

    /// The quota bucket this key draws from.
    pub fn bucket(&self) -> Bucket {
        match self.project {
            Some(name) => Bucket::Project(name.to_string()),
            None => Bucket::Key(self.fingerprint()),
        }
    }

    /// What a human may see of the key: its last four characters, never more.
    pub fn mask(&self) -> String {
        mask(self.secret)
    }
}

/// `…WXYZ`: the last four characters of a key (or fewer, for very short test keys).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let shown = if chars.len() >= 12 { 4 } else { chars.len() / 4 };
    let tail: String = chars[chars.len() - shown..].iter().collect();
    format!("…{tail}")
}

/// The pool, in the order the operator wrote it.
#[derive(Debug, Clone, Default)]
pub struct KeyPool<'a> {
    keys: Vec<ApiKey<'a>>,
    /// Entries that cannot be a key (characters an HTTP header cannot carry): skipped.
    ignored: usize,
}

impl<'a> KeyPool<'a> {
    /// Parses key lists: entries separated by newlines or commas; spaces, blank lines and
    /// `#` comment lines ignored; `project-name:KEY` declares the key's Google project. An
    /// entry with characters other than visible ASCII is counted in [`ignored`](Self::ignored).
    pub fn parse<I>(lists: I) -> Self
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut pool = KeyPool::default();
        for list in lists {
            pool.keys.reserve(list.len() / 40 + 1);
            for line in list.split('\n') {
                let line = line.trim_ascii();
                if line.starts_with('#') {
                    continue;
                }
                for entry in line.split(',').filter_map(parse_entry) {
                    if entry.secret.bytes().all(|b| b.is_ascii_graphic()) {
                        pool.keys.push(entry);
                    } else {
                        pool.ignored += 1;
                    }
                }
            }
        }
        pool
    }

    /// Entries skipped because they cannot be a key.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&ApiKey<'a>> {
        self.keys.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ApiKey<'a>> {
        self.keys.iter()
    }

    /// Replaces every pool key found in `text` by its mask (scrubs upstream error text).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for key in &self.keys {
            if out.contains(key.secret) {
                out = out.replace(key.secret, &key.mask());
            }
        }
        out
    }
}

fn parse_entry(entry: &str) -> Option<ApiKey<'_>> {
    let entry = entry.trim_ascii();
    if entry.is_empty() {
        return None;
    }
    match entry.split_once(':') {
        Some((project, secret)) => {
            let (project, secret) = (project.trim_ascii(), secret.trim_ascii());
            if secret.is_empty() {
                return None;
            }
            let project = (!project.is_empty()).then_some(project);
            Some(ApiKey { secret, project })
        }
        None => Some(ApiKey { secret: entry, project: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_newlines_commas_spaces_comments_and_projects() {
        let pool = KeyPool::parse(["AIzaA1, AIzaB2\r\n\n  # a comment\nproj-x:AIzaC3\n", "AQ.D4"]);
        let secrets: Vec<_> = pool.iter().map(|k| k.secret).collect();
        assert_eq!(secrets, ["AIzaA1", "AIzaB2", "AIzaC3", "AQ.D4"]);
        assert_eq!(pool.get(2).map(|k| k.project), Some(Some("proj-x")));
        assert_eq!(pool.get(0).map(|k| k.project), Some(None));
    }

    #[test]
    fn entries_a_header_cannot_carry_are_skipped_and_counted() {
        let pool = KeyPool::parse(["AIzaGood1\nAIza bad\u{7f}\nAIzaÜmlaut\nAIzaGood2"]);
        let secrets: Vec<_> = pool.iter().map(|k| k.secret).collect();
        assert_eq!((secrets, pool.ignored()), (vec!["AIzaGood1", "AIzaGood2"], 2));
    }

    #[test]
    fn mask_shows_at_most_the_last_four_characters() {
        assert_eq!(mask("AIzaSyABCDEFGHIJKLMNOP1234"), "…1234");
        assert_eq!(mask("short"), "…t");
        assert_eq!(mask(""), "…");
    }

    #[test]
    fn fingerprint_is_stable_and_round_trips() {
        let fp = Fingerprint::of("AIzaSyExample");
        assert_eq!(fp, Fingerprint::of("AIzaSyExample"));
        assert_ne!(fp, Fingerprint::of("AIzaSyExamplf"));
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        let mut buf = [0u8; 18];
        assert_eq!(fp.key_bucket_name(&mut buf), Bucket::Key(fp).to_string());
        assert!(!fp.to_string().contains("AIza"));
    }

    #[test]
    fn buckets_round_trip() {
        let b = Bucket::Project("team-a".into());
        assert_eq!(Bucket::parse(&b.to_string()), Some(b));
        let k = Bucket::Key(Fingerprint(42));
        assert_eq!(Bucket::parse(&k.to_string()), Some(k));
        assert_eq!(Bucket::parse("x:1"), None);
    }

    #[test]
    fn redact_replaces_any_pool_key() {
        let pool = KeyPool::parse(["AIzaSySECRETSECRET9876"]);
        assert_eq!(pool.redact("bad key AIzaSySECRETSECRET9876!"), "bad key …9876!");
    }
}
