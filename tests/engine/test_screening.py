"""Prompts the context cannot hold are refused before the owner thread tokenizes them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams
from vllm_mlx.engine.errors import ContextTooLong
from vllm_mlx.engine.screening import COUNT_ABOVE_CHARS, PromptScreen


def _chat(text: str) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage.text("user", text),),
                             sampling=SamplingParams(max_tokens=2))


@pytest.fixture(scope="module")
def engine(engine_for):
    return engine_for("qwen3")


def test_text_no_context_can_hold_is_refused_on_submit_without_tokenizing(engine):
    screen = PromptScreen(engine.model)
    huge = "x" * (screen.limit * screen.longest + 1)
    started = engine.stats["requests_started"]

    async def submit() -> None:
        engine.submit([_chat(huge)])

    with pytest.raises(ContextTooLong, match="characters"):
        asyncio.run(submit())
    prompt = GenerationRequest(prompt=huge, sampling=SamplingParams(max_tokens=2))
    with pytest.raises(ContextTooLong) as refused:
        engine.complete_sync(prompt)
    assert refused.value.param == "prompt"
    assert engine.stats["requests_started"] == started


def test_a_long_prompt_is_counted_on_a_worker_thread(engine, monkeypatch):
    counted_on: list[str] = []
    check_tokens = PromptScreen.check_tokens

    def spy(self, request):
        counted_on.append(threading.current_thread().name)
        return check_tokens(self, request)

    monkeypatch.setattr(PromptScreen, "check_tokens", spy)
    too_long, fits = _chat("hello " * 40000), _chat("hello " * 12000)
    assert len(fits.messages[0].content[0].text) > COUNT_ABOVE_CHARS
    started = engine.stats["requests_started"]
    with pytest.raises(ContextTooLong, match="tokens"):
        asyncio.run(engine.screen([too_long, too_long]))
    asyncio.run(engine.screen([fits]))
    asyncio.run(engine.screen([_chat("short")]))  # not counted: the owner thread's is quick
    assert len(counted_on) == 2 and "mlx-engine" not in counted_on
    assert threading.main_thread().name not in counted_on
    assert engine.stats["requests_started"] == started
