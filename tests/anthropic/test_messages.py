"""``/v1/messages`` and ``/v1/messages/count_tokens`` with the official ``anthropic`` SDK
against a live server on the tiny qwen3 model: replies (greedy text equal to chat
completions'), streaming events, stop reasons, token counts, errors in Anthropic's shape."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from tests.anthropic.conftest import sdk
from tests.live_server import metric, wait_idle

SYSTEM = "You are terse."
ASK = [{"role": "user", "content": "Say hello."}]


def chat_text(base_url: str, messages: list[dict], max_tokens: int) -> dict:
    """The chat request a Messages request without ``thinking`` runs: qwen3's template
    with its thinking switch off."""
    body = {"model": "default", "temperature": 0, "max_tokens": max_tokens,
            "messages": [{"role": "system", "content": SYSTEM}, *messages],
            "chat_template_kwargs": {"enable_thinking": False}}
    reply = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


SAMPLING = ("temperature", "top_p", "top_k")  # the SDK (2.x) sends them as extra_body


def create(base_url: str, **extra) -> anthropic.types.Message:
    args = {"model": "claude-sonnet-4-5", "max_tokens": 12, "temperature": 0,
            "system": SYSTEM, "messages": ASK} | extra
    sampling = {k: args.pop(k) for k in SAMPLING if k in args}
    return sdk(base_url).messages.create(**args, extra_body=sampling)


def test_create_matches_chat_completions(text_url):
    message = create(text_url)
    chat = chat_text(text_url, ASK, 12)
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == "tiny:qwen3"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == chat["choices"][0]["message"]["content"]
    assert message.usage.input_tokens == chat["usage"]["prompt_tokens"]
    assert message.usage.output_tokens == chat["usage"]["completion_tokens"]
    finish = chat["choices"][0]["finish_reason"]
    assert message.stop_reason == {"length": "max_tokens", "stop": "end_turn"}[finish]


def test_system_and_text_blocks_and_model_names(text_url):
    as_blocks = create(text_url, model="default", system=[{"type": "text", "text": SYSTEM}],
                       messages=[{"role": "user", "content": [
                           {"type": "text", "text": "Say hello."}]}],
                       metadata={"user_id": "u1"}, top_k=1, top_p=0.9)
    assert as_blocks.content[0].text == create(text_url).content[0].text
    assert create(text_url, model="tiny:qwen3").model == "tiny:qwen3"


def test_stop_sequence(text_url):
    text = create(text_url, max_tokens=24).content[0].text
    assert len(text) > 8, text
    stop = text[4:7]
    message = create(text_url, max_tokens=24, stop_sequences=[stop])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == stop
    assert message.content[0].text == text[:text.find(stop)]


def test_max_tokens_reason(text_url):
    message = create(text_url, max_tokens=2)
    if message.usage.output_tokens == 2:  # random weights: an early EOS is possible
        assert message.stop_reason == "max_tokens"


def test_stream_with_the_sdk(text_url):
    whole = create(text_url)
    with sdk(text_url).messages.stream(model="claude-3-5-haiku-latest", max_tokens=12,
                                       extra_body={"temperature": 0}, system=SYSTEM,
                                       messages=ASK) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


def test_stream_event_sequence(text_url):
    body = {"model": "claude-x", "max_tokens": 6, "temperature": 0, "stream": True,
            "messages": ASK}
    response = httpx.post(f"{text_url}/v1/messages", json=body, timeout=120,
                          headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) <= {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0][1]["message"], events[-2][1]
    assert start["usage"]["input_tokens"] > 0 and start["stop_reason"] is None
    assert delta["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    assert delta["usage"]["output_tokens"] <= 6


def test_count_tokens_is_the_prompt(text_url):
    client = sdk(text_url)
    counted = client.messages.count_tokens(model="claude-sonnet-4-5", system=SYSTEM,
                                           messages=ASK)
    assert counted.input_tokens == create(text_url).usage.input_tokens


def test_wrong_model_is_404_in_anthropic_shape(text_url):
    with pytest.raises(anthropic.NotFoundError) as caught:
        create(text_url, model="gpt-4o")
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "gpt-4o" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("body, where", [
    ({"model": "claude-x", "messages": ASK}, "max_tokens"),
    ({"model": "claude-x", "max_tokens": 5, "temperature": 3, "messages": ASK}, "temperature"),
    ({"model": "claude-x", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages"),
    ({"model": "claude-x", "max_tokens": 5, "messages": []}, "messages"),
])
def test_bad_request_is_400_in_anthropic_shape(text_url, body, where):
    response = httpx.post(f"{text_url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert where in error["error"]["message"]


def test_bad_request_with_the_sdk(text_url):
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(text_url, temperature=1.5)
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_not_json_is_400_in_anthropic_shape(text_url):
    response = httpx.post(f"{text_url}/v1/messages", content=b"{", timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_openai_routes_keep_their_shape(text_url):
    response = httpx.post(f"{text_url}/v1/chat/completions", json={"model": "nope"},
                          timeout=30)
    assert response.status_code == 400 and "type" not in response.json()



def test_client_gone_mid_stream_cancels_the_generation(text_url):
    cancelled = "vllm_mlx_requests_cancelled_total"
    before = metric(text_url, cancelled)
    body = {"model": "claude-x", "max_tokens": 4000, "stream": True, "messages": ASK}
    with httpx.Client(timeout=60) as client, \
            client.stream("POST", f"{text_url}/v1/messages", json=body) as response:
        deltas = 0
        for line in response.iter_lines():
            deltas += '"text_delta"' in line
            if deltas >= 3:
                break
    wait_idle(text_url)
    assert metric(text_url, cancelled) == before + 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "TRACE"])
def test_other_methods_are_405_in_anthropic_shape(text_url, path, method):
    response = httpx.request(method, f"{text_url}{path}", timeout=30)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["type"] == "error"
