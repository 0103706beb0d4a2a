"""Function tools on the tiny qwen3 model (its template shows them; calls are read in the
Hermes / Qwen form): a forced call (``tool_choice`` ``required`` or a named function) is a
``function_call`` item, streamed as ``response.function_call_arguments.*`` events; its
``function_call_output`` goes back by ``previous_response_id`` (also after a restart) or
with the whole conversation as items."""

from __future__ import annotations

import json

import pytest

from tests.responses.conftest import sdk, serve

WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "required": ["city"], "additionalProperties": False,
                          "properties": {"city": {"type": "string", "maxLength": 12}}},
           "strict": True}
NAMED = {"type": "function", "name": "get_weather"}


def call(base_url: str, choice, **extra):
    return sdk(base_url).responses.create(
        model="default", input="Weather in Paris?", tools=[WEATHER], tool_choice=choice,
        max_output_tokens=64, temperature=0, **extra)


def only_call(response):
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    return calls[0]


@pytest.mark.parametrize("choice", [NAMED, "required"])
def test_forced_call_is_a_function_call_item(text_url, choice):
    response = call(text_url, choice)
    fc = only_call(response)
    assert fc.name == "get_weather" and fc.call_id and fc.id.startswith("fc_")
    assert isinstance(json.loads(fc.arguments)["city"], str)
    assert response.tool_choice == choice or response.tool_choice.name == "get_weather"
    assert response.tools[0].name == "get_weather"


def test_function_call_output_round_trip(text_url):
    client = sdk(text_url)
    first = call(text_url, NAMED)
    fc = only_call(first)
    follow = client.responses.create(
        model="default", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": fc.call_id,
                "output": "Sunny, 21C"}],
        max_output_tokens=8, temperature=0)
    assert follow.previous_response_id == first.id and follow.output
    items = client.responses.input_items.list(follow.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1].call_id == fc.call_id
    # the same conversation sent whole, as items, is the same prompt
    whole = client.responses.create(
        model="default", tools=[WEATHER], max_output_tokens=8, temperature=0,
        input=[{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": fc.call_id, "name": fc.name,
                "arguments": fc.arguments},
               {"type": "function_call_output", "call_id": fc.call_id,
                "output": "Sunny, 21C"}])
    assert whole.usage.input_tokens == follow.usage.input_tokens
    assert whole.output_text == follow.output_text


def test_stream_forced_call(text_url):
    with sdk(text_url).responses.stream(
            model="default", input="Weather in Paris?", tools=[WEATHER], tool_choice=NAMED,
            max_output_tokens=64, temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert kinds[-1] == "response.completed"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert only_call(final).arguments == done.arguments == only_call(
        call(text_url, NAMED)).arguments


def test_previous_response_survives_a_restart(engine_for, tmp_path):
    engine = engine_for("qwen3")
    with serve(engine, tmp_path, "qwen3") as url:
        first = call(url, NAMED)
    fc = only_call(first)
    with serve(engine, tmp_path, "qwen3") as url:
        client = sdk(url)
        assert client.responses.retrieve(first.id).output[0].call_id == fc.call_id
        follow = client.responses.create(
            model="default", previous_response_id=first.id, tools=[WEATHER],
            input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "Sunny"}],
            max_output_tokens=4, temperature=0)
        items = client.responses.input_items.list(follow.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert follow.usage.input_tokens > first.usage.input_tokens
