"""Quota-aware cooling end to end: Viceroy's KV store holds the state, the official openai SDK
sees the answers, the simulator says which key served what."""

import json
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import openai
import pytest

from harness import ADMIN_TOKEN, TOKEN, curl, genai_client, pool_lines, served, sim_keys

FLASH = "gemini-3.5-flash"
OTHER = "gemini-3.1-flash-lite"


def client(proxy):
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TOKEN, max_retries=0)


def chat(proxy, model=FLASH):
    return client(proxy).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def status(proxy) -> dict:
    return json.loads(curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {ADMIN_TOKEN}").stdout)


def details(report, model=None):
    return [d for d in report["keyPool"]["coolingDetails"] if model is None or d["model"] == model]


def next_pacific_midnight(now: datetime) -> datetime:
    la = now.astimezone(ZoneInfo("America/Los_Angeles"))
    midnight = datetime(la.year, la.month, la.day, tzinfo=ZoneInfo("America/Los_Angeles")) + timedelta(days=1)
    return midnight.astimezone(timezone.utc)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("style", ["2025", "2026"])
def test_per_minute_cools_only_that_key_and_model_for_the_retry_delay(sim, proxies, style):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    sim.behave("k1", "per_minute", model=FLASH, times=1, retry_delay_s=3, style=style)
    with pytest.raises(openai.RateLimitError) as raised:
        chat(proxy)
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 5
    cooling = details(status(proxy))
    assert len(cooling) == 1 and cooling[0]["model"] == FLASH and cooling[0]["key"] == "…0001"
    assert cooling[0]["reason"] == "per-minute quota exceeded"
    assert 2 <= cooling[0]["remainingSeconds"] <= 5

    # While it cools, the proxy answers for Google without asking it…
    before = len(sim.log())
    with pytest.raises(openai.RateLimitError) as raised:
        chat(proxy)
    assert raised.value.body["code"] == "all_keys_cooling" and FLASH in raised.value.body["message"]
    assert len(sim.log()) == before
    # …and the same key keeps serving another model.
    assert chat(proxy, OTHER).choices[0].message.content
    assert served(sim.log(), before) == ["k1"]

    # After about retryDelay (+ jitter) the key serves the model again.
    time.sleep(4.2)
    assert chat(proxy).choices[0].message.content


@pytest.mark.parametrize("style", ["2025", "2026"])
def test_per_day_cools_until_pacific_midnight_whatever_retry_delay_says(sim, proxies, style):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("k1", "per_day", model=FLASH, times=1, retry_delay_s=22, style=style)
    sim.behave("k2", "per_day", model=FLASH, times=1, retry_delay_s=22, style=style)
    with pytest.raises(openai.RateLimitError):
        chat(proxy)
    report = status(proxy)
    expected = next_pacific_midnight(datetime.now(timezone.utc))
    assert len(details(report, FLASH)) == 2
    for d in details(report, FLASH):
        assert d["reason"].startswith("per-day quota")
        assert abs((parse_time(d["until"]) - expected).total_seconds()) < 1
        assert d["remainingSeconds"] > 22
    assert chat(proxy, OTHER).choices[0].message.content


def test_invalid_key_is_taken_out(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2) + ["AIzaSyTEST99999999999999999999999999999"])  # unknown to Google
    sim.behave("k1", "invalid")
    before = len(sim.log())
    # Each key is drawn uniformly until it is found dead: 40 requests miss one with p < 1e-6.
    for _ in range(40):
        assert chat(proxy).choices[0].message.content
    log = sim.log()[before:]
    assert sum(1 for e in log if e["key"] == "k1") <= 1
    assert sum(1 for e in log if e["key"].startswith("unknown")) <= 1
    pool = status(proxy)["keyPool"]
    assert (pool["failedKeys"], pool["availableKeys"]) == (2, 1)
    reasons = {d["key"]: d["reason"] for d in pool["failedDetails"]}
    assert set(reasons.values()) == {"API key not valid or expired"}
    assert all(d["probationAt"] for d in pool["failedDetails"])


@pytest.mark.parametrize("kind, reason", [
    ("leaked", "API key reported as leaked"),
    ("suspended", "consumer suspended"),
    ("unauthenticated", "unauthenticated (401)"),
    ("service_disabled", "Generative Language API disabled in the project"),
    # Google's 2026 answers to a key it no longer accepts.
    ("access_token_type_unsupported", "unauthenticated (401)"),
    ("credentials_missing", "API keys not supported for this API (401)"),
])
def test_dead_key_verdicts(sim, proxies, kind, reason):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"strategy": "random"})
    sim.behave("k1", kind)
    for _ in range(24):  # k1 is drawn at least once with p > 1 - 1e-7
        chat(proxy)
    failed = status(proxy)["keyPool"]["failedDetails"]
    assert [(d["key"], d["reason"]) for d in failed] == [("…0001", reason)]


