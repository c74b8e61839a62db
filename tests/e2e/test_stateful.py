"""Google's stateful API through the pool — files, cached contents, interactions — driven by the
official google-genai SDK. Each resource lives in the project of the key that made it: the pool
has three projects, and every flow repeats its follow-ups often enough that a pool picking any
key would fail with overwhelming probability ((1/3)^n)."""

import io
import time

import pytest
from google.genai import errors, types

from harness import ADMIN_TOKEN, OTHER_TOKEN, TOKEN, curl, genai_client, pool_lines, sim_keys

MODEL = "gemini-3.5-flash"
PROJECTS = {1: "p-a", 2: "p-a", 3: "p-b", 4: "p-b", 5: "p-c", 6: "p-c"}
PROJECT_OF_LABEL = {f"k{i}": p for i, p in PROJECTS.items()}
FOLLOW_UPS = 8


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(6, PROJECTS))
    return proxies(pool_lines(6, PROJECTS))


def projects_used(sim, since: int, path_part: str = "") -> list[str]:
    """The projects of the keys that reached Google since `since` (upload bytes carry none)."""
    return [PROJECT_OF_LABEL.get(e["key"], e["key"]) for e in sim.log()[since:] if path_part in e["path"]]


def upload(c, text: bytes = b"the quick brown fox\n" * 50):
    return c.files.upload(file=io.BytesIO(text), config={"mime_type": "text/plain", "display_name": "fox"})


def test_a_file_uploaded_through_the_pool_is_used_in_its_project(world, sim):
    c = genai_client(world)
    start = len(sim.log())
    f = upload(c)
    assert f.name.startswith("files/") and f.state == "ACTIVE" and f.size_bytes == 1000
    made_in = projects_used(sim, start, "/upload/")[0]
    since = len(sim.log())
    for _ in range(FOLLOW_UPS):
        r = c.models.generate_content(
            model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain"), "Summarise"]
        )
        assert r.text
        assert c.files.get(name=f.name).name == f.name
    assert set(projects_used(sim, since)) == {made_in}, "every follow-up stays in the file's project"
    c.files.delete(name=f.name)
    with pytest.raises(errors.ClientError):
        c.files.get(name=f.name)


def test_the_upload_url_points_at_the_proxy_and_carries_no_key(world, sim):
    started = curl(
        f"{world.url}/upload/v1beta/files", "-i", "-X", "POST",
        "-H", f"x-goog-api-key: {TOKEN}",
        "-H", "x-goog-upload-protocol: resumable", "-H", "x-goog-upload-command: start",
        "-H", "x-goog-upload-header-content-length: 5", "-H", "x-goog-upload-header-content-type: text/plain",
        "-H", "content-type: application/json", "-d", '{"file": {"display_name": "five"}}',
    ).stdout
    url = next(line.split(":", 1)[1].strip() for line in started.splitlines() if line.lower().startswith("x-goog-upload-url:"))
    assert url.startswith(f"{world.url}/upload/v1beta/files?upload_id="), url
    assert "AIza" not in started and "key=" not in url
    # curl uses the URL as given: the bytes go through the proxy, with no token at all.
    done = curl(url, "-i", "-X", "POST", "-H", "x-goog-upload-command: upload, finalize",
                "-H", "x-goog-upload-offset: 0", "--data-binary", "hello").stdout
    assert "x-goog-upload-status: final" in done.lower() and '"files/' in done
    # An upload id the proxy did not hand out is not found.
    bogus = curl(f"{world.url}/upload/v1beta/files?upload_id=nope", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "-X", "POST", "-H", "x-goog-upload-command: upload, finalize", "--data-binary", "x").stdout
    assert bogus == "404"


def test_a_cached_content_follows_its_project(world, sim):
    c = genai_client(world)
    cache = c.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(contents=["a long shared context " * 100], display_name="ctx"),
    )
    assert cache.name.startswith("cachedContents/")
    since = len(sim.log())
    for _ in range(FOLLOW_UPS):
        r = c.models.generate_content(
            model=MODEL, contents="and so?", config=types.GenerateContentConfig(cached_content=cache.name)
        )
        assert r.text
    assert c.caches.get(name=cache.name).name == cache.name
    assert len(set(projects_used(sim, since))) == 1
    c.caches.delete(name=cache.name)


