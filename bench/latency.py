"""make bench: gemini-edge-pool against the floor of the same platform, on each edge.

Fastly: the floor (bench/passthrough) forwards every request to backend `gemini` with one fixed
key and does nothing else; both wasms run in the same Viceroy build. Workers: the floor
(bench/passthrough-worker) does the same as a bare JavaScript Worker; it and the Workers edge run
in the same workerd (cloudflare/local.mjs), the edge keeping its state in its Durable Object.
Both in front of the same simulator, which answers at once (the worst case for a proxy's
relative overhead). wrk drives proxy and floor interleaved, A B A B …; a sequential socket
client times streams (first and last byte).

Fastly: pools of 10, 2,000 and 6,000 keys (one, two and four secrets), each with 0 % and with
90 % of its keys cooling for the requested model (the cooling state written to the KV store in
the proxy's own format before the run, and checked through `/v1/status`). Workers: pools of 10
and 480 keys (480 = four variables of 120 keys: Workers caps a variable at 5 KB).

Printed: requests/s, p50 and p99 for each, ratios proxy ÷ floor, CPU per request (the Viceroy
process's user + system time over the requests it served), the proxy's store operations per
request (its Server-Timing header), and the wasm sizes.

Usage: bench/latency.py [--rounds 8] [--seconds 3] [--connections 8] [--edges fastly,cloudflare]
                        [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402

MODEL = "gemini-3.5-flash"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]})
STREAM_BODY = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Say hello"}]})
FLOOR_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "passthrough.wasm"
FLOOR_WORKER = ROOT / "bench" / "passthrough-worker" / "index.js"
WORKER_BUILD = ROOT / "cloudflare" / "build"
WORKER_POOLS = (10, 480)  # 480 keys: four variables of 120 keys, each under Workers' 5 KB limit
POOLS = (10, 2000, 6000)
KEYS_PER_SECRET = 1500  # at most, in equal secrets: 2,000 keys = 2 × 1,000; 6,000 = 4 × 1,500


def fnv1a64(text: str) -> str:
    """FNV-1a 64 as 16 hex digits (core/src/pool/keys.rs)."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class Floor:
    """The pass-through wasm under Viceroy, backend `gemini` = the simulator."""

    def __init__(self, sim: harness.Sim):
        self.dir = harness.work_dir("floor-")
        self.port = harness.free_port()
        config = self.dir / "fastly.toml"
        config.write_text(f'[local_server.backends.gemini]\nurl = "{sim.url}"\n')
        self.log = (self.dir / "viceroy.log").open("wb")
        self.proc = subprocess.Popen(["viceroy", "serve", "-C", str(config), "--addr", f"127.0.0.1:{self.port}",
                                      str(FLOOR_WASM)], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        harness.wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=0.2), what="floor")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class WorkerFloor(harness.WorkersProxy):
    """The pass-through Worker (bench/passthrough-worker) in workerd, through the same
    cloudflare/local.mjs as the Workers edge."""

    def __init__(self, sim: harness.Sim, key: str):
        self.dir = harness.work_dir("worker-floor-")
        options = {"vars": {"GEMINI_BASE_URL": sim.url, "KEY": key}, "script": str(FLOOR_WORKER)}

        def command(port: int) -> list[str]:
            (self.dir / "worker.json").write_text(json.dumps({"port": port, **options}))
            return ["node", str(harness.CLOUDFLARE / "local.mjs"), str(self.dir / "worker.json")]
        self._launch(command, "workerd.log", self._ready, "floor worker", 60, relay=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (all their threads), in seconds:
    Viceroy alone; for a Worker, Miniflare's node and the workerd it starts."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    tree, grew = {pid}, True
    while grew:
        children = {p for p, f in stats.items() if int(f[1]) in tree} - tree
        tree |= children
        grew = bool(children)
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(stats[p][11]) + int(stats[p][12]) for p in tree if p in stats) / ticks


def wrk_script(token: str | None, body: str, path: Path) -> Path:
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if token:
        headers += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
    return path


def wrk(url: str, script: Path, seconds: float, connections: int, pid: int | None = None) -> dict:
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk output without {label}%:\n{out}")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    rps = float(found.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers:\n{out}")
    served = re.search(r"(\d+) requests in", out)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / int(served.group(1)) if pid and served else float("nan")
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "cpu_ms": cpu_ms}


