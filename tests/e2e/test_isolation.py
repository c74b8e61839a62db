"""Issue 33's hostile run, replayed on both edges: what a body names is read from its decoded
JSON (no spelling slips past), nothing secret is relayed, every item a request appends to stays
bounded, a token limit meters or refuses, every model a body names passes the allow-list,
bodies and uploads are read against their limits as they arrive, lists pass the gate, and the
model's own words are never relabelled."""

import io
import json
import socket
import subprocess
import time

import pytest
from google.genai import errors, types

from harness import ADMIN_TOKEN, OTHER_TOKEN, TOKEN, curl, genai_client, pool_lines, sim_keys

MODEL = "gemini-3.5-flash"
PROJECTS = {1: "p-a", 2: "p-a", 3: "p-b", 4: "p-b"}
PROJECT_OF_LABEL = {f"k{i}": p for i, p in PROJECTS.items()}
APP, OTHER = "e2e tests", "second client"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    return proxies(pool_lines(4, PROJECTS))


def post(proxy, path, body, token=TOKEN):
    """POSTs a body as its bytes are written (escapes and all); the status and the parsed answer."""
    data = body if isinstance(body, bytes) else body.encode()
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-X", "POST", f"{proxy.url}{path}",
                           "-H", f"x-goog-api-key: {token}", "-H", "content-type: application/json",
                           "--data-binary", "@-"], input=data, capture_output=True, timeout=60)
    text, _, status = done.stdout.decode("utf-8", "replace").rpartition("\n")
    try:
        return int(status), json.loads(text or "null")
    except json.JSONDecodeError:
        return int(status), text


def file_of(sim, proxy, token=TOKEN):
    """A file `token`'s client uploads, and the project Google made it in."""
    start = len(sim.log())
    c = genai_client(proxy, token)  # the SDK closes a client nothing refers to: keep it
    f = c.files.upload(file=io.BytesIO(b"a secret report\n" * 20), config={"mime_type": "text/plain"})
    made_in = next(PROJECT_OF_LABEL[e["key"]] for e in sim.log()[start:] if "/upload/" in e["path"])
    return f, made_in


def test_no_spelling_of_another_clients_resource_reaches_google(world, sim):
    f, _ = file_of(sim, world)
    file_id = f.name.split("/", 1)[1]
    mine = genai_client(world)
    cache = mine.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["ctx " * 50]))
    chat = mine.interactions.create(model=MODEL, input="private")
    escaped = "".join(f"\\u{ord(c):04x}" for c in "files/")
    spellings = [
        f'{{"contents":[{{"parts":[{{"fileData":{{"fileUri":"files\\/{file_id}"}}}}]}}]}}',
        f'{{"contents":[{{"parts":[{{"fileData":{{"fileUri":"{escaped}{file_id}"}}}}]}}]}}',
        f'{{"contents":[{{"parts":[{{"fileData":{{"\\u0066ileUri":"files/{file_id}"}}}}]}}]}}',
        f'{{"contents":[{{"parts":[{{"file_data":{{"FILE_URI":"https://generativelanguage.googleapis.com/v1beta/files/{file_id}"}}}}]}}]}}',
        f'{{"contents":[],"cachedContent":"{cache.name.replace("/", chr(92) + "/")}"}}',
    ]
    before = len(sim.log())
    for body in spellings:
        status, answer = post(world, GENERATE, body, OTHER_TOKEN)
        assert status == 404 and f"not found" in answer["error"]["message"], (body, status, answer)
    status, _ = post(world, "/v1beta/interactions", f'{{"model":"{MODEL}","input":"x","previous\\u005finteraction_id":"{chat.id}"}}', OTHER_TOKEN)
    assert status == 404
    # Spellings Google may read but the proxy does not are refused, not passed on unpinned.
    for odd in [f"Files/{file_id}", f" files/{file_id}", f"HTTPS://GenerativeLanguage.googleapis.com/v1beta/%66iles/{file_id}"]:
        status, _ = post(world, GENERATE, json.dumps({"contents": [{"parts": [{"fileData": {"fileUri": odd}}]}]}), OTHER_TOKEN)
        assert status == 400, odd
    # A body the proxy cannot read names nothing it can check: a 400, never a guess.
    deep = "[" * 200 + "]" * 200
    for unreadable in [f'{{"contents":{deep},"cachedContent":"{cache.name}"}}', '{"a":"\\ud800"}', '{"a":1e400}',
                       "\ufeff{}"]:
        status, _ = post(world, GENERATE, unreadable, OTHER_TOKEN)
        assert status == 400, unreadable[:40]
    assert len(sim.log()) == before, "no hostile body reached Google"
    # The maker's own escaped spelling is pinned to its project and served.
    status, answer = post(world, GENERATE, spellings[0], TOKEN)
    assert status == 200, answer


