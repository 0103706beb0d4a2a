"""The model's context length bounds a request: a prompt that does not fit is refused
before any prefill, and generation stops (``length``) where the context ends."""

from __future__ import annotations

import dataclasses

import pytest

from vllm_mlx.engine import ChatMessage, Engine, GenerationRequest, SamplingParams
from vllm_mlx.engine.errors import ContextTooLong


def request(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(messages=(ChatMessage.text("user", text),),
                             sampling=SamplingParams(**sampling))


def test_context_length_bounds_prompt_and_generation(tiny_model):
    engine = Engine.start(str(tiny_model("qwen3")))
    try:
        loaded = engine.model
        loaded.capabilities = dataclasses.replace(loaded.capabilities, context_length=48)
        short = engine.complete_sync(request("hi", max_tokens=500, ignore_eos=True))
        assert short.finish_reason == "length"
        assert short.prompt_tokens + short.completion_tokens == 48
        with pytest.raises(ContextTooLong, match="context length is 48 tokens") as info:
            engine.complete_sync(request("word " * 60, max_tokens=5))
        assert info.value.code == "context_length_exceeded"
        assert engine.complete_sync(request("hi", max_tokens=3)).completion_tokens <= 3
    finally:
        engine.shutdown()
