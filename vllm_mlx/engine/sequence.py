"""One request in flight: its sampling state and the text it has produced so far.

:class:`Sequence` turns sampled token ids into :class:`GenerationChunk` s: streaming
detokenization, end-of-sequence, stop strings (held back until they cannot match),
logprobs, ``max_tokens``; special tokens are left out of the text unless
``skip_special_tokens`` is off (their ids and logprobs are kept). The last chunk carries
``finish_reason`` and usage. It knows nothing about batching: the scheduler feeds it one
token at a time.
:func:`sample_rows` samples the next token of every running sequence from one batch of
logits, each with its own settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._mlx import mx
from .runner import PrefillState
from .sampler import KeyedSampler, sample_batch
from .sampling import LogitsProcessor, StopMatcher, token_logprob
from .tokens import Vocabulary
from .types import FinishReason, GenerationChunk, GenerationRequest

Sink = Callable[[Any], None]


@dataclass(eq=False)  # identity: the scheduler removes sequences from lists
class Sequence:
    request: GenerationRequest
    sink: Sink
    is_cancelled: Callable[[], bool]
    sampler: KeyedSampler
    processors: list[LogitsProcessor]
    detokenizer: Any
    vocab: Vocabulary
    eos: frozenset[int]
    prompt_ids: list[int] = field(default_factory=list)
    cache: list[Any] | None = None  # own cache while prefilling
    prefill: PrefillState | None = None
    rope_deltas: Any = None
    history: mx.array | None = None  # prompt + generated ids, for processors
    generated: list[int] = field(default_factory=list)
    arrived: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished: bool = False
    cached_tokens: int = 0  # prompt positions reused from the prefix cache
    media: tuple[str, ...] = ()  # content hashes of the request's media, in order
    reusable: bool = True  # its KV may serve later prompts (see PrefillState.reusable)
    finish_reason: FinishReason | None = None
    overtaken: int = 0  # prefill actions that went to other prompts since this one's last
    token_budget: int = 0  # max_tokens, less where the context ends first


    def __post_init__(self) -> None:
        self.stops = StopMatcher(self.request.sampling.stop)
        self.token_budget = self.token_budget or self.request.sampling.max_tokens
        # Tokens whose text the detokenizer has not released yet ride on the next chunk.
        self._pending_ids: list[int] = []
        self._pending_lps: list[Any] = []

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def suppresses_eos(self) -> bool:
        """End-of-sequence tokens are forbidden for this request's next token."""
        return self.suppresses_eos_after(0)

    def suppresses_eos_after(self, undelivered: int) -> bool:
        """The same, for the token after ``undelivered`` sampled tokens not yet accepted."""
        params = self.request.sampling
        return params.ignore_eos or len(self.generated) + undelivered < params.min_tokens

    @property
    def needs_history(self) -> bool:
        return bool(self.processors)

    def sample(self, logits: mx.array) -> tuple[mx.array, mx.array]:
        """Apply this request's processors and sampler to one row of logits (1, V)."""
        if self.processors:
            assert self.history is not None
            for process in self.processors:
                logits = process(self.history, logits)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        return self.sampler(logprobs), logprobs

    def accept(self, token: int, logprobs: mx.array | None) -> GenerationChunk | None:
        """Record a sampled token; return the chunk to send (``None``: nothing yet)."""
        params = self.request.sampling
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.needs_history:
            assert self.history is not None
            self.history = mx.concatenate([self.history, mx.array([token])])
        if token in self.eos and not params.ignore_eos:
            return self._finish("stop", "", flush=True)
        self.generated.append(token)
        self._pending_ids.append(token)
        if params.logprobs is not None and logprobs is not None:
            self._pending_lps.append(
                token_logprob(self.vocab, token, logprobs, params.logprobs))
        if not (params.skip_special_tokens and token in self.vocab.special_ids):
            self.detokenizer.add_token(token)
        text, stopped = self.stops.feed(self.detokenizer.last_segment)
        if stopped:
            return self._finish("stop", text)
        if len(self.generated) >= self.token_budget:
            return self._finish("length", text + self._flush())
        if not text and not self._pending_lps:
            return None
        return self._chunk(text, None)

    def cancel_chunk(self) -> GenerationChunk:
        return self._finish("cancelled", "")

    def _flush(self) -> str:
        self.detokenizer.finalize()
        text, stopped = self.stops.feed(self.detokenizer.last_segment)
        return text if stopped else text + self.stops.flush()

    def _finish(self, reason: FinishReason, text: str, flush: bool = False) -> GenerationChunk:
        """The last chunk; ``flush`` releases text the detokenizer still holds."""
        self.finished = True
        self.finish_reason = reason
        return self._chunk(text + self._flush() if flush else text, reason)

    def _chunk(self, text: str, reason: FinishReason | None) -> GenerationChunk:
        chunk = GenerationChunk(text=text, token_ids=tuple(self._pending_ids),
                                logprobs=tuple(self._pending_lps), finish_reason=reason,
                                prompt_tokens=self.prompt_tokens,
                                completion_tokens=len(self.generated),
                                cached_tokens=self.cached_tokens)
        self._pending_ids, self._pending_lps = [], []
        return chunk


def sample_rows(running: list[Sequence], logits: mx.array
                ) -> tuple[mx.array, list[mx.array] | None]:
    """Each row's token, (B,) uint32 and not evaluated, and its log-probs when any request
    wants them.

    Rows with logits processors are sampled one by one; the others in one batch per
    distinct set of filters (greedy rows: one argmax)."""
    wants = any(s.request.sampling.logprobs is not None for s in running)
    if not wants and all(s.sampler.greedy and not s.processors for s in running):
        return mx.argmax(logits, axis=-1).astype(mx.uint32), None
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    rows = [logprobs[i] for i in range(len(running))] if wants else []
    order: list[int] = []
    picked: list[mx.array] = []
    groups: dict[Any, list[int]] = {}
    for i, seq in enumerate(running):
        if seq.processors:
            token, own = seq.sample(logits[i:i + 1])
            order.append(i)
            picked.append(token.reshape(-1))
            if wants:
                rows[i] = own[0]
        else:
            groups.setdefault("greedy" if seq.sampler.greedy else seq.sampler.filters,
                              []).append(i)
    for key, members in groups.items():
        batch = logprobs[mx.array(members)]
        tokens = (mx.argmax(batch, axis=-1) if key == "greedy"
                  else sample_batch(batch, [running[i].sampler for i in members]))
        order.extend(members)
        picked.append(tokens.reshape(-1))
    inverse = [0] * len(order)
    for position, row in enumerate(order):
        inverse[row] = position
    tokens = mx.concatenate([t.astype(mx.uint32) for t in picked])[mx.array(inverse)]
    return tokens, rows if wants else None
