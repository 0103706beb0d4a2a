"""Which waiting prompts the scheduler's next prefill action serves.

Pure functions of the waiting prompts, in arrival order:
- a started prompt overtaken ``MAX_OVERTAKES`` times goes next, so none waits forever
  (:func:`overdue`, :func:`count_overtakes`);
- otherwise newcomers are started first, then the prompt with the fewest tokens left
  goes, so a short request never waits behind a long prompt for more than one chunk
  (:func:`next_prefill`);
- prompts that can advance in one forward do so together: text prompts whose rests fit
  in one chunk of tokens (:func:`finishing_group`), vision prompts whose next chunks fit,
  padded, in ``GROUP_CHUNKS`` chunks (:func:`ready_group`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .runner import ModelRunner
from .sequence import Sequence

MAX_OVERTAKES = 4  # prefill actions a started prompt may be skipped before it goes next
GROUP_CHUNKS = 4  # a shared vision prefill forward holds at most this many chunks' tokens


def overdue(waiting: Iterable[Sequence]) -> Sequence | None:
    """The started prompt overtaken most often, if that is ``MAX_OVERTAKES`` or more."""
    started = [s for s in waiting if s.prefill is not None]
    late = max(started, key=lambda s: s.overtaken, default=None)
    return late if late is not None and late.overtaken >= MAX_OVERTAKES else None


def next_prefill(waiting: Iterable[Sequence]) -> Sequence:
    """The overdue prompt; else the first newcomer; else the prompt closest to done."""
    pending = list(waiting)
    late = overdue(pending)
    if late is not None:
        return late
    for seq in pending:
        if seq.prefill is None:
            return seq
    return min(pending, key=_remaining)


def count_overtakes(waiting: Iterable[Sequence], *served: Sequence) -> None:
    """One more overtake for every started prompt that this prefill action skipped."""
    for seq in waiting:
        if seq.prefill is not None:
            seq.overtaken = 0 if any(seq is s for s in served) else seq.overtaken + 1


def finishing_group(waiting: Iterable[Sequence], budget: int,
                    first: Sequence | None = None) -> list[Sequence]:
    """Text prompts whose rests (all but their last tokens) fit, together, in ``budget``
    tokens, ``first`` then shortest first; always at least one if any fits alone."""
    fitting = sorted((s for s in waiting if s.prefill is not None
                      and s.prefill.remaining - 1 <= budget),
                     key=lambda s: (s is not first, _remaining(s)))
    group: list[Sequence] = []
    for seq in fitting:
        budget -= _remaining(seq) - 1
        if group and budget < 0:
            break
        group.append(seq)
    return group


def ready_group(waiting: Iterable[Sequence], runner: ModelRunner,
                first: Sequence | None = None) -> list[Sequence]:
    """Vision prompts ready to share a forward whose next chunks fit, padded to the
    longest, in ``GROUP_CHUNKS`` chunks of tokens, ``first`` then shortest first; none
    if ``first`` is not ready."""
    ready = [s for s in waiting if s.prefill is not None and runner.groupable(s.prefill)]
    if first is not None and first not in ready:
        return []
    ready.sort(key=lambda s: (s is not first, _remaining(s)))
    budget, longest = GROUP_CHUNKS * runner.chunk_size, 0
    group: list[Sequence] = []
    for seq in ready:
        assert seq.prefill is not None
        wider = max(longest, runner.group_chunk(seq.prefill))
        if group and wider * (len(group) + 1) > budget:
            break
        group.append(seq)
        longest = wider
    return group


def _remaining(seq: Sequence) -> int:
    return seq.prefill.remaining if seq.prefill is not None else 0