def test_an_upload_url_carries_no_key_even_when_googles_does(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS), upload_url_key=True)
    proxy = proxies(pool_lines(4, PROJECTS))
    started = curl(
        f"{proxy.url}/upload/v1beta/files", "-s", "-i", "-X", "POST", "-H", f"x-goog-api-key: {TOKEN}",
        "-H", "x-goog-upload-protocol: resumable", "-H", "x-goog-upload-command: start",
        "-H", "x-goog-upload-header-content-length: 5", "-H", "content-type: application/json", "-d", "{}",
    ).stdout
    url = next(line.split(":", 1)[1].strip() for line in started.splitlines() if line.lower().startswith("x-goog-upload-url:"))
    assert url.startswith(f"{proxy.url}/upload/v1beta/files?upload_id=") and url.endswith("&upload_protocol=resumable"), url
    assert "key=" not in url and "AIza" not in started and "AQ." not in started, started
    done = curl(url, "-s", "-X", "POST", "-H", "x-goog-upload-command: upload, finalize", "-H", "x-goog-upload-offset: 0",
                "--data-binary", "hello").stdout
    assert '"files/' in done, done
    # A second `upload_id` is never passed on.
    session = url.split("upload_id=", 1)[1].split("&", 1)[0]
    start = len(sim.log())
    curl(f"{proxy.url}/upload/v1beta/files?upload_id={session}&upload_id=other", "-s", "-X", "POST",
         "-H", "x-goog-upload-command: query", "--data-binary", "")
    assert all(e["query"].count("upload_id=") <= 1 for e in sim.log()[start:]), sim.log()[start:]


def test_a_token_limit_refuses_what_it_cannot_meter(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), policies={APP: {"tokens_per_day": 100000}})
    before = len(sim.log())
    unmetered = [
        (f"/v1beta/models/{MODEL}:batchGenerateContent", {"batch": {"inputConfig": {"requests": {"requests": []}}}}),
        ("/v1beta/models/gemini-embedding-001:embedContent", {"content": {"parts": [{"text": "x"}]}}),
        ("/v1beta/models/gemini-embedding-001:batchEmbedContents", {"requests": []}),
        ("/v1beta/models/veo-3.1-generate-preview:predictLongRunning", {"instances": [{"prompt": "x"}]}),
        ("/v1beta/interactions", {"model": MODEL, "input": "x", "background": True}),
    ]
    for path, body in unmetered:
        status, answer = post(proxy, path, json.dumps(body))
        assert status == 403 and answer["error"]["status"] == "PERMISSION_DENIED", (path, answer)
        assert "daily token limit" in answer["error"]["message"]
    assert len(sim.log()) == before, "nothing unmetered reached Google"
    # What is metered, or costs no tokens, is served.
    status, _ = post(proxy, f"/v1beta/models/{MODEL}:countTokens", '{"contents":[{"parts":[{"text":"hi"}]}]}')
    assert status == 200
    c = genai_client(proxy)
    assert c.models.generate_content(model=MODEL, contents="hi").text
    # Another client without a token limit may make them.
    status, _ = post(proxy, "/v1beta/models/gemini-embedding-001:embedContent", json.dumps(unmetered[1][1]), OTHER_TOKEN)
    assert status == 200


