"""Anthropic's Messages API (what Claude Code speaks), driven by the official `anthropic` SDK:
translated to Google's native API by the core, through the same pool, answered in Anthropic's
shapes and envelope."""

import json

import anthropic
import pytest

from harness import TOKEN, checked_tool_loop, function_responses, generation, curl, pool_lines, sim_keys

CLAUDE = "claude-sonnet-4-6"  # `agent_models`' default maps sonnet to gemini-3.5-flash
GEMINI = "gemini-3.5-flash"
SAY = [{"role": "user", "content": "Say hello"}]
# Tools as Claude Code declares them: JSON Schema 2020-12 with `$schema` and keywords Google's
# `parameters` does not take (the simulator refuses them as Google does).
TOOLS = [
    {"name": "Write", "description": "Writes a file",
     "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                      "properties": {"file_path": {"type": "string", "minLength": 1},
                                     "content": {"type": "string"}},
                      "required": ["file_path", "content"], "additionalProperties": False}},
    {"name": "Read", "description": "Reads a file",
     "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                      "properties": {"file_path": {"type": "string"},
                                     "limit": {"type": "integer", "exclusiveMinimum": 0}},
                      "required": ["file_path"], "additionalProperties": False}},
]


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3))
    return proxies(pool_lines(3))


def client(proxy, token=TOKEN, bearer=False):
    if bearer:
        return anthropic.Anthropic(base_url=proxy.url, auth_token=token, api_key=None, max_retries=0)
    return anthropic.Anthropic(base_url=proxy.url, api_key=token, max_retries=0)


def test_a_message_is_answered_in_anthropics_shape(world, sim):
    message = client(world).messages.create(model=CLAUDE, max_tokens=256, messages=SAY)
    assert message.type == "message" and message.role == "assistant"
    assert message.model == CLAUDE, "the client reads the model it asked for"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from the Gemini simulator"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 8 and message.usage.output_tokens == 5
    entry = generation(sim)[-1]
    assert entry["path"] == f"/v1beta/models/{GEMINI}:generateContent"
    assert entry["key_via"] == "x-goog-api-key"
    sent = json.loads(entry["body"])
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    assert sent["generationConfig"]["maxOutputTokens"] == 256


def test_a_stream_reads_as_anthropic_events(world, sim):
    with client(world, bearer=True).messages.stream(model=CLAUDE, max_tokens=64, messages=SAY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.index("content_block_start") < kinds.index("content_block_delta")
    assert final.content[0].text == "Hello from the Gemini simulator"
    assert final.usage.input_tokens == 8
    assert generation(sim)[-1]["path"] == f"/v1beta/models/{GEMINI}:streamGenerateContent"
    assert generation(sim)[-1]["query"] == "alt=sse"


def test_a_tool_loop_round_trips_calls_signatures_and_results(world, sim, tmp_path):
    # The simulator's scripted model writes a file, reads it back, then says what it read; as a
    # Gemini 3 model it signs its calls and refuses a replayed call without its signature.
    target = tmp_path / "note.txt"
    messages = [{"role": "user", "content": f"Save it. [[sim-agent file={target} text=pool works]]"}]
    api = client(world)
    for step in range(3):
        message = api.messages.create(model=CLAUDE, max_tokens=1024, messages=messages, tools=TOOLS)
        if message.stop_reason != "tool_use":
            break
        kinds = [b.type for b in message.content]
        assert kinds == ["thinking", "tool_use"], "the call's signature travels in a thinking block before it"
        call = message.content[1]
        assert call.id.startswith("toolu_")
        if call.name == "Write":
            target.write_text(call.input["content"])
            result = "written"
        else:
            assert call.name == "Read" and step == 1
            result = target.read_text()
        messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]}]
    assert message.stop_reason == "end_turn"
    assert "pool works" in message.content[0].text
    last = checked_tool_loop(sim)
    schema = last["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
    assert "$schema" not in json.dumps(schema)
    assert function_responses(last) == ["Write", "Read"]


def test_history_gemini_never_signed_gets_the_placeholder_signature(world):
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_x", "name": "Read",
                                           "input": {"file_path": "/x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]},
    ]
    # A call from other history gets Google's documented placeholder: accepted.
    message = client(world).messages.create(model=CLAUDE, max_tokens=64, messages=messages, tools=TOOLS)
    assert message.stop_reason == "end_turn"


def test_count_tokens_is_googles_count(world, sim):
    counted = client(world).messages.count_tokens(model=CLAUDE, messages=[
        {"role": "user", "content": "one two three four"}])
    assert counted.input_tokens == 4
    entry = sim.log()[-1]
    assert entry["path"] == f"/v1beta/models/{GEMINI}:countTokens"
    assert set(json.loads(entry["body"])) == {"generateContentRequest"}


def test_errors_come_in_anthropics_envelope(world, sim):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client(world, token="tok-unknown-0000").messages.create(model=CLAUDE, max_tokens=8, messages=SAY)
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(world).messages.create(model=CLAUDE, max_tokens=8, messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    for key in ("k1", "k2", "k3"):
        sim.behave(key, "overloaded", times=5)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client(world).messages.create(model=CLAUDE, max_tokens=8, messages=SAY)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    out = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", f"{world.url}/v1/messages?beta=true",
               "-H", f"x-api-key: {TOKEN}", "-H", "anthropic-version: 2023-06-01",
               "-H", "anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14",
               "-H", "content-type: application/json", "--data-binary", "{not json")
    assert out.stdout == "400", "the beta query and headers are accepted; the body is refused"


def test_a_cooling_key_is_retried_before_the_client_sees_anything(world, sim):
    # Whichever key the pool tries first is out of its per-minute quota; the client sees one answer.
    sim.behave("*", "per_minute", times=1)
    message = client(world).messages.create(model=CLAUDE, max_tokens=8, messages=SAY)
    assert message.content[0].text == "Hello from the Gemini simulator"
    calls = generation(sim)
    assert [e["status"] for e in calls] == [429, 200]
    assert calls[0]["key"] != calls[1]["key"], "retried on another key"


def test_the_model_list_is_anthropics_for_an_anthropic_client(world, sim):
    # Claude Code's gateway discovery (`CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`) reads this
    # list and keeps names starting `claude`: each names the Gemini model it means.
    models = list(client(world).models.list())
    assert [m.id for m in models] == ["claude-opus", "claude-sonnet", "claude-haiku", "claude-gpt"]
    assert all(m.type == "model" for m in models)
    assert "gemini-3.5-flash" in models[1].display_name
    message = client(world).messages.create(model=models[1].id, max_tokens=8, messages=SAY)
    assert message.model == "claude-sonnet"
    assert generation(sim)[-1]["path"] == f"/v1beta/models/{GEMINI}:generateContent", "a listed name means its model"
    # Without Anthropic's headers the same path is OpenAI's list, from Google.
    out = curl("-s", f"{world.url}/v1/models", "-H", f"authorization: Bearer {TOKEN}")
    assert json.loads(out.stdout)["object"] == "list"


def test_a_call_gemini_could_not_form_is_tried_again_unseen(world, sim):
    # MALFORMED_FUNCTION_CALL with no parts, before the answer's first byte: another try, blaming
    # no key; the client sees one whole answer, never an error or a fake stop.
    sim.behave("*", "malformed_call", times=1)
    with client(world).messages.stream(model=CLAUDE, max_tokens=64, messages=SAY) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[0].text == "Hello from the Gemini simulator"
    assert len(generation(sim)) == 2, "one malformed answer, then the retry"
