"""Warm instances: a Fastly sandbox (reusable sandboxes, `src/warm.rs`) or a Workers isolate
serves request after request. What it keeps is configuration (token lookups, knobs, key lists);
two clients alternating on one instance get nothing of each other, and a request that fails
leaves the next one whole."""

import http.client
import json
from urllib.parse import urlparse

import pytest

from harness import OTHER_TOKEN, TOKEN, pool_lines, sim_keys

FLASH = "gemini-3.5-flash"
HELLO = "Hello from the Gemini simulator"


def connection(proxy):
    """One keep-alive connection: Viceroy hands its next request to a sandbox waiting for one."""
    url = urlparse(proxy.url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def call(conn, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    data = json.dumps(body) if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        # workerd closes a connection whose request body was refused unread: open another.
        conn.close()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()


def chat(conn, token, model=FLASH):
    return call(conn, "POST", "/v1/chat/completions", token,
                {"model": model, "messages": [{"role": "user", "content": "hi"}]})


def warm(headers) -> bool:
    """Fastly: the request read no token, knob or key list — it ran on a warm sandbox."""
    return 'config;desc="0 reads"' in headers.get("server-timing", "")


def test_two_clients_alternating_on_one_instance_get_nothing_of_each_other(sim, proxies, edge):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    conn = connection(proxy)
    warm_answers = 0
    for i in range(12):
        marker = f"only-for-a-{i}"
        # A: a model Google does not know — its error quotes what A sent.
        status, headers, body = chat(conn, TOKEN, model=marker)
        assert status == 404 and marker in body, body
        status, headers, body = call(conn, "GET", "/v1/status", TOKEN)
        assert json.loads(body)["auth"] == {"client": "e2e tests", "role": "client"}
        # B, on the same instance: its own label and answer, nothing of A's.
        status, headers, body = call(conn, "GET", "/v1/status", OTHER_TOKEN)
        assert json.loads(body)["auth"] == {"client": "second client", "role": "client"}
        seen_by_b = body + json.dumps(headers)
        status, headers, body = chat(conn, OTHER_TOKEN)
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == HELLO
        seen_by_b += body + json.dumps(headers)
        assert "only-for-a" not in seen_by_b and "e2e tests" not in seen_by_b
        warm_answers += warm(headers)
    if edge == "fastly":
        assert warm_answers >= 6, f"only {warm_answers} of 12 answers came from a warm sandbox"


def test_a_token_not_in_the_store_stays_refused_on_a_warm_instance(sim, proxies):
    sim.reset(sim_keys(1))
    proxy = proxies(pool_lines(1))
    conn = connection(proxy)
    for _ in range(6):
        status, _, body = chat(conn, "tok-not-issued")
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_token"
        status, _, _ = chat(conn, TOKEN)
        assert status == 200


@pytest.mark.fastly_only("reusable sandboxes")
def test_a_request_that_fails_leaves_the_next_one_whole(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    conn = connection(proxy)
    assert chat(conn, TOKEN)[0] == 200
    # Google fails every key, and a client hangs up in the middle of a stream.
    sim.behave("*", "internal", times=2)
    status, _, body = chat(conn, TOKEN)
    assert status == 500, body
    stream = connection(proxy)
    stream.request("POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                   body=json.dumps({"model": FLASH, "stream": True, "messages": [{"role": "user", "content": "hi"}]}))
    response = stream.getresponse()
    assert response.status == 200 and response.read(10)
    stream.close()
    for _ in range(6):
        status, headers, body = chat(conn, TOKEN)
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == HELLO
