"""Per-client policy on both edges: allowed models, aliases, limits, projects, token usage and
`/v1/usage` — driven by the official openai and google-genai SDKs and curl."""

import concurrent.futures
import json
import time

import openai
import pytest
from google import genai
from google.genai import errors

from harness import ADMIN_TOKEN, OTHER_TOKEN, TOKEN, curl, pool_lines, sim_keys

MODEL = "gemini-3.5-flash"
# What `tests/e2e/harness.py` names the two client tokens.
APP, OTHER = "e2e tests", "second client"


def oai(proxy, token=TOKEN):
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)


def gai(proxy, token=TOKEN):
    return genai.Client(api_key=token, http_options={"base_url": proxy.url, "retry_options": {"attempts": 1}})


def chat(proxy, model=MODEL, token=TOKEN, **kw):
    return oai(proxy, token).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)


def usage(proxy, token, query=""):
    out = curl(f"{proxy.url}/v1/usage?{query}", "-H", f"Authorization: Bearer {token}")
    return json.loads(out.stdout)


def wait_for_usage(proxy, token, query, predicate, timeout=10.0):
    """Counts are appended after each answer: poll until they say what is expected."""
    deadline = time.time() + timeout
    while True:
        body = usage(proxy, token, query)
        if predicate(body) or time.time() > deadline:
            return body
        time.sleep(0.2)


def test_an_allow_list_refuses_other_models_in_both_dialects(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), policies={APP: {"models": ["gemini-3.5-*"]}})
    assert chat(proxy).choices[0].message.content
    calls = len(sim.log())
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(proxy, model="gemini-3.1-pro-preview")
    assert refused.value.status_code == 403 and "gemini-3.1-pro-preview" in refused.value.message
    assert refused.value.code == "model_not_allowed"
    g = gai(proxy)  # google-genai closes a client nothing refers to
    with pytest.raises(errors.ClientError) as native:
        g.models.generate_content(model="gemini-3.1-pro-preview", contents="hi")
    assert native.value.code == 403 and native.value.status == "PERMISSION_DENIED"
    assert "gemini-3.1-pro-preview" in native.value.message
    assert len(sim.log()) == calls, "a refused model never reaches Google"
    # Lists show only what the client may use; another client sees everything.
    listed = {m.id for m in oai(proxy).models.list()}
    assert listed == {"gemini-3.5-flash", "gemini-3.5-flash-lite"}, listed
    native_listed = {m.name for m in g.models.list()}
    assert native_listed == {"models/gemini-3.5-flash", "models/gemini-3.5-flash-lite"}, native_listed
    assert len(list(oai(proxy, OTHER_TOKEN).models.list())) > 10


def test_an_alias_is_used_end_to_end_and_the_client_sees_its_name(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), policies={APP: {"aliases": {"gpt-4o-mini": MODEL}}})
    answer = chat(proxy, model="gpt-4o-mini")
    assert answer.model == "gpt-4o-mini" and answer.choices[0].message.content
    assert sim.log()[-1]["model"] == MODEL, "Google is asked for the Gemini model"
    chunks = list(chat(proxy, model="gpt-4o-mini", stream=True))
    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    g = gai(proxy)
    native = g.models.generate_content(model="gpt-4o-mini", contents="hi")
    assert native.model_version == "gpt-4o-mini" and native.text
    assert sim.log()[-1]["path"].endswith(f"/models/{MODEL}:generateContent")
    # Listed under the client's name too.
    assert "gpt-4o-mini" in {m.id for m in oai(proxy).models.list()}
    # Another client has no alias: Google does not know the name.
    with pytest.raises(openai.NotFoundError):
        chat(proxy, model="gpt-4o-mini", token=OTHER_TOKEN)


def test_a_client_over_rpm_gets_429_retry_after_and_ratelimit_headers(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), policies={APP: {"rpm": 3}})
    minute = int(time.time()) // 60
    if time.time() % 60 > 50:  # the window must not turn during the test
        time.sleep(61 - time.time() % 60)
        minute += 1
    c = oai(proxy)
    seen = []
    for _ in range(3):
        raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        seen.append(raw.headers.get("x-ratelimit-remaining-requests"))
        assert raw.headers.get("x-ratelimit-limit-requests") == "3"
        assert raw.headers.get("x-ratelimit-reset-requests", "").endswith("s")
    assert seen == ["2", "1", "0"], seen
    calls = len(sim.log())
    with pytest.raises(openai.RateLimitError) as over:
        c.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    headers = over.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert over.value.code == "client_rate_limited" and "rpm = 3" in over.value.message
    assert len(sim.log()) == calls, "a refused request never reaches Google"
    # Another client is not limited.
    assert chat(proxy, token=OTHER_TOKEN).choices
    assert int(time.time()) // 60 == minute