def test_googles_message_quoting_the_key_is_scrubbed(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    sim.behave("k1", "suspended", times=1)
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert "consumer suspended" in raised.value.body["message"]
    logged = proxy.logs(waiting_for="has been suspended")
    assert "Consumer 'api_key:…0001' has been suspended" in logged and "AIza" not in logged


def test_a_503_burst_leaves_every_key_available(sim, proxies):
    sim.reset(sim_keys(3))
    proxy = proxies(pool_lines(3))
    sim.burst(1.5)
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert raised.value.status_code == 503
    pool = status(proxy)["keyPool"]
    assert (pool["availableKeys"], pool["coolingKeys"], pool["failedKeys"]) == (3, 0, 0)
    time.sleep(1.6)
    before = len(sim.log())
    for _ in range(30):
        chat(proxy)
    assert set(served(sim.log(), before)) == {"k1", "k2", "k3"}


def test_all_keys_cooling_answers_429_with_retry_after(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", "per_minute", model=FLASH, times=2, retry_delay_s=40)
    with pytest.raises(openai.RateLimitError):
        chat(proxy)
    result = curl("-i", f"{proxy.url}/v1/chat/completions", "-H", f"Authorization: Bearer {TOKEN}",
                  "-d", json.dumps({"model": FLASH, "messages": []}))
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 429")
    retry_after = int(next(line.split(":")[1] for line in head.split("\n") if line.lower().startswith("retry-after")))
    assert 38 <= retry_after <= 42
    error = json.loads(body)["error"]
    assert error["type"] == "rate_limit_error" and FLASH in error["message"]


def test_shortest_cooldown_mode_tries_the_key_that_recovers_first(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"when_all_cooling": "shortest-cooldown"})
    sim.behave("k1", "per_minute", model=FLASH, times=1, retry_delay_s=50)
    sim.behave("k2", "per_minute", model=FLASH, times=1, retry_delay_s=20)
    with pytest.raises(openai.RateLimitError):
        chat(proxy)
    before = len(sim.log())
    assert chat(proxy).choices[0].message.content
    assert served(sim.log(), before) == ["k2"]


def test_keys_of_one_project_cool_together(sim, proxies):
    projects = {1: "team-a", 2: "team-a"}
    sim.reset(sim_keys(3, projects))
    proxy = proxies(pool_lines(3, projects), settings={"max_attempts": 1})
    sim.behave("k1", "per_minute", model=FLASH, times=1, retry_delay_s=30)
    sim.behave("k2", "per_minute", model=FLASH, times=1, retry_delay_s=30)
    for _ in range(6):
        try:
            chat(proxy)
        except openai.RateLimitError:
            pass
    report = status(proxy)
    cooled = {d["key"] for d in details(report, FLASH)}
    assert cooled == {"…0001", "…0002"}
    assert {d["project"] for d in details(report, FLASH)} == {"team-a"}
    before = len(sim.log())
    for _ in range(5):
        chat(proxy)
    assert served(sim.log(), before) == ["k3"] * 5


def test_seed_profile_benches_the_whole_key_for_a_day(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"cooling_profile": "seed", "strategy": "random"})
    sim.behave("k1", "per_minute", times=1, retry_delay_s=5)
    for _ in range(24):  # k1 is drawn at least once with p > 1 - 1e-7
        chat(proxy)
    report = status(proxy)
    assert report["cooling"]["profile"] == "seed"
    [d] = details(report)
    assert (d["key"], d["model"], d["reason"]) == ("…0001", None, "HTTP 429 (seed profile)")
    assert 86_390 <= d["remainingSeconds"] <= 86_400
    assert d["remainingDisplay"] in ("24h0m", "23h59m")


def test_a_dead_key_comes_back_after_probation(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"dead_probation": "2s", "strategy": "random"})
    sim.behave("k1", "invalid", times=1)
    for _ in range(24):  # k1 is drawn at least once with p > 1 - 1e-7
        chat(proxy)
    assert status(proxy)["keyPool"]["failedKeys"] == 1
    time.sleep(2.2)
    for _ in range(40):
        chat(proxy)
        if status(proxy)["keyPool"]["failedKeys"] == 0:
            break
    assert status(proxy)["keyPool"]["failedKeys"] == 0