def test_every_model_a_body_names_passes_the_allow_list(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), policies={APP: {"models": [MODEL]}})
    before = len(sim.log())
    forbidden = [
        ("/v1beta/interactions", {"agent": "deep-research-pro-preview-12-2025", "input": "research this"}),
        ("/v1beta/interactions", {"model": MODEL, "agent": "deep-research-pro-preview-12-2025", "input": "x"}),
        (f"/v1beta/models/{MODEL}:countTokens", {"generateContentRequest": {"model": "models/gemini-3.1-pro-preview", "contents": []}}),
        (f"/v1beta/models/{MODEL}:batchEmbedContents", {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": []}}]}),
        (f"/v1beta/models/{MODEL}:batchGenerateContent", {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"model": "models/gemini-3.1-pro-preview"}}]}}}}),
        (GENERATE, {"model": "models/gemini-3.1-pro-preview", "contents": []}),
    ]
    for path, body in forbidden:
        status, answer = post(proxy, path, json.dumps(body))
        assert status == 403 and "may not use model" in answer["error"]["message"], (path, body, answer)
    assert len(sim.log()) == before, "no forbidden model reached Google"


def raw_request(proxy, head: bytes, body_parts, wait_s: float = 10.0) -> tuple[int, float]:
    """Sends `head` and the body parts on a raw connection, then waits for the status line
    without ever finishing the body: the status, and how long after the last part it came."""
    host, port = proxy.url.rsplit(":", 1)
    sock = socket.create_connection((host.split("//")[1], int(port)))
    sock.settimeout(wait_s)
    try:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:
                break
        sent = time.time()
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1]), time.time() - sent
    finally:
        sock.close()


def test_a_body_over_the_limit_is_refused_as_it_arrives(sim, proxies, edge):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), settings={"max_body_bytes": str(1 << 20)})
    path = f"/v1beta/models/{MODEL}:generateContent"
    host = proxy.url.split("//")[1]
    # Announced larger than the limit: refused before a byte of the body is sent. (Viceroy
    # reads a body of announced size whole before the guest sees the request — viceroy-lib's
    # body_tee — where Fastly streams it; the guest's check comes first on both.)
    if edge != "fastly":
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nx-goog-api-key: {TOKEN}\r\n"
                f"content-type: application/json\r\ncontent-length: {100 << 20}\r\n\r\n").encode()
        status, _ = raw_request(proxy, head, [])
        assert status == 413
    # Chunked, never finished: refused once the limit is passed, not after the (endless) end.
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nx-goog-api-key: {TOKEN}\r\n"
            "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n").encode()
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    status, _ = raw_request(proxy, head, [chunk] * 24)
    assert status == 413


def test_upload_sizes_are_checked_on_every_piece_and_fail_closed(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), settings={"max_upload_bytes": "4096"})
    before = len(sim.log())
    start = ["-H", "x-goog-upload-protocol: resumable", "-H", "x-goog-upload-command: start"]
    no_size = curl(f"{proxy.url}/upload/v1beta/files", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                   "-H", f"x-goog-api-key: {TOKEN}", *start, "-d", "{}").stdout
    assert no_size == "411"
    overflow = curl(f"{proxy.url}/upload/v1beta/files", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                    "-H", f"x-goog-api-key: {TOKEN}", *start,
                    "-H", "x-goog-upload-header-content-length: 99999999999999999999999999", "-d", "{}").stdout
    assert overflow == "413"
    chunked_multipart = curl(f"{proxy.url}/upload/v1beta/files?uploadType=multipart", "-s", "-o", "/dev/null",
                             "-w", "%{http_code}", "-X", "POST", "-H", f"x-goog-api-key: {TOKEN}",
                             "-H", "content-type: multipart/related; boundary=B", "-H", "transfer-encoding: chunked",
                             "--data-binary", "--B--").stdout
    assert chunked_multipart == "411"
    assert len(sim.log()) == before, "no unsized upload reached Google"
    # A session's pieces: chunked (no size) is refused; within the limit, served.
    started = curl(f"{proxy.url}/upload/v1beta/files", "-s", "-i", "-X", "POST", "-H", f"x-goog-api-key: {TOKEN}", *start,
                   "-H", "x-goog-upload-header-content-length: 5", "-d", "{}").stdout
    url = next(line.split(":", 1)[1].strip() for line in started.splitlines() if line.lower().startswith("x-goog-upload-url:"))
    chunked = curl(url, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "transfer-encoding: chunked",
                   "-H", "x-goog-upload-command: upload, finalize", "-H", "x-goog-upload-offset: 0",
                   "--data-binary", "hello").stdout
    assert chunked == "411"
    done = curl(url, "-s", "-X", "POST", "-H", "x-goog-upload-command: upload, finalize", "-H", "x-goog-upload-offset: 0",
                "--data-binary", "hello").stdout
    assert '"files/' in done, done


