"""Every tiny architecture against its library: the support matrix's evidence.

For each arch in the registry, greedy tokens through the engine equal the library's own
(``oracle.library_tokens``): one request, several at once with different images, a
follow-up turn served through the prefix cache, the same conversation over HTTP, and a
4-bit copy. For vision archs, two requests with the same text and different images never
share state, one after the other or together. ``scripts/support_matrix.py`` runs this
module and writes the README's matrix from the outcomes (and the properties recorded
here with ``record_property``).
"""

from __future__ import annotations

import asyncio
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import data_url, png_bytes
from tests.conftest import ALL_ARCHS, engine_pool
from tests.engine.test_parity import noise_image
from tests.families.oracle import library_tokens
from vllm_mlx.api.app import create_app
from vllm_mlx.config import Settings
from vllm_mlx.engine import ChatMessage, Engine, GenerationRequest, ImagePart, SamplingParams
from vllm_mlx.engine import TextPart as T
from vllm_mlx.tiny import ARCHITECTURES

MAX_TOKENS = 10


def is_vision(arch: str) -> bool:
    return ARCHITECTURES[arch].is_vision


def arch_name(param) -> str:
    return param.values[0] if hasattr(param, "values") else param


VISION_ARCHS = [a for a in ALL_ARCHS if is_vision(arch_name(a))]


def user(arch: str, text: str, seed: int | None) -> ChatMessage:
    parts = (ImagePart(noise_image(seed)), T(text)) if seed is not None and is_vision(arch) \
        else (T(text),)
    return ChatMessage("user", parts)


def request(messages: tuple[ChatMessage, ...], max_tokens: int = MAX_TOKENS
            ) -> GenerationRequest:
    return GenerationRequest(messages=messages,
                             sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))


def tokens(engine: Engine, messages: tuple[ChatMessage, ...]) -> list[int]:
    return list(engine.complete_sync(request(messages)).token_ids)


def together(engine: Engine, conversations: list[tuple[ChatMessage, ...]]) -> list[list[int]]:
    async def run() -> list:
        return await asyncio.gather(*(engine.complete(request(c)) for c in conversations))

    return [list(r.token_ids) for r in asyncio.run(run())]


@pytest.fixture(scope="module")
def plain_engines(tiny_model):
    """Engines with the prefix and vision caches off: single-request references."""
    with engine_pool(tiny_model, prefix_cache_bytes=0, vision_cache_bytes=0) as get:
        yield get


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_detection(arch, tiny_model):
    """Config alone decides (the folder name says nothing either way)."""
    from vllm_mlx.engine.detect import ModelKind, detect_model_kind
    from vllm_mlx.engine.loader import read_config

    detection = detect_model_kind(read_config(tiny_model(arch)), "models/model-folder")
    assert (detection.kind is ModelKind.VISION) == is_vision(arch), detection.reason


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_parity(arch, engine_for, tiny_model, record_property):
    engine = engine_for(arch)
    record_property("grouped_vision_prefill", engine._scheduler.runner.groups_vision)
    cases = [(user(arch, "Tell me a story.", None),)]
    if is_vision(arch):
        cases.append((user(arch, "What is in this image?", 1),))
    for messages in cases:
        ours = tokens(engine, messages)
        assert ours, "no tokens: the comparison would be vacuous"
        assert ours == library_tokens(arch, tiny_model(arch), messages, MAX_TOKENS)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_batched_equals_single(arch, engine_for, plain_engines):
    conversations = [(user(arch, "What is in this image?", seed),) for seed in (11, 12, 13)]
    conversations.append((user(arch, "Say something.", None),))
    singles = [tokens(plain_engines(arch), c) for c in conversations]
    assert together(engine_for(arch), conversations) == singles


@pytest.mark.parametrize("arch", VISION_ARCHS)
def test_other_image_never_gets_this_images_state(arch, engine_for, plain_engines):
    engine, plain = engine_for(arch), plain_engines(arch)
    first, second = [(user(arch, "Describe the picture in detail.", s),) for s in (21, 22)]
    tokens(engine, first)
    assert tokens(engine, second) == tokens(plain, second)
    trio = [(user(arch, "Describe the picture in detail.", s),) for s in (21, 23, 24)]
    assert together(engine, trio) == [tokens(plain, c) for c in trio]


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_follow_up_turn(arch, engine_for, tiny_model, record_property):
    engine = engine_for(arch)
    first = (user(arch, "What do you see here?", 31),)
    answer = engine.complete_sync(request(first)).text
    follow = (*first, ChatMessage("assistant", (T(answer),)),
              ChatMessage("user", (T("Tell me more about it, please."),)))
    before = engine.stats["prefix_cache_tokens_reused"]
    ours = tokens(engine, follow)
    record_property("prefix_tokens_reused", engine.stats["prefix_cache_tokens_reused"] - before)
    assert ours == library_tokens(arch, tiny_model(arch), follow, MAX_TOKENS)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_over_http(arch, engine_for, tmp_path):
    engine = engine_for(arch)
    content: list[dict] = [{"type": "text", "text": "What is in this image?"}]
    if is_vision(arch):
        content.insert(0, {"type": "image_url",
                           "image_url": {"url": data_url(png_bytes(5), "image/png")}})
    body = {"model": "default", "messages": [{"role": "user", "content": content}],
            "max_tokens": MAX_TOKENS, "temperature": 0}
    settings = Settings(model=engine.model.reference, media_roots=(tmp_path,))
    with TestClient(create_app(settings, engine)) as client:
        reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    parts: tuple = (T("What is in this image?"),)
    if is_vision(arch):  # the same picture, decoded here
        parts = (ImagePart(Image.open(io.BytesIO(png_bytes(5))).convert("RGB")), *parts)
    direct = engine.complete_sync(request((ChatMessage("user", parts),)))
    assert reply.json()["choices"][0]["message"]["content"] == direct.text
    assert reply.json()["usage"]["completion_tokens"] == len(direct.token_ids)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_quantized_4bit(arch, tiny_model):
    folder = tiny_model(f"{arch}:q4")
    engine = Engine.start(str(folder))
    try:
        assert engine.model.capabilities.quantization_bits == 4  # shown in /v1/models
        messages = (user(arch, "What is in this image?", 41),)
        ours = tokens(engine, messages)
        assert ours == library_tokens(arch, folder, messages, MAX_TOKENS)
    finally:
        engine.shutdown()
