//! The floor `make bench` measures gemini-edge-pool against: every request goes to backend
//! `gemini` with one fixed key, `/v1/…` mapped to Google's `/v1beta/openai/…`, body and answer
//! streamed through. No token check, no stores, no retries, no cooling — the best any proxy on
//! Fastly Compute can do, on the same Viceroy and the same simulator.

mod google;

use fastly::Request;

fn main() {
    let mut request = Request::from_client();
    google::to_google(&mut request);
    match request.send("gemini") {
        Ok(response) => response.send_to_client(),
        Err(_) => fastly::Response::from_status(502).send_to_client(),
    }
}
