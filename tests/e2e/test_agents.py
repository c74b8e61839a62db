"""The real coding agents, pinned from npm (tests/agents/package.json), finishing a task through
the pool: each writes a file with one tool and reads it back with another, against the
simulator's scripted model (`[[sim-agent …]]`), while a key cools mid-session. No 400 may come
from Google anywhere on the way: every call replayed with its signature, every schema cleaned."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import SIM_SIGNATURE, TOKEN, generation, pool_lines, sim_keys

AGENTS = Path(__file__).resolve().parent.parent / "agents" / "node_modules" / ".bin"


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3))
    return proxies(pool_lines(3))


def check_the_run(run, target, sim):
    """The task done, nothing refused by Google, both results and Google's own signatures sent
    back, a key cooled on the way."""
    assert run.returncode == 0, run.stdout + run.stderr
    assert target.read_text() == "pool works"
    assert "pool works" in run.stdout
    calls = generation(sim)
    statuses = [e["status"] for e in calls]
    assert 400 not in statuses, [json.loads(e["body"]) for e in calls if e["status"] == 400][:1]
    # (The simulator's log keeps the first 64 KiB of a body: a long prompt is cut.)
    results = max(e["body"].count('"functionResponse"') for e in calls)
    assert results == 2, "both tool results went back to Google"
    signatures = max(e["body"].count(f'"thoughtSignature":"{SIM_SIGNATURE}"') for e in calls)
    assert signatures == 2, "each call went back with the signature Google gave it, not a placeholder"
    assert any(e["status"] == 429 for e in calls), "a key cooled on the way"


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
    check_the_run(run, target, sim)


def test_codex_writes_and_reads_a_file_through_the_pool(world, sim, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    target = work / "note.txt"
    # Codex's own provider table: the pool's /v1, the token from an environment variable, the
    # Responses API (Codex's only wire format).
    (home / ".codex" / "config.toml").write_text(
        'model = "gpt-5.1-codex"\n'
        'model_provider = "pool"\n'
        "[model_providers.pool]\n"
        'name = "pool"\n'
        f'base_url = "{world.url}/v1"\n'
        'env_key = "POOL_TOKEN"\n'
        'wire_api = "responses"\n'
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "POOL_TOKEN": TOKEN}
    sim.behave("*", "per_minute", times=1, skip=1)
    prompt = f"Save a note. [[sim-agent file={target} text=pool works]]"
    run = subprocess.run([str(AGENTS / "codex"), "exec", "--skip-git-repo-check",
                          "--dangerously-bypass-approvals-and-sandbox", prompt],
                         cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    check_the_run(run, target, sim)
