"""make bench-quota: how much of the pool's real capacity reaches clients, per cooling profile.

The simulator plays Google with per-project per-model quotas: 6 keys in 4 projects, a low
requests-per-"minute" and requests-per-day, gemini-3.1-pro-preview at `limit: 0` for two projects, and
a 503 burst midway. A client offers about twice the aggregate rate for a few "minutes" through
the proxy, once per edge and profile: the Fastly edge (real wasm in Viceroy) and the Workers
edge (real wasm in workerd, state in its Durable Object). Printed per edge and profile:

- successes ÷ the theoretical maximum (what the quotas allowed in that time);
- client-visible 429 / 5xx, and how many of them came while some key still had quota;
- keys benched wrongly at the end (the proxy's cooldown outlasts what Google's state justifies);
- upstream requests per success.

Usage: bench/quota.py [--minute 30] [--windows 5] [--profiles smart,seed] [--edges fastly,cloudflare]
                      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import harness  # noqa: E402
import openai  # noqa: E402

FLASH, PRO = "gemini-3.5-flash", "gemini-3.1-pro-preview"
PROJECTS = {1: "pA", 2: "pA", 3: "pB", 4: "pB", 5: "pC", 6: "pD"}
QUOTAS = {
    "pA": {"rpm": {FLASH: 10, PRO: 5}, "rpd": {FLASH: 30, PRO: 20}},
    "pB": {"rpm": {FLASH: 10, PRO: 5}, "rpd": {FLASH: 40, PRO: 40}},
    "pC": {"rpm": {FLASH: 10}, "rpd": {FLASH: 50}, "limit_zero": [PRO]},
    "pD": {"rpm": {FLASH: 10}, "rpd": {FLASH: 500}, "limit_zero": [PRO]},
}
SHARE = {FLASH: 0.8, PRO: 0.2}


def theoretical_max(windows: int) -> dict[str, int]:
    """What the quotas allow in `windows` windows, per model."""
    total = {}
    for model in SHARE:
        n = 0
        for quota in QUOTAS.values():
            if model in quota.get("limit_zero", []) or model not in quota["rpm"]:
                continue
            n += min(quota["rpm"][model] * windows, quota["rpd"][model])
        total[model] = n
    return total


def offered_rate(minute: float) -> float:
    """Requests per second: twice the aggregate per-window rate of all models."""
    per_window = sum(q["rpm"].get(m, 0) for q in QUOTAS.values() for m in SHARE if m not in q.get("limit_zero", []))
    return 2 * per_window / minute


class Timeline:
    """The simulator's account of each (project, model) bucket: when it had quota left."""

    def __init__(self, data: dict):
        self.started = data["started"]
        self.minute = data["minute_s"]
        self.buckets = {(b["project"], b["model"]): b["stat"] for b in data["buckets"]}

    def has_capacity(self, model: str, t: float) -> bool:
        window = str(int((t - self.started) // self.minute))
        for project, quota in QUOTAS.items():
            if model in quota.get("limit_zero", []) or model not in quota["rpm"]:
                continue
            stat = self.buckets.get((project, model))
            if stat is None:
                return True  # never used: full quota
            day_gone = stat["day_exhausted_at"] is not None and t >= stat["day_exhausted_at"]
            w = stat["windows"].get(window)
            window_gone = w is not None and w["exhausted_at"] is not None and t >= w["exhausted_at"]
            if not day_gone and not window_gone:
                return True
        return False

    def truly_blocked_until(self, project: str, model: str, now: float) -> float:
        """Until when Google's state keeps this bucket from serving `model` (0: it can now)."""
        quota = QUOTAS[project]
        if model in quota.get("limit_zero", []):
            return float("inf")
        stat = self.buckets.get((project, model))
        if stat is None:
            return 0.0
        if stat["day_exhausted_at"] is not None:
            la = ZoneInfo("America/Los_Angeles")
            local = datetime.fromtimestamp(now, la)
            midnight = datetime(local.year, local.month, local.day, tzinfo=la) + timedelta(days=1)
            return midnight.timestamp()
        window = int((now - self.started) // self.minute)
        w = stat["windows"].get(str(window))
        if w is not None and w["exhausted_at"] is not None:
            return self.started + (window + 1) * self.minute
        return 0.0


def run_profile(sim: harness.Sim, edge: str, profile: str, minute: float, windows: int) -> dict:
    sim.reset(harness.sim_keys(6, PROJECTS), projects=QUOTAS, minute_s=minute, latency_ms=40)
    proxy = harness.EDGES[edge](sim, harness.pool_lines(6, PROJECTS), settings={"cooling_profile": profile},
                          relay=False)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=harness.TOKEN, max_retries=0, timeout=30)
    sim.reset(harness.sim_keys(6, PROJECTS), projects=QUOTAS, minute_s=minute, latency_ms=40)  # align windows
    start = time.time()
    duration = minute * windows
    rate = offered_rate(minute)
    burst = (start + duration / 2, start + duration / 2 + 5.0)
    results, lock = [], threading.Lock()

    def one(model: str):
        sent = time.time()
        code = None
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            status = 200
        except openai.APIStatusError as e:
            status = e.status_code
            code = e.body.get("code") if isinstance(e.body, dict) else None
        except openai.APIConnectionError:
            status = 599
        with lock:
            results.append((model, sent, time.time(), status, code))

    threading.Timer(duration / 2, lambda: sim.burst(5.0)).start()
    with ThreadPoolExecutor(max_workers=24) as pool:
        i = 0
        while True:
            due = start + i / rate
            if due >= start + duration:
                break
            time.sleep(max(0.0, due - time.time()))
            model = FLASH if (i % 10) < SHARE[FLASH] * 10 else PRO
            pool.submit(one, model)
            i += 1
    end = time.time()
    timeline = Timeline(sim.timeline())
    status = json.loads(harness.curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {harness.TOKEN}").stdout)
    upstream = len(sim.log())
    proxy.stop()

    maximum = theoretical_max(windows)
    ok = {m: sum(1 for r in results if r[0] == m and r[3] == 200) for m in SHARE}
    refused = [r for r in results if r[3] == 429]
    failed = [r for r in results if r[3] >= 500]
    in_burst = lambda r: r[1] < burst[1] and r[2] > burst[0]  # noqa: E731
    wrong_429 = [r for r in refused if timeline.has_capacity(r[0], r[1]) and timeline.has_capacity(r[0], r[2])]
    wrong_5xx = [r for r in failed if not in_burst(r) and timeline.has_capacity(r[0], r[1])]
    return {
        "edge": edge,
        "profile": profile,
        "requests": len(results),
        "offered_rps": round(rate, 2),
        "duration_s": round(end - start, 1),
        "successes": sum(ok.values()),
        "theoretical_max": sum(maximum.values()),
        "by_model": {m: {"ok": ok[m], "max": maximum[m]} for m in SHARE},
        "ratio": round(sum(ok.values()) / sum(maximum.values()), 4),
        "client_429": len(refused),
        "client_429_while_capacity": len(wrong_429),
        "client_5xx": len(failed),
        "client_5xx_during_burst": sum(1 for r in failed if in_burst(r)),
        "client_5xx_while_capacity_outside_burst": len(wrong_5xx),
        "keys_benched_wrongly": benched_wrongly(status, timeline, end),
        "upstream_requests": upstream,
        "upstream_per_success": round(upstream / max(1, sum(ok.values())), 2),
        "wrong_429_detail": [
            {"model": r[0], "sent": round(r[1] - start, 3), "received": round(r[2] - start, 3),
             "window_offset": round((r[1] - timeline.started) % minute, 3), "code": r[4]} for r in wrong_429[:20]],
    }


def benched_wrongly(status: dict, timeline: Timeline, now: float) -> int:
    """Keys the proxy keeps out longer (by > 3 s) than Google's state justifies, for some model."""
    project_of = {f"…{harness.key(i)[-4:]}": PROJECTS[i] for i in PROJECTS}
    wrong = set()
    for d in status["keyPool"]["failedDetails"]:
        wrong.add(d["key"])
    for d in status["keyPool"]["coolingDetails"]:
        until = datetime.strptime(d["until"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        models = [d["model"]] if d["model"] else list(SHARE)
        project = project_of[d["key"]]
        if any(until > timeline.truly_blocked_until(project, m, now) + 3 for m in models):
            wrong.add(d["key"])
    return len(wrong)


def table(rows: list[dict]) -> str:
    lines = [
        "| | " + " | ".join(f"{r['edge']}, {r['profile']}" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    def line(name, f):
        lines.append(f"| {name} | " + " | ".join(f(r) for r in rows) + " |")
    line("successes / theoretical max", lambda r: f"{r['successes']} / {r['theoretical_max']} = **{r['ratio']:.1%}**")
    line("  gemini-3.5-flash", lambda r: f"{r['by_model'][FLASH]['ok']} / {r['by_model'][FLASH]['max']}")
    line("  gemini-3.1-pro-preview", lambda r: f"{r['by_model'][PRO]['ok']} / {r['by_model'][PRO]['max']}")
    line("client requests (offered rps)", lambda r: f"{r['requests']} ({r['offered_rps']}/s)")
    line("client-visible 429", lambda r: str(r["client_429"]))
    line("  …while some key still had quota", lambda r: f"**{r['client_429_while_capacity']}**")
    line("client-visible 5xx", lambda r: str(r["client_5xx"]))
    line("  …during the 5 s 503 burst", lambda r: str(r["client_5xx_during_burst"]))
    line("  …outside it, while quota remained", lambda r: f"**{r['client_5xx_while_capacity_outside_burst']}**")
    line("keys benched wrongly at the end (of 6)", lambda r: f"**{r['keys_benched_wrongly']}**")
    line("upstream requests per success", lambda r: str(r["upstream_per_success"]))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minute", type=float, default=30.0, help="length of a quota window in seconds")
    parser.add_argument("--windows", type=int, default=5, help="how many windows the client runs for")
    parser.add_argument("--profiles", default="smart,seed")
    parser.add_argument("--edges", default="fastly,cloudflare")
    parser.add_argument("--json", default="target/bench-quota.json")
    args = parser.parse_args()
    sim = harness.Sim()
    rows = []
    try:
        for edge in args.edges.split(","):
            for profile in args.profiles.split(","):
                print(f"running {edge}, profile {profile}: {args.windows} windows of {args.minute:.0f} s …", flush=True)
                rows.append(run_profile(sim, edge, profile, args.minute, args.windows))
    finally:
        sim.stop()
    print()
    print(f"quota benchmark: 6 keys / 4 projects, window {args.minute:.0f} s × {args.windows}, "
          f"a 5 s 503 burst midway, client at 2× aggregate rate")
    print(table(rows))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"\n(raw numbers in {args.json})")


if __name__ == "__main__":
    main()
