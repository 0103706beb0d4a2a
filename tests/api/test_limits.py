"""What a request gets at the edges: the context length, logprobs of tokens whose text is
held back, ``echo`` and usage of ``/v1/completions``, and a full engine (a 429 before a
stream starts; ``n`` choices take one waiting slot)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.api.conftest import make_client
from tests.api.test_chat import sse_events


def _events_of(client, path: str, body: dict) -> list:
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        return sse_events(response)


def test_prompt_over_the_context_length_is_400(vl_client):
    body = {"messages": [{"role": "user", "content": "hello " * 40000}], "max_tokens": 2}
    r = vl_client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "context length" in error["message"]


def test_a_prompt_no_context_can_hold_never_reaches_the_engine_thread(vl_client, engine_for):
    engine = engine_for("qwen2_vl")
    started = engine.stats["requests_started"]
    for body in ({"messages": [{"role": "user", "content": "x" * 2_000_000}]},
                 {"messages": [{"role": "user", "content": "hello " * 40000}]},
                 {"prompt": "hello " * 40000}):
        path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
        for stream in (False, True):
            r = vl_client.post(path, json={**body, "max_tokens": 2, "stream": stream})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "context_length_exceeded"
            assert ("characters" in error["message"]) == (len(json.dumps(body)) > 1_000_000)
    assert engine.stats["requests_started"] == started  # refused before it was queued


@pytest.mark.parametrize("default, expected", [(None, 40), (7, 7)])
def test_a_request_without_max_tokens_runs_to_the_server_s_limit(engine_for, media_dir,
                                                                   default, expected):
    """OpenAI sets no default: with none configured, a reply may run to --max-tokens-limit."""
    body = {"messages": [{"role": "user", "content": "Hi"}], "ignore_eos": True}
    with make_client(engine_for("qwen2_vl"), media_dir, max_tokens_limit=40,
                     default_max_tokens=default) as client:
        choice = client.post("/v1/chat/completions", json=body).json()
        assert choice["usage"]["completion_tokens"] == expected
        assert choice["choices"][0]["finish_reason"] == "length"




@pytest.mark.parametrize("path, body, code, param", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello " * 40000}]},
     "context_length_exceeded", "messages"),
    ("/v1/completions", {"prompt": "hello " * 40000}, "context_length_exceeded", "prompt"),
])
def test_a_refused_streamed_request_is_a_status_not_an_event(vl_client, path, body, code,
                                                             param):
    """The engine refuses these while preparing the prompt, after the request was queued:
    the stream used to start (200) and carry the error as an event."""
    with vl_client.stream("POST", path, json={**body, "max_tokens": 2, "stream": True}) as r:
        r.read()
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["param"] == param  # completions said 'messages'


def test_streamed_logprobs_cover_every_token(vl_client):
    body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 40,
            "temperature": 1.0, "seed": 3, "logprobs": True, "stream": True,
            "stream_options": {"include_usage": True}}
    events = _events_of(vl_client, "/v1/chat/completions", body)
    streamed = [item for e in events[:-1] if e["choices"]
                for item in (e["choices"][0].get("logprobs") or {}).get("content") or []]
    whole = vl_client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert len(streamed) == events[-2]["usage"]["completion_tokens"]
    assert [i["token"] for i in streamed] == [
        i["token"] for i in whole["choices"][0]["logprobs"]["content"]]


def test_completions_echo_logprobs_and_usage(vl_client):
    base = {"prompt": "Once upon", "max_tokens": 5, "temperature": 0}
    plain = vl_client.post("/v1/completions", json=base).json()["choices"][0]["text"]
    echoed = vl_client.post("/v1/completions", json={**base, "echo": True}).json()
    assert echoed["choices"][0]["text"] == "Once upon" + plain
    streamed = _events_of(vl_client, "/v1/completions", {**base, "echo": True, "stream": True})
    assert "".join(e["choices"][0]["text"] for e in streamed[:-1]) == "Once upon" + plain
    both = vl_client.post("/v1/completions", json={**base, "echo": True, "logprobs": 1})
    assert both.status_code == 400 and both.json()["error"]["param"] == "echo"

    events = _events_of(vl_client, "/v1/completions", {**base, "logprobs": 2, "stream": True})
    tokens = [t for e in events[:-1] for t in (e["choices"][0]["logprobs"] or {}).get(
        "tokens", [])]
    whole = vl_client.post("/v1/completions", json={**base, "logprobs": 2}).json()
    assert tokens == whole["choices"][0]["logprobs"]["tokens"]

    several = {"prompt": ["hello world how are you", "b"], "max_tokens": 3, "n": 2}
    usage = vl_client.post("/v1/completions", json=several).json()["usage"]
    events = _events_of(vl_client, "/v1/completions", {
        **several, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-2]["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert all("usage" in e and e["usage"] is None for e in events[:-2])  # as OpenAI's


@pytest.fixture()
def full_engine(tiny_model):
    """An engine with one batch slot and one waiting slot."""
    from vllm_mlx.engine import Engine

    engine = Engine.start(str(tiny_model("qwen3")), max_waiting=1, max_batch=1)
    yield engine
    engine.shutdown()


def _occupy(engine, count: int
            ) -> tuple[threading.Thread, asyncio.AbstractEventLoop, list[asyncio.Task]]:
    """``count`` endless requests on their own loop; stop the loop to cancel them. Keep the
    tasks returned: the loop holds tasks weakly, and a collected one cancels its request."""
    from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams

    loop = asyncio.new_event_loop()

    async def endless() -> None:
        request = GenerationRequest(messages=(ChatMessage.text("user", "go"),),
                                    sampling=SamplingParams(max_tokens=100_000, ignore_eos=True))
        async for _ in engine.generate(request):
            pass

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tasks: list[asyncio.Task] = []
    for admitted in range(count):  # one at a time: the first must leave the queue first
        loop.call_soon_threadsafe(lambda: tasks.append(loop.create_task(endless())))
        deadline = time.monotonic() + 10
        while engine.stats.get("requests_started", 0) <= admitted and engine.waiting == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    return thread, loop, tasks


def test_a_full_engine_refuses_a_stream_with_429(full_engine, media_dir):
    thread, loop, _running = _occupy(full_engine, 2)  # one running, one waiting: the queue is full
    deadline = time.monotonic() + 10
    while full_engine.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    with make_client(full_engine, media_dir) as client:
        streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 429, streamed.text
        assert streamed.json()["error"]["code"] == "engine_overloaded"
        assert streamed.headers["retry-after"] == "1"
        completion = client.post("/v1/completions", json={"prompt": "x", "stream": True})
        assert completion.status_code == 429
        # a request no decoding can honour is a 400 at once: not a 429 (retried by the
        # SDK), nor a 400 after a batch slot frees
        for bad in ({"logit_bias": {"99999999": 1}},
                    {"response_format": {"type": "json_schema", "json_schema": {
                        "name": "x", "schema": {"type": "object", "properties": {
                            "a": {"type": "string", "pattern": "(?<=x)a"}}}}}}):
            for stream in (False, True):
                r = client.post("/v1/chat/completions", json={**body, **bad, "stream": stream})
                assert r.status_code == 400, r.text
    _cancel_all(thread, loop)


def _cancel_all(thread: threading.Thread, loop: asyncio.AbstractEventLoop) -> None:
    async def cancel() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(cancel(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture()
def busy_engine(tiny_model):
    """An engine with one batch slot and two waiting slots."""
    from vllm_mlx.engine import Engine

    engine = Engine.start(str(tiny_model("qwen3")), max_waiting=2, max_batch=1)
    yield engine
    engine.shutdown()


# TestClient ignores a per-request timeout and warns about it: the bound is measured instead.
@pytest.mark.filterwarnings("error::starlette.exceptions.StarletteDeprecationWarning")
def test_a_prompt_too_long_is_refused_while_the_batch_is_full(busy_engine, media_dir):
    """It used to wait in the queue for a batch slot before its 400."""
    from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams
    from vllm_mlx.engine.errors import ContextTooLong

    thread, loop, _running = _occupy(busy_engine, 1)
    request = GenerationRequest(messages=(ChatMessage.text("user", "hello " * 40000),),
                                sampling=SamplingParams(max_tokens=2))

    async def refused() -> None:
        await asyncio.wait_for(busy_engine.submit([request]).accepted(), 10)

    with pytest.raises(ContextTooLong):  # not a wait for the endless request to end
        asyncio.run(refused())
    too_long = {"messages": [{"role": "user", "content": "hello " * 40000}], "max_tokens": 2}
    started = time.monotonic()
    with make_client(busy_engine, media_dir) as client:
        for stream in (False, True):
            r = client.post("/v1/chat/completions", json={**too_long, "stream": stream})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "context_length_exceeded"
        r = client.post("/v1/completions", json={"prompt": "hi " * 40000})
        assert r.json()["error"]["param"] == "prompt"
    assert time.monotonic() - started < 30
    assert busy_engine.stats["batch_size"] == 1  # the endless request still runs
    assert busy_engine.waiting == 0  # the refused jobs gave their waiting slots back
    _cancel_all(thread, loop)


def test_n_choices_take_one_waiting_slot(full_engine, media_dir):
    with make_client(full_engine, media_dir) as client:
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "n": 3}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert len(r.json()["choices"]) == 3
        events = _events_of(client, "/v1/chat/completions", {**body, "stream": True})
        assert {c["index"] for e in events[:-1] for c in e["choices"]} == {0, 1, 2}


def test_completions_report_cached_prompt_tokens(vl_client):
    body = {"prompt": "A shared opening that the prefix cache keeps " * 4, "max_tokens": 3,
            "temperature": 0}
    vl_client.post("/v1/completions", json=body)
    again = vl_client.post("/v1/completions", json=body).json()["usage"]
    assert again["prompt_tokens_details"]["cached_tokens"] > 0  # was never reported
    events = _events_of(vl_client, "/v1/completions", {
        **body, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-2]["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
