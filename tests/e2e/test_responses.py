"""OpenAI's Responses API (what Codex speaks), driven by the official `openai` SDK: translated to
Google's native API by the core, through the same pool, answered in the Responses API's shapes
(items, events, usage) and OpenAI's error envelope."""

import json

import openai
import pytest

from harness import TOKEN, checked_tool_loop, function_responses, generation, pool_lines, sim_keys

CODEX = "gpt-5.1-codex"  # `agent_models`' default maps gpt to gemini-3.5-flash
GEMINI = "gemini-3.5-flash"
# A shell tool as Codex declares it: JSON Schema Google's `parameters` does not take.
TOOLS = [{"type": "function", "name": "exec_command", "description": "Runs a command", "strict": False,
          "parameters": {"type": "object", "properties": {"cmd": {"type": "string", "minLength": 1},
                                                           "yield_time_ms": {"type": "number"}},
                         "required": ["cmd"], "additionalProperties": False}}]


@pytest.fixture
def world(sim, proxies):
    sim.reset(sim_keys(3))
    return proxies(pool_lines(3))


def client(proxy, token=TOKEN):
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)


def test_a_response_is_answered_in_the_responses_shape(world, sim):
    response = client(world).responses.create(model=CODEX, input="Say hello", instructions="Be brief.",
                                              max_output_tokens=64)
    assert response.object == "response" and response.status == "completed"
    assert response.model == CODEX, "the client reads the model it asked for"
    assert response.output_text == "Hello from the Gemini simulator"
    assert response.usage.input_tokens == 8 and response.usage.output_tokens == 5
    assert response.usage.total_tokens == 13
    entry = generation(sim)[-1]
    assert entry["path"] == f"/v1beta/models/{GEMINI}:generateContent"
    sent = json.loads(entry["body"])
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    assert sent["generationConfig"]["maxOutputTokens"] == 64


def test_a_stream_reads_as_responses_events(world, sim):
    with client(world).responses.stream(model=CODEX, input="Say hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.index("response.output_item.added") < kinds.index("response.output_text.delta")
    assert kinds.index("response.output_text.delta") < kinds.index("response.output_item.done")
    assert final.output_text == "Hello from the Gemini simulator"
    assert final.usage.input_tokens == 8
    assert generation(sim)[-1]["path"] == f"/v1beta/models/{GEMINI}:streamGenerateContent"
    assert generation(sim)[-1]["query"] == "alt=sse"


def test_a_tool_loop_round_trips_calls_signatures_and_outputs(world, sim, tmp_path):
    # The scripted Gemini 3 model writes a file with the shell tool, reads it back, then says
    # what it read; it signs its calls and refuses a replayed call without its signature.
    target = tmp_path / "note.txt"
    items = [{"role": "user", "content": f"Save it. [[sim-agent file={target} text=pool works]]"}]
    api = client(world)
    for step in range(3):
        response = api.responses.create(model=CODEX, input=items, tools=TOOLS, store=False,
                                        include=["reasoning.encrypted_content"])
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            break
        assert [item.type for item in response.output] == ["reasoning", "function_call"], \
            "the call's signature travels in a reasoning item before it"
        assert response.output[0].encrypted_content
        call = calls[0]
        assert call.name == "exec_command" and call.call_id.startswith("call_")
        command = json.loads(call.arguments)["cmd"]
        if step == 0:
            target.write_text("pool works")
            output = ""
        else:
            assert command.startswith("cat ")
            output = target.read_text()
        items += [item.model_dump(exclude_none=True) for item in response.output]
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": output})
    assert response.status == "completed"
    assert "pool works" in response.output_text
    last = checked_tool_loop(sim)
    schema = last["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
    assert "minLength" not in json.dumps(schema)
    assert function_responses(last) == ["exec_command", "exec_command"]


def test_errors_come_in_openais_envelope(world, sim):
    with pytest.raises(openai.AuthenticationError):
        client(world, token="tok-unknown-0000").responses.create(model=CODEX, input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client(world).responses.create(model=CODEX, input="x", previous_response_id="resp_1")
    assert "previous_response_id" in bad.value.body["message"]
    for key in ("k1", "k2", "k3"):
        sim.behave(key, "overloaded", times=5)
    with pytest.raises(openai.APIStatusError) as overloaded:
        client(world).responses.create(model=CODEX, input="x")
    assert overloaded.value.status_code == 503
    assert overloaded.value.body["message"]


def test_a_cooling_key_is_retried_before_the_client_sees_anything(world, sim):
    # Whichever key the pool tries first is out of its per-minute quota; the client sees one answer.
    sim.behave("*", "per_minute", times=1)
    with client(world).responses.stream(model=CODEX, input="Say hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello from the Gemini simulator"
    calls = generation(sim)
    assert [e["status"] for e in calls] == [429, 200]
    assert calls[0]["key"] != calls[1]["key"], "retried on another key"


def test_a_call_gemini_could_not_form_is_tried_again_unseen(world, sim):
    sim.behave("*", "malformed_call", times=1)
    with client(world).responses.stream(model=CODEX, input="Say hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.failed" not in kinds and final.status == "completed"
    assert final.output_text == "Hello from the Gemini simulator"
    assert len(generation(sim)) == 2, "one malformed answer, then the retry"
