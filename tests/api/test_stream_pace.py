"""Many streams over real HTTP with the stream pace on: each stream's text and token count
are exactly the engine's own, while its tokens arrive several to an event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.live_server import serving
from vllm_mlx.api.app import create_app
from vllm_mlx.config import Settings
from vllm_mlx.engine import Engine, GenerationRequest, SamplingParams, StreamPace

STREAMS, TOKENS = 8, 48


async def _stream(client: httpx.AsyncClient, prompt: str) -> tuple[str, int, int]:
    """(text, completion tokens, events with text) of one streamed completion."""
    body = {"model": "default", "prompt": prompt, "max_tokens": TOKENS, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    text, tokens, events = "", 0, 0
    async with client.stream("POST", "/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                text += choice["text"]
                events += bool(choice["text"])
    return text, tokens, events


def test_paced_streams_carry_the_engines_exact_text(tiny_model: Any) -> None:
    prompts = [f"Story number {i}:" for i in range(STREAMS)]
    engine = Engine.start(str(tiny_model("qwen3")), stream_pace=StreamPace(0.005, 0.05))
    try:
        expected = [engine.complete_sync(GenerationRequest(
            prompt=p, sampling=SamplingParams(max_tokens=TOKENS, ignore_eos=True)))
            for p in prompts]
        app = create_app(Settings(model=engine.model.reference), engine)
        with serving(app) as port:
            async def run() -> list[tuple[str, int, int]]:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                             timeout=120) as client:
                    return list(await asyncio.gather(*(_stream(client, p) for p in prompts)))
            got = asyncio.run(run())
    finally:
        engine.shutdown()
    assert [(text, tokens) for text, tokens, _ in got] == \
        [(e.text, e.completion_tokens) for e in expected]
    assert all(tokens == TOKENS for _, tokens, _ in got)
    assert sum(events for _, _, events in got) < STREAMS * TOKENS / 2  # several per event
