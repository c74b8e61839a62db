//! Replays every committed corpus file (`fuzz/corpus/<target>/*`) through its target's checks,
//! on stable: the inputs that once found a bug, and what `make fuzz` kept as interesting.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let data = fs::read(&path).expect("a corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} breaks an invariant", path.display());
        count += 1;
    }
    assert!(count > 0, "{target}: empty corpus");
}

#[test]
fn google_answer() {
    replay("google_answer", gemini_pool_checks::google_answer);
}

#[test]
fn request() {
    replay("request", gemini_pool_checks::request);
}

#[test]
fn openai_body() {
    replay("openai_body", gemini_pool_checks::openai_body);
}

#[test]
fn key_list() {
    replay("key_list", gemini_pool_checks::key_list);
}

#[test]
fn settings() {
    replay("settings", gemini_pool_checks::settings);
}

#[test]
fn state_item() {
    replay("state_item", gemini_pool_checks::state_item);
}

#[test]
fn attempt_loop() {
    replay("attempt_loop", gemini_pool_checks::attempt_loop);
}

#[test]
fn scrub() {
    replay("scrub", gemini_pool_checks::scrub);
}
