//! What every floor does to a request: `/v1/…` mapped to Google's `/v1beta/openai/…`, the
//! client's credentials replaced by one fixed key, the request passed (never cached).

use fastly::Request;

/// A test key the simulator knows (override at build time with PASSTHROUGH_KEY).
const KEY: &str = match option_env!("PASSTHROUGH_KEY") {
    Some(key) => key,
    None => "AIzaSyTEST00000000000000000000000000001",
};

/// Points `request` at Google with the fixed key.
pub fn to_google(request: &mut Request) {
    let path = request.get_path().replacen("/v1/", "/v1beta/openai/", 1);
    request.set_url(format!("https://generativelanguage.googleapis.com{path}").as_str());
    // `set_header` replaces the client's value (removing it first was a host call more).
    request.set_header("authorization", format!("Bearer {KEY}"));
    request.set_pass(true);
}
