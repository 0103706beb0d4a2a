"""``/v1/responses`` with the official ``openai`` SDK against a live server on the tiny
qwen3 model: replies (greedy text equal to chat completions'), instructions and item
inputs, typed streaming events, ``max_output_tokens``, stored responses (retrieve, delete,
input items, ``store: false``), ``text.format`` json_schema, errors in the OpenAI shape."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from tests.live_server import metric, wait_idle
from tests.responses.conftest import sdk

INSTRUCTIONS = "You are terse."


def chat(base_url: str, messages: list[dict], max_tokens: int) -> dict:
    body = {"model": "default", "temperature": 0, "max_tokens": max_tokens,
            "messages": messages}
    reply = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def create(base_url: str, **extra) -> openai.types.responses.Response:
    args = {"model": "default", "input": "Say hello.", "max_output_tokens": 12,
            "temperature": 0} | extra
    return sdk(base_url).responses.create(**args)


def test_string_input_matches_chat_completions(text_url):
    response = create(text_url)
    expected = chat(text_url, [{"role": "user", "content": "Say hello."}], 12)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.model == "tiny:qwen3" and response.store is True
    assert [item.type for item in response.output] == ["message"]
    message = response.output[0]
    assert message.role == "assistant" and message.content[0].type == "output_text"
    assert response.output_text == expected["choices"][0]["message"]["content"]
    assert response.usage.input_tokens == expected["usage"]["prompt_tokens"]
    assert response.usage.output_tokens == expected["usage"]["completion_tokens"]
    assert response.usage.total_tokens == (response.usage.input_tokens
                                           + response.usage.output_tokens)
    finish = expected["choices"][0]["finish_reason"]
    assert response.status == {"length": "incomplete", "stop": "completed"}[finish]


def test_instructions_and_items_are_the_conversation(text_url):
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]},
             {"type": "message", "role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Again."}]
    response = create(text_url, instructions=INSTRUCTIONS, input=items)
    expected = chat(text_url, [{"role": "system", "content": INSTRUCTIONS},
                               {"role": "user", "content": "Say hello."},
                               {"role": "assistant", "content": "Hello."},
                               {"role": "user", "content": "Again."}], 12)
    assert response.output_text == expected["choices"][0]["message"]["content"]
    assert response.usage.input_tokens == expected["usage"]["prompt_tokens"]
    assert response.instructions == INSTRUCTIONS


def test_max_output_tokens_makes_it_incomplete(text_url):
    response = create(text_url, max_output_tokens=2)
    if response.usage.output_tokens == 2:  # random weights: an early EOS is possible
        assert response.status == "incomplete"
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.output[0].status == "incomplete"


def stream_events(base_url: str, body: dict) -> list[dict]:
    response = httpx.post(f"{base_url}/v1/responses", json=body | {"stream": True},
                          timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_stream_event_sequence(text_url):
    whole = create(text_url)
    events = stream_events(text_url, {"input": "Say hello.", "max_output_tokens": 12,
                                      "temperature": 0})
    kinds = [event["type"] for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done",
                          {"completed": "response.completed",
                           "incomplete": "response.incomplete"}[whole.status]]
    streamed = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert streamed == whole.output_text == final["output"][0]["content"][0]["text"]
    assert final["usage"]["input_tokens"] == whole.usage.input_tokens
    assert final["usage"]["output_tokens"] == whole.usage.output_tokens
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["id"] == final["id"]
    assert sdk(text_url).responses.retrieve(final["id"]).output_text == streamed


@pytest.fixture(scope="module")
def eos(engine_for) -> dict:
    """extra_body that makes the tiny model end its reply at once (a completed response)."""
    return {"logit_bias": {str(engine_for("qwen3").model.tokenizer.eos_token_id): 100}}


def test_stream_with_the_sdk(text_url, eos):
    whole = create(text_url, extra_body=eos)
    assert whole.status == "completed" and whole.output_text == ""
    with sdk(text_url).responses.stream(model="default", input="Say hello.",
                                        max_output_tokens=12, extra_body=eos) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.status == "completed" and final.output_text == ""
    assert final.usage.input_tokens == whole.usage.input_tokens


def test_retrieve_delete_and_input_items(text_url):
    client = sdk(text_url)
    response = create(text_url, input=[{"role": "user", "content": "One."},
                                        {"role": "user", "content": "Two."}])
    again = client.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()
    items = client.responses.input_items.list(response.id, order="asc")
    assert [i.content[0].text for i in items.data] == ["One.", "Two."]
    assert items.first_id == items.data[0].id and items.last_id == items.data[-1].id
    assert not items.has_more
    newest = client.responses.input_items.list(response.id, limit=1)
    assert newest.data[0].content[0].text == "Two." and newest.has_more
    rest = client.responses.input_items.list(response.id, limit=1, after=newest.last_id)
    assert rest.data[0].content[0].text == "One." and not rest.has_more
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_store_false_keeps_nothing(text_url):
    response = create(text_url, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        sdk(text_url).responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        create(text_url, previous_response_id=response.id)


SCHEMA = {"type": "object", "additionalProperties": False,
          "required": ["color", "count", "ok"], "properties": {
              "color": {"type": "string", "enum": ["red", "green", "blue"]},
              "count": {"type": "integer", "minimum": 0, "maximum": 99},
              "ok": {"type": "boolean"}}}


@pytest.mark.parametrize("stream", [False, True])
def test_text_format_json_schema(text_url, stream):
    fmt = {"format": {"type": "json_schema", "name": "thing", "schema": SCHEMA,
                      "strict": True}}
    args = {"model": "default", "input": "A thing", "text": fmt, "max_output_tokens": 60,
            "temperature": 0.8, "extra_body": {"seed": 1}}
    client = sdk(text_url)
    if stream:
        with client.responses.stream(**args) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(**args)
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), SCHEMA)
    assert response.text.format.type == "json_schema"


def post(base_url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/responses", json=body, timeout=60)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None
                        ) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if param is not None:
        assert param in (error["param"] or "") + error["message"], error
    return error


def test_unknown_previous_response_is_404(text_url):
    error = assert_openai_error(post(text_url, {"input": "Hi",
                                                "previous_response_id": "resp_nope"}),
                                404, "previous_response_id")
    assert error["code"] == "response_not_found"
    for method, path in [("GET", "resp_nope"), ("DELETE", "resp_nope"),
                         ("GET", "resp_nope/input_items")]:
        assert_openai_error(httpx.request(method, f"{text_url}/v1/responses/{path}",
                                          timeout=30), 404)


@pytest.mark.parametrize("body, param", [
    ({}, "input"),
    ({"input": []}, "input"),
    ({"input": 5}, "input"),
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_file",
                                               "file_url": "http://x/a.pdf"}]}]}, "input"),
    ({"input": "Hi", "tools": [{"type": "web_search"}]}, "tools"),
    ({"input": "Hi", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"input": "Hi", "temperature": 3}, "temperature"),
    ({"input": "Hi", "max_output_tokens": 10 ** 6}, "max_output_tokens"),
    ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "x",
                                         "schema": {"type": "nonsense"}}}}, None),
    ({"input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
     "tool_call_id"),
])
def test_bad_request_is_400(text_url, body, param):
    assert_openai_error(post(text_url, {"model": "default", **body}), 400, param)


def test_unknown_model_is_404(text_url):
    error = assert_openai_error(post(text_url, {"model": "gpt-9", "input": "Hi"}), 404)
    assert error["code"] == "model_not_found"


def test_bad_request_with_the_sdk(text_url):
    with pytest.raises(openai.BadRequestError):
        create(text_url, temperature=2.5)



def test_client_gone_mid_stream_cancels_the_generation(text_url):
    cancelled = "vllm_mlx_requests_cancelled_total"
    before = metric(text_url, cancelled)
    body = {"input": "Say hello.", "max_output_tokens": 4000, "stream": True}
    with httpx.Client(timeout=60) as client, \
            client.stream("POST", f"{text_url}/v1/responses", json=body) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas >= 3:
                break
    wait_idle(text_url)
    assert metric(text_url, cancelled) == before + 1


def test_openapi_lists_the_routes(text_url):
    paths = httpx.get(f"{text_url}/openapi.json", timeout=30).json()["paths"]
    assert set(paths["/v1/responses"]) == {"post"}
    assert set(paths["/v1/responses/{response_id}"]) == {"get", "delete"}
    assert set(paths["/v1/responses/{response_id}/input_items"]) == {"get"}
