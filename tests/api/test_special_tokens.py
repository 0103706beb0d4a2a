"""Special tokens a model generates (``<|vision_pad|>``, ``<|im_start|>``) are left out of
reply text by default, as in vLLM; ``skip_special_tokens: false`` keeps them. Token ids,
logprobs and usage are the same either way; ``<tool_call>`` (not special) stays text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.api.conftest import make_client
from tests.api.test_chat import chat, sse_events

# Each test forces one of these with logit_bias: a special token, and a plain added one.
SPECIAL, PLAIN_TEXT = "<|vision_pad|>", "<tool_call>"


@pytest.fixture(scope="module")
def text_client(engine_for, media_dir):
    with make_client(engine_for("qwen3"), media_dir) as client:
        yield client


def _ids(client) -> tuple[int, int]:
    tokenizer = client.app.state.engine.model.tokenizer
    return tokenizer.convert_tokens_to_ids(SPECIAL), tokenizer.convert_tokens_to_ids(PLAIN_TEXT)


def _force(token: int, **fields) -> dict:
    return {"max_tokens": 3, "temperature": 0, "logit_bias": {str(token): 100},
            "logprobs": True, **fields}


def _streamed_text(events: list) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


def test_chat_skips_special_tokens_by_default(text_client):
    special, _ = _ids(text_client)
    r = chat(text_client, [{"role": "user", "content": "Hi"}], **_force(special))
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == ""
    assert [t["token"] for t in choice["logprobs"]["content"]] == [SPECIAL] * 3
    assert r.json()["usage"]["completion_tokens"] == 3
    kept = chat(text_client, [{"role": "user", "content": "Hi"}],
                **_force(special, skip_special_tokens=False))
    assert kept.json()["choices"][0]["message"]["content"] == SPECIAL * 3


def test_completions_skip_special_tokens_and_keep_plain_added_ones(text_client):
    special, plain = _ids(text_client)
    body = {"prompt": "Once upon", **_force(special)}
    r = text_client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == ""
    assert r.json()["choices"][0]["logprobs"]["tokens"] == [SPECIAL] * 3
    kept = text_client.post("/v1/completions", json={**body, "skip_special_tokens": False})
    assert kept.json()["choices"][0]["text"] == SPECIAL * 3
    tool = text_client.post("/v1/completions", json={"prompt": "Once upon", **_force(plain)})
    assert tool.json()["choices"][0]["text"] == PLAIN_TEXT * 3


def test_a_stream_skips_special_tokens(text_client):
    special, _ = _ids(text_client)
    body = {"model": "default", "messages": [{"role": "user", "content": "Hi"}],
            "stream": True, **_force(special)}
    with text_client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = sse_events(r)
    assert _streamed_text(events) == ""
    with text_client.stream("POST", "/v1/chat/completions",
                            json={**body, "skip_special_tokens": False}) as r:
        kept = sse_events(r)
    assert _streamed_text(kept) == SPECIAL * 3


def test_live_video_replies_skip_special_tokens(engine_for):
    from tests.stream.test_protocol import _decoded
    from vllm_mlx.stream.analysis import ModelTraits, build_request
    from vllm_mlx.stream.config import StreamConfig

    engine = engine_for("qwen2_vl")
    special = engine.model.tokenizer.convert_tokens_to_ids(SPECIAL)
    request = build_request(_decoded([(64, 48)] * 2), StreamConfig(max_tokens=3),
                            ModelTraits(True, 2))
    forced = replace(request, sampling=replace(request.sampling, logit_bias={special: 100.0}))
    result = engine.complete_sync(forced)
    assert result.token_ids == (special,) * 3 and result.text == ""
