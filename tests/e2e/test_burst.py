"""Shared cooling state under bursts of concurrent clients: many Viceroy instances at once,
one KV store, the simulator counting every call Google would have received."""

import time

import pytest

from bursts import FLASH, burst, chat, contention_rounds, quota_burst, status
from harness import pool_lines, sim_keys


#: Most upstream calls per success in the burst. At least one refusal per bucket; the rest are
#: calls already on their way when Google's first refusal of their bucket came back (the design
#: before this one made 20). Fastly: 1.4-2.8 measured, Viceroy runs instances in parallel; 10
#: runs in a row gave 1.36-1.94, and one run from a fresh clone 4.17 (with no late hit: how
#: many calls are in flight when a refusal lands depends on how the 2 cores schedule 60
#: clients). Workers: 3.0-4.1 measured; workerd runs every request of the test on one thread,
#: and under 60 clients a turn of its event loop takes ~50 ms (the simulator receives the
#: Worker's calls in batches that far apart), so a verdict reaches the other requests a turn
#: later than on Fastly. The bound is the same for both: 6, against the 20 of the old design.
#: How many calls are in flight depends on this machine's scheduling, so the tight bound lives
#: in the deterministic simulation of the same burst (`simulate/tests/short.rs`: under 3, where
#: the old design makes 21).
MAX_CALLS_PER_SUCCESS = {"fastly": 6, "cloudflare": 6}


def test_a_burst_spends_no_call_on_a_bucket_google_already_refused(sim, proxies, edge):
    """60 concurrent clients, 12 one-key projects allowing 3 requests per minute each."""
    r = quota_burst(sim, lambda keys: proxies(keys, relay=False))
    print(f"\nburst: {r}")
    assert r["elapsed_s"] < 50, "the burst must fit in one quota minute"
    assert r["successes"] == r["capacity"], "every request the quotas allow is served"
    assert r["codes"] == [200, 429]
    assert r["late_hits"] == 0
    assert r["refused"] >= 12
    assert r["calls_per_success"] <= MAX_CALLS_PER_SUCCESS[edge], r
    assert r["cooling_after"] == 12, "every refused bucket is cooling, for every instance"


def test_no_verdict_is_lost_to_contention(sim, proxies):
    """50 concurrent clients, 20 keys that all start answering 429, five rounds: after each
    round every key Google refused is cooling, and no key is called again while it cools."""
    sim.reset(sim_keys(20))
    proxy = proxies(pool_lines(20), settings={"cool_jitter_ms": "200"}, relay=False)
    r = contention_rounds(sim, proxy)
    assert r["tried"] == [20] * 5, r
    assert r["lost"] == [0] * 5, f"keys refused but not cooling after the round: {r}"
    assert r["late"] == [0] * 5, f"calls to a key more than 1 s after Google refused it: {r}"
    assert r["unsaved_log_lines"] == 0, r


def test_a_revived_key_never_erases_another_keys_dead_mark(sim, proxies):
    """Probation clears one key's dead mark while other instances mark another key dead:
    nothing is deleted, so the second mark survives."""
    sim.reset(sim_keys(3))
    proxy = proxies(pool_lines(3), settings={"dead_probation": "2s", "strategy": "random"}, relay=False)
    sim.behave("k1", "invalid", times=1)
    while status(proxy)["keyPool"]["failedKeys"] == 0:
        chat(proxy)
    time.sleep(2.1)  # k1's probation is due: the next request that draws it revives it
    # k2 is refused once: if its dead mark were erased it would be tried again and serve.
    sim.behave("k2", "invalid", times=1)
    sim.behave("k1", "latency", ms=300, times=1)  # the probation request overlaps the others
    codes = burst(proxy, clients=12, per_client=2)
    assert set(codes) == {200}, codes
    failed = status(proxy)["keyPool"]["failedDetails"]
    assert [d["key"] for d in failed] == ["…0002"], failed


@pytest.mark.parametrize("project", ["my team", "équipe", "a/b", "50% off"])
def test_any_project_name_keeps_its_cooldowns(sim, proxies, project):
    """Two keys of one project (named with spaces, non-ASCII, `/`, `%`) and one other key."""
    sim.reset(sim_keys(3, {1: project, 2: project}))
    proxy = proxies(pool_lines(3, {1: project, 2: project}))
    sim.behave("k1", "per_minute", model=FLASH, retry_delay_s=30)
    sim.behave("k2", "per_minute", model=FLASH, retry_delay_s=30)
    while not any(e["status"] == 429 for e in sim.log()):
        chat(proxy)
    details = [d for d in status(proxy)["keyPool"]["coolingDetails"] if d["model"] == FLASH]
    assert {d["key"] for d in details} == {"…0001", "…0002"}, details
    before = len(sim.log())
    for _ in range(6):
        assert chat(proxy) == 200
    assert {e["key"] for e in sim.log()[before:]} == {"k3"}
