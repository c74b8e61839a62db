//! The third floor for `make bench-instructions`: the reusing pass-through (`reuse.rs`) plus
//! the two things no pool whose cooling state is shared can skip — it reads that state from KV
//! on every request (one item: the cell's model item, `model/<MODEL>` in store `key_state`, so
//! as large as the cell makes it), and it relays the answer through the guest (a proxy that
//! counts tokens, or retries an empty answer, must see the body). No token check, no key
//! choice, no retries, no usage. What the proxy costs above this is its own logic.

mod google;

use fastly::http::serve::{NextRequestOptions, RequestPromise};
use fastly::kv_store::KVStore;
use fastly::{Request, Response};
use std::io::{copy, Read};
use std::time::Duration;

/// The item read on each request: the bench model's cooling item (bench/latency.py `MODEL`).
const ITEM: &str = match option_env!("PASSTHROUGH_ITEM") {
    Some(item) => item,
    None => "model/gemini-3.5-flash",
};

/// How long the sandbox waits for its next request.
const WAIT_FOR_NEXT: Duration = Duration::from_secs(5);

/// Reads [`ITEM`] whole; its length (0: absent, or no store).
fn read_state() -> usize {
    let Ok(Some(kv)) = KVStore::open("key_state") else { return 0 };
    let Ok(mut found) = kv.lookup(ITEM) else { return 0 };
    let mut bytes = Vec::with_capacity(64 * 1024);
    found.take_body().read_to_end(&mut bytes).unwrap_or(0)
}

fn pass(mut request: Request, nth: u32) {
    let state_bytes = read_state();
    google::to_google(&mut request);
    let mut response = request.send("gemini").unwrap_or_else(|_| Response::from_status(502));
    response.set_header("x-sandbox-request", nth.to_string());
    response.set_header("x-state-bytes", state_bytes.to_string());
    let mut answer = response.take_body();
    let mut client = response.stream_to_client();
    let _ = copy(&mut answer, &mut client);
    let _ = client.finish();
}

fn next_request() -> Option<Request> {
    RequestPromise::new(&NextRequestOptions::from_timeout(WAIT_FOR_NEXT)).ok()?.wait().ok()
}

fn main() {
    let mut request = Request::from_client();
    for nth in 1.. {
        pass(request, nth);
        match next_request() {
            Some(next) => request = next,
            None => break,
        }
    }
}
