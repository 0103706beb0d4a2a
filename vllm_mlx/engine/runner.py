"""Prefill and batched-decode primitives over the libraries' own model modules.

A request is prefilled into its own per-layer cache. For vision models: one vision-encoder
pass (or its output from the feature cache), then the language model over the prompt
embeddings in chunks, the way mlx-vlm's ``generate_step`` does. The last chunks of several
text prompts can share one forward pass (``prefill_rows``).

Decoding runs many requests at once: their caches are merged into the libraries'
left-padded batch caches (``BatchKVCache`` and friends), and per-row state the model needs
(Qwen's mRoPE ``rope_deltas``) is passed explicitly; a cross-attention model's image
states ride in its cross-attention layers' caches (:mod:`.cross_attention`). Batched greedy
decoding reproduces single-request greedy tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from ._mlx import mx
from .cross_attention import CrossAttention
from .inputs import PreparedPrompt
from .loader import LoadedModel
from .vision_cache import VisionFeatureCache, feature_key
from .vision_passes import SplitTower, evaluate, shadowed
from .vision_rows import RowChunk, batched_inputs, first_delta, groupable_inputs

CALIBRATION_TOKENS = 64  # forward timed to size prefill chunks (calibrate_chunk)
CHUNK_QUANTUM = 16  # calibrated chunk sizes are multiples of this
MIN_CHUNK = 32
# Vision families whose prompts may share prefill passes (prefill_group): their language
# models take explicit mRoPE position ids for a batch. Qwen2-VL and Qwen3-VL are tested
# against single-prompt prefill; the other two run the same language-model code.
GROUPED_FAMILIES = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe"})


@dataclass
class PrefillState:
    """A request's prompt on its way into its cache."""

    input_ids: mx.array  # (1, L)
    embeds: mx.array | None  # (1, L, D) for vision models
    kwargs: dict[str, Any] = field(default_factory=dict)
    done: int = 0  # prompt positions already in the cache
    chunked: bool = True
    encoder_passes: list[Any] = field(default_factory=list)  # lazy, evaluated one per step
    # A text suffix after a reused prefix: its last chunk goes in one forward pass with
    # the last token (the cold path keeps mlx-vlm's split, for parity with its output).
    whole: bool = False
    # False when the cache must not be stored in nor served from the prefix cache: a
    # one-pass prompt (attends both ways), or more positions than token ids (LLaVA-NeXT).
    reusable: bool = True
    logits: mx.array | None = None  # a one-pass prompt's, until prefill_last reads them
    chunk: int = 0  # this prompt's own chunk size, where its output depends on it

    @property
    def length(self) -> int:
        """Positions the prompt takes in the cache: its embeddings', which some merges
        make outnumber its token ids."""
        source = self.embeds if self.embeds is not None else self.input_ids
        return int(source.shape[1])

    @property
    def remaining(self) -> int:
        return self.length - self.done


