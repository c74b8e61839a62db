"""make bench-upload: an upload's bytes stream through the proxy; its memory stays flat.

Uploads files of several sizes through the real wasm in Viceroy with the official google-genai
SDK (resumable protocol, 8 MB pieces) and samples the Viceroy process's resident memory
(/proc/PID/status VmRSS, every 20 ms) while each upload runs. Prints, per size: the peak RSS,
its growth over the idle process, and the throughput. A proxy that buffered an upload would
grow with the upload's size; one that streams grows by what its first requests cost (sandboxes,
buffers of the runtime), the same for 256 MiB as for 512 MiB.

Usage: bench/upload.py [--sizes-mb 8,64,256,512]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler:
    """Keeps the highest RSS of `pid` seen while it runs."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.running = pid, rss_kib(pid), True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mb", default="8,64,256,512")
    args = ap.parse_args()
    import harness  # noqa: E402
    from google import genai  # noqa: E402
    from harness import TOKEN, pool_lines, sim_keys  # noqa: E402

    sizes = [int(s) for s in args.sizes_mb.split(",")]
    sim = harness.Sim()
    try:
        sim.reset(sim_keys(2))
        proxy = harness.Proxy(sim, pool_lines(2), relay=False)
        client = genai.Client(api_key=TOKEN, http_options={"base_url": proxy.url, "timeout": 600_000})
        # Warm up (the first request instantiates the wasm), then take the idle RSS.
        client.files.upload(file=io.BytesIO(b"warm"), config={"mime_type": "text/plain"})
        time.sleep(0.5)
        idle = rss_kib(proxy.proc.pid)
        rows = []
        for mb in sizes:
            size = mb * 1024 * 1024
            # A sparse file: the client reads it piece by piece and holds no copy either.
            path = Path(tempfile.mkdtemp()) / f"upload-{mb}.bin"
            with path.open("wb") as f:
                f.truncate(size)
            sampler = Sampler(proxy.proc.pid)
            started = time.monotonic()
            made = client.files.upload(file=str(path), config={"mime_type": "application/octet-stream"})
            path.unlink()
            took = time.monotonic() - started
            peak = sampler.stop()
            assert int(made.size_bytes) == size, made
            rows.append((mb, peak, peak - idle, mb / took))
        proxy.stop()
    finally:
        sim.stop()
    print(f"\nViceroy RSS idle after warm-up: {idle / 1024:.1f} MiB")
    print("| upload | peak RSS | growth over idle | throughput |")
    print("|---|---|---|---|")
    for mb, peak, growth, rate in rows:
        print(f"| {mb} MiB | {peak / 1024:.1f} MiB | {growth / 1024:+.1f} MiB | {rate:.0f} MiB/s |")


if __name__ == "__main__":
    main()
