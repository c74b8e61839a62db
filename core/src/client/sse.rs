//! Server-sent events, both ways: where one of Google's ends (`alt=sse` answers, read by
//! [`crate::client::pieces`]), and the events the agents' translations write
//! (`event: <kind>` then one line of JSON data).

use serde_json::Value;

/// Where the first SSE event in `bytes` ends: (its length, the blank line's length).
pub(crate) fn event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// `events` written as server-sent events into `out`.
pub(crate) fn write_events(events: &[(&str, Value)], out: &mut Vec<u8>) {
    for (kind, data) in events {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Writing a `Value` into a `Vec` cannot fail (its map keys are strings).
        let _ = serde_json::to_writer(&mut *out, data);
        out.extend_from_slice(b"\n\n");
    }
}

/// For the translators' tests: written events read back as (event name, data) pairs.
#[cfg(test)]
pub(crate) fn read_events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8(bytes.to_vec())
        .expect("utf-8")
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (kind, data) = e.split_once("\ndata: ").expect("an event");
            (kind.trim_start_matches("event: ").to_string(), serde_json::from_str(data).expect("json"))
        })
        .collect()
}