def test_tokens_per_day_is_reached_from_the_tokens_google_reports(sim, proxies):
    sim.reset(sim_keys(2))
    # The simulator reports 8 prompt + 5 completion tokens per chat answer: 13 a request.
    proxy = proxies(pool_lines(2), policies={APP: {"tokens_per_day": 30}})

    def counted(token, total):
        """The tokens land after each answer: wait until the client's own usage shows them."""
        body = wait_for_usage(proxy, token, "by=client",
                              lambda b: sum(r["total_tokens"] for r in b.get("rows", [])) >= total)
        assert sum(r["total_tokens"] for r in body["rows"]) == total, body

    for n in range(1, 4):
        raw = oai(proxy).chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["x-ratelimit-limit-tokens"] == "30"
        counted(TOKEN, 13 * n)
    with pytest.raises(openai.RateLimitError) as over:
        chat(proxy)
    assert "tokens_per_day = 30" in over.value.message
    assert over.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    # Streams count too, from their last chunk.
    other = proxies(pool_lines(2), policies={OTHER: {"tokens_per_day": 20}})
    for n in range(1, 3):
        list(chat(other, token=OTHER_TOKEN, stream=True))
        body = wait_for_usage(other, OTHER_TOKEN, "by=client",
                              lambda b: sum(r["total_tokens"] for r in b.get("rows", [])) >= 13 * n)
        assert sum(r["total_tokens"] for r in body["rows"]) == 13 * n, body
    with pytest.raises(openai.RateLimitError):
        chat(other, token=OTHER_TOKEN)


def test_projects_keep_a_client_on_its_teams_keys(sim, proxies):
    projects = {1: "team-a", 2: "team-a", 3: "team-b", 4: "team-b"}
    sim.reset(sim_keys(4, projects))
    proxy = proxies(pool_lines(4, projects), policies={APP: {"projects": ["team-b"]}})
    before = len(sim.log())
    for _ in range(12):
        chat(proxy)
    used = {e["key"] for e in sim.log()[before:]}
    assert used <= {"k3", "k4"} and used, used
    before = len(sim.log())
    for _ in range(20):  # all 20 on team-b's two keys by chance: p = 2**-20
        chat(proxy, token=OTHER_TOKEN)
    assert {e["key"] for e in sim.log()[before:]} & {"k1", "k2"}, "other clients use every project"
    # When its team's project is out of quota, the client waits: it never borrows another team's.
    sim.behave("k3", "per_minute", model=MODEL, times=1, retry_delay_s=30)
    sim.behave("k4", "per_minute", model=MODEL, times=1, retry_delay_s=30)
    codes = []
    before = len(sim.log())
    for _ in range(4):
        with pytest.raises(openai.RateLimitError) as e:
            chat(proxy)
        codes.append(e.value.code)
    # The first gets Google's own 429 (its last answer); then the project is known to cool.
    assert codes[1:] == ["all_keys_cooling"] * 3, codes
    assert {e["key"] for e in sim.log()[before:]} <= {"k3", "k4"}


def test_usage_counts_tokens_and_a_client_reads_only_its_own(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    chat(proxy)
    list(chat(proxy, stream=True))
    g = gai(proxy)
    g.models.generate_content(model=MODEL, contents="hi")
    chat(proxy, token=OTHER_TOKEN)

    def mine(body):
        rows = body.get("rows", [])
        return sum(r["requests"] for r in rows) == 3
    own = wait_for_usage(proxy, TOKEN, "by=client,model", mine)
    assert [r["client"] for r in own["rows"]] == [APP], own
    row = own["rows"][0]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (3, 24, 15, 39)
    everyone = wait_for_usage(proxy, ADMIN_TOKEN, "by=client", lambda b: len(b.get("rows", [])) == 2)
    assert {r["client"]: r["requests"] for r in everyone["rows"]} == {APP: 3, OTHER: 1}
    by_key = usage(proxy, ADMIN_TOKEN, "by=key")
    assert sum(r["total_tokens"] for r in by_key["rows"]) == 52
    csv = curl(f"{proxy.url}/v1/usage?by=day", "-H", f"Authorization: Bearer {ADMIN_TOKEN}", "-H", "Accept: text/csv")
    lines = csv.stdout.strip().split("\n")
    assert lines[0].startswith("day,requests,ok,failed,prompt_tokens") and lines[1].endswith(",52"), lines
    refused = curl("-i", f"{proxy.url}/v1/usage?by=key", "-H", f"Authorization: Bearer {TOKEN}")
    assert " 403 " in refused.stdout.split("\n")[0]


def test_a_bad_policy_is_a_500_naming_the_label_and_field(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1), policies={APP: '{"rpm": "lots"}'})
    with pytest.raises(openai.InternalServerError) as broken:
        chat(proxy)
    assert "client_policies.e2e tests: rpm" in broken.value.message
    assert chat(proxy, token=OTHER_TOKEN).choices, "other clients are served"


