//! Replays every committed fuzz input through its target's checks, on stable:
//! `fuzz/seeds/<target>/*` (written by hand, and every input that once found a bug, each named
//! for what it found) and `fuzz/corpus/<target>/*` (what `make fuzz` kept as interesting,
//! minimized).

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut count = 0;
    for kind in ["seeds", "corpus"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let data = fs::read(&path).expect("a fuzz input");
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{target}: {} breaks an invariant", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "{target}: no seeds and no corpus");
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

#[test]
fn messages_request() {
    replay("messages_request", gemini_pool_checks::messages_request);
}

#[test]
fn messages_answer() {
    replay("messages_answer", gemini_pool_checks::messages_answer);
}

#[test]
fn responses_request() {
    replay("responses_request", gemini_pool_checks::responses_request);
}

#[test]
fn responses_answer() {
    replay("responses_answer", gemini_pool_checks::responses_answer);
}
