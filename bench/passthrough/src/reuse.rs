//! The second floor for `make bench-instructions`: the same pass-through as `main.rs`, run
//! under Fastly's reusable sandboxes — the least a proxy whose sandbox answers many requests
//! can do. Each answer says which request of its sandbox it was (`x-sandbox-request`), so the
//! bench can count warm requests apart from the ones that started a sandbox.

mod google;

use fastly::http::serve::Serve;
use fastly::{Request, Response};

fn pass(mut request: Request, nth: u32) -> Response {
    google::to_google(&mut request);
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
