"""The end-to-end rig: the real wasm in real Viceroy, with real config/secret/KV stores, in
front of the Gemini simulator. Every byte Viceroy sends to a client passes a recording relay,
so the run's responses and logs can be scanned for API keys afterwards."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WASM = Path(os.environ.get("E2E_WASM", ROOT / "bin" / "main.wasm"))
SIM_BIN = ROOT / "target" / "release" / "gemini-sim"
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "target" / "e2e"))

TOKEN = "tok-e2e-client-0001"
OTHER_TOKEN = "tok-e2e-client-0002"
ADMIN_TOKEN = "tok-e2e-admin-0001"
# A warm Fastly sandbox holds usage lines up to a second before it writes them (the core's
# batch::HOLD_MS): counts read this long after the last answer include every one of them.
USAGE_HOLD_S = 1.0


def key(n: int) -> str:
    """A test API key shaped like a real one: odd n an `AIza…` key (39 characters), even n one
    of the `AQ.…` keys Google has issued since mid-2026. Both end in the number, so the proxy's
    mask of key n is `…` and its last four digits."""
    return f"AIzaSyTEST{n:029d}" if n % 2 else f"AQ.Ab8RN6TEST{n:040d}"


def all_test_keys(up_to: int = 2100) -> list[str]:
    return [key(n) for n in range(up_to)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def http_json(method: str, url: str, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


class Sim:
    """The Gemini simulator process and its control API."""

    def __init__(self, port: int | None = None, quiet: bool = True):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(SIM_BIN), "--port", str(self.port)] + (["--quiet"] if quiet else [])
        self.proc = subprocess.Popen(args)
        wait_for(lambda: http_json("GET", f"{self.url}/_sim/health")["ok"], what="simulator")

    def reset(self, keys: list[dict], **config):
        http_json("POST", f"{self.url}/_sim/reset", {"keys": keys, **config})

    def behave(self, key: str, kind: str, **fields):
        http_json("POST", f"{self.url}/_sim/behavior", {"key": key, "kind": kind, **fields})

    def burst(self, seconds: float, status: int = 503):
        http_json("POST", f"{self.url}/_sim/burst", {"seconds": seconds, "status": status})

    def log(self) -> list[dict]:
        return http_json("GET", f"{self.url}/_sim/log")

    def timeline(self) -> dict:
        return http_json("GET", f"{self.url}/_sim/timeline")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Relay:
    """A TCP relay that records everything the server sends back."""

    def __init__(self, target_port: int, capture: Path):
        self.port = free_port()
        self.target = target_port
        self.capture = capture.open("ab")
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(256)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    with self.lock:
                        self.capture.write(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()
        with self.lock:
            self.capture.flush()


def toml_string(value: str) -> str:
    return json.dumps(value)


def inline_store(name: str, entries: dict) -> list[str]:
    lines = [f"[local_server.config_stores.{name}]", 'format = "inline-toml"',
             f"[local_server.config_stores.{name}.contents]"]
    return lines + [f"{toml_string(k)} = {toml_string(v)}" for k, v in entries.items()]


class EdgeProcess:
    """What both edges' local runtimes share: a process writing one log, behind an optional relay."""

    log_path: Path

    def _launch(self, command_for_port, log_name: str, ready, what: str, timeout: float,
                relay: bool, env: dict | None = None):
        """Starts `command_for_port(port)` on a free port; if another process took that port
        between our probe and the runtime's bind, starts it again on another."""
        self.log_path = self.dir / log_name
        for attempt in range(3):
            self.port = free_port()
            self.log_file = self.log_path.open("wb")
            self.proc = subprocess.Popen(command_for_port(self.port), stdout=self.log_file,
                                         stderr=subprocess.STDOUT, cwd=self.dir, env=env)
            try:
                wait_for(ready, timeout=timeout, what=what)
                break
            except RuntimeError:
                text = self.log_path.read_text(errors="replace")
                if attempt == 2 or ("Address already in use" not in text and "ADDRESS_IN_USE" not in text):
                    raise
                self.log_file.close()
        self.relay = Relay(self.port, self.dir / "responses.bin") if relay else None
        self.url = f"http://127.0.0.1:{self.relay.port if self.relay else self.port}"

    def _exited(self, what: str):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {self.log_path.read_text()}")

    def logs(self, waiting_for: str | None = None, timeout: float = 10) -> str:
        """The log so far; with `waiting_for`, once that text is in it (wrangler writes a
        Worker's console lines a moment after the response)."""
        def read() -> str:
            self.log_file.flush()
            return self.log_path.read_text(errors="replace")
        if waiting_for is not None:
            wait_for(lambda: waiting_for in read(), timeout=timeout, what=f"{waiting_for!r} in the log")
        return read()

    def stop(self):
        if self.relay:
            self.relay.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log_file.close()


