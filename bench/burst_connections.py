"""The e2e burst as issue 36 drove it: 60 threads × 5 requests, a new connection per request,
12 one-key projects at 3 rpm, through the real wasm in Viceroy and the Gemini simulator. Prints,
per run, upstream calls, successes, and calls Google received on a bucket more than 1 s after it
first refused it (late), with the most on one bucket.

Usage: .venv/bin/python bench/burst_connections.py [RUNS]   (after `make build sim tools`)
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import harness  # noqa: E402
from bursts import BURST_BUCKETS, BURST_RPM, FLASH, late_hits  # noqa: E402
from harness import TOKEN, pool_lines, sim_keys  # noqa: E402


def one(port: int) -> int:
    """One chat completion on a connection of its own; its status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"model": FLASH, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Connection": "close"}
    conn.request("POST", "/v1/chat/completions", body, headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def run(sim: harness.Sim, clients: int = 60, per_client: int = 5) -> dict:
    projects = {f"k{i}": {"rpm": {FLASH: BURST_RPM}} for i in range(1, BURST_BUCKETS + 1)}
    sim.reset(sim_keys(BURST_BUCKETS), projects=projects, minute_s=60)
    proxy = harness.Proxy(sim, pool_lines(BURST_BUCKETS), relay=False)
    sim.reset(sim_keys(BURST_BUCKETS), projects=projects, minute_s=60)  # the minute starts now
    port = int(proxy.url.rsplit(":", 1)[1])
    barrier = threading.Barrier(clients)
    started = time.time()

    def client(_):
        barrier.wait()
        return [one(port) for _ in range(per_client)]

    with ThreadPoolExecutor(max_workers=clients) as pool:
        codes = [code for codes in pool.map(client, range(clients)) for code in codes]
    proxy.stop()
    log = sim.log()
    late = late_hits(log, window_end=started + 60)
    return {"calls": len(log), "served": codes.count(200), "late": sum(late.values()),
            "most_late_on_one_bucket": max(late.values(), default=0)}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sim = harness.Sim()
    try:
        for _ in range(runs):
            print(run(sim), flush=True)
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
