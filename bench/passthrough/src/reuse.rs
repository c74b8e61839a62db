//! The second floor for `make bench-instructions`: the same pass-through as `main.rs`, run
//! under Fastly's reusable sandboxes — the least a proxy whose sandbox answers many requests
//! can do. Each answer says which request of its sandbox it was (`x-sandbox-request`), so the
//! bench can count warm requests apart from the ones that started a sandbox.

use fastly::http::serve::Serve;
use fastly::{Request, Response};

/// A test key the simulator knows (override at build time with PASSTHROUGH_KEY).
const KEY: &str = match option_env!("PASSTHROUGH_KEY") {
    Some(key) => key,
    None => "AIzaSyTEST00000000000000000000000000001",
};

fn pass(mut request: Request, nth: u32) -> Response {
    let path = request.get_path().replacen("/v1/", "/v1beta/openai/", 1);
    request.set_url(format!("https://generativelanguage.googleapis.com{path}").as_str());
    request.remove_header("authorization");
    request.set_header("authorization", format!("Bearer {KEY}"));
    request.set_pass(true);
    let response = request.send("gemini").unwrap_or_else(|_| Response::from_status(502));
    response.with_header("x-sandbox-request", nth.to_string())
}

fn main() {
    let mut nth = 0u32;
    Serve::new().run(|request| {
        nth += 1;
        pass(request, nth)
    });
}
