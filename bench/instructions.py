"""make bench-instructions: instructions per request, proxy ÷ floor — a measure this machine's
noise does not move.

`make bench` times requests with wrk; on a shared 2-core machine the same wasm measures
1.07–1.70× the floor from one run to the next, wider than the margins it is judged by. This
counts instead: Viceroy runs under valgrind's callgrind, which counts every instruction every
thread of the process executes (Viceroy's host side, wasmtime and the JIT-compiled wasm alike).
For each cell of `make bench` (10, 2,000 and 6,000 keys, 0 % and 90 % cooling; usage counting
on) and for the floor (bench/passthrough): 5 warm-up requests, counters zeroed, N requests one
after another, counters dumped. Repeated runs agree within 0.5 %.

What it does not see: time in the kernel (page faults, thread switches, the futex waits of
Viceroy's tokio tasks) and what an instruction costs (a cache miss counts as one). And valgrind
counts a `rep movs`/`rep stos` copy byte by byte, so copying and zeroing large items (a 60 KB key
secret, a 34 KB cooling item) weigh more here than in CPU time. The wrk bench stays the
judge of time; this one says where instructions go and whether a change removed some.

Usage: bench/instructions.py [--requests 100] [--pools 10,2000,6000] [--shares 0,0.9]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import latency  # noqa: E402
from latency import harness  # noqa: E402

WARM_UP = 5
# Valgrind counts each byte a `rep movsb`/`rep stosb` moves as one instruction. glibc's memcpy
# and memset use those above a few KB; these tunables keep them on their vector loops (32 bytes
# an instruction), so copying a 60 KB secret weighs what it costs.
REP_STRINGS_OFF = {**os.environ, "GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4294967295:"
                   "glibc.cpu.x86_rep_stosb_threshold=4294967295"}


def callgrind(config: Path, wasm: Path, work: Path, tag: str) -> tuple[subprocess.Popen, int, Path]:
    """Viceroy serving `wasm` with `config`, under callgrind with counting off until asked."""
    port = harness.free_port()
    out = work / f"callgrind.{tag}.out"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         "--smc-check=all-non-file", "viceroy", "serve", "-C", str(config), "--addr", f"127.0.0.1:{port}", str(wasm)],
        stdout=(work / f"valgrind.{tag}.log").open("wb"), stderr=subprocess.STDOUT, env=REP_STRINGS_OFF)
    harness.wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5), timeout=900,
                     what=f"viceroy under valgrind ({tag})")
    return proc, port, out


def post(port: int, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                     data=latency.BODY.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        return response.status


def control(pid: int, *flags: str):
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def per_request(config: Path, wasm: Path, token: str | None, requests: int, work: Path, tag: str) -> float:
    """Instructions Viceroy executes per request, all threads, after a warm-up."""
    proc, port, out = callgrind(config, wasm, work, tag)
    try:
        for _ in range(WARM_UP):
            post(port, token)
        control(proc.pid, "-i", "on")  # counting on …
        control(proc.pid, "-z")  # … from zero
        for _ in range(requests):
            status = post(port, token)
            if status != 200:
                raise SystemExit(f"{tag}: HTTP {status}")
        time.sleep(1)  # the usage append runs after the response
        control(proc.pid, "-d")
        time.sleep(2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = [p for p in glob.glob(f"{out}.*") if re.search(r"\.\d+$", p)]
    if not dumps:
        raise SystemExit(f"{tag}: callgrind wrote no dump (see {work}/valgrind.{tag}.log)")
    totals = [int(m.group(1)) for p in dumps
              for m in [re.search(rb"^totals: (\d+)", Path(p).read_bytes(), re.M)] if m]
    return sum(totals) / requests


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--pools", default=",".join(str(n) for n in latency.POOLS))
    ap.add_argument("--shares", default="0,0.9")
    ap.add_argument("--json", default="target/bench-instructions.json")
    args = ap.parse_args()

    work = harness.work_dir("bench-instr-")
    pools = [int(n) for n in args.pools.split(",")]
    shares = [float(s) for s in args.shares.split(",")]
    pool_keys = [harness.key(i) for i in range(1, max(pools) + 1)]
    sim = harness.Sim()
    sim.reset([{"key": k, "label": f"k{i}"} for i, k in enumerate(pool_keys, 1)])
    results = {}
    try:
        floor = latency.Floor(sim)
        floor.stop()
        print("measuring the floor …", flush=True)
        results["floor"] = per_request(floor.dir / "fastly.toml", latency.FLOOR_WASM, None, args.requests, work,
                                       "floor")
        for n in pools:
            for share in shares:
                name = f"chat, {n:,} keys" + (f", {share:.0%} cooling" if share else "")
                proxy = latency.pool_proxy(sim, pool_keys[:n], share)  # also checks the pool via /v1/status
                proxy.stop()
                print(f"measuring {name} …", flush=True)
                results[name] = per_request(proxy.config, harness.WASM, harness.TOKEN, args.requests, work,
                                            f"proxy-{n}-{share}")
    finally:
        sim.stop()

    floor_ir = results["floor"]
    print(f"\nInstructions per request (valgrind callgrind, every thread of Viceroy; {args.requests} sequential "
          f"requests after {WARM_UP} warm-up ones)\n")
    print("| cell | instructions / request | proxy ÷ floor |")
    print("|---|---|---|")
    print(f"| floor (bench/passthrough) | {floor_ir / 1e6:.3f} M | 1.00 |")
    for name, ir in results.items():
        if name != "floor":
            print(f"| {name} | {ir / 1e6:.3f} M | {ir / floor_ir:.3f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\n(raw numbers in {args.json})")


if __name__ == "__main__":
    main()
