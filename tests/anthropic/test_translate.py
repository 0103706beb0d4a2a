"""The pure mapping of a Messages request onto a chat request (no engine)."""

from __future__ import annotations

import pytest

from vllm_mlx.anthropic.protocol import MessagesRequest
from vllm_mlx.anthropic.translate import to_chat_request
from vllm_mlx.errors import APIError

TOOL = {"name": "f", "input_schema": {"type": "object"}}


def chat(**body):
    req = MessagesRequest.model_validate({"model": "claude-3-opus", "max_tokens": 9000,
                                          **body})
    return to_chat_request(req, "served", 8192)


def test_system_blocks_images_and_sampling():
    out = chat(system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
               stop_sequences=["X"], temperature=0.5, top_k=3, messages=[{"role": "user",
               "content": [{"type": "image", "source": {"type": "base64",
                                                        "media_type": "image/png",
                                                        "data": "AAAA"}},
                           {"type": "image", "source": {"type": "url", "url": "http://x/y"}},
                           {"type": "text", "text": "hi"}]}])
    assert out.model == "served" and out.max_tokens == 8192  # capped at the limit
    assert out.messages[0] == {"role": "system", "content": "a\nb"}
    parts = out.messages[1]["content"]
    assert parts[0]["image_url"]["url"] == "data:image/png;base64,AAAA"
    assert parts[1]["image_url"]["url"] == "http://x/y"
    assert out.stop == ["X"] and out.temperature == 0.5 and out.top_k == 3


def test_tool_turns():
    out = chat(tools=[TOOL], tool_choice={"type": "any", "disable_parallel_tool_use": True},
               messages=[
                   {"role": "user", "content": "go"},
                   {"role": "assistant", "content": [
                       {"type": "thinking", "thinking": "hm", "signature": "s"},
                       {"type": "text", "text": "ok"},
                       {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
                   {"role": "user", "content": [
                       {"type": "text", "text": "and?"},
                       {"type": "tool_result", "tool_use_id": "t1", "content": "42",
                        "is_error": True}]}])
    assert out.tools == [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object"}}}]
    assert out.tool_choice == "required" and out.parallel_tool_calls is False
    assistant, tool, user = out.messages[1:]
    assert assistant["content"] == "ok"
    assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "Error: 42"}
    assert user == {"role": "user", "content": [{"type": "text", "text": "and?"}]}


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}})])
def test_tool_choice(choice, expected):
    out = chat(tools=[TOOL], tool_choice=choice, messages=[{"role": "user", "content": "x"}])
    assert out.tool_choice == expected


def test_other_model_names_pass_through():
    assert chat(model="gpt-4o", messages=[{"role": "user", "content": "x"}]).model == "gpt-4o"


def test_chat_side_refusal_is_a_400():
    base = MessagesRequest.model_validate({"model": "claude-x", "max_tokens": 5,
                                           "messages": [{"role": "user", "content": "x"}]})
    unchecked = base.model_copy(update={"temperature": 7.0})  # past this side's own checks
    with pytest.raises(APIError) as caught:
        to_chat_request(unchecked, "served", 8192)
    assert caught.value.status == 400 and caught.value.param == "temperature"