def test_interactions_continue_in_their_project(world, sim):
    c = genai_client(world)
    since = len(sim.log())
    first = c.interactions.create(model=MODEL, input="Hello")
    assert first.id and first.status == "completed"
    previous = first.id
    for _ in range(FOLLOW_UPS):
        nxt = c.interactions.create(model=MODEL, input="And then?", previous_interaction_id=previous)
        assert nxt.status == "completed"
        previous = nxt.id
    got = c.interactions.get(previous)
    assert got.id == previous
    assert len(set(projects_used(sim, since))) == 1, "a conversation stays in one project"

    # A streamed interaction: the events pass through, and the interaction it made follows too.
    events = list(c.interactions.create(model=MODEL, input="Stream it", stream=True))
    kinds = [e.event_type for e in events]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed" and "step.delta" in kinds
    streamed = events[0].interaction.id
    for _ in range(4):
        assert c.interactions.get(streamed).status == "completed"
    # A stream resumed after an event: the rest of it, from the interaction's project.
    resumed = list(c.interactions.get(streamed, stream=True, last_event_id=events[1].event_id))
    assert [e.event_type for e in resumed] == kinds[2:]

    # In the background: poll until it is done.
    background = c.interactions.create(model=MODEL, input="Take your time", background=True)
    assert background.status == "in_progress"
    polled = c.interactions.get(background.id)
    assert polled.status == "completed"
    c.interactions.delete(background.id)
    with pytest.raises(Exception):
        c.interactions.get(background.id)


def test_another_client_cannot_see_or_use_them(world, sim):
    mine, theirs = genai_client(world), genai_client(world, OTHER_TOKEN)
    f = upload(mine)
    chat = mine.interactions.create(model=MODEL, input="private")
    before = len(sim.log())
    with pytest.raises(errors.ClientError) as seen:
        theirs.files.get(name=f.name)
    assert seen.value.code == 404
    with pytest.raises(errors.ClientError) as used:
        theirs.models.generate_content(model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain")])
    assert used.value.code == 404
    with pytest.raises(errors.ClientError) as deleted:
        theirs.files.delete(name=f.name)
    assert deleted.value.code == 404
    missing = curl(f"{world.url}/v1beta/files/doesnotexist", "-s", "-H", f"x-goog-api-key: {OTHER_TOKEN}").stdout
    foreign = curl(f"{world.url}/v1beta/files/{f.name.split('/')[1]}", "-s", "-H", f"x-goog-api-key: {OTHER_TOKEN}").stdout
    assert missing.replace("doesnotexist", "X") == foreign.replace(f.name.split("/")[1], "X"), "the same answer"
    other = curl(f"{world.url}/v1/interactions/{chat.id}", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "-H", f"x-goog-api-key: {OTHER_TOKEN}").stdout
    assert other == "404"
    assert len(sim.log()) == before, "refused before Google is asked"
    # The maker still has both; an admin sees them too.
    assert mine.files.get(name=f.name).name == f.name
    admin = genai_client(world, ADMIN_TOKEN)
    assert admin.files.get(name=f.name).name == f.name


def test_resources_of_two_projects_in_one_request_are_refused(world, sim):
    c = genai_client(world)
    files = [upload(c) for _ in range(12)]
    starts = [PROJECT_OF_LABEL[e["key"]] for e in sim.log() if e["headers"].get("x-goog-upload-command") == "start"]
    assert len(set(starts)) >= 2, "twelve uploads land in more than one project"
    first = files[0]
    other = next(f for f, p in zip(files, starts) if p != starts[0])
    with pytest.raises(errors.ClientError) as refused:
        c.models.generate_content(
            model=MODEL,
            contents=[types.Part.from_uri(file_uri=u.uri, mime_type="text/plain") for u in (first, other)],
        )
    assert refused.value.code == 400 and "different Google projects" in refused.value.message


def test_the_owning_project_cooling_means_a_wait_not_another_project(world, sim):
    c = genai_client(world)
    start = len(sim.log())
    f = upload(c)
    made_in = projects_used(sim, start, "/upload/")[0]
    for label, project in PROJECT_OF_LABEL.items():
        if project == made_in:
            sim.behave(label, "per_day", model=MODEL)
    since = len(sim.log())
    with pytest.raises(errors.ClientError) as waited:
        c.models.generate_content(model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain")])
    assert waited.value.code == 429
    assert int(waited.value.response.headers["retry-after"]) > 0
    assert set(projects_used(sim, since)) == {made_in}, "never a key of another project"
    # A request naming no resource is served by the other projects meanwhile.
    assert c.models.generate_content(model=MODEL, contents="hi").text


def test_an_upload_over_the_limit_is_refused_before_google(sim, proxies):
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2), settings={"max_upload_bytes": "4096"})
    before = len(sim.log())
    with pytest.raises(errors.ClientError) as refused:
        upload(genai_client(proxy), b"x" * 5000)
    assert refused.value.code == 413
    assert len(sim.log()) == before


