"""Hostile input and odd upstream answers (issue 9's findings), against the release wasm in
Viceroy: every one answers in the client's envelope, never panics, never shows a key."""

import json
import subprocess

import openai
import pytest
from google.genai import errors as genai_errors

from harness import TOKEN, curl, genai_client, key, pool_lines, sim_keys

FLASH = "gemini-3.5-flash"
CHAT = {"model": FLASH, "messages": [{"role": "user", "content": "hi"}]}


def raw_curl(*args: bytes) -> str:
    """curl with raw bytes in its arguments (header values that are not UTF-8)."""
    done = subprocess.run([b"curl", b"-sS", b"-i", *args], capture_output=True, timeout=60)
    return done.stdout.decode("utf-8", "replace")


def split(response: str):
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def chat(proxy, model=FLASH):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TOKEN, max_retries=0)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def status(proxy) -> dict:
    return json.loads(curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {TOKEN}").stdout)


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(2))
    return proxies(pool_lines(2))


def test_headers_that_are_not_utf8_are_absent_credentials_not_a_crash(world):
    url = world.url.encode()
    # OpenAI path: a 401 in OpenAI's envelope, with CORS.
    code, headers, body = split(raw_curl(url + b"/v1/chat/completions", b"-H", b"Authorization: Bearer \xff",
                                         b"-d", b"{}"))
    # Fastly hands the handler no value (absent: missing_token); workerd reads the byte as
    # Latin-1 (a token that matches none: invalid_token). Either way a 401, never a crash.
    assert code == 401 and json.loads(body)["error"]["code"] in ("missing_token", "invalid_token")
    assert headers["access-control-allow-origin"] == "*"
    # Native path: Google's envelope.
    code, _, body = split(raw_curl(url + b"/v1beta/models/gemini-3.5-flash:generateContent",
                                   b"-H", b"x-goog-api-key: \xfe\xff", b"-d", b"{}"))
    assert code == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    # A preflight asking for headers that are not text still gets its 204.
    code, headers, _ = split(raw_curl(b"-X", b"OPTIONS", url + b"/v1/chat/completions",
                                      b"-H", b"Access-Control-Request-Headers: x-\xff"))
    assert code == 204 and "authorization" in headers["access-control-allow-headers"].lower()


def test_a_practically_forever_cooldown_stays(sim, proxies):
    """`cool_no_free_tier = 99999d`: the mark outlives any TTL arithmetic (none wraps to 0)."""
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"cool_no_free_tier": "99999d"})
    sim.behave("k1", "limit_zero", model="gemini-3.1-pro-preview")
    sim.behave("k2", "limit_zero", model="gemini-3.1-pro-preview")
    with pytest.raises(openai.RateLimitError):
        chat(proxy, "gemini-3.1-pro-preview")
    cooling = [d for d in status(proxy)["keyPool"]["coolingDetails"] if d["model"] == "gemini-3.1-pro-preview"]
    assert len(cooling) == 2 and all(d["remainingSeconds"] > 99_998 * 86_400 for d in cooling), cooling
    before = len(sim.log())
    with pytest.raises(openai.RateLimitError) as raised:
        chat(proxy, "gemini-3.1-pro-preview")
    assert raised.value.body["code"] == "all_keys_cooling" and len(sim.log()) == before


def test_a_knob_beyond_the_limit_is_a_configuration_error_naming_it(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1), settings={"dead_probation": "18446744073709552"})
    sim.behave("k1", "bare_429", times=1)  # a failure: the cooling knobs are read now
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert raised.value.status_code == 500 and raised.value.body["code"] == "config_error"
    assert "proxy_settings.dead_probation" in raised.value.body["message"]


def test_a_malformed_retry_knob_is_reported_when_a_request_goes_past_its_first_key(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"max_attempts": "many"})
    assert chat(proxy).choices[0].message.content  # the first key served: the knob was not needed
    sim.behave("*", "bare_429", times=1)
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert raised.value.status_code == 500 and raised.value.body["code"] == "config_error"
    assert "proxy_settings.max_attempts" in raised.value.body["message"]