def test_rpd_under_30_concurrent_clients_passes_by_at_most_those_in_flight(sim, proxies):
    sim.reset(sim_keys(4))
    limit, clients, sent = 10, 30, 60
    proxy = proxies(pool_lines(4), policies={APP: {"rpd": limit}})

    def one(_):
        try:
            chat(proxy)
            return 200
        except openai.RateLimitError:
            return 429
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(one, range(sent)))
    admitted = statuses.count(200)
    print(f"rpd={limit}, {sent} requests from {clients} concurrent clients: {admitted} admitted")
    assert limit <= admitted <= limit + clients, statuses
    assert statuses.count(429) == sent - admitted
    # Once the burst is over, the count is exact: nothing more passes.
    with pytest.raises(openai.RateLimitError):
        chat(proxy)


@pytest.mark.fastly_only("Server-Timing counts KV and config-store operations on Fastly")
def test_what_a_policy_costs_in_store_operations(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), policies={APP: {"rpd": 100}})

    def timing(token):
        out = curl("-si", f"{proxy.url}/v1/chat/completions", "-H", f"Authorization: Bearer {token}",
                   "-H", "content-type: application/json",
                   "--data-binary", json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}))
        line = next(l for l in out.stdout.splitlines() if l.lower().startswith("server-timing:"))
        return line
    plain = timing(OTHER_TOKEN)
    # No policy: the KV operations of any request (its two cooling items); cold, one config read
    # more than without the store (the label's lookup finds nothing).
    assert 'kv;desc="2 reads, 0 writes"' in plain, plain
    assert 'config;desc="6 reads"' in plain or 'sandbox;desc="request 1"' not in plain, plain
    first, second = timing(TOKEN), timing(TOKEN)
    print("limited:", first, second, sep="\n")
    # With `rpd` on Fastly's KV (entries of its own): the client's head read and its minutes
    # listed, then its slot stored before the request is sent; the day's first request also
    # writes the head. The minutes after a head that is current: this one only (two in the
    # first seconds of a minute, before the last one is final).
    assert 'kv;desc="4 reads, 2 writes"' in first, first
    assert 'kv;desc="4 reads, 1 writes"' in second or 'kv;desc="5 reads, 1 writes"' in second, second


def test_a_client_refused_thousands_of_times_costs_what_it_did_at_first(sim, proxies):
    """Every refused request appends a claim and gives it back: the limit item would grow all
    day, and a parse quadratic in it would make each request dearer than the last. The claimer
    compacts it and the parse is linear: the 3,000th refusal costs what the first did."""
    import http.client
    import socket
    import statistics
    sim.reset(sim_keys(2))
    # No recording relay in between (a refusal carries no key to scan for): the times are the
    # proxy's, not a relay's.
    proxy = proxies(pool_lines(2), policies={APP: {"rpd": 3}}, relay=False)
    host, port = proxy.url.split("//")[1].split(":")

    def connect():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}

    def send(conn):
        started = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started

    def timed(count):
        conn = connect()
        results = [send(conn) for _ in range(count)]
        conn.close()
        assert all(status == 429 for status, _ in results), results[:3]
        return statistics.median(t for _, t in results)

    for _ in range(3):
        chat(proxy)
    early = timed(100)

    def fill(n):
        conn = connect()
        statuses = [send(conn)[0] for _ in range(n)]
        conn.close()
        return statuses
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        filled = [s for statuses in pool.map(fill, [375] * 8) for s in statuses]
    assert set(filled) == {429}
    late = timed(100)
    print(f"refused request, median: {early * 1000:.2f} ms at first, {late * 1000:.2f} ms after 3,100 refusals")
    assert late < 2.5 * early, f"{late * 1000:.2f} ms after 3,100 refusals vs {early * 1000:.2f} ms at first"