def test_a_batch_over_an_uploaded_file_stays_in_the_files_project(world, sim):
    c = genai_client(world)
    start = len(sim.log())
    lines = b'{"key": "1", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n' * 3
    source = c.files.upload(file=io.BytesIO(lines), config={"mime_type": "application/jsonl"})
    made_in = projects_used(sim, start, "/upload/")[0]
    since = len(sim.log())
    batch = c.batches.create(model=MODEL, src=source.name, config={"display_name": "nightly"})
    assert batch.name.startswith("batches/")
    for _ in range(FOLLOW_UPS):
        done = c.batches.get(name=batch.name)
        assert done.state.name == "JOB_STATE_SUCCEEDED"
    # Its results are a file Google generated in the batch's project: the proxy adopted it.
    results = done.dest.file_name
    assert results.startswith("files/")
    for _ in range(4):
        assert c.files.download(file=results).startswith(b"generated bytes")
    c.batches.cancel(name=batch.name)
    c.batches.delete(name=batch.name)
    assert set(projects_used(sim, since)) == {made_in}, "the batch is made where its input file is"
    other = genai_client(world, OTHER_TOKEN)  # the SDK closes a client once it is unreferenced: keep it
    with pytest.raises(errors.ClientError) as theirs:
        other.batches.get(name=batch.name)
    assert theirs.value.code == 404


def test_a_long_running_operation_is_polled_in_its_project(world, sim):
    # google-genai 3.6 offers `generate_videos` on Vertex only; Google's REST docs call it so.
    import json
    veo = "veo-3.1-generate-preview"
    started = curl(f"{world.url}/v1beta/models/{veo}:predictLongRunning", "-s", "-X", "POST",
                   "-H", f"x-goog-api-key: {TOKEN}", "-H", "content-type: application/json",
                   "-d", '{"instances": [{"prompt": "a fox in the snow"}]}').stdout
    name = json.loads(started)["name"]
    assert name.startswith(f"models/{veo}/operations/"), started
    since = len(sim.log())
    for _ in range(FOLLOW_UPS):
        polled = json.loads(curl(f"{world.url}/v1beta/{name}", "-s", "-H", f"x-goog-api-key: {TOKEN}").stdout)
        assert polled["done"] and polled["response"]["generateVideoResponse"]["generatedSamples"], polled
    # The video is a file Google generated in the operation's project: downloaded from there.
    video = polled["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    path = video.split("generativelanguage.googleapis.com", 1)[1]
    for _ in range(4):
        got = curl(f"{world.url}{path}", "-s", "-H", f"x-goog-api-key: {TOKEN}").stdout
        assert got.startswith("generated bytes"), got
    assert len(set(projects_used(sim, since))) == 1
    for theirs in (f"/v1beta/{name}", path):
        other = curl(f"{world.url}{theirs}", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "-H", f"x-goog-api-key: {OTHER_TOKEN}").stdout
        assert other == "404", theirs


def test_lists_merge_the_projects_and_show_only_the_callers_own(world, sim):
    mine, theirs, admin = genai_client(world), genai_client(world, OTHER_TOKEN), genai_client(world, ADMIN_TOKEN)
    start = len(sim.log())
    own = [upload(mine) for _ in range(8)]
    spread = {PROJECT_OF_LABEL[e["key"]] for e in sim.log()[start:] if e["headers"].get("x-goog-upload-command") == "start"}
    assert len(spread) >= 2, "eight uploads land in more than one project"
    other = [upload(theirs) for _ in range(3)]
    assert {f.name for f in mine.files.list()} == {f.name for f in own}, "every project's page, mine only"
    assert {f.name for f in theirs.files.list()} == {f.name for f in other}
    assert {f.name for f in admin.files.list()} == {f.name for f in own + other}, "an admin sees all"
    caches = [mine.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["c"])) for _ in range(3)]
    assert {c.name for c in mine.caches.list()} == {c.name for c in caches}
    assert list(theirs.caches.list()) == []


def test_a_multipart_upload_streams_through_and_is_recorded(world, sim):
    body = (b'--BOUND\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{"file": {"display_name": "m"}}\r\n'
            b"--BOUND\r\ncontent-type: text/plain\r\n\r\nhello multipart\r\n--BOUND--\r\n")
    path = artifacts_body(body)
    made = curl(f"{world.url}/upload/v1beta/files?uploadType=multipart", "-s", "-X", "POST",
                "-H", f"x-goog-api-key: {TOKEN}", "-H", "content-type: multipart/related; boundary=BOUND",
                "--data-binary", f"@{path}").stdout
    import json
    name = json.loads(made)["file"]["name"]
    c = genai_client(world)
    f = c.files.get(name=name)
    assert f.size_bytes == len(b"hello multipart")
    since = len(sim.log())
    for _ in range(4):
        assert c.models.generate_content(model=MODEL, contents=[types.Part.from_uri(file_uri=f.uri, mime_type="text/plain")]).text
    assert len(set(projects_used(sim, since))) == 1


def artifacts_body(data: bytes) -> str:
    import tempfile
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".bin")
    handle.write(data)
    handle.close()
    return handle.name
