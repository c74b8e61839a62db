// The floor `make bench` measures the Workers edge against: every request goes to
// GEMINI_BASE_URL with one fixed key (KEY), `/v1/…` mapped to Google's `/v1beta/openai/…`, body
// and answer streamed through. No token check, no state, no retries, no cooling — the least any
// proxy on Workers can do, in the same workerd (cloudflare/local.mjs) before the same simulator.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname.replace(/^\/v1\//, "/v1beta/openai/");
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${env.KEY}`);
    return fetch(`${env.GEMINI_BASE_URL}${path}${url.search}`, {
      method: request.method,
      headers,
      body: request.body,
    });
  },
};