class Proxy(EdgeProcess):
    """gemini-edge-pool under Viceroy, configured through real stores."""

    def __init__(self, sim: Sim, keys: list[str] | str | None, *, settings: dict | None = None,
                 tokens: dict | None = None, admins: dict | None = None, kv: bool = True,
                 secrets: dict | None = None,
                 auth_store: bool = True, secret_store: bool = True, first_byte_timeout_ms: int = 10_000,
                 relay: bool = True, backend_url: str | None = None, kv_items: dict | None = None,
                 policies: dict | None = None):
        self.dir = work_dir("proxy-")
        secret_entries = dict(secrets or {})
        if keys is not None:
            secret_entries["keys"] = keys if isinstance(keys, str) else "\n".join(keys)
        tokens = tokens if tokens is not None else {TOKEN: "e2e tests", OTHER_TOKEN: "second client"}
        for name, text in secret_entries.items():
            (self.dir / f"secret-{name}.txt").write_text(text)
        lines = [
            "[local_server.backends.gemini]",
            f"url = {toml_string(backend_url or sim.url)}",
            f"first_byte_timeout_ms = {first_byte_timeout_ms}",
            "between_bytes_timeout_ms = 10000",
        ]
        # Inline config stores: Viceroy re-reads a `format = "json"` file on every open, a
        # cost production does not have.
        if auth_store:
            lines += inline_store("auth_tokens", tokens)
        admins = admins if admins is not None else {ADMIN_TOKEN: "e2e operator"}
        if admins:
            lines += inline_store("admin_tokens", admins)
        lines += inline_store("proxy_settings", {k: str(v) for k, v in (settings or {}).items()})
        if policies:
            lines += inline_store("client_policies", {label: policy if isinstance(policy, str) else json.dumps(policy)
                                                      for label, policy in policies.items()})
        if secret_store:
            entries = ", ".join(
                f'{{ key = "{name}", file = {toml_string(str(self.dir / f"secret-{name}.txt"))} }}'
                for name in secret_entries)
            lines += ["[local_server.secret_stores]", f"gemini_keys = [{entries}]"]
        if kv and kv_items:
            # One file per item: values may be binary (the sorted part of a cooling item is).
            entries = []
            for n, (name, value) in enumerate(kv_items.items()):
                path = self.dir / f"kv-item-{n}"
                path.write_bytes(value if isinstance(value, bytes) else value.encode())
                entries.append(f"{{ key = {toml_string(name)}, file = {toml_string(str(path))} }}")
            lines += ["[local_server.kv_stores]", f"key_state = [{', '.join(entries)}]"]
        elif kv:
            lines += ["[local_server.kv_stores]", "key_state = []"]
        self.config = self.dir / "fastly.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self._launch(lambda port: ["viceroy", "serve", "-C", str(self.config), "--addr", f"127.0.0.1:{port}",
                                   str(WASM)],
                     "viceroy.log", self._listening, "viceroy", 60, relay)

    def _listening(self) -> bool:
        self._exited("viceroy")
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
            return True


CLOUDFLARE = ROOT / "cloudflare"
SECRET_VARS = {"keys": "GEMINI_API_KEYS", "keys_2": "GEMINI_API_KEYS_2", "keys_3": "GEMINI_API_KEYS_3",
               "keys_4": "GEMINI_API_KEYS_4"}


