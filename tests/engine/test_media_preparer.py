"""A vision prompt's media are prepared (processor call, input arrays, content hashes) on
the media preparer's thread, never on the owner thread: streams already running keep
decoding meanwhile, the reply is the same, and a job waiting for its media keeps its place
in the count of waiting requests and can be cancelled."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import mlx_vlm.utils
import pytest

from tests.engine.test_parity import noise_image
from vllm_mlx.engine import (
    ChatMessage,
    Engine,
    GenerationRequest,
    GenerationResult,
    ImagePart,
    InvalidRequest,
    SamplingParams,
    TextPart,
)
from vllm_mlx.engine.jobs import NOTHING, Job, JobQueue


def _chat(*parts: Any, max_tokens: int = 8) -> GenerationRequest:
    content = tuple(TextPart(p) if isinstance(p, str) else p for p in parts)
    return GenerationRequest(messages=(ChatMessage("user", content),),
                             sampling=SamplingParams(max_tokens=max_tokens, ignore_eos=True))


def _slow_processor(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[str]:
    """Make each vision prompt's processor call take ``seconds`` longer; return the names
    of the threads that called it."""
    threads: list[str] = []
    original = mlx_vlm.utils.prepare_inputs

    def slow(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("images") or kwargs.get("videos"):  # text alone: just the tokenizer
            threads.append(threading.current_thread().name)
            time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(mlx_vlm.utils, "prepare_inputs", slow)
    return threads


def test_the_processor_runs_beside_the_step_and_the_reply_is_the_same(
        engine_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engine_for("qwen2_vl")
    image_request = _chat(ImagePart(noise_image(3, (224, 160))), "What is this?")
    expected = engine.complete_sync(image_request)
    threads = _slow_processor(monkeypatch, 0.6)

    async def run() -> tuple[list[float], GenerationResult]:
        gaps: list[float] = []

        async def text_stream() -> None:
            last = None
            async for _ in engine.generate(_chat("Count to twenty.", max_tokens=120)):
                now = time.perf_counter()
                if last is not None:
                    gaps.append(now - last)
                last = now

        async def image_reply() -> GenerationResult:
            await asyncio.sleep(0.05)  # once the text stream runs
            return await engine.complete(image_request)

        _, result = await asyncio.gather(text_stream(), image_reply())
        return gaps, result

    gaps, result = asyncio.run(run())
    assert threads == ["mlx-media-prep"]
    assert result.token_ids == expected.token_ids
    assert max(gaps) < 0.4  # the 0.6 s processor call never held a decode step


def test_a_job_waiting_for_its_media_counts_as_waiting_and_can_be_cancelled(
        engine_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engine_for("qwen2_vl")
    _slow_processor(monkeypatch, 0.5)
    cancelled = engine.stats["requests_cancelled"]

    async def run() -> None:
        stream = engine.generate(_chat(ImagePart(noise_image(4)), "Describe."))
        reader = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.1)
        assert engine.waiting == 1 and engine.busy
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await stream.aclose()

    asyncio.run(run())
    deadline = time.monotonic() + 5
    while engine.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not engine.busy
    assert engine.stats["requests_cancelled"] == cancelled + 1


def test_a_processor_refusal_found_off_the_owner_thread_is_the_requests_error(
        engine_for: Any) -> None:
    engine = engine_for("qwen2_vl")
    sliver = noise_image(5, (600, 2))  # aspect ratio above what the processor takes
    with pytest.raises(InvalidRequest, match="processor cannot take the media"):
        engine.complete_sync(_chat(ImagePart(sliver), "Describe."))
    assert engine.complete_sync(_chat("Still here?", max_tokens=2)).completion_tokens == 2


def test_media_the_processor_refuses_are_refused_while_the_batch_is_full(
        tiny_model: Any) -> None:
    engine = Engine.start(str(tiny_model("qwen2_vl")), max_batch=1)
    try:
        async def run() -> None:
            endless = engine.submit([_chat("Keep going.", max_tokens=100000)])
            await endless.accepted()
            refused = engine.submit([_chat(ImagePart(noise_image(6, (600, 2))), "Describe.")])
            with pytest.raises(InvalidRequest, match="processor cannot take the media"):
                await asyncio.wait_for(refused.accepted(), 10)  # not after the endless one
            assert engine.stats["batch_size"] == 1 and engine.waiting == 0
            del endless

        asyncio.run(run())
    finally:
        engine.shutdown()


def _job(name: str) -> Job:
    return Job(requests=[], preparations=[], sink=lambda *_: None)


def test_a_parked_job_goes_first_once_ready_and_never_before() -> None:
    jobs = JobQueue(max_waiting=4)
    media, later = _job("media"), _job("later")
    media.ready = threading.Event()
    jobs.put(media)
    jobs.put(later)
    assert jobs.next(block=False, timeout=None) is NOTHING  # media parked
    assert len(jobs) == 2
    assert jobs.next(block=False, timeout=None) is later
    assert jobs.next(block=True, timeout=None) is NOTHING  # polls, does not hang
    media.ready.set()
    assert jobs.next(block=False, timeout=None) is media
    assert len(jobs) == 0


def test_taking_jobs_out_reaches_parked_ones_and_keeps_the_stop_marker() -> None:
    jobs = JobQueue(max_waiting=4)
    parked = _job("parked")
    parked.ready = threading.Event()
    jobs.put(parked)
    assert jobs.next(block=False, timeout=None) is NOTHING
    jobs.stop()
    assert jobs.take_all() == [parked]
    assert len(jobs) == 1  # the stop marker
    assert jobs.next(block=False, timeout=None) is None