def test_a_model_named_like_a_key_is_no_oracle_and_is_never_logged(sim, proxies):
    """Google echoes an unknown model's name; a pool key and a made-up key with the same ending
    come back identical, and neither reaches a log line."""
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))

    def answer(guess):
        with pytest.raises(openai.NotFoundError) as raised:
            chat(proxy, guess)
        return raised.value.body["message"]

    for pool_key, made_up in ((key(1), "AIzaSyGUESS00000000000000000000000000001"),
                              (key(2), "AQ.Ab8RN6GUESS000000000000000000000000000000000000002"),
                              (key(1).lower(), "aizasyguess00000000000000000000000000001")):
        for _ in range(4):  # whichever key served the request
            assert answer(pool_key) == answer(made_up)
    assert answer(key(1)).startswith("models/…0001 is not found"), answer(key(1))
    logs = proxy.logs()
    assert key(1) not in logs and key(2) not in logs and key(1).lower() not in logs


def test_a_key_google_quotes_escaped_lowercased_or_cut_is_still_masked(sim, proxies):
    """A native 400 quoting the key JSON-escaped character by character, lower-cased, and as a
    prefix: the native client gets Google's error rebuilt, every string scrubbed."""
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    sim.behave("k1", "quote_key_escaped")
    result = curl("-i", f"{proxy.url}/v1beta/models/{FLASH}:generateContent", "-H", f"x-goog-api-key: {TOKEN}",
                  "-d", json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}))
    code, _, body = split(result.stdout)
    assert code == 400
    decoded = json.dumps(json.loads(body))  # every \\u escape decoded, then written plainly
    assert key(1) not in decoded and key(1).lower() not in decoded and key(1)[:20] not in decoded, decoded
    error = json.loads(body)["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "…0001" in error["message"]
    assert error["details"][0]["reason"] == "BAD_REQUEST"


def test_an_upstream_redirect_is_a_502(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    sim.behave("k1", "redirect")
    code, headers, body = split(curl("-i", f"{proxy.url}/v1/chat/completions", "-H", f"Authorization: Bearer {TOKEN}",
                                     "-d", json.dumps(CHAT)).stdout)
    assert code == 502 and "location" not in headers
    assert json.loads(body)["error"]["code"] == "upstream_error"


def test_depleted_prepayment_cools_the_project_for_every_model(sim, proxies):
    projects = {1: "prepaid", 2: "prepaid"}
    sim.reset(sim_keys(3, projects))
    proxy = proxies(pool_lines(3, projects), settings={"strategy": "random"})
    sim.behave("k1", "billing")
    sim.behave("k2", "billing")
    while not any(e["status"] == 429 for e in sim.log()):
        chat(proxy)
    details = [d for d in status(proxy)["keyPool"]["coolingDetails"]]
    assert {d["key"] for d in details} == {"…0001", "…0002"}, details
    assert {(d["model"], d["reason"]) for d in details} == {(None, "prepayment credits depleted (the project's billing)")}
    assert 6 * 3600 - 10 < details[0]["remainingSeconds"] <= 6 * 3600
    before = len(sim.log())
    for model in (FLASH, "gemini-3.1-flash-lite", FLASH):
        chat(proxy, model)
    assert {e["key"] for e in sim.log()[before:]} == {"k3"}


def test_multiple_credentials_is_never_the_keys_fault(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", "multiple_credentials", times=1)
    with pytest.raises(openai.APIStatusError) as raised:
        chat(proxy)
    assert raised.value.status_code == 502 and raised.value.body["code"] == "proxy_error"
    pool = status(proxy)["keyPool"]
    assert (pool["failedKeys"], pool["coolingKeys"]) == (0, 0)


def test_aq_and_aiza_keys_both_serve_both_apis(sim, proxies):
    """The pool mixes `AIza…` keys and the `AQ.…` keys Google issues since mid-2026."""
    sim.reset(sim_keys(4))
    proxy = proxies(pool_lines(4), settings={"strategy": "random"})
    before = len(sim.log())
    google = genai_client(proxy)
    for _ in range(30):
        chat(proxy)
        assert google.models.generate_content(model=FLASH, contents="hi").text
    used = {(e["key"], e["key_via"]) for e in sim.log()[before:]}
    assert {k for k, _ in used} == {"k1", "k2", "k3", "k4"}
    assert {via for _, via in used} == {"authorization", "x-goog-api-key"}
    with pytest.raises(genai_errors.ClientError):
        google.models.generate_content(model="no-such-model", contents="hi")