class WorkersProxy(EdgeProcess):
    """gemini-edge-pool's Workers edge in workerd (through Miniflare: cloudflare/local.mjs),
    configured the way a user of the original Worker configures it: the same variable names,
    secrets and [vars] alike, and the POOL_STATE Durable Object."""

    def __init__(self, sim: Sim, keys: list[str] | str | None, *, settings: dict | None = None,
                 tokens: dict | None = None, admins: dict | None = None, kv: bool = True,
                 secrets: dict | None = None, auth_store: bool = True, secret_store: bool = True,
                 relay: bool = True, backend_url: str | None = None, first_byte_timeout_ms: int = 10_000,
                 kv_items: dict | None = None, policies: dict | None = None):
        if kv_items:
            raise ValueError("the Workers edge's state cannot be preloaded")
        self.dir = work_dir("worker-")
        tokens = tokens if tokens is not None else {TOKEN: "e2e tests", OTHER_TOKEN: "second client"}
        admins = admins if admins is not None else {ADMIN_TOKEN: "e2e operator"}
        lists = dict(secrets or {})
        if keys is not None:
            lists["keys"] = keys if isinstance(keys, str) else "\n".join(keys)
        variables = {"GEMINI_BASE_URL": backend_url or sim.url, "FIRST_BYTE_TIMEOUT_MS": str(first_byte_timeout_ms),
                     **{k: str(v) for k, v in (settings or {}).items()}}
        if secret_store:
            variables.update({SECRET_VARS[name]: text for name, text in lists.items()})
        if auth_store:
            variables["VALID_AUTH_TOKENS"] = ", ".join(f"{t}={label}" for t, label in tokens.items())
        if admins:
            variables["ADMIN_TOKENS"] = ", ".join(f"{t}={label}" for t, label in admins.items())
        if policies:
            # One JSON object of policies by label; a policy given as text is spliced in as written.
            entries = [f"{json.dumps(label)}: {policy if isinstance(policy, str) else json.dumps(policy)}"
                       for label, policy in policies.items()]
            variables["CLIENT_POLICIES"] = "{" + ", ".join(entries) + "}"
        options = {"vars": variables, "durableObjects": kv, "persist": str(self.dir / "state")}

        def command(port: int) -> list[str]:
            (self.dir / "worker.json").write_text(json.dumps({"port": port, **options}))
            return ["node", str(CLOUDFLARE / "local.mjs"), str(self.dir / "worker.json")]
        self._launch(command, "workerd.log", self._ready, "workerd", 60, relay)

    def _ready(self) -> bool:
        self._exited("workerd")
        return "ready on" in self.log_path.read_text(errors="replace")


EDGES = {"fastly": Proxy, "cloudflare": WorkersProxy}


def curl(*args: str) -> subprocess.CompletedProcess:
    """Runs curl; returns the completed process (stdout as text)."""
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=60)


def genai_client(proxy, token: str = TOKEN):
    """Google's own SDK pointed at `proxy`, with its retries off (a test sees every answer)."""
    from google import genai

    return genai.Client(api_key=token, http_options={"base_url": proxy.url, "retry_options": {"attempts": 1}})


def sim_keys(n: int, projects: dict[int, str] | None = None, start: int = 1) -> list[dict]:
    """Simulator key table for keys `start..start+n`: label kN, optional project."""
    projects = projects or {}
    return [{"key": key(i), "label": f"k{i}", **({"project": projects[i]} if i in projects else {})}
            for i in range(start, start + n)]


def pool_lines(n: int, projects: dict[int, str] | None = None, start: int = 1) -> list[str]:
    projects = projects or {}
    return [f"{projects[i]}:{key(i)}" if i in projects else key(i) for i in range(start, start + n)]


def served(log: list[dict], since: int = 0) -> list[str]:
    """Labels of the keys whose requests succeeded, in order."""
    return [e["key"] for e in log[since:] if e["status"] == 200]


def artifacts_dir() -> Path:
    return ARTIFACTS


def work_dir(prefix: str) -> Path:
    """A new folder for one process's files, under the artifacts folder (made if missing)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=ARTIFACTS))


def clean_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


# What the simulator signs its calls with (as Gemini 3 signs them): a translated tool loop must
# send these back, not a placeholder.
SIM_SIGNATURE = "c2ltLXRob3VnaHQtc2lnbmF0dXJl"


def generation(sim) -> list[dict]:
    """What Google was asked to generate (the simulator also logs the edges' own probes)."""
    return [e for e in sim.log() if "enerateContent" in e["path"]]


def checked_tool_loop(sim, steps: int = 3) -> dict:
    """The last request of a tool loop through a translator, after checking what Google got:
    every step accepted (no 400 anywhere), each call replayed with Google's own signature.
    Returns that request's body."""
    generate = generation(sim)
    assert [e["status"] for e in generate] == [200] * steps, "no 400 from Google anywhere"
    last = json.loads(generate[-1]["body"])
    calls = [p for c in last["contents"] for p in c["parts"] if "functionCall" in p]
    assert [p["thoughtSignature"] for p in calls] == [SIM_SIGNATURE] * (steps - 1), \
        "Google's own signatures went back"
    return last


def function_responses(body: dict) -> list[str]:
    """The names of the function responses a native request holds."""
    return [p["functionResponse"]["name"] for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