def test_state_is_written_only_when_it_changes(sim, proxies, edge):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", "per_minute", model=FLASH, times=1, retry_delay_s=30)

    def timing():
        result = curl("-i", f"{proxy.url}/v1/chat/completions", "-H", f"Authorization: Bearer {TOKEN}",
                      "-d", json.dumps({"model": FLASH, "messages": []}))
        lines = result.stdout.replace("\r\n", "\n").split("\n")
        return next(line for line in lines if line.startswith("server-timing"))

    # On Fastly, a 429: its verdict is written at once — its own entry (compare-and-swap) and a
    # line appended to the model item, the index — and both items and the entry are read back;
    # the other key, which the index just written may not know about yet, is confirmed against
    # its entry before it serves (2 + 3 + 1 reads). A success while the index is that fresh
    # confirms its key too (2 + 1 reads); once the index has been quiet for 2 s (HOT_MS), a plain
    # success reads the two items and writes nothing.
    # On Workers (no verdict entries): one call reads both items, one appends and reads back;
    # then none: the isolate read both items back within its 1 s read cache (STATE_CACHE_MS).
    if edge == "fastly":
        assert 'kv;desc="6 reads, 2 writes"' in timing()
        assert 'kv;desc="3 reads, 0 writes"' in timing()
        time.sleep(2.1)
        assert 'kv;desc="2 reads, 0 writes"' in timing()
    else:
        assert 'state;desc="2 calls"' in timing()
        assert 'state;desc="0 calls"' in timing()


def test_missing_kv_store_never_fails_requests(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), kv=False)
    sim.behave("*", "per_minute", times=1, retry_delay_s=30)
    assert chat(proxy).choices[0].message.content
    assert chat(proxy).choices[0].message.content
    assert "cooling state is not kept" in proxy.logs(waiting_for="cooling state is not kept")


def test_every_key_dead_is_a_503_not_googles_words_about_our_key(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", "invalid")
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert raised.value.status_code == 503 and raised.value.body["code"] == "all_keys_failed"
    assert "API key not valid or expired" in raised.value.body["message"]
    # Now the pool is known dead: the proxy answers without asking Google.
    before = len(sim.log())
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert raised.value.status_code == 503 and len(sim.log()) == before
    assert status(proxy)["status"] == "degraded"


def test_retries_stay_within_the_platforms_request_budget(sim, proxies, edge):
    """40 keys all refusing, max_attempts at its highest: Fastly stops at its 32 backend
    requests per client request; Workers at what SUBREQUEST_LIMIT leaves after the state calls
    (here 20 → (20 − 5) ÷ 2 = 7 keys)."""
    sim.reset(sim_keys(40))
    settings = {"max_attempts": 32, **({"SUBREQUEST_LIMIT": 20} if edge == "cloudflare" else {})}
    proxy = proxies(pool_lines(40), settings=settings)
    sim.behave("*", "per_minute", retry_delay_s=30)
    before = len(sim.log())
    with pytest.raises(openai.RateLimitError):
        chat(proxy)
    calls = sim.log()[before:]
    assert len(calls) == (32 if edge == "fastly" else 7)
    assert len(details(status(proxy), FLASH)) == len(calls)


def test_a_subrequest_limit_that_is_not_a_number_is_a_clear_error(sim, proxies, edge):
    if edge != "cloudflare":
        pytest.skip("SUBREQUEST_LIMIT is the Workers edge's")
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1), settings={"SUBREQUEST_LIMIT": "lots"})
    with pytest.raises(openai.InternalServerError) as raised:
        chat(proxy)
    assert "SUBREQUEST_LIMIT must be a whole number" in raised.value.body["message"]


RETIRED = "gemini-2.5-flash"  # closed to new projects in 2026: Google answers 404 to young ones
YOUNG = {"young-a": {"retired": [RETIRED]}, "young-b": {"retired": [RETIRED]}}


def test_a_model_retired_for_young_projects_is_served_by_an_old_one(sim, proxies):
    projects = {1: "young-a", 2: "young-a", 3: "young-b", 4: "old"}
    sim.reset(sim_keys(4, projects), projects=YOUNG)
    proxy = proxies(pool_lines(4, projects))
    for _ in range(8):
        assert chat(proxy, RETIRED).choices[0].message.content
    refused = [c for c in sim.log() if c["status"] == 404]
    assert 1 <= len(refused) <= 2, "each young project is asked once for the model, then cools"
    assert {c["key"] for c in sim.log() if c["status"] == 200} == {"k4"}
    cooling = details(status(proxy), RETIRED)
    assert {d["project"] for d in cooling} == {projects[int(c["key"][1:])] for c in refused}
    assert all(d["reason"].startswith("model no longer available") for d in cooling)
    assert all(d["remainingSeconds"] > 23 * 3600 for d in cooling), "a project does not grow older by the minute"
    # The young projects keep serving the models they may use.
    before = len(sim.log())
    for _ in range(4):
        assert chat(proxy, OTHER).choices[0].message.content
    assert {c["key"] for c in sim.log()[before:]} & {"k1", "k2", "k3"}


