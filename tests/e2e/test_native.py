"""Gemini's native API through the pool, driven by Google's official google-genai SDK."""

import json

import pytest
from google import genai
from google.genai import errors, types

from harness import OTHER_TOKEN, TOKEN, curl, pool_lines, served, sim_keys

MODEL = "gemini-3.5-flash"


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3), models_page_size=25)
    return proxies(pool_lines(3))


def client(proxy, token=TOKEN, version=None):
    options = {"base_url": proxy.url, "retry_options": {"attempts": 1}}
    if version:
        options["api_version"] = version
    return genai.Client(api_key=token, http_options=options)


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_generate_content(world, sim, version):
    c = client(world, version=version)
    r = c.models.generate_content(model=MODEL, contents="Say hello")
    assert r.text == "Hello from the Gemini simulator"
    assert r.usage_metadata.total_token_count == 13
    entry = sim.log()[-1]
    assert entry["path"] == f"/{version}/models/{MODEL}:generateContent"
    assert entry["key_via"] == "x-goog-api-key" and entry["key"] in {"k1", "k2", "k3"}


def test_generate_content_stream(world, sim):
    c = client(world)
    chunks = list(c.models.generate_content_stream(model=MODEL, contents="Say hello"))
    assert "".join(ch.text for ch in chunks) == "Hello from the Gemini simulator"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert sim.log()[-1]["query"] == "alt=sse"


def test_stream_without_alt_sse_is_one_json_array(world):
    result = curl(f"{world.url}/v1beta/models/{MODEL}:streamGenerateContent",
                  "-H", f"x-goog-api-key: {TOKEN}", "-d", json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}))
    chunks = json.loads(result.stdout)
    assert isinstance(chunks, list) and len(chunks) == 5


def test_count_tokens_and_embeddings(world):
    c = client(world)
    assert c.models.count_tokens(model=MODEL, contents="one two three four").total_tokens == 4
    single = c.models.embed_content(model="gemini-embedding-001", contents="one")
    assert len(single.embeddings) == 1 and len(single.embeddings[0].values) == 8
    batch = c.models.embed_content(model="gemini-embedding-001", contents=["one", "two", "three"])
    assert len(batch.embeddings) == 3


def test_models_list_spans_pages(world, sim):
    c = client(world)
    before = len(sim.log())
    names = [m.name for m in c.models.list()]
    assert len(names) == 60 and names[0] == "models/gemini-3.1-pro-preview"
    pages = [e for e in sim.log()[before:] if e["path"].endswith("/models")]
    assert len(pages) == 3
    assert any("pageToken=" in e["query"] for e in pages)
    assert c.models.get(model="gemini-3.1-pro-preview").name == "models/gemini-3.1-pro-preview"


@pytest.mark.parametrize("how", ["header", "query", "bearer"])
def test_token_arrives_any_way_google_sdks_send_it_and_is_never_forwarded(world, sim, how):
    url = f"{world.url}/v1beta/models/{MODEL}:generateContent"
    auth = {"header": ["-H", f"x-goog-api-key: {TOKEN}"], "query": [], "bearer": ["-H", f"Authorization: Bearer {TOKEN}"]}[how]
    if how == "query":
        url += f"?key={TOKEN}"
    result = curl("-i", url, *auth, "-d", json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}))
    assert result.stdout.startswith("HTTP/1.1 200")
    entry = sim.log()[-1]
    assert TOKEN not in json.dumps(entry)
    assert "key=" not in entry["query"] and "authorization" not in entry["headers"]


def test_bad_token_raises_the_sdks_auth_error(world):
    c = client(world, token="not-a-client-token")
    with pytest.raises(errors.ClientError) as raised:
        c.models.generate_content(model=MODEL, contents="hi")
    assert raised.value.code == 401
    assert raised.value.status == "UNAUTHENTICATED"


def test_errors_keep_googles_envelope(world):
    c = client(world)
    with pytest.raises(errors.ClientError) as raised:
        c.models.generate_content(model="gemini-9-ultra", contents="hi")
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"
    assert "not found" in raised.value.message


def test_a_cooled_key_is_skipped_as_on_the_openai_side(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("k1", "per_minute", model=MODEL, times=1, retry_delay_s=30)
    c = client(proxy)
    before = len(sim.log())
    for _ in range(24):  # k1 is drawn at least once with p > 1 - 1e-7
        assert c.models.generate_content(model=MODEL, contents="hi").text
    log = sim.log()[before:]
    assert sum(1 for e in log if e["key"] == "k1") == 1
    assert served(log).count("k2") == 24
    report = json.loads(curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {OTHER_TOKEN}").stdout)
    [cooling] = report["keyPool"]["coolingDetails"]
    assert (cooling["key"], cooling["model"]) == ("…0001", MODEL)
    assert report["auth"]["client"] == "second client"


def test_all_keys_cooling_is_a_429_the_sdk_understands(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    sim.behave("k1", "per_minute", model=MODEL, times=1, retry_delay_s=30)
    c = client(proxy)
    for _ in range(2):
        with pytest.raises(errors.ClientError) as raised:
            c.models.generate_content(model=MODEL, contents="hi")
        assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    result = curl("-i", f"{proxy.url}/v1beta/models/{MODEL}:generateContent", "-H", f"x-goog-api-key: {TOKEN}", "-d", "{}")
    assert "retry-after: " in result.stdout.lower()
    body = json.loads(result.stdout.split("\n\n", 1)[1])
    assert body["error"]["code"] == 429 and MODEL in body["error"]["message"]


@pytest.mark.parametrize("path", [
    "/v1beta/models/x/../../something",
    "/v1beta/models/x/%2E%2E/%2E%2E/tunedModels",
    "/v1beta/models/gemini%2F..%2Fsecret:generateContent",
    "/v1beta/models/..%2Ffiles:generateContent",
    "/v1beta/models/gemini-3.5-flash:deleteModel",
    "/v1beta/fileSearchStores",
    "/v1beta/tunedModels/x:generateContent",
    "/v1beta/models/gemini-3.5-flash/extra:generateContent",
    "/v1beta//models/gemini-3.5-flash:generateContent",
])
def test_paths_outside_the_allow_list_never_reach_google(world, sim, path):
    before = len(sim.log())
    result = curl("-i", "--path-as-is", "-X", "POST", f"{world.url}{path}", "-H", f"x-goog-api-key: {TOKEN}", "-d", "{}")
    head, _, body = result.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 404"), head
    assert json.loads(body)["error"]["status"] == "NOT_FOUND"
    assert len(sim.log()) == before
