#![no_main]
//! Fuzz target: see `gemini_pool_checks::responses_request` for what it feeds and what it asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gemini_pool_checks::responses_request(data));
