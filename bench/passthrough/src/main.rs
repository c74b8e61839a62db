//! The floor `make bench` measures gemini-edge-pool against: every request goes to backend
//! `gemini` with one fixed key, `/v1/…` mapped to Google's `/v1beta/openai/…`, body and answer
//! streamed through. No token check, no stores, no retries, no cooling — the best any proxy on
//! Fastly Compute can do, on the same Viceroy and the same simulator.

use fastly::Request;

/// A test key the simulator knows (override at build time with PASSTHROUGH_KEY).
const KEY: &str = match option_env!("PASSTHROUGH_KEY") {
    Some(key) => key,
    None => "AIzaSyTEST00000000000000000000000000001",
};

fn main() {
    let mut request = Request::from_client();
    let path = request.get_path().replacen("/v1/", "/v1beta/openai/", 1);
    request.set_url(format!("https://generativelanguage.googleapis.com{path}").as_str());
    request.remove_header("authorization");
    request.set_header("authorization", format!("Bearer {KEY}"));
    request.set_pass(true);
    match request.send("gemini") {
        Ok(response) => response.send_to_client(),
        Err(_) => fastly::Response::from_status(502).send_to_client(),
    }
}