def stream_times(port: int, path: str, token: str | None, n: int) -> list[tuple[float, float]]:
    """Sequential streamed requests on one keep-alive connection: (first byte, last byte) in ms."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}"
               f"Content-Length: {len(STREAM_BODY)}\r\n\r\n{STREAM_BODY}").encode()
    times = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            start = time.perf_counter()
            s.sendall(request)
            data = s.recv(65536)
            first = time.perf_counter()
            while not data.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed mid-stream")
                data += chunk
            last = time.perf_counter()
            if b"data: [DONE]" not in data:
                raise RuntimeError(f"stream without [DONE]: {data[:300]!r}")
            times.append(((first - start) * 1000, (last - start) * 1000))
    return times


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def interleave(rounds: int, measure_a, measure_b) -> tuple[list, list]:
    a, b = [], []
    for _ in range(rounds):
        a.append(measure_a())
        b.append(measure_b())
    return a, b


def summarize(rounds: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def paired(a: list[dict], b: list[dict]) -> dict:
    """Median over rounds of proxy ÷ floor, each round against the floor round right after it
    (the machine's load drifts between rounds; a pair sees the same drift)."""
    out = {}
    for k in ("p50", "p99", "cpu_ms"):
        ratios = sorted(x[k] / y[k] for x, y in zip(a, b) if y[k] and y[k] == y[k])
        out[k] = {"median": statistics.median(ratios), "low": ratios[0], "high": ratios[-1]} if ratios else None
    return out


def server_timing(url: str) -> str:
    out = harness.curl("-si", f"{url}/v1/chat/completions", "-H", f"Authorization: Bearer {harness.TOKEN}",
                       "-H", "content-type: application/json", "-d", BODY).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.lower().startswith("server-timing")), "")


PER_MINUTE_QUOTA = 1  # the reason's row in core/src/google/reason.rs


def cooling_items(chunks: list[list[str]], share: float) -> dict:
    """The KV items of MODEL in the proxy's format (core/src/shared/marks.rs: sorted 25-byte records),
    one per part (secret), with `share` of each part's keys cooling for an hour."""
    now = int(time.time() * 1000)
    items = {}
    for part, keys in enumerate(chunks):
        names = [f"k:{fnv1a64(k)}" for k in keys[:int(len(keys) * share)]]
        hashes = sorted(int(fnv1a64(name), 16) for name in names)
        records = b"".join(h.to_bytes(8, "big") + (now + 3_600_000).to_bytes(8, "big") + now.to_bytes(6, "big")
                           + PER_MINUTE_QUOTA.to_bytes(2, "big") + bytes([0]) for h in hashes)
        name = f"model/{MODEL}" + (f"@{part + 1}" if part else "")
        items[name] = b"gemini-edge-pool marks v2 %d\n" % len(records) + records
    return items


