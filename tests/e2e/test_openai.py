"""The OpenAI-compatible surface, driven by the official `openai` SDK and curl."""

import json
import re

import openai
import pytest

from harness import TOKEN, curl, free_port, pool_lines, served, sim_keys

MODEL = "gemini-3.5-flash"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3))
    return proxies(pool_lines(3))


def client(proxy, token=TOKEN, **kw):
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0, **kw)


def post(proxy, path, body, *extra, token=TOKEN):
    data = body if isinstance(body, str) else json.dumps(body)
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    return curl("-i", "-X", "POST", f"{proxy.url}{path}", *auth, "-H", "content-type: application/json",
                "--data-binary", data, *extra)


def split(response: str):
    """(status, headers dict, body) of a `curl -i` output."""
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def test_chat_completion(world, sim):
    r = client(world).chat.completions.create(**CHAT)
    assert r.choices[0].message.content == "Hello from the Gemini simulator"
    assert r.usage.total_tokens == 13
    entry = sim.log()[-1]
    assert entry["path"] == "/v1beta/openai/chat/completions"
    assert entry["key_via"] == "authorization" and entry["key"] in {"k1", "k2", "k3"}


def test_chat_stream_with_the_sdk(world):
    chunks = list(client(world).chat.completions.create(**CHAT, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the Gemini simulator"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 13


def test_chat_stream_raw_sse(world):
    status, headers, body = split(post(world, "/v1/chat/completions", {**CHAT, "stream": True}, "-N").stdout)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["access-control-allow-origin"] == "*"
    events = [line for line in body.split("\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    words = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert words == ["Hello", " from", " the", " Gemini", " simulator"]


def test_truncated_stream_is_not_completed_by_the_proxy(sim, proxies, edge):
    sim.reset(sim_keys(1), chunk_delay_ms=100)
    world = proxies(pool_lines(1))
    sim.behave("*", "stream_truncate", after_chunks=2, times=1)
    result = post(world, "/v1/chat/completions", {**CHAT, "stream": True}, "-N")
    assert "data: [DONE]" not in result.stdout
    assert 1 <= result.stdout.count("data: ") <= 2
    if edge == "fastly":  # Fastly aborts the chunked response; a Worker can only end its stream
        assert result.returncode == 18, result.stderr  # "transfer closed with outstanding read data"


def test_error_inside_a_stream_passes_through(world, sim):
    sim.behave("*", "stream_error", after_chunks=1, times=1)
    _, _, body = split(post(world, "/v1/chat/completions", {**CHAT, "stream": True}, "-N").stdout)
    events = [line[6:] for line in body.split("\n") if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == 503
    assert "[DONE]" not in events


def test_models_lose_the_prefix(world):
    c = client(world)
    ids = [m.id for m in c.models.list()]
    assert "gemini-3.5-flash" in ids and not any(i.startswith("models/") for i in ids)
    assert c.models.retrieve("gemini-3.1-pro-preview").id == "gemini-3.1-pro-preview"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gemini-does-not-exist")


def test_embeddings(world):
    r = client(world).embeddings.create(model="gemini-embedding-001", input=["one", "two", "three"])
    assert [d.index for d in r.data] == [0, 1, 2] and len(r.data[0].embedding) == 8


def test_image_generation(world):
    r = client(world).images.generate(model="imagen-3.0-generate-002", prompt="a cat", response_format="b64_json")
    assert r.data[0].b64_json.startswith("iVBOR")


def test_bodies_pass_through_byte_for_byte(world, sim):
    body = json.dumps({
        "model": MODEL, "temperature": 0.2, "reasoning_effort": "low",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image? ünïcödé ✓"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    }, ensure_ascii=False, indent=1)
    assert split(post(world, "/v1/chat/completions", body).stdout)[0] == 200
    assert sim.log()[-1]["body"] == body


def test_client_credentials_never_reach_google(world, sim):
    before = len(sim.log())
    result = post(world, "/v1/chat/completions?key=client-query-secret", CHAT,
                  "-H", "x-goog-api-key: client-header-secret", "-H", "Cookie: session=abc")
    assert split(result.stdout)[0] == 200
    for entry in sim.log()[before:]:
        dump = json.dumps(entry)
        for secret in (TOKEN, "client-query-secret", "client-header-secret", "session=abc"):
            assert secret not in dump
        assert entry["query"] == ""


@pytest.mark.parametrize("kind, status", [("per_minute", 429), ("overloaded", 503)])
def test_retry_on_another_key(world, sim, kind, status):
    sim.behave("*", kind, times=1, retry_delay_s=30)
    before = len(sim.log())
    r = client(world).chat.completions.create(**CHAT)
    assert r.choices[0].message.content
    log = sim.log()[before:]
    assert [e["status"] for e in log] == [status, 200]
    assert log[0]["key"] != log[1]["key"]


def test_exhausted_retries_keep_googles_status(world, sim):
    sim.behave("*", "overloaded", times=3)
    before = len(sim.log())
    with pytest.raises(openai.InternalServerError) as raised:
        client(world).chat.completions.create(**CHAT)
    assert raised.value.status_code == 503
    assert raised.value.body["type"] == "server_error"
    assert "overloaded" in raised.value.body["message"]
    log = sim.log()[before:]
    assert len(log) == 3 and len({e["key"] for e in log}) == 3


def test_client_errors_are_not_retried(world, sim):
    before = len(sim.log())
    with pytest.raises(openai.NotFoundError) as raised:
        client(world).chat.completions.create(model="gemini-9-ultra", messages=CHAT["messages"])
    assert "not found" in raised.value.body["message"]
    assert len(sim.log()) == before + 1


def test_requests_spread_over_the_pool(world, sim):
    before = len(sim.log())
    c = client(world)
    for _ in range(90):
        c.chat.completions.create(**CHAT)
    counts = {label: served(sim.log(), before).count(label) for label in ("k1", "k2", "k3")}
    # Uniform draws: 30 each expected; fewer than 10 has p < 1e-5.
    assert all(n >= 10 for n in counts.values()), counts


def test_server_timing_counts_store_operations(world, edge):
    status, headers, _ = split(post(world, "/v1/chat/completions", CHAT).stdout)
    assert status == 200
    timing = headers["server-timing"]
    if edge == "fastly":
        assert 'kv;desc="2 reads, 0 writes"' in timing
        assert 'secret;desc="1 lookups, 1 reads"' in timing
        # The token, and the four knobs a first attempt needs (the others wait for a failure).
        assert 'config;desc="5 reads"' in timing
    else:  # one call to the Durable Object reads both items
        assert 'state;desc="1 calls"' in timing
    assert 'attempts;desc="1"' in timing


def test_status(world):
    result = curl("-i", f"{world.url}/v1/status", "-H", f"Authorization: Bearer {TOKEN}")
    status, headers, body = split(result.stdout)
    report = json.loads(body)
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert report["status"] == "healthy"
    pool = report["keyPool"]
    assert (pool["totalKeys"], pool["availableKeys"], pool["failedKeys"], pool["coolingKeys"]) == (3, 3, 0, 0)
    assert pool["strategy"] == "round-robin" and pool["coolingDetails"] == []
    assert report["version"].startswith("gemini-edge-pool/") and report["timestamp"].endswith("Z")
    assert split(curl("-i", f"{world.url}/v1/status").stdout)[0] == 401


def test_preflight(world):
    result = curl("-i", "-X", "OPTIONS", f"{world.url}/v1/chat/completions",
                  "-H", "Origin: https://app.example", "-H", "Access-Control-Request-Method: POST",
                  "-H", "Access-Control-Request-Headers: authorization, content-type")
    status, headers, _ = split(result.stdout)
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()


def openai_error(result):
    status, headers, body = split(result.stdout)
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "code"}
    assert headers["access-control-allow-origin"] == "*"
    return status, headers, error


@pytest.mark.parametrize("body, code, words", [
    ('{"model": "gemini-3.5-flash", "messages": [', "invalid_json", "not valid JSON"),
    ("", "invalid_json", "empty"),
    ('{"messages": []}', "missing_model", "model"),
    ('{"model": "../etc/passwd"}', "invalid_model", "Invalid model"),
    ('["not", "an", "object"]', "invalid_json", "not a JSON object"),
])
def test_malformed_bodies(world, body, code, words):
    status, _, error = openai_error(post(world, "/v1/chat/completions", body))
    assert (status, error["code"], error["type"]) == (400, code, "invalid_request_error")
    assert words in error["message"]


def test_body_over_the_limit(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1), settings={"max_body_bytes": 2048})
    status, _, error = openai_error(post(proxy, "/v1/chat/completions", {**CHAT, "pad": "x" * 5000}))
    assert (status, error["code"]) == (413, "body_too_large")
    assert "2048" in error["message"]


def test_unknown_path_and_wrong_method(world):
    status, _, error = openai_error(curl("-i", f"{world.url}/v1/nothing", "-H", f"Authorization: Bearer {TOKEN}"))
    assert (status, error["code"]) == (404, "not_found")
    status, headers, error = openai_error(curl("-i", f"{world.url}/v1/chat/completions", "-H", f"Authorization: Bearer {TOKEN}"))
    assert (status, error["code"]) == (405, "method_not_allowed")
    assert headers["allow"] == "POST, OPTIONS"


def test_missing_and_unknown_tokens(world):
    status, _, error = openai_error(post(world, "/v1/chat/completions", CHAT, token=None))
    assert (status, error["code"], error["type"]) == (401, "missing_token", "authentication_error")
    status, _, error = openai_error(post(world, "/v1/chat/completions", CHAT, token="nope"))
    assert (status, error["code"]) == (401, "invalid_token")
    assert error["message"] == "Invalid authorization token."
    with pytest.raises(openai.AuthenticationError):
        client(world, token="nope").chat.completions.create(**CHAT)


@pytest.mark.parametrize("setup, fastly, cloudflare", [
    ({"auth_store": False}, "config store `auth_tokens` is missing", "variable `VALID_AUTH_TOKENS` is missing"),
    ({"keys": None}, "secret `gemini_keys/keys` is missing", "secret `GEMINI_API_KEYS` is missing"),
    ({"secret_store": False}, "secret store `gemini_keys` is missing", "secret `GEMINI_API_KEYS` is missing"),
    ({"keys": "  \n# only a comment\n"}, "holds no API keys", "holds no API keys"),
    ({"settings": {"max_body_bytes": "many"}}, "proxy_settings.max_body_bytes", "max_body_bytes"),
    ({"settings": {"key_secrets": "2"}}, "secret `gemini_keys/keys_2` is missing", "secret `GEMINI_API_KEYS_2` is missing"),
])
def test_configuration_errors_name_what_is_missing(sim, proxies, edge, setup, fastly, cloudflare):
    names = {"fastly": fastly, "cloudflare": cloudflare}[edge]
    sim.reset(sim_keys(1))
    setup = dict(setup)
    keys = setup.pop("keys", pool_lines(1))
    proxy = proxies(keys, **setup)
    status, _, error = openai_error(post(proxy, "/v1/chat/completions", CHAT))
    assert (status, error["code"]) == (500, "config_error")
    assert error["message"].startswith("Service configuration error")
    assert names in error["message"]
    assert "AIza" not in error["message"]


def test_key_lists_continue_in_keys_2(sim, proxies):
    sim.reset(sim_keys(4))
    proxy = proxies(pool_lines(2), secrets={"keys_2": "\n".join(pool_lines(2, start=3))}, settings={"key_secrets": 2})
    report = json.loads(curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {TOKEN}").stdout)
    assert report["keyPool"]["totalKeys"] == 4


def test_connection_failure_is_a_502_after_retries(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), backend_url=f"http://127.0.0.1:{free_port()}")
    status, headers, error = openai_error(post(proxy, "/v1/chat/completions", CHAT))
    assert (status, error["code"]) == (502, "upstream_unreachable")
    assert 'attempts;desc="2"' in headers["server-timing"]


def test_a_hanging_key_times_out_and_the_next_serves(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), first_byte_timeout_ms=1000)
    sim.behave("*", "hang", times=1)
    before = len(sim.log())
    r = client(proxy, timeout=30).chat.completions.create(**CHAT)
    assert r.choices[0].message.content
    assert [e["status"] for e in sim.log()[before:]] == [200, 200]  # the hung one was logged before hanging
    # Viceroy reports a first-byte timeout as a generic send error; production names the cause.
    assert "no answer" in proxy.logs(waiting_for="no answer")


@pytest.mark.fastly_only("secret-store reads")
def test_a_request_reads_one_part_of_a_pool_in_four_secrets(sim, proxies):
    """Four full secrets (2 keys each, padded with comment lines to ~60 KB like a secret of
    ~1,500 keys): a request fetches at most one secret's bytes and reads that part's two KV
    items (a cold sandbox looks up all four secrets; a warm one only those it has not read
    yet); every key still serves."""
    sim.reset(sim_keys(8))
    lines = pool_lines(8)
    padding = "\n".join(f"# {'-' * 76}" for _ in range(780))
    parts = [f"{padding}\n{lines[i]}\n{lines[i + 1]}" for i in range(0, 8, 2)]
    proxy = proxies(parts[0], secrets={"keys_2": parts[1], "keys_3": parts[2], "keys_4": parts[3]},
                    settings={"key_secrets": 4}, relay=False)
    before = len(sim.log())
    at_most_one = 0
    for _ in range(80):
        status, headers, _ = split(post(proxy, "/v1/chat/completions", CHAT).stdout)
        assert status == 200
        timing = headers["server-timing"]
        assert 'kv;desc="2 reads, 0 writes"' in timing, timing
        lookups, reads = map(int, re.search(r'secret;desc="(\d+) lookups, (\d+) reads"', timing).groups())
        assert lookups <= 4 and reads <= 4, timing  # a request may draw a second part
        at_most_one += reads <= 1
    assert at_most_one >= 60, f"{at_most_one} of 80 requests fetched at most one secret"
    assert set(served(sim.log(), before)) == {f"k{i}" for i in range(1, 9)}
