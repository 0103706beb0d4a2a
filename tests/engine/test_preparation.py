"""A prompt is rendered and tokenized once on its way into the engine, whichever stage does
it first (screening, the check of a queued job, admission), and a failure to render it is
logged once and reaches the request."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import mlx_vlm.utils
import pytest

import vllm_mlx.engine.engine as engine_module
import vllm_mlx.engine.inputs as inputs_module
from tests.engine.test_parity import noise_image
from vllm_mlx.engine import (
    ChatMessage,
    Engine,
    EngineError,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    TextPart,
)
from vllm_mlx.engine.screening import COUNT_ABOVE_CHARS


def _chat(*parts: Any, max_tokens: int = 2, **sampling: Any) -> GenerationRequest:
    content = tuple(TextPart(p) if isinstance(p, str) else p for p in parts)
    return GenerationRequest(messages=(ChatMessage("user", content),),
                             sampling=SamplingParams(max_tokens=max_tokens, **sampling))


def _spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, marker: str) -> list[int]:
    """Count calls of ``owner.name`` whose first argument mentions ``marker``."""
    calls: list[int] = []
    original = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        if any(marker in str(arg) for arg in (*args[:2], kwargs.get("prompts"))):
            calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _tokenizations(monkeypatch: pytest.MonkeyPatch, engine: Engine, marker: str) -> list[int]:
    tokenizer = engine.model.tokenizer
    hf = getattr(tokenizer, "_tokenizer", tokenizer)  # mlx-lm wraps text models' tokenizer
    return _spy(monkeypatch, type(hf), "encode", marker)


def _renders(monkeypatch: pytest.MonkeyPatch, engine: Engine, marker: str) -> list[int]:
    return _spy(monkeypatch, type(engine.model.tokenizer), "apply_chat_template", marker)


async def _screened(engine: Engine, requests: list[GenerationRequest],
                    read: bool = True) -> list[Any]:
    """What the HTTP layer does: screen, submit, wait for acceptance, read every chunk
    (or leave once accepted: a long prompt's prefill is not what is tested)."""
    submission = engine.submit(requests, await engine.screen(requests))
    await submission.accepted()
    return [chunk async for chunk in submission.chunks()] if read else []


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _behind_a_full_batch(engine: Engine, requests: list[GenerationRequest],
                               checked: list[int]) -> list[Any]:
    """Queue ``requests`` behind a running one (max_batch=1), wait until the owner thread
    has checked them, then free the slot and read them."""
    running = engine.submit([_chat("keep busy", max_tokens=3000, ignore_eos=True)])
    await running.accepted()
    submission = engine.submit(requests, await engine.screen(requests))
    await _until(lambda: bool(checked))
    del running  # leaving it cancels it: the queued job is admitted
    await submission.accepted()
    return [chunk async for chunk in submission.chunks()]


def _checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    checked: list[int] = []
    original = engine_module._prompt_error

    def spy(*args: Any) -> Any:
        checked.append(1)
        return original(*args)

    monkeypatch.setattr(engine_module, "_prompt_error", spy)
    return checked


@pytest.fixture(scope="module")
def engine(tiny_model):
    engine = Engine.start(str(tiny_model("qwen3")), max_batch=1)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def vision_engine(tiny_model):
    engine = Engine.start(str(tiny_model("qwen2_vl")), max_batch=1)
    yield engine
    engine.shutdown()


def test_a_short_chat_prompt_and_its_copies_are_prepared_once(engine, monkeypatch):
    marker = "short-marker"
    renders, tokens = _renders(monkeypatch, engine, marker), _tokenizations(
        monkeypatch, engine, marker)
    request = _chat(f"{marker} hello")
    copies = [request, dataclasses.replace(request, request_id="second")]  # n=2
    chunks = asyncio.run(_screened(engine, copies))
    assert len([c for c in chunks if c[1].finish_reason]) == 2
    assert (len(renders), len(tokens)) == (1, 1)


def test_a_long_prompt_is_tokenized_once_by_screening(engine, monkeypatch):
    marker = "long-marker"
    renders, tokens = _renders(monkeypatch, engine, marker), _tokenizations(
        monkeypatch, engine, marker)
    request = _chat(marker + " word" * 14000, max_tokens=1)
    assert len(request.messages[0].content[0].text) > COUNT_ABOVE_CHARS
    before = engine.stats["prompt_tokens"]
    asyncio.run(_screened(engine, [request], read=False))
    assert engine.stats["prompt_tokens"] - before > 14000
    assert (len(renders), len(tokens)) == (1, 1)


def test_a_prompt_checked_while_queued_is_prepared_once(engine, monkeypatch):
    marker = "queued-marker"
    checked = _checks(monkeypatch)
    renders, tokens = _renders(monkeypatch, engine, marker), _tokenizations(
        monkeypatch, engine, marker)
    chunks = asyncio.run(_behind_a_full_batch(engine, [_chat(f"{marker} hi")], checked))
    assert chunks[-1][1].finish_reason is not None
    assert (len(renders), len(tokens)) == (1, 1)


def test_a_vision_prompt_prepared_while_queued_goes_through_the_processor_once(
        vision_engine, monkeypatch):
    processed = _spy(monkeypatch, mlx_vlm.utils, "prepare_inputs", "vision-marker")
    request = _chat(ImagePart(noise_image(3)), "vision-marker: what is this?")
    # the media preparer's thread, not the owner thread's check, runs the processor
    chunks = asyncio.run(_behind_a_full_batch(vision_engine, [request], processed))
    assert chunks[-1][1].finish_reason is not None
    assert len(processed) == 1


def test_a_long_vision_prompt_is_rendered_once(vision_engine, monkeypatch):
    rendered: list[int] = []
    renderer = inputs_module.chat_renderer

    def counting(*args: Any, **kwargs: Any) -> Any:
        render = renderer(*args, **kwargs)

        def counted(*args: Any, **kwargs: Any) -> Any:
            rendered.append(1)
            return render(*args, **kwargs)
        return counted

    monkeypatch.setattr(inputs_module, "chat_renderer", counting)
    processed = _spy(monkeypatch, mlx_vlm.utils, "prepare_inputs", "long-vision")
    request = _chat(ImagePart(noise_image(4)), "long-vision" + " word" * 14000, max_tokens=1)
    before = vision_engine.stats["prompt_tokens"]
    asyncio.run(_screened(vision_engine, [request], read=False))
    assert vision_engine.stats["prompt_tokens"] - before > 14000
    assert (len(rendered), len(processed)) == (1, 1)


@pytest.mark.parametrize("words", [3, 30000], ids=["short", "screened"])
def test_an_unexpected_rendering_failure_is_logged_once_and_fails_the_request(
        engine, monkeypatch, caplog, words):
    marker = f"explode-{words}"
    attempts: list[int] = []
    original = type(engine.model.tokenizer).apply_chat_template

    def failing(self: Any, messages: Any, *args: Any, **kwargs: Any) -> Any:
        if marker in str(messages):
            attempts.append(1)
            raise RuntimeError("the template exploded")
        return original(self, messages, *args, **kwargs)

    monkeypatch.setattr(type(engine.model.tokenizer), "apply_chat_template", failing)
    failed = engine.stats["requests_failed"]
    with caplog.at_level(logging.DEBUG, logger="vllm_mlx"), \
            pytest.raises(EngineError, match="prefill failed: RuntimeError: the template"):
        asyncio.run(_screened(engine, [_chat(marker + " hi" * words)]))
    assert len(attempts) == 1
    logged = [r for r in caplog.records if "exploded" in str(r.exc_info) + r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno >= logging.WARNING
    assert engine.stats["requests_failed"] == failed + 1
