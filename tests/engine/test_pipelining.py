"""Pipelined decode: the next step is queued before the last one's tokens are delivered.

The step launched for a row that then finishes must change nothing: not the tokens of the
rows beside it, not where end-of-sequence becomes allowed under ``min_tokens``, not what
the prefix cache keeps of the finished row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.engine.test_batching import request
from vllm_mlx.engine import GenerationChunk, TextPart
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.scheduler import Scheduler
from vllm_mlx.engine.types import ACCEPTED


class Collector:
    """A sink that keeps a request's chunks."""

    def __init__(self) -> None:
        self.chunks: list[GenerationChunk] = []
        self.closed = False

    def __call__(self, item: Any) -> None:
        assert not isinstance(item, Exception), item
        if item is None:
            self.closed = True
        elif item is not ACCEPTED:
            self.chunks.append(item)

    @property
    def token_ids(self) -> list[int]:
        return [t for c in self.chunks for t in c.token_ids]

    @property
    def finish_reason(self) -> str | None:
        return self.chunks[-1].finish_reason if self.chunks else None


def run(scheduler: Scheduler, *requests) -> list[Collector]:
    sinks = [Collector() for _ in requests]
    for req, sink in zip(requests, sinks):
        scheduler.add(req, sink, lambda: False)
    for _ in range(500):
        if not scheduler.has_work:
            break
        scheduler.step()
    assert all(s.closed for s in sinks)
    return sinks


@pytest.fixture(scope="module")
def scheduler(tiny_model) -> Scheduler:
    return Scheduler(load_model(str(tiny_model("qwen3"))), prefix_cache_bytes=0)


def test_a_first_token_comes_at_once_and_later_ones_a_step_after_their_launch(scheduler):
    sink = Collector()
    scheduler.add(request([TextPart("Count to ten")], max_tokens=4, ignore_eos=True),
                  sink, lambda: False)
    scheduler.step()  # the prompt is prefilled and joins the batch
    (row,) = scheduler.batch.rows
    assert not row.generated and scheduler.batch.inflight is None
    scheduler.step()  # its first token is sampled and delivered in the same step
    assert len(row.generated) == 1 and scheduler.batch.inflight is None
    scheduler.step()  # the second token is launched; the host has nothing to wait for
    assert len(row.generated) == 1 and scheduler.batch.inflight is not None
    scheduler.step()  # the third is launched, then the second delivered
    assert len(row.generated) == 2 and scheduler.batch.inflight is not None
    while scheduler.has_work:
        scheduler.step()
    assert len(sink.token_ids) == 4 and scheduler.batch.inflight is None


def test_a_token_is_not_held_over_prefill_work(tiny_model):
    """While a long prompt is prefilled a chunk per step, each step delivers the token it
    launched: held over to the next step, every token would wait for two chunks."""
    scheduler = Scheduler(load_model(str(tiny_model("qwen3"))), prefix_cache_bytes=0,
                          prefill_chunk=16)
    scheduler.add(request([TextPart("Hi there")], max_tokens=8, ignore_eos=True),
                  Collector(), lambda: False)
    scheduler.step()  # the short prompt joins the batch
    (row,) = scheduler.batch.rows
    scheduler.add(request([TextPart("word " * 200)], max_tokens=2), Collector(),
                  lambda: False)
    delivered = []
    for _ in range(5):
        scheduler.step()
        assert scheduler.waiting  # the long prompt is still being prefilled
        delivered.append(len(row.generated))
    assert delivered == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("on_host", [False, True], ids=["pipelined", "processors"])
def test_min_tokens_allows_end_of_sequence_at_exactly_its_count(scheduler, on_host):
    """Where the reference run's token at index ``m`` is made the end-of-sequence token,
    a request with ``min_tokens=m`` stops right there: the token in flight counts."""
    prompt = [TextPart("Tell me about the sea")]
    reference = run(scheduler, request(prompt, max_tokens=12, ignore_eos=True))[0].token_ids
    m = next(i for i in range(2, len(reference)) if reference[i] not in reference[:i])
    extra = {"logit_bias": {reference[0]: 0.0}} if on_host else {}
    companion = request([TextPart("Another request beside it")], max_tokens=12,
                        ignore_eos=True)
    saved = scheduler.eos
    scheduler.eos = [reference[m]]
    try:
        limited, beside = run(scheduler, request(prompt, max_tokens=12, min_tokens=m, **extra),
                              companion)
        alone = run(scheduler, companion)[0]  # (ignore_eos masks the new token for it)
    finally:
        scheduler.eos = saved
    assert limited.token_ids == reference[:m]
    assert limited.finish_reason == "stop"
    assert beside.token_ids == alone.token_ids  # its batch mate's extra step changed nothing


def test_a_row_finished_at_end_of_sequence_is_cached_consistently(tiny_model):
    """The finished row's cache holds its end-of-sequence token too; the prefix cache must
    keep only positions it has tokens for, so a follow-up equals a cold run."""
    scheduler = Scheduler(load_model(str(tiny_model("qwen3"))))
    prompt = [TextPart("A fairly long opening question about the weather " * 3)]
    uncached = dataclasses.replace(request(prompt, max_tokens=8, ignore_eos=True),
                                   cache_prefix=False)
    reference = run(scheduler, uncached)[0].token_ids
    stop_at = next(i for i in range(1, len(reference)) if reference[i] not in reference[:i])
    saved = scheduler.eos
    scheduler.eos = [reference[stop_at]]
    try:
        first = run(scheduler, request(prompt, max_tokens=8))[0]
    finally:
        scheduler.eos = saved
    assert first.token_ids == reference[:stop_at] and first.finish_reason == "stop"
    entry = list(scheduler.prefix.entries.values())[-1]
    assert all(k.shape[-2] == len(entry.tokens) for k, _ in entry.layers)
    follow_up = request(prompt, max_tokens=6, ignore_eos=True)
    hits = scheduler.stats.prefix_cache_hits
    warm = run(scheduler, follow_up)[0].token_ids
    assert scheduler.stats.prefix_cache_hits == hits + 1
    cold = Scheduler(load_model(str(tiny_model("qwen3"))), prefix_cache_bytes=0)
    assert warm == run(cold, follow_up)[0].token_ids