def pool_proxy(sim: harness.Sim, keys: list[str], cooling_share: float) -> harness.Proxy:
    """The proxy with `keys` in as many secrets as they need and a share of them cooling."""
    count = -(-len(keys) // KEYS_PER_SECRET)
    size = -(-len(keys) // count)
    parts = [keys[i:i + size] for i in range(0, len(keys), size)]
    chunks = ["\n".join(part) for part in parts]
    names = ["keys", "keys_2", "keys_3", "keys_4"]
    secrets = dict(zip(names[1:], chunks[1:]))
    items = cooling_items(parts, cooling_share) if cooling_share else None
    proxy = harness.Proxy(sim, chunks[0], secrets=secrets, settings={"key_secrets": len(chunks)}, relay=False,
                          kv_items=items)
    report = json.loads(harness.curl(f"{proxy.url}/v1/status", "-H", f"Authorization: Bearer {harness.TOKEN}").stdout)
    pool = report["keyPool"]
    expected = sum(int(len(part) * cooling_share) for part in parts)
    if pool["totalKeys"] != len(keys) or pool["coolingKeys"] != expected:
        raise SystemExit(f"pool of {len(keys)}: status shows {pool['totalKeys']} keys, {pool['coolingKeys']} cooling")
    return proxy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--streams", type=int, default=150, help="streamed requests per round")
    ap.add_argument("--edges", default="fastly,cloudflare")
    ap.add_argument("--json", default="target/bench-latency.json")
    args = ap.parse_args()

    work = harness.work_dir("bench-")
    pool_keys = [harness.key(i) for i in range(1, max(POOLS) + 1)]
    sim = harness.Sim()
    sim.reset([{"key": k, "label": f"k{i}"} for i, k in enumerate(pool_keys, 1)])
    scripts = {"proxy": wrk_script(harness.TOKEN, BODY, work / "proxy.lua"),
               "floor": wrk_script(None, BODY, work / "floor.lua")}
    sim_script = wrk_script(None, BODY, work / "sim.lua").read_text().replace(
        'wrk.headers["Content-Type"]', f'wrk.headers["Authorization"] = "Bearer {pool_keys[0]}"\nwrk.headers["Content-Type"]')
    (work / "sim.lua").write_text(sim_script)
    edges = args.edges.split(",")
    results = {"server_timing": {}, "wasm_bytes": {}}
    try:
        if "fastly" in edges:
            fastly(sim, pool_keys, scripts, work, args, results)
        if "cloudflare" in edges:
            workers(sim, pool_keys, scripts, args, results)
    finally:
        sim.stop()
    report(results, args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\n(raw numbers in {args.json})")


def measure(proxy, floor, scripts: dict, args, connections: int | None = None) -> dict:
    """Interleaved wrk rounds, proxy then floor: both sides' medians and the paired ratios."""
    def run(target, script):
        return wrk(target.url + "/v1/chat/completions", script, args.seconds, connections or args.connections,
                   target.proc.pid)
    a, b = interleave(args.rounds, lambda: run(proxy, scripts["proxy"]), lambda: run(floor, scripts[floor.script]))
    return {"proxy": summarize(a), "floor": summarize(b), "paired": paired(a, b), "rounds": [a, b]}


def streams(proxy, floor, args) -> dict:
    """First and last byte of sequential streamed chat completions, proxy and floor interleaved."""
    path = "/v1/chat/completions"
    a, b = interleave(args.rounds, lambda: stream_times(proxy.port, path, harness.TOKEN, args.streams),
                      lambda: stream_times(floor.port, path, None, args.streams))
    flat_a = [t for r in a for t in r]
    flat_b = [t for r in b for t in r]
    out = {}
    for label, i in (("first byte", 0), ("last byte", 1)):
        out[label] = {
            side: {"rps": 1000 / statistics.mean(t[i] for t in flat), "p50": percentile([t[i] for t in flat], 0.5),
                   "p99": percentile([t[i] for t in flat], 0.99), "cpu_ms": float("nan")}
            for side, flat in (("proxy", flat_a), ("floor", flat_b))}
    return out


def fastly(sim: harness.Sim, pool_keys: list[str], scripts: dict, work: Path, args, results: dict):
    """The Fastly edge against bench/passthrough, both in Viceroy."""
    floor = Floor(sim)
    floor.script = "floor"
    proxies = {}
    uncounted = None
    try:
        for n in POOLS:
            for share in (0.0, 0.9):
                name = f"chat, {n:,} keys" + (f", {share:.0%} cooling" if share else "")
                proxies[name] = pool_proxy(sim, pool_keys[:n], share)
        small = proxies["chat, 10 keys"]
        # The same build with usage counting off (counting is on everywhere else).
        uncounted = harness.Proxy(sim, pool_keys[:10], settings={"usage_counts": "off"}, relay=False)
        uncounted.script = "proxy"

        # 0. The simulator must not be what is measured.
        direct = wrk(sim.url + "/v1beta/openai/chat/completions", work / "sim.lua", args.seconds, args.connections)
        through = wrk(small.url + "/v1/chat/completions", scripts["proxy"], args.seconds, args.connections)
        results["simulator_alone_rps"] = direct["rps"]
        results["simulator_vs_proxied"] = direct["rps"] / through["rps"]
        print(f"simulator alone: {direct['rps']:.0f} req/s; proxied: {through['rps']:.0f} req/s "
              f"-> {direct['rps'] / through['rps']:.1f}x (needs >= 3x)", flush=True)
        if direct["rps"] < 3 * through["rps"]:
            raise SystemExit("the simulator is too slow to measure the proxy; aborting")

        for name, proxy in proxies.items():
            print(f"measuring {name} …", flush=True)
            results[name] = measure(proxy, floor, scripts, args)

        print("measuring usage counting: on vs off …", flush=True)
        results["usage counting (10 keys): on ÷ off"] = measure(small, uncounted, scripts, args)

        print("measuring chat, 10 keys, Gemini answering in 200 ms …", flush=True)
        sim.reset([{"key": k, "label": f"k{i}"} for i, k in enumerate(pool_keys, 1)], latency_ms=200)
        results["chat, 10 keys, Gemini at 200 ms (c=16)"] = measure(small, floor, scripts, args, 16)
        sim.reset([{"key": k, "label": f"k{i}"} for i, k in enumerate(pool_keys, 1)])

        print("measuring streams …", flush=True)
        for label, r in streams(small, floor, args).items():
            results[f"stream, {label}"] = r
        results["server_timing"].update({name: server_timing(p.url) for name, p in proxies.items()})
    finally:
        for p in [*proxies.values(), *([uncounted] if uncounted else []), floor]:
            p.stop()
    results["wasm_bytes"].update({"bin/main.wasm": (ROOT / "bin" / "main.wasm").stat().st_size,
                                  "passthrough.wasm": FLOOR_WASM.stat().st_size})


def workers(sim: harness.Sim, pool_keys: list[str], scripts: dict, args, results: dict):
    """The Workers edge against bench/passthrough-worker, both in workerd (Miniflare), the
    edge's state in its Durable Object."""
    floor = WorkerFloor(sim, pool_keys[0])
    floor.script = "floor"
    proxies = {}
    try:
        for n in WORKER_POOLS:
            size = -(-n // 4) if n > 120 else n
            parts = ["\n".join(pool_keys[i:i + size]) for i in range(0, n, size)]
            names = ["keys", "keys_2", "keys_3", "keys_4"]
            proxies[f"Workers: chat, {n:,} keys"] = harness.WorkersProxy(
                sim, parts[0], secrets=dict(zip(names[1:], parts[1:])), settings={"key_secrets": len(parts)},
                relay=False)
        for name, proxy in proxies.items():
            print(f"measuring {name} …", flush=True)
            results[name] = measure(proxy, floor, scripts, args)
        small = proxies["Workers: chat, 10 keys"]
        print("measuring Workers streams …", flush=True)
        for label, r in streams(small, floor, args).items():
            results[f"Workers: stream, {label}"] = r
        results["server_timing"].update({name: server_timing(p.url) for name, p in proxies.items()})
    finally:
        for p in [*proxies.values(), floor]:
            p.stop()
    wasm, js = WORKER_BUILD / "index_bg.wasm", WORKER_BUILD / "index.js"
    upload = len(gzip.compress(wasm.read_bytes() + js.read_bytes(), 9))
    results["wasm_bytes"].update({"cloudflare/build/index_bg.wasm": wasm.stat().st_size,
                                  "cloudflare/build/index.js": js.stat().st_size,
                                  "Workers upload (wasm + js, gzip -9)": upload})


def report(results: dict, args):
    print(f"\nwrk -t2 -c{args.connections}, {args.rounds} interleaved rounds of {args.seconds:.0f} s per side; "
          f"streams: {args.rounds} × {args.streams} sequential requests per side. Ratios: median over rounds of "
          "proxy ÷ the floor round next to it [lowest–highest]; CPU: the runtime's CPU time per request "
          "(Viceroy; for Workers, Miniflare's node and its workerd).")
    print("| scenario | proxy req/s | floor req/s | ratio p50 | ratio p99 | ratio CPU/req | CPU/req | CPU/req vs 10 keys |")
    print("|---|---|---|---|---|---|---|---|")
    bases = {prefix: results.get(f"{prefix}10 keys", {}).get("proxy", {}).get("cpu_ms")
             for prefix in ("chat, ", "Workers: chat, ")}
    for name, r in results.items():
        if not isinstance(r, dict) or "proxy" not in r:
            continue
        p, f = r["proxy"], r["floor"]
        pairs = r.get("paired") or {}

        def cell(k):
            v = pairs.get(k)
            if v:
                return f"{v['median']:.2f} [{v['low']:.2f}–{v['high']:.2f}]"
            return f"{p[k] / f[k]:.2f}" if f.get(k) and f[k] == f[k] else "–"
        prefix = next((x for x in bases if name.startswith(x)), None)
        base = bases.get(prefix) if prefix else None
        measured = p["cpu_ms"] == p["cpu_ms"]
        vs_small = f"{p['cpu_ms'] / base:.2f}" if base and measured else "–"
        cpu = f"{p['cpu_ms']:.2f} ms" if measured else "–"
        print(f"| {name} | {p['rps']:.0f} | {f['rps']:.0f} | {cell('p50')} | {cell('p99')} | {cell('cpu_ms')} | {cpu} "
              f"| {vs_small} |")
    print("\nstore operations per request (the proxy's Server-Timing):")
    for name, value in results["server_timing"].items():
        print(f"  {name}: {value}")
    print("\nwasm sizes:", ", ".join(f"{k} {v:,} bytes" for k, v in results["wasm_bytes"].items()))


if __name__ == "__main__":
    main()