def test_a_model_retired_for_every_project_is_a_404_not_a_wait(sim, proxies):
    projects = {1: "young-a", 2: "young-b"}
    sim.reset(sim_keys(2, projects), projects=YOUNG)
    proxy = proxies(pool_lines(2, projects))
    before = len(sim.log())
    with pytest.raises(openai.NotFoundError) as raised:
        chat(proxy, RETIRED)
    assert "is no longer available to new users" in raised.value.message
    assert [c["status"] for c in sim.log()[before:]] == [404, 404], "both projects asked, one request"
    # Now the pool knows: the proxy answers without asking Google, with a 404, not a 429.
    with pytest.raises(openai.NotFoundError) as raised:
        chat(proxy, RETIRED)
    assert raised.value.body["code"] == "model_not_found" and RETIRED in raised.value.message
    assert "retry-after" not in raised.value.response.headers
    native = curl(f"{proxy.url}/v1beta/models/{RETIRED}:generateContent", "-H", f"x-goog-api-key: {TOKEN}",
                  "-H", "Content-Type: application/json", "-d", '{"contents":[{"parts":[{"text":"hi"}]}]}',
                  "-w", "\n%{http_code}")
    body, code = native.stdout.rsplit("\n", 1)
    assert code == "404" and json.loads(body)["error"]["status"] == "NOT_FOUND"
    assert len(sim.log()) == before + 2




@pytest.mark.parametrize("kind", ["empty", "thoughts_only"])
def test_an_empty_answer_is_tried_on_another_key_blaming_none(sim, proxies, kind):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", kind, times=1)
    before = len(sim.log())
    assert chat(proxy).choices[0].message.content == "Hello from the Gemini simulator"
    calls = sim.log()[before:]
    assert len(calls) == 2 and calls[0]["key"] != calls[1]["key"]
    sim.behave("*", kind, times=1)
    native = genai_client(proxy)
    assert native.models.generate_content(model=FLASH, contents="hi").text == "Hello from the Gemini simulator"
    assert len(sim.log()) == before + 4
    assert details(status(proxy)) == [], "the key that answered empty is not blamed"


def test_an_empty_answer_beats_a_later_error_and_reaches_the_client_as_it_came(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("k1", "empty", times=1)
    sim.behave("k2", "internal", times=1)
    r = chat(proxy)
    assert r.choices[0].message.content == "" and r.choices[0].finish_reason == "stop"
    assert sorted(c["status"] for c in sim.log()[-2:]) == [200, 500]


def test_retry_empty_answers_off_delivers_the_first(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"retry_empty_answers": "off"})
    sim.behave("*", "empty", times=1)
    before = len(sim.log())
    assert chat(proxy).choices[0].message.content == ""
    assert len(sim.log()) == before + 1


def test_an_answer_longer_than_the_check_passes_whole(sim, proxies):
    sim.reset(sim_keys(1), stream_chunks=40_000)  # about 230 KB of text, past the 64 KiB read
    proxy = proxies(pool_lines(1))
    text = chat(proxy).choices[0].message.content
    words = ["Hello", " from", " the", " Gemini", " simulator", ",", " friend", "."]
    assert text == "".join(words[i % len(words)] for i in range(40_000))
    native = genai_client(proxy)
    assert native.models.generate_content(model=FLASH, contents="hi").text == text


@pytest.mark.parametrize("kind", ["empty", "thoughts_only"])
def test_a_stream_that_ends_before_any_content_is_tried_on_another_key(sim, proxies, kind):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    sim.behave("*", kind, times=1)
    before = len(sim.log())
    stream = client(proxy).chat.completions.create(model=FLASH, stream=True,
                                                   messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the Gemini simulator"
    calls = sim.log()[before:]
    assert len(calls) == 2 and calls[0]["key"] != calls[1]["key"]
    sim.behave("*", kind, times=1)
    native = genai_client(proxy)
    chunks = list(native.models.generate_content_stream(model=FLASH, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "Hello from the Gemini simulator"
    assert len(sim.log()) == before + 4
    assert details(status(proxy)) == []
