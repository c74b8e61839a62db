//! Finding a short byte string (a JSON key, an event's blank line) in an answer's bytes.
//!
//! Answers are scanned as they pass — for content, for token counts — so the scan is on every
//! request's path. It looks for the needle's first byte, and compares the rest only where that
//! byte is: comparing at every offset (`windows(n).position(|w| w == needle)`) costs a call
//! to `memcmp` per byte of the answer, the largest single cost of a request in the guest.

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = hay.get(from..)?.iter().position(|&b| b == first) {
        let at = from + i;
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Where `needle` last occurs in `hay`.
pub(crate) fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut end = hay.len();
    while let Some(at) = hay[..end].iter().rposition(|&b| b == first) {
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        end = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_and_the_last_occurrence() {
        let hay = b"{\"text\":\"a\",\"text\":\"b\"}";
        assert_eq!(find(hay, b"\"text\""), Some(1));
        assert_eq!(rfind(hay, b"\"text\""), Some(12));
        assert_eq!(find(b"\n\r\n\r\n", b"\r\n\r\n"), Some(1));
        assert_eq!(rfind(b"\n\n\n", b"\n\n"), Some(1));
    }

    #[test]
    fn a_needle_cut_by_the_end_or_absent_is_not_found() {
        assert_eq!(find(b"{\"tex", b"\"text\""), None);
        assert_eq!(rfind(b"{\"tex", b"\"text\""), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(rfind(b"abc", b""), None);
        assert_eq!(find(b"abc", b"abcd"), None);
    }
}
