//! The operator console: one self-contained page (`console.html`) that both edges serve at
//! `GET /`, and its Content-Security-Policy. The page's one inline script and one inline style
//! are allowed by their SHA-256 hashes (computed at build time by `core/build.rs`), nothing else:
//! no other script, no inline handler, no external resource.

/// The console page, as both edges serve it.
pub struct Console;

impl Console {
    /// The page.
    pub const PAGE: &'static str = include_str!("console.html");

    /// Its Content-Security-Policy.
    pub const CSP: &'static str = CSP;

    /// The headers the page is served with, besides its `Content-Security-Policy`.
    pub const HEADERS: [(&'static str, &'static str); 5] = [
        ("content-type", "text/html; charset=utf-8"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-cache"),
    ];
}

include!(concat!(env!("OUT_DIR"), "/console_csp.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_pages_own_script_and_style() {
        assert!(Console::CSP.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!Console::CSP.contains("unsafe"));
        assert_eq!(Console::PAGE.matches("<script>").count(), 1);
        assert!(!Console::PAGE.contains("style=\"") && !Console::PAGE.contains("innerHTML"));
    }
}