class ModelRunner:
    def __init__(self, loaded: LoadedModel, prefill_chunk: int = 256,
                 vision_cache_bytes: int = 256 << 20) -> None:
        self.loaded = loaded
        self.features = VisionFeatureCache(vision_cache_bytes)
        self.encoder_passes = 0  # vision-tower passes evaluated so far
        self.chunk_size = prefill_chunk
        self.vision = loaded.is_vision
        self.lm = loaded.model.language_model if self.vision else loaded.model
        self.uses_rope_deltas = hasattr(self.lm, "_rope_deltas")
        self.cross = CrossAttention.of(self.lm) if self.vision else None  # mllama
        # Prompts prefilled in one pass (PaliGemma's attend both ways): a prefix's cache is
        # not the prompt's, and the model builds no causal (nor padding) mask of its own.
        self.one_pass = self.vision and not _chunks_allowed(loaded.model)
        self.prefix_reusable = not self.one_pass
        self.groups_vision = (loaded.capabilities.model_type in GROUPED_FAMILIES
                              and _batch_prefillable(merge_caches([self.new_cache()])))

    def calibrate_chunk(self, budget_s: float) -> int:
        """Lower ``chunk_size`` so that one chunk of prefill takes about ``budget_s``.

        A chunk cannot be interrupted: its duration is how long a newcomer's first token
        and every running stream may wait. Measured once, on a CALIBRATION_TOKENS forward,
        and scaled linearly (larger chunks are a little cheaper per token, so this errs
        small); never below MIN_CHUNK. Text models only; vision models keep the size."""
        if budget_s <= 0 or self.vision:
            return self.chunk_size
        probe = min(CALIBRATION_TOKENS, self.chunk_size)
        per_token = self._forward_seconds(probe) / probe
        fitting = int(budget_s / per_token) // CHUNK_QUANTUM * CHUNK_QUANTUM
        self.chunk_size = max(min(MIN_CHUNK, self.chunk_size), min(self.chunk_size, fitting))
        return self.chunk_size

    def _forward_seconds(self, tokens: int) -> float:
        cache = self.new_cache()
        for size in (8, tokens):  # the first forward pays for allocations
            started = time.perf_counter()
            self.lm(mx.zeros((1, size), dtype=mx.int32), cache=cache)
            mx.eval([c.state for c in cache])
        return time.perf_counter() - started

    def new_cache(self) -> list[Any]:
        if self.vision:
            from mlx_vlm.models.cache import make_prompt_cache

            cache = make_prompt_cache(self.lm)
            return self.cross.adapt(cache) if self.cross else cache
        from mlx_lm.models.cache import make_prompt_cache as make_text_cache

        return make_text_cache(self.lm)

    def _reset_position_state(self) -> None:
        # mRoPE models keep the last request's positions on the module; a new prompt
        # must not see them.
        for name in ("_rope_deltas", "_position_ids"):
            if hasattr(self.lm, name):
                setattr(self.lm, name, None)

    def start_prefill(self, prompt: PreparedPrompt, cache: list[Any], cached: int = 0,
                      rope_deltas: Any = None, text_suffix: bool = False,
                      media: tuple[str, ...] = ()) -> PrefillState:
        """Ready the prompt for chunks; ``cached`` positions are already in ``cache``.

        Vision models run their encoder here, unless the reused prefix already holds
        every media token (``text_suffix``): then only the text suffix is embedded and
        its positions follow from the cache offset and the prefix's ``rope_deltas``.
        Otherwise the vision tower's output comes from the feature cache when the same
        ``media`` (content hashes, in order) were encoded before.
        """
        self._reset_position_state()
        if not self.vision:
            return PrefillState(prompt.input_ids, None, done=cached)
        model = self.loaded.model
        if cached and text_suffix:
            suffix = prompt.input_ids[:, cached:]
            embeds = model.get_input_embeddings(suffix, None).inputs_embeds
            kwargs = {"rope_deltas": rope_deltas} if rope_deltas is not None else {}
            return PrefillState(suffix, embeds, kwargs, whole=True)
        from mlx_vlm.generate.common import _chunked_prefill_enabled

        kwargs = dict(prompt.model_kwargs)
        key = feature_key(media, prompt.pixel_values, prompt.model_kwargs)
        split = SplitTower(model.vision_tower) if hasattr(model, "vision_tower") else None
        with shadowed(model, "vision_tower", split) if split else nullcontext(), \
                self.features.around(model, key):
            output = model.get_input_embeddings(prompt.input_ids, prompt.pixel_values,
                                                mask=prompt.mask, **kwargs)
        kwargs.update({k: v for k, v in output.to_dict().items()
                       if k != "inputs_embeds" and v is not None})
        chunked = _chunked_prefill_enabled(model, input_ids=prompt.input_ids,
                                           inputs_embeds=output.inputs_embeds,
                                           prompt_cache=cache, prefill_kwargs=kwargs)
        state = PrefillState(prompt.input_ids, output.inputs_embeds, kwargs, done=cached,
                             chunked=chunked, encoder_passes=split.pieces if split else [])
        state.reusable = chunked and state.length == int(prompt.input_ids.shape[1])
        if self.cross:  # mllama: the image state rides in the cache
            self.cross.bind(cache, kwargs)
            state.chunk = self.cross.prefill_chunk(kwargs)
        self.encode_next(state)
        return state

    def encode_next(self, state: PrefillState) -> None:
        """Run the next vision-tower pass of the prompt (one image or video piece)."""
        if state.encoder_passes:
            evaluate(state.encoder_passes.pop(0))
            self.encoder_passes += 1

    def prefill_chunk(self, state: PrefillState, cache: list[Any]) -> None:
        """Put the next chunk of the prompt (never its last token) into the cache; a
        prompt that is not ``chunked`` goes in whole, as mlx-vlm does, its logits kept for
        :meth:`prefill_last`."""
        if not state.chunked:
            if state.logits is None:
                state.logits = self._forward_rest(state, cache)
            return
        n = min(state.chunk or self.chunk_size, state.remaining - 1)
        if n <= 0:
            return
        lo, hi = state.done, state.done + n
        if self.vision:
            assert state.embeds is not None
            self.lm(inputs=state.input_ids[:, lo:hi], inputs_embeds=state.embeds[:, lo:hi],
                    cache=cache, n_to_process=n, logits_to_keep=1, **state.kwargs)
        else:
            self.lm(state.input_ids[:, lo:hi], cache=cache)
        mx.eval([c.state for c in cache])
        state.done = hi

    def prefill_last(self, state: PrefillState, cache: list[Any]) -> tuple[mx.array, Any]:
        """Logits (1, V) after the whole prompt, and the request's rope deltas."""
        while state.chunked and state.remaining > (self.chunk_size if state.whole else 1):
            self.prefill_chunk(state, cache)
        logits = state.logits if state.logits is not None else self._forward_rest(state, cache)
        state.logits = None
        deltas = getattr(self.lm, "_rope_deltas", None) if self.uses_rope_deltas else None
        return logits, (first_delta(deltas) if deltas is not None else None)

    def _forward_rest(self, state: PrefillState, cache: list[Any]) -> mx.array:
        """One forward over every position not yet in the cache; the last one's logits."""
        lo = state.done
        if self.vision:
            assert state.embeds is not None
            out = self.lm(state.input_ids[:, lo:], inputs_embeds=state.embeds[:, lo:],
                          cache=cache, logits_to_keep=1, **state.kwargs)
            logits = out.logits[:, -1, :]
        else:
            logits = self.lm(state.input_ids[:, lo:], cache=cache)[:, -1, :]
        state.done = state.length
        return logits

    def prefill_rows(self, states: list[PrefillState], caches: list[list[Any]]) -> list[Any]:
        """Text models: put every prompt but its last token into the cache, for several
        prompts in one forward; return their batch cache (rows in ``states`` order).

        The prompts' remaining lengths differ: they are right-padded, and the batch cache
        turns the padding into left padding afterwards (``prepare`` / ``finalize``).
        """
        if len(states) == 1 or not all(hasattr(c, "prepare") for c in caches[0]):
            for state, cache in zip(states, caches):
                while state.remaining > 1:
                    self.prefill_chunk(state, cache)
            return merge_caches(caches)
        batch = merge_caches(caches)
        lengths = [s.remaining - 1 for s in states]
        longest = max(lengths)
        if longest > 0:
            rows = [mx.pad(s.input_ids[0, s.done:s.done + n], (0, longest - n))
                    for s, n in zip(states, lengths)]
            _right_padded(batch, lengths, lambda: self.lm(mx.stack(rows), cache=batch))
        for state, n in zip(states, lengths):
            state.done += n
        return batch

    def groupable(self, state: PrefillState) -> bool:
        """Vision models: whether this prompt's next chunk can share a forward with other
        prompts' (:meth:`prefill_group`): its encoder passes are done and its model inputs
        are ones :mod:`.vision_rows` can batch."""
        return (self.groups_vision and state.chunked and not state.encoder_passes
                and state.remaining > 1 and groupable_inputs(state.kwargs))

    def group_chunk(self, state: PrefillState) -> int:
        """Tokens the prompt's next grouped chunk takes (never its last token)."""
        return min(self.chunk_size, state.remaining - 1)

    def prefill_group(self, states: list[PrefillState], caches: list[list[Any]]
                      ) -> list[Any]:
        """Vision models: advance every prompt by its next chunk (:meth:`group_chunk`) in
        one forward; return their batch cache (rows in ``states`` order). A prompt left
        with one token has all but its last in the cache: its first decode step reads it.
        """
        batch = merge_caches(caches)
        rows = [RowChunk(s.kwargs, s.done, self.group_chunk(s), _cache_offset(c))
                for s, c in zip(states, caches)]
        longest = max(row.n for row in rows)
        embeds = []
        for state, row in zip(states, rows):
            assert state.embeds is not None
            embeds.append(mx.pad(state.embeds[0, row.lo:row.lo + row.n],
                                 [(0, longest - row.n), (0, 0)]))
        ids = mx.stack([mx.pad(s.input_ids[0, r.lo:r.lo + r.n], (0, longest - r.n))
                        for s, r in zip(states, rows)])
        _right_padded(batch, [row.n for row in rows], lambda: self.lm(
            ids, inputs_embeds=mx.stack(embeds), cache=batch, **batched_inputs(rows)))
        for state, row in zip(states, rows):
            state.done += row.n
        return batch

    def decode(self, tokens: mx.array, cache: list[Any], rope_deltas: mx.array | None
               ) -> mx.array:
        """One step for a batch: tokens (B, 1) -> logits (B, V)."""
        if self.vision:
            kwargs = {"rope_deltas": rope_deltas} if rope_deltas is not None else {}
            if self.one_pass:
                kwargs["mask"] = _padding_mask(cache)
            if self.uses_rope_deltas:
                self.lm._position_ids = None
            with self.cross.decoding() if self.cross else nullcontext():
                return self.lm(tokens, cache=cache, **kwargs).logits[:, -1, :]
        return self.lm(tokens, cache=cache)[:, -1, :]


