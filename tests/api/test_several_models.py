"""Several models behind one server (issue 24), end to end on tiny models: the default
(qwen3) loaded at start, a second text model (llama) and a vision model (qwen2_vl, served
as "vl") loaded when first asked for, with the OpenAI SDK against a live server. Replies
are checked against each model's own engine (greedy tokens equal), never just for shape.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.api.conftest import png_bytes
from tests.conftest import TINY_CACHE
from tests.live_server import serving
from vllm_mlx.config import Settings
from vllm_mlx.engine import GenerationRequest, SamplingParams
from vllm_mlx.engine.types import ChatMessage, TextPart
from vllm_mlx.server import build_registry

PROMPT = "Say something about lighthouses."


def _settings(tmp_path: Path, **options) -> Settings:
    options.setdefault("more_models", ("tiny:llama", "vl=tiny:qwen2_vl"))
    return Settings(model="tiny:qwen3", tiny_cache_dir=TINY_CACHE, storage_path=tmp_path,
                    **options)


@pytest.fixture
def server(engine_for, tmp_path) -> Iterator:
    """A live server of three models and its registry; ``start(**options)`` makes it."""
    made = []

    def start(**options):
        from vllm_mlx.api.app import create_app

        settings = _settings(tmp_path, **options)
        registry = build_registry(settings, engine_for("qwen3"))
        context = serving(create_app(settings, registry.default_engine, models=registry))
        made.append((context, registry))
        port = context.__enter__()
        return f"http://127.0.0.1:{port}", registry

    yield start
    for context, registry in made:
        context.__exit__(None, None, None)
        for name, engine in list(registry.engines()):
            if name != registry.default_name:
                engine.shutdown()


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def _greedy(engine, text: str, max_tokens: int = 12) -> str:
    request = GenerationRequest(messages=[ChatMessage("user", [TextPart(text)])],
                                sampling=SamplingParams(max_tokens=max_tokens, temperature=0))
    return engine.complete_sync(request).text


def _states(url: str) -> dict[str, str]:
    cards = httpx.get(f"{url}/v1/models").json()["data"]
    return {card["id"]: card["state"] for card in cards}


def test_models_are_listed_with_their_state_and_load_on_first_request(server, engine_for):
    url, _ = server()
    cards = {c["id"]: c for c in httpx.get(f"{url}/v1/models").json()["data"]}
    assert list(cards) == ["tiny:qwen3", "tiny:llama", "vl"]
    assert cards["tiny:qwen3"]["state"] == "loaded" and cards["tiny:qwen3"]["default"]
    assert cards["tiny:llama"]["state"] == "available" and not cards["tiny:llama"]["default"]
    assert cards["vl"]["kind"] == "vision" and cards["vl"]["capabilities"]["vision"]
    assert cards["tiny:llama"]["kind"] == "text" and cards["tiny:llama"]["size_bytes"] > 0
    assert cards["vl"]["endpoints"] == ["/v1/chat/completions", "/v1/completions",
                                        "/v1/messages", "/v1/messages/count_tokens",
                                        "/v1/responses"]
    reply = _client(url).chat.completions.create(
        model="tiny:llama", messages=[{"role": "user", "content": PROMPT}], max_tokens=12,
        temperature=0)
    assert reply.model == "tiny:llama"
    assert reply.choices[0].message.content == _greedy(engine_for("llama"), PROMPT)
    card = httpx.get(f"{url}/v1/models/tiny:llama").json()
    assert card["state"] == "loaded" and card["kind"] == "text" and card["size_bytes"] > 0
    assert card["capabilities"]["model_type"] == "llama"
    assert "default" not in card["aliases"]  # the default model's name alone
    assert httpx.get(f"{url}/v1/models/{card['root']}").json()["id"] == "tiny:llama"


def test_concurrent_requests_to_three_models_each_get_their_own_model(server, engine_for):
    url, _ = server()
    client = _client(url)
    image = "data:image/png;base64," + base64.b64encode(png_bytes(3)).decode()

    def ask(model: str) -> tuple[str, str]:
        content: list | str = PROMPT if model != "vl" else [
            {"type": "image_url", "image_url": {"url": image}},
            {"type": "text", "text": "What is this?"}]
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], max_tokens=12,
            temperature=0)
        return reply.model, reply.choices[0].message.content or ""

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, ["tiny:qwen3", "tiny:llama", "vl"] * 2))
    by_model = {model: text for model, text in answers}
    assert set(by_model) == {"tiny:qwen3", "tiny:llama", "vl"}
    assert by_model["tiny:qwen3"] == _greedy(engine_for("qwen3"), PROMPT)
    assert by_model["tiny:llama"] == _greedy(engine_for("llama"), PROMPT)
    assert answers[2] == answers[5]  # the vision model, twice, greedy: the same
    assert _states(url) == {"tiny:qwen3": "loaded", "tiny:llama": "loaded", "vl": "loaded"}


def test_a_stream_to_a_model_not_loaded_yet_looks_like_any_other(server, engine_for):
    url, _ = server()
    stream = _client(url).chat.completions.create(
        model="tiny:llama", messages=[{"role": "user", "content": PROMPT}], max_tokens=12,
        temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.model for c in chunks} == {"tiny:llama"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == _greedy(engine_for("llama"), PROMPT)


def test_completions_switch_models_too(server):
    url, _ = server()
    reply = _client(url).completions.create(model="vl", prompt="Once upon", max_tokens=4,
                                            temperature=0)
    assert reply.model == "vl" and reply.usage.completion_tokens == 4


def test_max_loaded_models_unloads_the_least_recently_used(server):
    url, registry = server(max_loaded_models=2)
    client = _client(url)
    client.completions.create(model="tiny:llama", prompt="hi", max_tokens=2)
    llama = dict(registry.engines())["tiny:llama"]
    client.completions.create(model="vl", prompt="hi", max_tokens=2)
    assert _states(url) == {"tiny:qwen3": "loaded", "tiny:llama": "available",
                            "vl": "loaded"}
    assert llama._closed  # its engine was shut down
    client.completions.create(model="tiny:llama", prompt="hi", max_tokens=2)
    assert _states(url) == {"tiny:qwen3": "loaded", "tiny:llama": "loaded",
                            "vl": "available"}


def test_unloading_gives_the_weights_back_to_mlx(server):
    import mlx.core as mx

    url, _ = server()
    _client(url).completions.create(model="tiny:llama", prompt="hi", max_tokens=2)
    weights = httpx.get(f"{url}/v1/models/tiny:llama").json()["size_bytes"]
    before = mx.get_active_memory()
    assert httpx.post(f"{url}/v1/models/tiny:llama/unload").json()["state"] == "available"
    # the file's size is the arrays' plus its JSON header
    assert before - mx.get_active_memory() >= 0.95 * weights


def _wait_for_state(url: str, model: str, state: str) -> None:
    for _ in range(100):
        if _states(url)[model] == state:
            return
        time.sleep(0.1)


def test_an_idle_model_is_unloaded_after_its_ttl(server):
    url, _ = server(idle_ttl_s=0.5)
    reply = _client(url).completions.create(model="tiny:llama", prompt="hi", max_tokens=2)
    assert reply.model == "tiny:llama"  # it was loaded to answer
    _wait_for_state(url, "tiny:llama", "available")
    assert _states(url) == {"tiny:qwen3": "loaded", "tiny:llama": "available",
                            "vl": "available"}


def test_a_request_ttl_overrides_the_server_default(server):
    url, _ = server()  # no --idle-ttl: models stay loaded
    httpx.post(f"{url}/v1/completions", json={"model": "tiny:llama", "prompt": "hi",
                                               "max_tokens": 2, "ttl": 0.3}, timeout=120)
    _wait_for_state(url, "tiny:llama", "available")
    assert _states(url)["tiny:llama"] == "available"


def test_a_model_that_fails_to_load_answers_clearly_and_others_go_on(server, tmp_path,
                                                                   engine_for):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))
    url, _ = server(more_models=(f"broken={broken}", "tiny:llama"))
    for _ in range(2):
        response = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "broken", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_unavailable" and error["param"] == "model"
        assert error["message"].startswith(f"model broken ({broken}) failed to load: ")
    card = httpx.get(f"{url}/v1/models/broken").json()
    assert card["state"] == "failed" and "failed to load" in card["error"]
    reply = _client(url).chat.completions.create(
        model="tiny:llama", messages=[{"role": "user", "content": PROMPT}], max_tokens=12,
        temperature=0)
    assert reply.choices[0].message.content == _greedy(engine_for("llama"), PROMPT)


def test_load_and_unload_endpoints(server):
    url, _ = server()
    loaded = httpx.post(f"{url}/v1/models/vl/load", timeout=120).json()
    assert loaded["state"] == "loaded" and loaded["kind"] == "vision"
    assert loaded["capabilities"]["vision"]
    assert httpx.post(f"{url}/v1/models/vl/unload").json()["state"] == "available"
    refused = httpx.post(f"{url}/v1/models/default/unload")
    assert refused.status_code == 409 and "default model" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "model_in_use"
    missing = httpx.post(f"{url}/v1/models/nope/load")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_an_unknown_model_is_a_404_naming_the_served_ones(server):
    url, _ = server()
    with pytest.raises(openai.NotFoundError) as caught:
        _client(url).chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "hi"}])
    message = caught.value.body["message"]  # type: ignore[index]
    assert "'tiny:qwen3', 'tiny:llama', 'vl'" in message


def test_metrics_label_each_model(server):
    url, _ = server()
    _client(url).completions.create(model="tiny:llama", prompt="hi", max_tokens=3)
    text = httpx.get(f"{url}/metrics").text
    assert 'vllm_mlx_model_loaded{model="tiny:llama"} 1' in text
    assert 'vllm_mlx_model_loaded{model="vl"} 0' in text
    assert 'vllm_mlx_model_generated_tokens_total{model="tiny:llama"} 3' in text


def test_the_messages_and_responses_apis_switch_models_too(server, engine_for):
    import anthropic

    url, _ = server()
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=120)
    message = claude.messages.create(model="tiny:llama", max_tokens=12,
                                     extra_body={"temperature": 0},
                                     messages=[{"role": "user", "content": PROMPT}])
    assert message.model == "tiny:llama"
    assert message.content[0].text == _greedy(engine_for("llama"), PROMPT)
    response = _client(url).responses.create(model="tiny:llama", input=PROMPT,
                                             max_output_tokens=12, temperature=0)
    assert response.model == "tiny:llama"
    assert response.output_text == _greedy(engine_for("llama"), PROMPT)
