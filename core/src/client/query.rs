//! A request's query string: the value of a parameter, the parameters passed on to Google
//! (only those a route allows, each once), and a value percent-decoded.

/// The value of query parameter `name` (as written: not percent-decoded), if present.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The query string to send upstream: only the `allowed` parameters, as the client wrote them.
pub fn forwarded_query(query: Option<&str>, allowed: &[&str]) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for pair in query?.split('&') {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        // Each parameter once, as the proxy read it (its first): a second `upload_id` could
        // name another session than the one whose record let the request through.
        if allowed.contains(&name) && !names.contains(&name) {
            names.push(name);
            kept.push(pair);
        }
    }
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// `text` percent-decoded (`+` as a space), as a query's value is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = Some("key=secret&alt=sse&pageSize=5&x=1");
        assert_eq!(query_param(q, "key"), Some("secret"));
        assert_eq!(forwarded_query(q, &["alt", "pageSize"]).as_deref(), Some("alt=sse&pageSize=5"));
        assert_eq!(forwarded_query(Some("key=s"), &["alt"]), None);
        assert_eq!(forwarded_query(None, &["alt"]), None);
        // Each parameter once: a second `upload_id` is never passed on.
        assert_eq!(forwarded_query(Some("upload_id=a&upload_id=b"), &["upload_id"]).as_deref(), Some("upload_id=a"));
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b c%zz");
    }
}
