//! Computes the console page's Content-Security-Policy: its one inline script and one inline
//! style are allowed by their SHA-256 hashes, nothing else (no other script, no inline
//! handler, no external resource).

use base64::Engine;
use sha2::{Digest, Sha256};
use std::{env, fs, path::Path};

fn inline(page: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = page.find(&open).map(|i| i + open.len()).expect("the console has an inline block");
    let end = page[start..].find(&close).map(|i| start + i).expect("the block is closed");
    assert!(page[end..].find(&open).is_none(), "one <{tag}> only");
    page[start..end].to_string()
}

fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

fn main() {
    println!("cargo:rerun-if-changed=src/admin/console.html");
    println!("cargo:rerun-if-changed=build.rs");
    let page = fs::read_to_string("src/admin/console.html").expect("src/admin/console.html");
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(&inline(&page, "script")),
        hash(&inline(&page, "style")),
    );
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("console_csp.rs");
    let code =
        format!("/// The page's Content-Security-Policy (computed by `core/build.rs`).\nconst CSP: &str = {csp:?};\n");
    fs::write(out, code).expect("write the CSP");
}
