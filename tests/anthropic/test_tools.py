"""Tools on the tiny qwen3 model (its template shows them; calls are read in the Hermes /
Qwen form): a forced call (``tool_choice`` ``tool`` / ``any``) is a ``tool_use`` block with
``stop_reason: tool_use``, streamed as ``input_json_delta``; the ``tool_result`` goes back
in the next turn; API keys arrive as ``x-api-key``."""

from __future__ import annotations

import anthropic
import pytest

from tests.anthropic.conftest import _serve, sdk

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "required": ["city"], "properties": {
               "city": {"type": "string", "maxLength": 12}}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def call(base_url: str, choice: dict, **extra) -> anthropic.types.Message:
    return sdk(base_url).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=ASK, tools=[WEATHER],
        tool_choice=choice, extra_body={"temperature": 0}, **extra)


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "get_weather"}, {"type": "any"}])
def test_forced_call_is_tool_use(text_url, choice):
    message = call(text_url, choice)
    assert message.stop_reason == "tool_use"
    use = message.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather"
    assert isinstance(use.input, dict) and isinstance(use.input.get("city"), str)


def test_tool_result_round_trip(text_url):
    use = call(text_url, {"type": "tool", "name": "get_weather"}).content[-1]
    follow = sdk(text_url).messages.create(
        model="claude-sonnet-4-5", max_tokens=8, tools=[WEATHER], extra_body={"temperature": 0},
        messages=[*ASK, {"role": "assistant", "content": [
                      {"type": "text", "text": "Checking."},
                      {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
                  {"role": "user", "content": [
                      {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21C"},
                      {"type": "text", "text": "Thanks"}]}])
    assert follow.type == "message" and follow.usage.input_tokens > 0


def test_stream_forced_call(text_url):
    with sdk(text_url).messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=ASK, tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather"},
            extra_body={"temperature": 0}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == call(text_url, {"type": "tool",
                                                      "name": "get_weather"}).content[-1].input


def test_tool_result_for_unknown_call_is_400(text_url):
    with pytest.raises(anthropic.BadRequestError):
        sdk(text_url).messages.create(model="claude-x", max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope",
                                          "content": "x"}]}])


def test_bad_tool_choice_is_400(text_url):
    with pytest.raises(anthropic.BadRequestError) as caught:
        call(text_url, {"type": "tool", "name": "not_offered"})
    assert caught.value.body["error"]["type"] == "invalid_request_error"


@pytest.fixture(scope="module")
def keyed_url(engine_for, tmp_path_factory):
    yield from _serve(engine_for("qwen3"), tmp_path_factory, "qwen3", api_key="sekret")


def test_x_api_key(keyed_url):
    assert sdk(keyed_url, api_key="sekret").messages.count_tokens(
        model="claude-x", messages=ASK).input_tokens > 0
    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk(keyed_url, api_key="wrong").messages.count_tokens(model="claude-x", messages=ASK)
    assert caught.value.body["error"]["type"] == "authentication_error"
