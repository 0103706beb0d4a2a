"""Unit tests without a model: Responses items -> chat messages and requests, chat replies
-> output items, the typed events of scripted chat streams (reasoning included, which the
chat feature reports as ``reasoning_content``), and the store's bounds."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import ValidationError

from vllm_mlx.errors import APIError
from vllm_mlx.openai.serving_common import SSE_DONE, sse, sse_error
from vllm_mlx.responses.protocol import ResponseObject, ResponsesRequest
from vllm_mlx.responses.store import ResponseStore
from vllm_mlx.responses.streaming import ResponseEvents
from vllm_mlx.responses.translate import (
    chat_messages,
    input_items,
    output_items,
    to_chat_request,
)


def request(**body) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"input": "Hi"} | body)


def test_string_input_is_one_user_message():
    items = input_items(request(input="Hi"))
    assert items == [{"type": "message", "role": "user", "status": "completed",
                      "id": items[0]["id"], "content": [{"type": "input_text", "text": "Hi"}]}]
    assert items[0]["id"].startswith("msg_")


def test_items_become_chat_messages():
    req = request(instructions="Be terse.", input=[
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [
            {"type": "input_text", "text": "Look"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA"},
            {"type": "input_image", "file_id": "file-1", "detail": "high"},
            {"type": "input_file", "file_id": "file-2"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "Let me check.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "two"}]},
        {"type": "function_call", "call_id": "c3", "name": "f", "arguments": "{}"},
    ])
    messages = chat_messages(req.instructions, input_items(req))
    assert messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Rules."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
            {"type": "input_file", "file_id": "file-1"},
            {"type": "input_file", "file_id": "file-2"}]},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function",
             "function": {"name": "g", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c3", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]


def test_chat_request_options():
    req = request(
        model="m", max_output_tokens=7, temperature=0.5, top_p=0.9, stream=True,
        tools=[{"type": "function", "name": "f", "description": "d"}],
        tool_choice={"type": "function", "name": "f"}, parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"},
                         "strict": True}},
        reasoning={"effort": "low"}, seed=3, top_k=5, unknown_field=1)
    chat = to_chat_request(req, input_items(req), "served")
    assert chat.model == "m" and chat.max_tokens == 7 and chat.temperature == 0.5
    assert chat.top_p == 0.9 and chat.seed == 3 and chat.top_k == 5
    assert chat.stream and chat.stream_options.include_usage
    assert chat.tools == [{"type": "function", "function": {
        "name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}]
    assert chat.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert chat.parallel_tool_calls is False
    assert chat.response_format.type == "json_schema"
    assert chat.response_format.schema_dict() == {"type": "object"}
    assert "unknown_field" not in (chat.model_extra or {})
    assert getattr(chat, "reasoning_effort", None) == "low"
    plain = request(text={"format": {"type": "json_object"}})
    chat = to_chat_request(plain, input_items(plain), "served")
    assert chat.model == "served" and chat.response_format.type == "json_object"
    assert chat.stream is False and chat.stream_options is None and chat.tools is None


def test_empty_conversation_is_400():
    with pytest.raises(APIError) as caught:
        to_chat_request(request(input=[]), [], "served")
    assert caught.value.status == 400 and caught.value.param == "input"


@pytest.mark.parametrize("body", [
    {"input": [{"type": "item_reference", "id": "x"}]},
    {"input": [{"role": "tool", "content": "x"}]},
    {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
    {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "a",
                                              "image_url": "b"}]}]},
    {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "AA"}]}]},
    {"tools": [{"type": "file_search"}]},
    {"tool_choice": "any"},
    {"text": {"format": {"type": "json_schema", "name": "x"}}},
])
def test_refused_requests(body):
    with pytest.raises(ValidationError):
        request(**body)


def test_lone_surrogate_is_400():
    with pytest.raises(APIError) as caught:
        request(input="\ud800")
    assert caught.value.status == 400 and caught.value.code == "invalid_text"


def test_output_items():
    calls = [{"id": "c1", "type": "function",
              "function": {"name": "f", "arguments": "{\"a\": 1}"}}]
    items = output_items("", "think", calls, incomplete=False)
    assert [i.type for i in items] == ["reasoning", "function_call"]
    assert items[0].content[0].text == "think" and items[1].call_id == "c1"
    assert items[1].arguments == "{\"a\": 1}" and items[1].status == "completed"
    text = output_items("Hi", None, None, incomplete=True)
    assert [i.type for i in text] == ["message"] and text[0].status == "incomplete"
    assert text[0].content[0].text == "Hi"
    assert output_items(None, None, None, False)[0].content[0].text == ""


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None
          ) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]
    return sse({"object": "chat.completion.chunk", "choices": choices, "usage": usage})


async def _lines(lines: list[str]):
    for line in lines:
        yield line


def run_events(lines: list[str]) -> tuple[list[dict], list[ResponseObject]]:
    kept: list[ResponseObject] = []

    async def keep(response: ResponseObject) -> None:
        kept.append(response)

    async def collect() -> list[str]:
        events = ResponseEvents(ResponseObject(model="m"), keep)
        return [e async for e in events.run(_lines(lines))]

    out = []
    for raw in asyncio.run(collect()):
        name, data = (line.split(": ", 1)[1] for line in raw.strip().split("\n"))
        body = json.loads(data)
        assert body["type"] == name
        out.append(body)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out, kept


USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9,
         "prompt_tokens_details": {"cached_tokens": 2}}


def test_reasoning_text_and_a_call_stream_as_items():
    call = {"index": 0, "id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":1}"}}
    events, kept = run_events([
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Hmm"}), chunk({"reasoning_content": " ok"}),
        chunk({"content": "Hi"}), chunk({"tool_calls": [call]}),
        chunk({}, finish="tool_calls"), chunk(usage=USAGE), SSE_DONE])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "Hmm ok"}]
    assert final["output"][1]["content"][0]["text"] == "Hi"
    assert final["output"][2]["arguments"] == "{\"a\":1}"
    assert [e["output_index"] for e in events if "output_index" in e] == \
        [0] * 7 + [1] * 6 + [2] * 4
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["total_tokens"] == 9
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 2
    assert kept[0].status == "completed" and kept[0].id == final["id"]


def test_length_is_incomplete_and_an_empty_reply_is_one_message():
    events, _ = run_events([chunk({"content": "a"}, finish="length"), chunk(usage=USAGE),
                            SSE_DONE])
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    events, _ = run_events([chunk({}, finish="stop"), SSE_DONE])
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""


def test_a_failure_mid_stream_is_error_then_failed():
    events, kept = run_events([chunk({"content": "a"}),
                               sse_error(APIError(503, "engine gone", code="engine_closed")),
                               SSE_DONE])
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "engine_closed" and events[-2]["message"] == "engine gone"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == "engine_closed"
    assert kept == []


def test_store_bounds_and_conversation(tmp_path):
    store = ResponseStore(tmp_path, max_kept=2)
    for n in range(3):
        store.put({"id": f"r{n}", "output": [{"type": "message", "n": n}]},
                  [{"type": "message", "in": n}])
        time.sleep(0.01)
    assert store.count() == 2 and store.get("r0") is None
    assert store.conversation("r2") == [{"type": "message", "in": 2},
                                        {"type": "message", "n": 2}]
    assert store.input_items("r1") == [{"type": "message", "in": 1}]
    assert store.delete("r1") and not store.delete("r1")
    store.close()
    reopened = ResponseStore(tmp_path, max_age_s=1)
    assert reopened.get("r2") is not None  # kept across a restart
    reopened.put({"id": "r3", "output": []}, [])
    time.sleep(1.1)
    assert reopened.get("r3") is None and reopened.conversation("r3") is None
    reopened.put({"id": "r4", "output": []}, [])
    assert reopened.count() == 1  # the expired ones were dropped on the write
    reopened.close()
