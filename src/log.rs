//! Log lines (stderr, which `fastly log-tail` shows). Writing never panics, unlike
//! `eprintln!`, and callers never pass a key: only masks and fingerprints.

use std::fmt;
use std::io::Write;

pub fn log(line: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(line);
    let _ = stderr.write_all(b"\n");
}
