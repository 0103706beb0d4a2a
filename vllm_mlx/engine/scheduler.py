"""Continuous batching on the owner thread.

Each :meth:`Scheduler.step` does, in order: drop cancelled requests; run one decode step
for every request in the running batch; advance prefill by at most one chunk of work.
So a long prompt never stalls decoding, nor a short prompt's first token, for more than
one chunk, and requests join and leave the batch at token granularity with their own
sampling settings, stops and lengths.

Prefill, text models: every newcomer is started (its prompt prepared, unless an earlier
stage did, see :mod:`.preparation`; prefix cache consulted); then the prompts that can
finish within one chunk of tokens are prefilled together in one forward pass, all but
their last token, and join the running batch, whose next decode step reads their last
prompt token and samples their first token. Otherwise the prompt with the fewest tokens
left advances by one chunk. So requests that arrive together get their first tokens
together.

Prefill, vision models (one action per step): start one newcomer (its first
vision-encoder pass); or, when several prompts have finished their encoder passes,
advance them together by their next chunks in one forward pass (those left with only
their last token join the running batch, as text prompts do); or give one prompt its
next action: an encoder pass, a chunk, or the last chunk and its first token before it
joins the batch. So a request alone is prefilled exactly as mlx-vlm does, and requests
that arrive together share the language model's prefill passes. Which prompts an action
serves is decided in :mod:`.prefill_order`.

A request keeps its own cache while it is prefilled; when it joins, the cache is merged
into the batch cache (:class:`.batch.RunningBatch`). A finished request's cache goes to the
prefix cache; where that keeps whole-cache snapshots, so does a copy taken as it joins.

Decode is pipelined (:mod:`.batch`): each step launches its decode step, then delivers
the tokens of the one before while the device computes. A step with prefill work does it
after the launch and delivers its own tokens after it, so a token never waits for two
prefill actions.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from ._mlx import int_list, mx
from .batch import RunningBatch, Step
from .errors import EngineError
from .loader import LoadedModel
from .prefill_order import (
    count_overtakes,
    finishing_group,
    next_prefill,
    overdue,
    ready_group,
)
from .prefix_cache import CacheHit, PrefixCache, make_prefix_cache, media_positions
from .preparation import Preparation
from .runner import ModelRunner, filter_batch
from .sampler import KeyedSampler, request_processors
from .sampling import mask_eos
from .sequence import Sequence, Sink
from .stats import EngineStats
from .tokens import Vocabulary, eos_token_ids
from .types import ACCEPTED, GenerationRequest
from .vision_rows import row_deltas

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, loaded: LoadedModel, *, max_batch: int = 32,
                 prefill_chunk: int = 256, prefix_cache_bytes: int = 512 << 20,
                 vision_cache_bytes: int = 256 << 20, prefill_step_s: float = 0.0) -> None:
        self.loaded = loaded
        self.runner = ModelRunner(loaded, prefill_chunk, vision_cache_bytes)
        if prefill_step_s > 0:
            chunk = self.runner.calibrate_chunk(prefill_step_s)
            logger.info("prefill chunk: %d tokens (step budget %.2f s, at most %d)",
                        chunk, prefill_step_s, prefill_chunk)
        self.prefix: PrefixCache | None = make_prefix_cache(
            prefix_cache_bytes, self.runner.prefix_reusable, self.runner.new_cache(),
            media_positions(loaded))
        self.max_batch = max_batch
        self.eos = eos_token_ids(loaded)
        self.vocab = Vocabulary(loaded)
        self.waiting: deque[Sequence] = deque()
        self._preparations: WeakKeyDictionary[Sequence, Preparation] = WeakKeyDictionary()
        self.batch = RunningBatch()
        self.stats = EngineStats()

    # -- admission ---------------------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self.waiting) + len(self.batch)

    @property
    def has_capacity(self) -> bool:
        return self.active < self.max_batch

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.batch)

    def add(self, request: GenerationRequest, sink: Sink, is_cancelled: Callable[[], bool],
            preparation: Preparation | None = None) -> None:
        """Queue a request for prefill; ``preparation``: its prompt's, if made already."""
        params = request.sampling
        sequence = Sequence(
            request=request, sink=sink, is_cancelled=is_cancelled,
            sampler=KeyedSampler(params),
            processors=request_processors(params, lambda: self.loaded.grammar_compiler,
                                          vocab_size=self.loaded.vocab_size),
            detokenizer=self.vocab.detokenizer(continuation=request.is_raw),
            vocab=self.vocab,
            eos=frozenset(self.eos),
        )
        self.waiting.append(sequence)
        if preparation is not None:
            self._preparations[sequence] = preparation
        self.stats.requests_started += 1

    # -- one iteration -----------------------------------------------------------------
    def step(self) -> None:
        self._drop_cancelled()
        if self.batch:
            self._decode()
        if self.waiting:
            self._prefill()
            self._deliver_inflight()  # no token waits for the next step's prefill work too
        self.stats.batch_size = len(self.batch)
        self.stats.prefilling = len(self.waiting)

    def _prefill(self) -> None:
        started = time.perf_counter()
        features = self.runner.features
        if self.runner.vision:
            self._prefill_vision()
        else:
            self._prefill_text()
        self.stats.prefill_seconds += time.perf_counter() - started
        self.stats.vision_cache_hits = features.hits
        self.stats.vision_cache_misses = features.misses
        self.stats.vision_cache_bytes = features.nbytes
        self.stats.vision_encoder_passes = self.runner.encoder_passes

    def abort_all(self, error: EngineError) -> None:
        for sequence in [*self.waiting, *self.batch.rows]:
            sequence.sink(error)
        self.waiting.clear()
        self.batch.clear()

    # -- prefill -----------------------------------------------------------------------
    def _advance_prefill(self, seq: Sequence) -> None:
        """One prefill action for one request (vision models, and long text prompts)."""
        with self._failing(seq):
            if seq.prefill is None:
                self._start(seq)
                assert seq.prefill is not None
                if seq.prefill.whole and seq.prefill.remaining <= self.runner.chunk_size:
                    self._finish_prefill(seq)  # a short text follow-up: one forward pass
            elif seq.prefill.encoder_passes:
                self.runner.encode_next(seq.prefill)
            elif seq.prefill.remaining > 1 + self.runner.chunk_size or not self.runner.vision:
                assert seq.cache is not None
                self.runner.prefill_chunk(seq.prefill, seq.cache)
            else:
                self._finish_prefill(seq)

    @contextmanager
    def _failing(self, *seqs: Sequence) -> Iterator[None]:
        """Fail these requests, and only these, if the block raises."""
        try:
            yield
        except EngineError as exc:
            for seq in seqs:
                self._fail_waiting(seq, exc)
        except Exception as exc:  # a library failure on one request must not stop others
            logger.exception("prefill failed for %s", [s.request.request_id for s in seqs])
            error = EngineError(f"prefill failed: {type(exc).__name__}: {exc}")
            for seq in seqs:
                self._fail_waiting(seq, error)

    def _prefill_text(self) -> None:
        for seq in [s for s in self.waiting if s.prefill is None]:
            with self._failing(seq):
                self._start(seq)
        late = overdue(self.waiting)
        group = finishing_group(self.waiting, self.runner.chunk_size, late)
        if late is not None and late not in group:
            group = []  # it needs more than one chunk: it advances alone this step
        if group:
            count_overtakes(self.waiting, *group)
            with self._failing(*group):
                self._join(group)
        elif self.waiting:
            seq = late or next_prefill(self.waiting)
            count_overtakes(self.waiting, seq)
            self._advance_prefill(seq)

    def _prefill_vision(self) -> None:
        """Start a newcomer; else advance the prompts that are ready (encoders done)
        together, if there are several; else one prompt's next action."""
        late = overdue(self.waiting)
        newcomer = late is None and any(s.prefill is None for s in self.waiting)
        group = [] if newcomer else ready_group(self.waiting, self.runner, late)
        if len(group) > 1:
            count_overtakes(self.waiting, *group)
            with self._failing(*group):
                self._advance_group(group)
            return
        seq = late or next_prefill(self.waiting)
        count_overtakes(self.waiting, seq)
        self._advance_prefill(seq)

    def _advance_group(self, group: list[Sequence]) -> None:
        """One forward for the group's next chunks; prompts with only their last token
        left join the running batch, the others take their own caches back."""
        states = [seq.prefill for seq in group]
        caches = [seq.cache for seq in group]
        assert all(states) and all(caches)
        joined = self.runner.prefill_group(states, caches)  # type: ignore[arg-type]
        self.stats.prefill_groups += 1
        self.stats.prefill_group_rows += len(group)
        done = [i for i, seq in enumerate(group) if seq.prefill and seq.prefill.remaining == 1]
        for i, seq in enumerate(group):
            if i not in done:
                seq.cache = [layer.extract(i) for layer in joined]
        rows = [group[i] for i in done]
        cache = filter_batch(joined, done)
        if cache is None:
            return
        for seq in rows:
            assert seq.prefill is not None
            seq.rope_deltas = row_deltas(seq.prefill.kwargs)
            self.waiting.remove(seq)
            seq.cache, seq.prefill = None, None
        self.batch.join(rows, cache, mx.concatenate([s.rope_deltas for s in rows]))

    def _join(self, group: list[Sequence]) -> None:
        """Prefill the group into one batch cache and append it to the running batch; the
        next decode step reads each one's last prompt token."""
        states = [seq.prefill for seq in group]
        caches = [seq.cache for seq in group]
        assert all(states) and all(caches)
        joined = self.runner.prefill_rows(states, caches)  # type: ignore[arg-type]
        if len(group) > 1:
            self.stats.prefill_groups += 1
            self.stats.prefill_group_rows += len(group)
        for i, seq in enumerate(group):
            if self._keeps(seq, snapshot=True):
                self._remember(seq, [layer.extract(i) for layer in joined])
        self.batch.join(group, joined)
        for seq in group:
            self.waiting.remove(seq)
            seq.cache, seq.prefill = None, None

    def _start(self, seq: Sequence) -> None:
        preparation = self._preparations.pop(seq, None) or Preparation()
        prompt = preparation.prompt(self.loaded, seq.request)
        assert preparation.token_ids is not None
        seq.prompt_ids = preparation.token_ids  # shared by a job's copies: read only
        limit = self.loaded.capabilities.context_length
        if limit:  # generation stops where the context ends
            seq.token_budget = min(seq.token_budget, limit - len(seq.prompt_ids))
        seq.cache = self.runner.new_cache()
        seq.media = preparation.media if self.runner.vision else ()
        hit = self._lookup(seq)
        if hit is None:
            seq.prefill = self.runner.start_prefill(prompt, seq.cache, media=seq.media)
        else:
            assert self.prefix is not None
            seq.cache = self.prefix.restore(hit, seq.cache)
            seq.cached_tokens = hit.length
            text_suffix = not self.prefix.suffix_has_media(seq.prompt_ids, hit.length, seq.media)
            if text_suffix and seq.media:
                self.stats.vision_encodes_skipped += 1
            seq.prefill = self.runner.start_prefill(prompt, seq.cache, hit.length,
                                                    hit.rope_deltas, text_suffix, seq.media)
        seq.reusable = seq.prefill.reusable
        if seq.needs_history:
            seq.history = mx.array(seq.prompt_ids)
        self.stats.prompt_tokens += len(seq.prompt_ids)
        seq.sink(ACCEPTED)

    def _lookup(self, seq: Sequence) -> CacheHit | None:
        if self.prefix is None:
            return None
        hit = self.prefix.lookup(seq.prompt_ids, seq.media)
        if hit is None:
            self.stats.prefix_cache_misses += 1
        else:
            self.stats.prefix_cache_hits += 1
            self.stats.prefix_cache_tokens_reused += hit.length
        return hit

    def _keeps(self, seq: Sequence, snapshot: bool = False) -> bool:
        """Whether the prefix cache takes this request's cache (at its prompt's end too,
        ``snapshot``, where it keeps whole-cache snapshots)."""
        return (self.prefix is not None and seq.request.cache_prefix and seq.reusable
                and (self.prefix.whole or not snapshot))

    def _remember(self, seq: Sequence, cache: list[Any]) -> None:
        assert self.prefix is not None
        self.prefix.store(seq.prompt_ids + seq.generated, cache, seq.media, seq.rope_deltas)
        self.stats.prefix_cache_bytes = self.prefix.nbytes

    def _finish_prefill(self, seq: Sequence) -> None:
        assert seq.prefill is not None and seq.cache is not None
        logits, seq.rope_deltas = self.runner.prefill_last(seq.prefill, seq.cache)
        token, logprobs = seq.sample(mask_eos(logits, [seq.suppresses_eos], self.eos))
        self.waiting.remove(seq)
        self.stats.observe_ttft(time.perf_counter() - seq.arrived)
        if self._emit(seq, int_list(token)[0], logprobs[0]):
            if seq.finish_reason != "cancelled" and self._keeps(seq):
                self._remember(seq, seq.cache)
            return
        if self._keeps(seq, snapshot=True):
            self._remember(seq, seq.cache)
        self.batch.extend(seq, seq.cache)
        seq.cache, seq.prefill = None, None

    def _fail_waiting(self, seq: Sequence, error: EngineError) -> None:
        if seq in self.waiting:
            self.waiting.remove(seq)
        self.stats.requests_failed += 1
        seq.sink(error)

    # -- decode ------------------------------------------------------------------------
    def _decode(self) -> None:
        """Launch the next step, then deliver the one before it (see :mod:`.batch`)."""
        started = time.perf_counter()
        previous = self.batch.inflight
        launched = self.batch.launch(self.runner, self.eos)
        self.stats.decode_steps += 1
        if previous is not None:
            self._deliver(previous)
        if self.batch.inflight is launched and launched.deliver_now:
            self._deliver_inflight()
        self.stats.decode_seconds += time.perf_counter() - started

    def _deliver_inflight(self) -> None:
        step, self.batch.inflight = self.batch.inflight, None
        if step is not None:
            self._deliver(step)

    def _deliver(self, step: Step) -> None:
        """Hand each row its token from ``step``; finished rows leave the batch."""
        tokens = int_list(step.tokens)
        now = time.perf_counter()
        finished = []
        for i, seq in enumerate(step.rows):
            if seq.first_token_at is None:
                self.stats.observe_ttft(now - seq.arrived)
            if self._emit(seq, tokens[i], step.logprobs[i] if step.logprobs else None):
                finished.append(seq)
        if not finished:
            return
        for seq in finished:
            if self._keeps(seq):
                self._remember(seq, self.batch.extract(seq))
        self.batch.remove(finished)

    def _emit(self, seq: Sequence, token: int, logprobs: mx.array | None) -> bool:
        """Deliver a token's chunk; return True when the sequence is finished."""
        chunk = seq.accept(token, logprobs)
        if chunk is not None:
            seq.sink(chunk)
        if seq.finished:
            self.stats.requests_finished += 1
            self.stats.generated_tokens += len(seq.generated)
            seq.sink(None)
            return True
        return False

    # -- cancellation ------------------------------------------------------------------
    def _drop_cancelled(self) -> None:
        for seq in [s for s in self.waiting if s.is_cancelled()]:
            self.waiting.remove(seq)
            self.stats.requests_cancelled += 1
            seq.sink(None)
        cancelled = [s for s in self.batch.rows if s.is_cancelled()]
        for seq in cancelled:
            self.stats.requests_cancelled += 1
            self.stats.generated_tokens += len(seq.generated)  # decoded, if never read
            seq.sink(None)
        if cancelled:
            self.batch.remove(cancelled)
