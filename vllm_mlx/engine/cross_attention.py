"""Language models that read the image through cross-attention layers (Llama 3.2 Vision,
``mllama``): each request's image state travels in its own cache, row by row.

What mlx-vlm does (the oracle): prefill passes ``cross_attention_states`` (the projected
vision-tower output, ``(1, N, D)``) with the prompt's cross-attention masks; every decode
step passes the same ``cross_attention_states`` again, without masks. A request without an
image passes none, and its cross-attention layers then attend over halves of the queries
of the current forward pass, all to all (so a text-only prompt's output depends on how it
is chunked: mlx-vlm prefills all but its last token in chunks of 2048, then the last).
The cross-attention layers never write their KV caches.

Contract:
- :meth:`CrossAttention.of` finds a language model's cross-attention layers (``None``
  when it has none); :meth:`~CrossAttention.adapt` gives a new request cache whose
  cross-attention layers are :class:`CrossAttentionCache`; :meth:`~CrossAttention.bind`
  records the request's state (or ``None``) there after its embeddings are computed;
  :meth:`~CrossAttention.prefill_chunk` is the chunk size a prompt without an image must
  be prefilled in (its output depends on the chunks, see above).
- :class:`CrossAttentionCache` holds one state per row and follows the batch cache
  operations (``merge``, ``extend``, ``filter``, ``extract``), so a row's state moves
  with its row and a request can never read another's image. Its type name keeps the
  prefix cache away (only plain ``KVCache`` layers are reused): a reused prefix would
  lose the image state.
- Inside :meth:`~CrossAttention.decoding` each cross-attention layer runs once per group
  of rows whose states stack (text-only rows; image states of one shape), each with its
  own rows' states, and the outputs go back in row order. One row decodes exactly as
  mlx-vlm's own loop does; rows with different images or none share one batch.
- Also inside it, the model module's ``cache_position_offset`` gives a batch cache's
  per-row offsets: mllama's self-attention takes its RoPE offset from it, and the
  library's shared timeline (padding included) would shift a left-padded row's positions.
  (For a single request's cache both give its one offset.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ._mlx import int_list, mx
from .vision_passes import shadowed

State = Any  # mx.array (1, N, D), or None for a request without an image


class CrossAttentionCache:
    """A cross-attention layer's cache: per row, the state its layer attends to."""

    offset = 0  # nothing written: the layer's "cached keys" branch is never taken

    def __init__(self, states: list[State] | None = None) -> None:
        self.states: list[State] = list(states) if states is not None else [None]
        self._groups: list[tuple[list[int], State]] | None = None

    @classmethod
    def merge(cls, caches: list[CrossAttentionCache]) -> CrossAttentionCache:
        return cls([s for c in caches for s in c.states])

    def extend(self, other: CrossAttentionCache) -> None:
        self.states = self.states + other.states
        self._groups = None

    def filter(self, keep: Any) -> None:
        indices = int_list(keep) if isinstance(keep, mx.array) else [int(i) for i in keep]
        self.states = [self.states[i] for i in indices]
        self._groups = None

    def extract(self, idx: int) -> CrossAttentionCache:
        return CrossAttentionCache([self.states[idx]])

    def prepare(self, **_: Any) -> None:
        """Padding does not apply: the state has no text positions."""

    def finalize(self) -> None:
        pass

    @property
    def state(self) -> list[mx.array]:
        return [s for s in self.states if s is not None]

    def size(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def is_trimmable(self) -> bool:
        return False

    @property
    def nbytes(self) -> int:
        return sum(int(s.nbytes) for s in self.state)

    def groups(self) -> list[tuple[list[int], State]]:
        """Rows whose states stack, in order of first appearance, with the stacked state."""
        if self._groups is None:
            members: dict[Any, list[int]] = {}
            for i, s in enumerate(self.states):
                members.setdefault(None if s is None else tuple(s.shape[1:]), []).append(i)
            self._groups = [(rows, _stacked([self.states[i] for i in rows]))
                            for rows in members.values()]
        return self._groups


def _stacked(states: list[State]) -> State:
    if states[0] is None:
        return None
    return states[0] if len(states) == 1 else mx.concatenate(states, axis=0)


class _RowWise:
    """Stands in for a cross-attention decoder layer during a batch decode step."""

    def __init__(self, layer: Any) -> None:
        self._layer = layer

    def __call__(self, hidden: mx.array, *_: Any, cache: Any = None, **__: Any) -> mx.array:
        groups = cache.groups()
        if len(groups) == 1:
            return self._layer(hidden, cross_attention_states=groups[0][1])
        order: list[int] = []
        outs = []
        for rows, state in groups:
            order.extend(rows)
            outs.append(self._layer(hidden[mx.array(rows)], cross_attention_states=state))
        inverse = [0] * len(order)
        for position, row in enumerate(order):
            inverse[row] = position
        return mx.concatenate(outs, axis=0)[mx.array(inverse)]


def _row_offsets(cache: Any) -> Any:
    """A cache's position: per row for a batch cache (an array), else an int."""
    return 0 if cache is None else cache.offset


class CrossAttention:
    def __init__(self, layers: list[Any], indices: list[int], module: Any) -> None:
        self._layers = layers  # the language model's own list of decoder layers
        self.indices = indices
        self._module = module  # where the model's code looks up cache_position_offset

    @classmethod
    def of(cls, lm: Any) -> CrossAttention | None:
        config = getattr(lm, "config", None)
        indices = list(getattr(config, "cross_attention_layers", None) or [])
        layers = getattr(lm, "layers", None)
        if not indices or layers is None:
            return None
        if not all(hasattr(layers[i], "cross_attn") for i in indices):
            return None
        return cls(layers, indices, sys.modules.get(type(lm).__module__))

    def adapt(self, cache: list[Any]) -> list[Any]:
        for i in self.indices:
            cache[i] = CrossAttentionCache()
        return cache

    def bind(self, cache: list[Any], kwargs: dict[str, Any]) -> None:
        """Record the request's ``cross_attention_states`` (``None``: no image)."""
        state = kwargs.get("cross_attention_states")
        for i in self.indices:
            cache[i] = CrossAttentionCache([state])

    def prefill_chunk(self, kwargs: dict[str, Any]) -> int:
        """The chunk size a prompt must be prefilled in (0: any). Without an image the
        cross-attention layers attend across the whole forward pass, so the output
        depends on the chunks: mlx-vlm's default prefill step is kept."""
        if kwargs.get("cross_attention_states") is not None:
            return 0
        from mlx_vlm.generate.common import DEFAULT_PREFILL_STEP_SIZE

        return int(DEFAULT_PREFILL_STEP_SIZE)

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """Cross-attention layers read each row's own state from its cache, and RoPE
        each row's own position."""
        originals = {i: self._layers[i] for i in self.indices}
        with ExitStack() as stack:
            if hasattr(self._module, "cache_position_offset"):
                stack.enter_context(shadowed(self._module, "cache_position_offset",
                                             _row_offsets))
            for i, layer in originals.items():
                self._layers[i] = _RowWise(layer)
            try:
                yield
            finally:
                for i, layer in originals.items():
                    self._layers[i] = layer
