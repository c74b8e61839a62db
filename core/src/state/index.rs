//! A client's **index** (`own/<client>`): a line for each resource it made — its kind, id,
//! project and part, and when its record ends — appended when the record is stored; a removal
//! line when a DELETE through the proxy succeeded. Lists read it to know which projects hold
//! the client's resources and which entries are its own ([`crate::decide::listing`]).
//!
//! Bounded: the writer reads it back now and then and compacts it ([`compacted`]) — lines of
//! resources that ended or were deleted go, and past [`MAX_INDEX_LINES`] the oldest.

use crate::google::resource::Kind;
use crate::pool::names::{escape, Pinned};
use std::collections::{HashMap, HashSet};

/// The store item listing what `client` made (`own/<client, escaped>`).
pub(crate) fn index_item(client: &str) -> String {
    format!("own/{}", escape(client))
}

/// How long a client's index is kept after its last line: the longest record's life
/// (interactions, 60 days).
pub(crate) const INDEX_TTL_SECS: u64 = 60 * 24 * 3600;

/// Live lines an index keeps at most (its newest); about 60 bytes each.
pub(crate) const MAX_INDEX_LINES: usize = 10_000;

/// Lines a compaction must remove for its writer to write it.
const COMPACT_AFTER_LINES: usize = 64;

/// The index line for a resource of `kind` with `id` in `bucket`, part `part`, whose record
/// ends at `until_secs` (unix seconds).
pub(crate) fn index_line(kind: Kind, id: &str, bucket: &Pinned, part: usize, until_secs: u64) -> String {
    format!("{} {id} {} {part} {until_secs}\n", kind.collection(), bucket.mark())
}

/// The index line that says a resource was deleted.
pub(crate) fn removal_line(kind: Kind, id: &str) -> String {
    format!("- {} {id}\n", kind.collection())
}

/// One resource as an index line says it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line<'t> {
    pub(crate) collection: &'t str,
    pub(crate) id: &'t str,
    pub(crate) bucket: Pinned,
    pub(crate) part: usize,
    until_secs: u64,
    text: &'t str,
}

/// The resources an index lists, live at `now_secs`: each one's last line, unless a removal came
/// after it or it has ended; in the order of their last lines. Linear in the index.
pub(crate) fn live(text: &str, now_secs: u64) -> Vec<Line<'_>> {
    let mut last: HashMap<(&str, &str), Option<Line<'_>>> = HashMap::new();
    let mut order: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let entry = match fields[..] {
            ["-", collection, id] => ((collection, id), None),
            [collection, id, mark, part, ref rest @ ..] if rest.len() <= 1 => {
                let (Some(bucket), Ok(part)) = (Pinned::parse(mark), part.parse::<usize>()) else { continue };
                // A line without an end (written before ends were) lasts as long as the index.
                let until_secs = rest.first().and_then(|u| u.parse().ok()).unwrap_or(u64::MAX);
                ((collection, id), Some(Line { collection, id, bucket, part, until_secs, text: line }))
            }
            _ => continue,
        };
        order.push(entry.0);
        last.insert(entry.0, entry.1);
    }
    let mut seen = HashSet::new();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for key in order.into_iter().rev() {
        if !seen.insert(key) {
            continue;
        }
        if let Some(Some(line)) = last.remove(&key).filter(|l| l.as_ref().is_some_and(|l| l.until_secs > now_secs)) {
            lines.push(line);
        }
    }
    lines.reverse();
    lines
}

/// A client's index compacted, if that removes [`COMPACT_AFTER_LINES`] lines or more: its live
/// lines, at most the newest [`MAX_INDEX_LINES`].
pub(crate) fn compacted(bytes: &[u8], now_secs: u64) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    let lines = text.lines().count();
    let live = live(&text, now_secs);
    let kept = &live[live.len().saturating_sub(MAX_INDEX_LINES)..];
    if lines < kept.len() + COMPACT_AFTER_LINES {
        return None;
    }
    let mut out = String::with_capacity(kept.iter().map(|l| l.text.len() + 1).sum());
    for line in kept {
        out.push_str(line.text);
        out.push('\n');
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_stays_bounded_however_many_resources_come_and_go() {
        let a = Pinned::Project("p".into());
        let mut item = Vec::new();
        let mut longest = 0;
        for n in 0..30_000u64 {
            item.extend(index_line(Kind::File, &format!("f{n}"), &a, 0, 1_000 + n).into_bytes());
            if n % 3 == 0 {
                item.extend(removal_line(Kind::File, &format!("f{n}")).into_bytes());
            }
            if n % 16 == 0 {
                if let Some(smaller) = compacted(&item, 1_000 + n / 2) {
                    item = smaller;
                }
            }
            longest = longest.max(item.len());
        }
        let lines = String::from_utf8_lossy(&item).lines().count();
        assert!(lines <= MAX_INDEX_LINES + COMPACT_AFTER_LINES + 16, "{lines}");
        assert!(longest < 1_000_000, "{longest} bytes");
        let text = String::from_utf8_lossy(&item);
        let live = live(&text, 1_000 + 15_000);
        assert!(live.iter().all(|l| l.id[1..].parse::<u64>().is_ok_and(|n| n % 3 != 0 && n > 14_000)));
    }
}
