"""Requests whose checks cost time in proportion to their size (tool schemas, JSON
schemas) are checked off the event loop under a size bound: while one is checked, /health
and a small chat answer promptly; one over the bound is a quick 400 naming the limit."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.openai.validation import MAX_SCHEMA_NODES

HEALTH_BOUND_S = 1.0


@pytest.fixture(scope="module")
def base_url(engine_for, tmp_path_factory) -> Iterator[str]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen3",  # a chat template that shows tools
                        storage_path=tmp_path_factory.mktemp("costly-store"))
    with serving(create_app(settings, engine_for("qwen3"))) as port:
        yield f"http://127.0.0.1:{port}"


def tools(count: int, properties: int) -> list[dict]:
    salt = uuid.uuid4().hex[:6]  # schemas never seen before: no cached check
    return [{"type": "function", "function": {
        "name": f"tool_{i}", "parameters": {"type": "object", "properties": {
            f"p_{salt}_{j}": {"type": "string"} for j in range(properties)}}}}
        for i in range(count)]


def chat(**extra) -> dict:
    return {"model": "default", "max_tokens": 2, "temperature": 0,
            "messages": [{"role": "user", "content": "hi"}], **extra}


def while_running(base_url: str, body: dict) -> tuple[httpx.Response, float, list[float]]:
    """Post ``body`` on a thread; meanwhile time /health and small chats."""
    result: dict = {}

    def post() -> None:
        start = time.monotonic()
        result["response"] = httpx.post(f"{base_url}/v1/chat/completions", json=body,
                                        timeout=120)
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=post)
    thread.start()
    latencies = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for i in range(1000):  # bounded: the request ends well before
            if not thread.is_alive() and i > 0:
                break
            start = time.monotonic()
            assert client.get("/health").status_code == 200
            if i % 5 == 0:
                assert client.post("/v1/chat/completions", json=chat()).status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.05)
    thread.join(120)
    return result["response"], result["elapsed"], latencies


def test_other_clients_are_served_while_big_tools_are_checked(base_url):
    body = chat(tools=tools(6, 800))  # ~9800 JSON values: under the bound, seconds to check
    response, elapsed, latencies = while_running(base_url, body)
    # the tools pass their checks; the tiny model's context then cannot hold them all
    assert response.status_code == 200 or response.json()["error"]["code"] == (
        "context_length_exceeded"), response.text[:300]
    print(f"tools checked and answered in {elapsed:.2f} s; /health + chat at most "
          f"{max(latencies):.3f} s over {len(latencies)} probes")
    assert len(latencies) >= 3, f"checked in {elapsed:.2f} s: too quick to measure"
    assert max(latencies) < HEALTH_BOUND_S, (max(latencies), elapsed)


def test_tools_over_the_bound_are_refused_at_once(base_url):
    body = chat(tools=tools(128, 1000))
    response, elapsed, latencies = while_running(base_url, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "schema_too_large" and error["param"] == "tools"
    assert str(MAX_SCHEMA_NODES) in error["message"]
    assert elapsed < 10 and max(latencies) < HEALTH_BOUND_S, (elapsed, max(latencies))


def test_a_big_response_format_schema_is_bounded_too(base_url):
    schema = {"type": "object", "properties": {f"p{j}": {"type": "string"}
                                               for j in range(MAX_SCHEMA_NODES)}}
    body = chat(response_format={"type": "json_schema", "json_schema": {"schema": schema}})
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "schema_too_large"


def test_a_long_conversation_is_parsed_off_the_event_loop(vl_client, monkeypatch):
    """100k messages took the event loop 2 s to parse, holding every client meanwhile."""
    from vllm_mlx import content
    from vllm_mlx.openai import chat_prepare

    threads: list[str] = []

    def recording(messages):
        threads.append(threading.current_thread().name)
        return content.parse_messages(messages)

    monkeypatch.setattr(chat_prepare, "parse_messages", recording)
    for count in (2, chat_prepare.PARSE_ON_LOOP):
        messages = [{"role": "user", "content": "hi"}] * count
        vl_client.post("/v1/chat/completions",
                       json={"model": "default", "messages": messages, "max_tokens": 1})
    assert not threads[0].startswith("validate")  # a short one stays on the loop
    assert threads[1].startswith("validate")
