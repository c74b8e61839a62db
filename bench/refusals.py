"""What a limited client's request costs after thousands of refusals (issue 33, finding 3).

Every request of a client with `rpd` claims a place in its limit item and a refused one gives
it back: two lines per refusal. Before, the item grew all day (only a token append compacted it)
and was parsed in O(claims × cancels): after ~8,000 refusals a request spent 220–285 ms of
guest time on Fastly. Now the claimer compacts the item and the parse is linear.

This sends 10,000 refused requests (8 connections at once) to a client with `rpd = 3` and
measures batches of 200 refused requests one after another on one connection, at the start and
after 2,500, 5,000 and 10,000 refusals: the median per request — Fastly's own
`Server-Timing: proxy;dur` (the guest's time, its host calls included), Workers' as the client
sees it (workerd's clock does not advance during CPU work). A ratio against the first batch of
the same run is what to read on a shared machine.

Usage: bench/refusals.py [--edges fastly,cloudflare] [--wasm old.wasm] [--refusals 10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import harness  # noqa: E402

LABEL = "e2e tests"
BODY = json.dumps({"model": "gemini-3.5-flash", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"Authorization": f"Bearer {harness.TOKEN}", "content-type": "application/json"}
BATCH = 200


def send(conn: http.client.HTTPConnection) -> tuple[int, float, float | None]:
    """One request: its status, the client's time, and the proxy's own (Fastly), ms."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", BODY, HEADERS)
    answer = conn.getresponse()
    answer.read()
    took = (time.perf_counter() - started) * 1000
    timing = answer.getheader("server-timing") or ""
    proxy = re.search(r"proxy;dur=([0-9.]+)", timing)
    return answer.status, took, float(proxy.group(1)) if proxy else None


def batch(host: str, port: int) -> float:
    """The median time of BATCH refused requests, one after another: the proxy's own where it
    says it, else the client's."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    results = [send(conn) for _ in range(BATCH)]
    conn.close()
    assert all(status == 429 for status, _, _ in results), [r[0] for r in results[:5]]
    own = [p for _, _, p in results if p is not None]
    return statistics.median(own or [t for _, t, _ in results])


def fill(host: str, port: int, count: int) -> None:
    def one(n: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for _ in range(n):
            send(conn)
        conn.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, [count // 8] * 8))


def run(edge: str, refusals: int, sim: harness.Sim) -> list[tuple[int, float]]:
    sim.reset(harness.sim_keys(2))
    proxy = harness.EDGES[edge](sim, harness.pool_lines(2), policies={LABEL: {"rpd": 3}}, relay=False)
    try:
        host, port = proxy.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        for _ in range(3):
            assert send(conn)[0] == 200
        conn.close()
        done, points = 0, []
        for target in [0, refusals // 4, refusals // 2, refusals]:
            fill(host, int(port), target - done)
            done = target
            points.append((done, batch(host, int(port))))
            done += BATCH
        return points
    finally:
        proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--edges", default="fastly,cloudflare")
    parser.add_argument("--refusals", type=int, default=10_000)
    parser.add_argument("--wasm", help="another Fastly build to measure (say, the commit before)")
    args = parser.parse_args()
    sim = harness.Sim()
    try:
        for edge in args.edges.split(","):
            wasm = [None] + ([args.wasm] if args.wasm and edge == "fastly" else [])
            for build in wasm:
                if build:
                    harness.WASM = Path(build)
                points = run(edge, args.refusals, sim)
                first = points[0][1]
                name = f"{edge}{' (' + Path(build).name + ')' if build else ''}"
                what = "guest ms (Server-Timing)" if edge == "fastly" else "client ms"
                print(f"{name}: median {what} of {BATCH} refused requests, after n refusals")
                for n, ms in points:
                    print(f"  {n:>6}: {ms:8.2f}  ({ms / first:.2f}x the first)")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
