"""The real coding agents, pinned from npm (tests/agents/package.json), finishing a task through
the pool: each writes a file with one tool and reads it back with another, against the
simulator's scripted model (`[[sim-agent …]]`), while a key cools mid-session. No 400 may come
from Google anywhere on the way: every call replayed with its signature, every schema cleaned."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import TOKEN, pool_lines, sim_keys

AGENTS = Path(__file__).resolve().parent.parent / "agents" / "node_modules" / ".bin"


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3))
    return proxies(pool_lines(3))


def generation(sim) -> list[dict]:
    return [e for e in sim.log() if "enerateContent" in e["path"]]


def test_claude_code_writes_and_reads_a_file_through_the_pool(world, sim, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    target = work / "note.txt"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": world.url,
        "ANTHROPIC_AUTH_TOKEN": TOKEN,
        "ANTHROPIC_MODEL": "claude-sonnet-4-6",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    # The second request the model gets (the first tool result's turn): its key is refused for
    # the minute, and the pool retries on another before Claude Code sees anything.
    sim.behave("*", "per_minute", times=1, skip=1)
    prompt = f"Save a note. [[sim-agent file={target} text=pool works]]"
    run = subprocess.run([str(AGENTS / "claude"), "-p", prompt, "--permission-mode", "acceptEdits"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert target.read_text() == "pool works"
    assert "pool works" in run.stdout
    calls = generation(sim)
    statuses = [e["status"] for e in calls]
    assert 400 not in statuses, [json.loads(e["body"]) for e in calls if e["status"] == 400][:1]
    # (The simulator's log keeps the first 64 KiB of a body: Claude Code's prompt is longer.)
    results = max(e["body"].count('"functionResponse"') for e in calls)
    assert results == 2, "both tool results went back to Google"
    assert any(e["status"] == 429 for e in calls), "a key cooled on the way"
