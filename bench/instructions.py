"""make bench-instructions: instructions per request, proxy ÷ floor — a measure this machine's
noise does not move.

`make bench` times requests with wrk; on a shared 2-core machine the same wasm measures
1.07–1.70× the floor from one run to the next, wider than the margins it is judged by. This
counts instead: Viceroy runs under valgrind's callgrind, which counts every instruction every
thread of the process executes (Viceroy's host side, wasmtime and the JIT-compiled wasm alike).
For each cell of `make bench` (10, 2,000 and 6,000 keys, 0 % and 90 % cooling; usage counting
on) and for three floors — bench/passthrough (a new sandbox per request), passthrough-reuse
(the same under reusable sandboxes) and, in each cell's own configuration, passthrough-state
(the reusing floor plus what no pool with shared cooling state can skip: one KV read of the
cell's model item, and the answer relayed through the guest) — 5 warm-up requests, counters
zeroed, then N requests one after another with the counters dumped after each (and after the
work that follows its answer).
Each request is counted apart as cold (it started a sandbox) or warm (a reused sandbox served
it), as its answer says (`Server-Timing: sandbox;desc="request N"`, `x-sandbox-request`); the
mean of 5 dumps without a request (Viceroy idling, the dump itself) is taken off each count.

What it does not see: time in the kernel (page faults, thread switches, the futex waits of
Viceroy's tokio tasks) and what an instruction costs (a cache miss counts as one). And valgrind
counts a `rep movs`/`rep stos` copy byte by byte, so copying and zeroing large items (a 60 KB key
secret, a 34 KB cooling item) weigh more here than in CPU time. The wrk bench stays the
judge of time; this one says where instructions go and whether a change removed some. Run it
alone: with a `make test` alongside, every cell counted 2–4 % more (Viceroy's runtime polls
and wakes more when its threads wait for a core).

Host calls per request are counted too, in a shorter run of each cell under `viceroy -vvv`
(every call the wasm makes is logged): cold and warm, including what follows an answer.

Three more cells, at 10 keys, count a streamed answer: Google's native stream through the proxy,
and the same request in Anthropic's Messages API and OpenAI's Responses API (what Claude Code
and Codex send), which the core translates both ways; their ratio to the native stream is what
the translation costs.

Usage: bench/instructions.py [--requests 100] [--pools 10,2000,6000] [--shares 0,0.9] [--streams …] [--wasm old.wasm]
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

REUSE_FLOOR_WASM = latency.FLOOR_WASM.with_name("passthrough-reuse.wasm")
STATE_FLOOR_WASM = latency.FLOOR_WASM.with_name("passthrough-state.wasm")

WARM_UP = 5
# Requests whose host calls are counted, per cell (the count is the same from one run to the next).
HOST_CALL_REQUESTS = 24
# Seconds after each answer before its counters are dumped: the usage append runs after it.
AFTER_ANSWER = 0.3
# Intervals dumped with no request in them: their mean (Viceroy idling, the dump itself) is
# taken off each request's count.
IDLE_DUMPS = 5
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


# What a cell's requests are: (path, body). The native stream and the agents' streams ask the
# same model the same thing, so their difference is the translation's.
SAY = [{"role": "user", "content": "Say hello"}]
CALLS = {
    "chat": ("/v1/chat/completions", latency.BODY),
    "native stream": (f"/v1beta/models/{latency.MODEL}:streamGenerateContent?alt=sse",
                      json.dumps({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]})),
    "Anthropic stream": ("/v1/messages", json.dumps({"model": latency.MODEL, "max_tokens": 64, "stream": True,
                                                     "messages": SAY})),
    "Responses stream": ("/v1/responses", json.dumps({"model": latency.MODEL, "stream": True, "input": SAY})),
}


def post(port: int, token: str | None, call: str = "chat") -> tuple[int, int]:
    """One request of kind `call`: its status, and which request of its sandbox it was (1: a new one)."""
    path, body = CALLS[call]
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        timing = re.search(r'sandbox;desc="request (\d+)"', response.headers.get("server-timing", ""))
        nth = timing.group(1) if timing else response.headers.get("x-sandbox-request", "1")
        return response.status, int(nth)


def control(pid: int, *flags: str):
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)


def per_request(config: Path, wasm: Path, token: str | None, requests: int, work: Path, tag: str,
                call: str = "chat") -> dict:
    """Instructions Viceroy executes per request, all threads, after a warm-up: over all the
    requests, and apart for those that started a sandbox (cold) and those a reused sandbox
    served (warm). Counters are dumped after each request (and the work after its answer)."""
    proc, port, out = callgrind(config, wasm, work, tag)
    kinds = []
    try:
        for _ in range(WARM_UP):
            post(port, token, call)
        time.sleep(AFTER_ANSWER)
        control(proc.pid, "-i", "on")  # counting on …
        control(proc.pid, "-z")  # … from zero
        for _ in range(IDLE_DUMPS):  # what an interval costs with no request in it
            time.sleep(AFTER_ANSWER)
            control(proc.pid, "-d")
        for _ in range(requests):
            status, nth = post(port, token, call)
            if status != 200:
                raise SystemExit(f"{tag}: HTTP {status}")
            kinds.append("cold" if nth == 1 else "warm")
            time.sleep(AFTER_ANSWER)  # the usage append runs after the response
            control(proc.pid, "-d")
        time.sleep(2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted((int(m.group(1)), p) for p in glob.glob(f"{out}.*") for m in [re.search(r"\.(\d+)$", p)] if m)
    totals = [int(m.group(1)) for _, p in dumps
              for m in [re.search(rb"^totals: (\d+)", Path(p).read_bytes(), re.M)] if m]
    if len(totals) != IDLE_DUMPS + requests:
        raise SystemExit(f"{tag}: {len(totals)} dumps for {requests} requests (see {work}/valgrind.{tag}.log)")
    idle = sum(totals[:IDLE_DUMPS]) / IDLE_DUMPS
    totals = [t - idle for t in totals[IDLE_DUMPS:]]
    result = {"all": sum(totals) / requests, "idle_interval": idle}
    for kind in ("cold", "warm"):
        counted = [t for t, k in zip(totals, kinds) if k == kind]
        result[kind] = sum(counted) / len(counted) if counted else None
        result[f"{kind}_requests"] = len(counted)
    return result


def measure(config: Path, wasm: Path, token: str | None, requests: int, work: Path, tag: str,
            call: str = "chat") -> dict:
    """A cell: its instructions per request, and its host calls per request (a shorter run)."""
    result = per_request(config, wasm, token, requests, work, tag, call)
    result["host_calls"] = host_calls(config, wasm, token, min(requests, HOST_CALL_REQUESTS), work, tag, call)
    return result


def host_calls(config: Path, wasm: Path, token: str | None, requests: int, work: Path, tag: str,
               call: str = "chat") -> dict:
    """Host calls per request — a count nothing moves: Viceroy at trace level logs every call
    the wasm makes (`wiggle abi{module=… function=…}: result=…`). The calls of one sandbox are
    cut into requests where it takes its next one (`next_request_wait`); what a sandbox does
    after an answer (a usage append, written while it waits or as it ends) counts with that
    request. Cold: a sandbox's first request; warm: the others."""
    port = harness.free_port()
    log = work / f"hostcalls.{tag}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["viceroy", "serve", "-vvv", "-C", str(config), "--addr", f"127.0.0.1:{port}",
                                 str(wasm)], stdout=out, stderr=subprocess.STDOUT)
        try:
            harness.wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5), timeout=120,
                             what=f"viceroy -vvv ({tag})")
            for _ in range(requests):
                post(port, token, call)
                time.sleep(AFTER_ANSWER)
            time.sleep(6)  # every sandbox ends (it waits 5 s at most for a next request)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    calls: dict[str, list[int]] = {}
    call = re.compile(r'request\{id=(\d+)\}:wiggle abi\{module="\w+" function="(\w+)"\}: result=')
    for line in log.open(errors="replace"):
        found = call.search(line)
        if not found:
            continue
        sandbox = calls.setdefault(found.group(1), [0])
        sandbox[-1] += 1
        if found.group(2) == "next_request_wait":
            sandbox.append(0)
    cold = [counts[0] for counts in calls.values()]
    warm = [n for counts in calls.values() for n in counts[1:] if n]
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return {"cold": mean(cold), "warm": mean(warm)}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a and b else "—"


