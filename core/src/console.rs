//! The operator console: one self-contained page (`console.html`) that both edges serve at
//! `GET /`, and its Content-Security-Policy. The page's one inline script and one inline style
//! are allowed by their SHA-256 hashes (computed at build time by `core/build.rs`), nothing else:
//! no other script, no inline handler, no external resource.

/// The page.
pub const PAGE: &str = include_str!("console.html");

include!(concat!(env!("OUT_DIR"), "/console_csp.rs"));

/// The headers the page is served with, besides its `Content-Security-Policy`.
pub const HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/html; charset=utf-8"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_pages_own_script_and_style() {
        assert!(CSP.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!CSP.contains("unsafe"));
        assert_eq!(PAGE.matches("<script>").count(), 1);
        assert!(!PAGE.contains("style=\"") && !PAGE.contains("innerHTML"));
    }
}
