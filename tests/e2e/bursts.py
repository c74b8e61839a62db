"""Concurrent clients against a proxy, and what the simulator's log says about them: shared by
the burst tests (tests/e2e/test_burst.py) and the burst benchmark (bench/burst.py)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from harness import TOKEN, Proxy, Sim, curl, pool_lines, sim_keys

FLASH = "gemini-3.5-flash"
#: Answers other than 200 and 429 seen by `chat`, with their bodies (for assertion messages).
ODD_ANSWERS: list[tuple[int, str]] = []
BURST_BUCKETS = 12
BURST_RPM = 3


_CLIENTS = threading.local()


def client_for(proxy: Proxy) -> openai.OpenAI:
    """This thread's SDK client for `proxy`, made once and kept, as an application keeps its
    client (making one per request spends more CPU in the test than the proxy spends serving it,
    and on these 2-core machines that starves the edge under test)."""
    clients = _CLIENTS.__dict__.setdefault("by_url", {})
    if proxy.url not in clients:
        clients[proxy.url] = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)
    return clients[proxy.url]


def chat(proxy: Proxy) -> int:
    """One chat completion through the official SDK; its HTTP status."""
    client = client_for(proxy)
    try:
        client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hi"}])
        return 200
    except openai.APIStatusError as e:
        if e.status_code != 429:
            ODD_ANSWERS.append((e.status_code, f"{dict(e.response.headers)} {e.response.text[:400]}"))
        return e.status_code


def status(proxy: Proxy) -> dict:
    return json.loads(curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {TOKEN}").stdout)


def burst(proxy: Proxy, clients: int, per_client: int) -> list[int]:
    """`clients` threads, each sending `per_client` requests back to back, all released at once."""
    start = threading.Barrier(clients)

    def client(_):
        start.wait()
        return [chat(proxy) for _ in range(per_client)]

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [code for codes in pool.map(client, range(clients)) for code in codes]


def late_hits(log: list[dict], window_end: float) -> dict[str, int]:
    """Per key: calls Google received more than 1 s after it first refused that key, while the
    refusal still held (before `window_end`)."""
    first_refusal: dict[str, float] = {}
    late: dict[str, int] = {}
    for entry in sorted(log, key=lambda e: e["t"]):
        key = entry["key"]
        if key in first_refusal and first_refusal[key] + 1.0 < entry["t"] < window_end:
            late[key] = late.get(key, 0) + 1
        if entry["status"] == 429 and key not in first_refusal:
            first_refusal[key] = entry["t"]
    return late


def quota_burst(sim: Sim, start_proxy, clients: int = 60, per_client: int = 12) -> dict:
    """12 one-key projects at 3 requests per minute, `clients` concurrent clients."""
    projects = {f"k{i}": {"rpm": {FLASH: BURST_RPM}} for i in range(1, BURST_BUCKETS + 1)}
    sim.reset(sim_keys(BURST_BUCKETS), projects=projects, minute_s=60)
    proxy = start_proxy(pool_lines(BURST_BUCKETS))
    sim.reset(sim_keys(BURST_BUCKETS), projects=projects, minute_s=60)  # the minute starts now
    started = time.time()
    codes = burst(proxy, clients, per_client)
    elapsed = time.time() - started
    log = sim.log()
    successes = codes.count(200)
    return {
        "requests": len(codes),
        "elapsed_s": elapsed,
        "codes": sorted(set(codes)),
        "successes": successes,
        "capacity": BURST_BUCKETS * BURST_RPM,
        "upstream_calls": len(log),
        "refused": sum(1 for e in log if e["status"] == 429),
        "calls_per_success": len(log) / max(1, successes),
        "late_hits": sum(late_hits(log, window_end=started + 60).values()),
        "cooling_after": status(proxy)["keyPool"]["coolingKeys"],
        "odd_answers": ODD_ANSWERS[-5:],
    }


def contention_rounds(sim: Sim, proxy: Proxy, keys: int = 20, clients: int = 50, rounds: int = 5) -> dict:
    """`keys` keys that all answer 429 (3 s retry delay), `clients` concurrent clients, per round:
    keys refused but not cooling afterwards, late calls, and log lines of unsaved verdicts."""
    lost, late, tried = [], [], []
    for _ in range(rounds):
        sim.reset(sim_keys(keys))
        sim.behave("*", "per_minute", model=FLASH, retry_delay_s=3)
        started = time.time()
        burst(proxy, clients, per_client=1)
        log = sim.log()
        refused = {e["key"] for e in log if e["status"] == 429}
        cooling = {d["key"] for d in status(proxy)["keyPool"]["coolingDetails"] if d["model"] == FLASH}
        masks = {f"…{int(label[1:]):04d}": label for label in refused}
        lost.append(len([label for mask, label in masks.items() if mask not in cooling]))
        late.append(sum(late_hits(log, window_end=started + 3).values()))
        tried.append(len(refused))
        time.sleep(3.4)  # the cooldowns (3 s + up to 0.2 s jitter) end before the next round
    unsaved = [line for line in proxy.logs().splitlines() if "not saved" in line or "gave up" in line]
    return {"tried": tried, "lost": lost, "late": late, "unsaved_log_lines": len(unsaved)}
