//! Finding the last occurrence of a short byte string (a JSON key, an event's blank line) in
//! an answer's bytes.
//!
//! Answers are scanned as they pass — for token counts, for events — so the scan is on every
//! request's path. It looks for the needle's first byte (`memchr`, a word at a time), checks
//! the byte after it, and compares the rest only where both match: comparing at every offset
//! (`windows(n).position(|w| w == needle)`) costs a call to `memcmp` per byte of the answer,
//! once the largest single cost of a request in the guest.

/// Where `needle` last occurs in `hay`.
pub(crate) fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut end = hay.len();
    while let Some(at) = memchr::memrchr(first, &hay[..end]) {
        if second_matches(hay, at, rest) && hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        end = at;
    }
    None
}

/// The byte after `at` is the needle's second (or the needle has one byte): a check that
/// spares the comparison of the rest at most places the first byte occurs (a JSON key's
/// quote is every other string's quote too).
fn second_matches(hay: &[u8], at: usize, rest: &[u8]) -> bool {
    rest.first().is_none_or(|second| hay.get(at + 1) == Some(second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_occurrence() {
        let hay = b"{\"text\":\"a\",\"text\":\"b\"}";
        assert_eq!(rfind(hay, b"\"text\""), Some(12));
        assert_eq!(rfind(b"\n\r\n\r\n", b"\r\n\r\n"), Some(1));
        assert_eq!(rfind(b"\"usage\":{},\"usageMetadata\":{}", b"\"usage\""), Some(0));
        assert_eq!(rfind(b"\n\n\n", b"\n\n"), Some(1));
    }

    #[test]
    fn a_needle_cut_by_the_end_or_absent_is_not_found() {
        assert_eq!(rfind(b"{\"tex", b"\"text\""), None);
        assert_eq!(rfind(b"", b"a"), None);
        assert_eq!(rfind(b"abc", b""), None);
        assert_eq!(rfind(b"abc", b"abcd"), None);
        assert_eq!(rfind(b"xax", b"a"), Some(1));
    }
}
