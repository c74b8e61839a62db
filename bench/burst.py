"""make bench-burst: the shared cooling state under bursts of concurrent clients.

Two scenarios, each against the real wasm in Viceroy and the simulator:
- quota burst: 60 concurrent clients × 12 requests, 12 one-key projects allowing 3 requests per
  minute each (36 can succeed): upstream calls per success, and late hits — calls Google
  received on a bucket more than one second after it first refused that bucket;
- contention: 50 concurrent clients, 20 keys that all answer 429, 5 rounds: keys refused but
  not cooling after the round (lost verdicts), late hits, and log lines of unsaved verdicts.

Usage: bench/burst.py [--wasm bin/main.wasm] [--label after] [--json out.json]
(`--wasm` another build, e.g. an older commit's, to compare in the same run.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", action="append", help="wasm to measure (repeatable); default bin/main.wasm")
    ap.add_argument("--json", default="target/bench-burst.json")
    args = ap.parse_args()
    wasms = [Path(w).resolve() for w in (args.wasm or [str(ROOT / "bin" / "main.wasm")])]
    import harness  # noqa: E402
    from bursts import contention_rounds, quota_burst  # noqa: E402
    from harness import pool_lines, sim_keys  # noqa: E402

    rows = []
    sim = harness.Sim()
    try:
        for wasm in wasms:
            harness.WASM = wasm
            started = []

            def start(keys, **kw):
                p = harness.Proxy(sim, keys, relay=False, **kw)
                started.append(p)
                return p

            print(f"{wasm}: quota burst …", flush=True)
            q = quota_burst(sim, start)
            print(f"{wasm}: contention rounds …", flush=True)
            sim.reset(sim_keys(20))
            c = contention_rounds(sim, start(pool_lines(20), settings={"cool_jitter_ms": "200"}))
            for p in started:
                p.stop()
            rows.append({"wasm": str(wasm), "quota_burst": q, "contention": c})
    finally:
        sim.stop()

    print("\n| | " + " | ".join(Path(r["wasm"]).name for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    line = lambda name, f: print(f"| {name} | " + " | ".join(f(r) for r in rows) + " |")  # noqa: E731
    line("quota burst: served / capacity", lambda r: f"{r['quota_burst']['successes']} / {r['quota_burst']['capacity']}")
    line("  upstream calls (refused)", lambda r: f"{r['quota_burst']['upstream_calls']} ({r['quota_burst']['refused']})")
    line("  calls per success", lambda r: f"{r['quota_burst']['calls_per_success']:.2f}")
    line("  late hits (> 1 s after the first refusal)", lambda r: str(r["quota_burst"]["late_hits"]))
    line("contention: keys refused per round", lambda r: str(r["contention"]["tried"]))
    line("  refused but not cooling after the round", lambda r: str(r["contention"]["lost"]))
    line("  late hits per round", lambda r: str(r["contention"]["late"]))
    line("  log lines of unsaved verdicts", lambda r: str(r["contention"]["unsaved_log_lines"]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"\n(raw numbers in {args.json})")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