def test_lists_pass_the_clients_gate(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), policies={APP: {"rpd": 1}})
    c = genai_client(proxy)
    assert c.models.generate_content(model=MODEL, contents="hi").text
    before = len(sim.log())
    for path in ["/v1beta/files", "/v1beta/cachedContents", "/v1beta/batches"]:
        out = curl(f"{proxy.url}{path}", "-s", "-i", "-H", f"x-goog-api-key: {TOKEN}").stdout
        assert out.startswith("HTTP/1.1 429"), out[:200]
        assert "retry-after:" in out.lower() and "x-ratelimit-remaining-requests: 0" in out.lower()
    assert len(sim.log()) == before, "a client over its limit lists nothing"


def test_relabelling_touches_the_envelope_never_what_the_model_wrote(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    proxy = proxies(pool_lines(4, PROJECTS), policies={APP: {"aliases": {"house-model": MODEL}}})
    sim.behave("*", "function_call", model=MODEL)
    status, answer = post(proxy, "/v1beta/models/house-model:generateContent", '{"contents":[{"parts":[{"text":"pick"}]}]}')
    assert status == 200, answer
    assert answer["modelVersion"] == "house-model", "the envelope names the alias"
    call = answer["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call["args"] == {"model": MODEL}, "the model's own arguments are untouched"


def test_a_file_name_another_client_holds_is_a_conflict(world, sim):
    def start(token, name):
        out = curl(f"{world.url}/upload/v1beta/files", "-s", "-i", "-X", "POST", "-H", f"x-goog-api-key: {token}",
                   "-H", "x-goog-upload-protocol: resumable", "-H", "x-goog-upload-command: start",
                   "-H", "x-goog-upload-header-content-length: 5", "-H", "content-type: application/json",
                   "-d", json.dumps({"file": {"name": f"files/{name}"}})).stdout
        return out

    def upload_as(token, name):
        out = start(token, name)
        url = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.lower().startswith("x-goog-upload-url:"))
        return curl(url, "-s", "-X", "POST", "-H", "x-goog-upload-command: upload, finalize",
                    "-H", "x-goog-upload-offset: 0", "--data-binary", "hello").stdout

    assert '"files/report-2026"' in upload_as(OTHER_TOKEN, "report-2026")
    before = len(sim.log())
    taken = start(TOKEN, "report-2026")
    assert taken.startswith("HTTP/1.1 409") and "ALREADY_EXISTS" in taken and "choose another name" in taken, taken
    assert len(sim.log()) == before
    # The holder deletes it: the name is free again, and its new file is reachable.
    holder, mine = genai_client(world, OTHER_TOKEN), genai_client(world)
    holder.files.delete(name="files/report-2026")
    assert '"files/report-2026"' in upload_as(TOKEN, "report-2026")
    assert mine.files.get(name="files/report-2026").name == "files/report-2026"


def test_one_labels_broken_policy_fails_that_client_only(sim, proxies):
    sim.reset(sim_keys(4, PROJECTS))
    deep = "[" * 200 + "1" + "]" * 200
    proxy = proxies(pool_lines(4, PROJECTS), policies={APP: f'{{"models": {deep}}}', OTHER: {"rpd": 100}})
    status, answer = post(proxy, GENERATE, '{"contents":[{"parts":[{"text":"hi"}]}]}', OTHER_TOKEN)
    assert status == 200, answer
    status, answer = post(proxy, GENERATE, '{"contents":[{"parts":[{"text":"hi"}]}]}', TOKEN)
    assert status == 500 and APP in answer["error"]["message"], answer