def _padding_mask(cache: list[Any]) -> Any:
    """A decode step's mask over a batch cache's keys: each row's left padding hidden."""
    layer = cache[0]
    return layer.make_mask(1, return_array=True) if hasattr(layer, "make_mask") else None


def _chunks_allowed(model: Any) -> bool:
    """Whether mlx-vlm may split this model's prompts into chunks (its own policy)."""
    from mlx_vlm.generate.common import _chunked_prefill_enabled

    return bool(_chunked_prefill_enabled(model))


def _right_padded(batch: list[Any], lengths: list[int], forward: Callable[[], Any]) -> None:
    """Run ``forward`` over rows right-padded to the longest of ``lengths``; the batch
    cache turns the padding into left padding after it, and is evaluated."""
    longest = max(lengths)
    for layer in batch:
        layer.prepare(right_padding=[longest - n for n in lengths])
    forward()
    for layer in batch:
        layer.finalize()
    mx.eval([c.state for c in batch])


def _batch_prefillable(batch: list[Any]) -> bool:
    """Whether a merged cache can take right-padded rows and give single rows back."""
    return all(hasattr(layer, name) for layer in batch
               for name in ("prepare", "finalize", "extract"))


def _cache_offset(cache: list[Any]) -> int:
    """Positions in a single request's cache (its layers agree)."""
    return int(cache[0].offset)


def merge_caches(caches: list[list[Any]]) -> list[Any]:
    """Per-request caches -> one batch cache per layer."""
    return [layer[0].merge(list(layer)) for layer in zip(*caches)]


def extend_batch(batch: list[Any] | None, single: list[Any]) -> list[Any]:
    return join_batches(batch, merge_caches([single]))


def join_batches(batch: list[Any] | None, joined: list[Any]) -> list[Any]:
    """Append the rows of batch cache ``joined`` to ``batch`` (in place)."""
    if batch is None:
        return joined
    for mine, theirs in zip(batch, joined):
        mine.extend(theirs)
    return batch


def filter_batch(batch: list[Any], keep: list[int]) -> list[Any] | None:
    if not keep:
        return None
    for layer in batch:
        layer.filter(keep)
    return batch