def count(n: float | None) -> str:
    return f"{n:.1f}" if n is not None else "—"


def millions(n: float | None) -> str:
    return f"{n / 1e6:.3f} M" if n else "—"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--pools", default=",".join(str(n) for n in latency.POOLS))
    ap.add_argument("--shares", default="0,0.9")
    ap.add_argument("--streams", default=",".join(c for c in CALLS if c != "chat"),
                    help="streamed cells at 10 keys: the native stream and the agents' translations of it")
    ap.add_argument("--json", default="target/bench-instructions.json")
    ap.add_argument("--wasm", help="the proxy's wasm to count (default bin/main.wasm), e.g. an older commit's")
    args = ap.parse_args()
    if args.wasm:
        harness.WASM = Path(args.wasm).resolve()

    work = harness.work_dir("bench-instr-")
    pools = [int(n) for n in args.pools.split(",") if n]
    shares = [float(s) for s in args.shares.split(",")]
    pool_keys = [harness.key(i) for i in range(1, max(pools + [10]) + 1)]
    sim = harness.Sim()
    sim.reset([{"key": k, "label": f"k{i}"} for i, k in enumerate(pool_keys, 1)])
    results = {}
    try:
        floor = latency.Floor(sim)
        floor.stop()
        print("measuring the floor …", flush=True)
        results["floor"] = measure(floor.dir / "fastly.toml", latency.FLOOR_WASM, None, args.requests, work,
                                   "floor")
        print("measuring the reusing floor …", flush=True)
        results["reusing floor"] = measure(floor.dir / "fastly.toml", REUSE_FLOOR_WASM, None, args.requests, work,
                                           "floor-reuse")
        for n in pools:
            for share in shares:
                name = f"chat, {n:,} keys" + (f", {share:.0%} cooling" if share else "")
                proxy = latency.pool_proxy(sim, pool_keys[:n], share)  # also checks the pool via /v1/status
                proxy.stop()
                print(f"measuring {name} …", flush=True)
                results[name] = measure(proxy.config, harness.WASM, harness.TOKEN, args.requests, work,
                                        f"proxy-{n}-{share}")
                print(f"measuring the stateful floor of {name} …", flush=True)
                results[name]["state_floor"] = measure(proxy.config, STATE_FLOOR_WASM, None, args.requests, work,
                                                       f"floor-state-{n}-{share}")
        streams = [c for c in args.streams.split(",") if c]
        if streams:
            proxy = latency.pool_proxy(sim, pool_keys[:10], 0)
            proxy.stop()
            for call in streams:
                print(f"measuring {call}, 10 keys …", flush=True)
                results[f"{call}, 10 keys"] = measure(proxy.config, harness.WASM, harness.TOKEN, args.requests, work,
                                                      f"proxy-{call.replace(' ', '-')}", call)
    finally:
        sim.stop()

    floor, reusing = results["floor"]["all"], results["reusing floor"]["warm"]
    print(f"\nInstructions per request (valgrind callgrind, every thread of Viceroy; {args.requests} sequential "
          f"requests after {WARM_UP} warm-up ones, counters dumped after each). Floor: bench/passthrough, a new "
          "sandbox per request; reusing floor: the same under reusable sandboxes, its warm requests. Cold: a "
          "request that started a sandbox; warm: one a reused sandbox served (Viceroy 0.22 gives a sandbox at "
          "most 6). Each count less the mean of 5 intervals without a request.\n")
    print("| cell | cold | warm | warm ÷ floor | warm ÷ reusing floor | cold ÷ floor | host calls cold / warm |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        calls = r["host_calls"]
        print(f"| {name} ({r['cold_requests']} cold, {r['warm_requests']} warm) | {millions(r['cold'])} | "
              f"{millions(r['warm'])} | {ratio(r['warm'], floor)} | {ratio(r['warm'], reusing)} | "
              f"{ratio(r['cold'], floor)} | {count(calls['cold'])} / {count(calls['warm'])} |")
    print("\nThe stateful floor (passthrough-state) in each cell's configuration, warm requests: what a pool "
          "that reads its shared state once per request and relays the answer costs, and the proxy against it.\n")
    print("| cell | stateful floor, warm | ÷ floor | ÷ reusing floor | host calls warm | proxy, warm ÷ it |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        state = r.get("state_floor")
        if state:
            print(f"| {name} | {millions(state['warm'])} | {ratio(state['warm'], floor)} | "
                  f"{ratio(state['warm'], reusing)} | {count(state['host_calls']['warm'])} | "
                  f"{ratio(r['warm'], state['warm'])} |")
    native = results.get("native stream, 10 keys")
    if native:
        print("\nThe coding agents' dialects against the native stream they are translated to (10 keys, one "
              "streamed answer): what the translation costs a request.\n")
        print("| cell | warm | ÷ native stream | cold ÷ native stream | host calls warm |")
        print("|---|---|---|---|---|")
        for call in CALLS:
            r = results.get(f"{call}, 10 keys")
            if r:
                print(f"| {call} | {millions(r['warm'])} | {ratio(r['warm'], native['warm'])} | "
                      f"{ratio(r['cold'], native['cold'])} | {count(r['host_calls']['warm'])} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\n(raw numbers in {args.json})")


if __name__ == "__main__":
    main()
