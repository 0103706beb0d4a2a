"""The running batch: its rows, their batch KV cache, and the decode step in flight.

Decoding is pipelined, as mlx-lm's ``generate_step`` is for one request: :meth:`launch`
queues step N+1, whose inputs are step N's sampled tokens still on the device, before the
scheduler reads step N's tokens and delivers them. So the device computes while the host
detokenizes and streams. A row that finishes at step N has been given step N+1 too; that
work is dropped with the row.

A step is delivered as soon as it is launched (:attr:`Step.deliver_now`) when a row has
logits processors (penalties, logit bias, grammars: its token history, on the host, feeds
them before the next step) or has no token yet (a first token is not kept waiting).

Rows are in ``rows`` order everywhere: the batch cache, ``deltas`` and the step in flight.
Rows joined since the last launch come last and have no token in flight: their next input
is their last token on the host (the last prompt token, for a prompt just prefilled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._mlx import mx
from .runner import ModelRunner, extend_batch, filter_batch, join_batches
from .sampling import mask_eos
from .sequence import Sequence, sample_rows


@dataclass
class Step:
    """One launched decode step: a token (and maybe log-probs) per row, maybe unevaluated."""

    rows: list[Sequence]
    tokens: mx.array  # (B,) uint32
    logprobs: list[mx.array] | None  # per row, when a request in the step asked for them
    deliver_now: bool  # a row has processors or no token yet: do not wait for the next step

    def keep(self, indices: list[int]) -> None:
        index = mx.array(indices, dtype=mx.int32)
        self.rows = [self.rows[i] for i in indices]
        self.tokens = self.tokens[index]
        if self.logprobs is not None:
            self.logprobs = [self.logprobs[i] for i in indices]
        self.deliver_now = _urgent(self.rows)


class RunningBatch:
    def __init__(self) -> None:
        self.rows: list[Sequence] = []
        self.cache: list[Any] | None = None
        self.deltas: mx.array | None = None  # (B, 1) mRoPE offsets, for models with them
        self.inflight: Step | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def join(self, rows: list[Sequence], cache: list[Any], deltas: mx.array | None = None
             ) -> None:
        """Append rows prefilled together into one batch cache, with their (n, 1) mRoPE
        deltas where the model has them."""
        self.cache = join_batches(self.cache, cache)
        if deltas is not None:
            self.deltas = deltas if self.deltas is None else mx.concatenate([self.deltas,
                                                                             deltas])
        self.rows.extend(rows)

    def extend(self, row: Sequence, cache: list[Any]) -> None:
        """Append one row with its own cache (and its mRoPE deltas, where it has them)."""
        self.cache = extend_batch(self.cache, cache)
        if row.rope_deltas is not None:
            self.deltas = (row.rope_deltas if self.deltas is None
                           else mx.concatenate([self.deltas, row.rope_deltas]))
        self.rows.append(row)

    def extract(self, row: Sequence) -> list[Any]:
        """One row's cache, as a single-request cache."""
        assert self.cache is not None
        i = self.rows.index(row)
        return [layer.extract(i) for layer in self.cache]

    def remove(self, rows: list[Sequence]) -> None:
        gone = {id(s) for s in rows}
        keep = [i for i, s in enumerate(self.rows) if id(s) not in gone]
        if not keep:
            self.clear()
            return
        if self.inflight is not None:
            kept = [i for i in keep if i < len(self.inflight.rows)]
            if kept:
                self.inflight.keep(kept)
            else:
                self.inflight = None
        self.rows = [self.rows[i] for i in keep]
        self.cache = filter_batch(self.cache, keep) if self.cache is not None else None
        if self.deltas is not None:
            self.deltas = self.deltas[mx.array(keep)]

    def clear(self) -> None:
        self.rows, self.cache, self.deltas, self.inflight = [], None, None, None

    def launch(self, runner: ModelRunner, eos: list[int]) -> Step:
        """Queue one decode step for every row; it becomes the step in flight."""
        assert self.cache is not None and self.rows
        ahead = len(self.inflight.rows) if self.inflight is not None else 0
        inputs = self._inputs(ahead)
        logits = runner.decode(inputs[:, None], self.cache, self.deltas)
        suppress = [s.suppresses_eos_after(1 if i < ahead else 0)
                    for i, s in enumerate(self.rows)]
        tokens, logprobs = sample_rows(self.rows, mask_eos(logits, suppress, eos))
        mx.async_eval(tokens, *(logprobs or []))
        self.inflight = Step(list(self.rows), tokens, logprobs, _urgent(self.rows))
        return self.inflight

    def _inputs(self, ahead: int) -> mx.array:
        """(B,) input tokens: the step in flight's for its rows, the host's for the rest."""
        host = [s.generated[-1] if s.generated else s.prompt_ids[-1]
                for s in self.rows[ahead:]]
        fresh = mx.array(host, dtype=mx.uint32)
        if self.inflight is None:  # (then ahead is 0)
            return fresh
        return mx.concatenate([self.inflight.tokens, fresh]) if host else self.inflight.tokens


def _urgent(rows: list[Sequence]) -> bool:
    return any(s.processors or s.first_token_at is None for s in rows)
