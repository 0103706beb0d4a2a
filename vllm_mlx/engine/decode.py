"""The per-request decode loop: token steps in, :class:`GenerationChunk` out.

Layered like mlx-lm: :func:`token_steps` yields ``(token, logprobs)`` from the library's
own ``generate_step`` (mlx-vlm for vision models, mlx-lm for text), so greedy output is
exactly what ``mlx_vlm.generate`` / ``mlx_lm.generate`` give; :func:`stream_chunks`
adds detokenization, end-of-sequence and stop strings, logprobs, ``max_tokens`` and
cancellation. Runs on the engine's owner thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._mlx import mx
from .inputs import PreparedPrompt, prepare_prompt
from .loader import LoadedModel
from .sampling import LogitsProcessor, StopMatcher, eos_suppressor, token_logprob
from .types import FinishReason, GenerationChunk, GenerationRequest, SamplingParams


def eos_token_ids(loaded: LoadedModel) -> list[int]:
    tokenizer = loaded.tokenizer
    criteria = getattr(tokenizer, "stopping_criteria", None)
    ids = getattr(criteria, "eos_token_ids", None) or getattr(tokenizer, "eos_token_ids", None)
    if ids is None:
        single = getattr(tokenizer, "eos_token_id", None)
        ids = [single] if single is not None else []
    return [int(i) for i in ids]


def _vision_steps(loaded: LoadedModel, prompt: PreparedPrompt, sampling: SamplingParams,
                  processors: list[LogitsProcessor]) -> Iterator[tuple[Any, mx.array]]:
    from mlx_vlm.generate import generate_step

    return generate_step(
        prompt.input_ids, loaded.model, prompt.pixel_values, prompt.mask,
        max_tokens=sampling.max_tokens, temperature=sampling.temperature,
        top_p=sampling.top_p, top_k=sampling.top_k, min_p=sampling.min_p,
        repetition_penalty=sampling.repetition_penalty,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty, logit_bias=sampling.logit_bias,
        logits_processors=processors or None, seed=sampling.seed, **prompt.model_kwargs,
    )


def _text_steps(loaded: LoadedModel, prompt: PreparedPrompt, sampling: SamplingParams,
                processors: list[LogitsProcessor]) -> Iterator[tuple[Any, mx.array]]:
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    if sampling.seed is not None:
        mx.random.seed(sampling.seed)
    sampler = make_sampler(sampling.temperature, top_p=sampling.top_p, min_p=sampling.min_p,
                           top_k=sampling.top_k)
    library_processors = make_logits_processors(
        sampling.logit_bias, sampling.repetition_penalty,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
    )
    return generate_step(prompt.input_ids[0], loaded.model, max_tokens=sampling.max_tokens,
                         sampler=sampler, logits_processors=library_processors + processors)


def token_steps(loaded: LoadedModel, prompt: PreparedPrompt, sampling: SamplingParams,
                extra: list[LogitsProcessor] | None = None) -> Iterator[tuple[int, mx.array]]:
    """Token ids and their log-probability vectors, straight from the library."""
    processors = list(extra or [])
    suppress = eos_suppressor(eos_token_ids(loaded), sampling.min_tokens, sampling.ignore_eos)
    if suppress is not None:
        processors.append(suppress)
    steps = (_vision_steps if loaded.is_vision else _text_steps)(
        loaded, prompt, sampling, processors)
    for token, logprobs in steps:
        yield (int(token.item()) if hasattr(token, "item") else int(token)), logprobs


def _detokenizer(loaded: LoadedModel) -> Any:
    if loaded.is_vision:
        from mlx_vlm.tokenizer_utils import make_streaming_detokenizer

        return make_streaming_detokenizer(loaded.processor)
    return loaded.tokenizer.detokenizer


def constraint_processors(loaded: LoadedModel, sampling: SamplingParams
                          ) -> list[LogitsProcessor]:
    if sampling.json_schema is None and not sampling.json_object:
        return []
    from .constrained import json_logits_processor

    return [json_logits_processor(loaded.grammar_compiler, sampling.json_schema)]


def stream_chunks(
    loaded: LoadedModel,
    request: GenerationRequest,
    is_cancelled: Callable[[], bool] = lambda: False,
    extra_processors: list[LogitsProcessor] | None = None,
) -> Iterator[GenerationChunk]:
    """Generate for one request; the last chunk carries ``finish_reason`` and usage."""
    sampling = request.sampling
    prompt = prepare_prompt(loaded, request)
    eos = set(eos_token_ids(loaded))
    detokenizer = _detokenizer(loaded)
    stops = StopMatcher(sampling.stop)
    count, finish = 0, "length"
    processors = constraint_processors(loaded, sampling) + list(extra_processors or [])
    steps = token_steps(loaded, prompt, sampling, processors)
    try:
        for token, logprobs in steps:
            if is_cancelled():
                finish = "cancelled"
                break
            if token in eos and not sampling.ignore_eos:
                finish = "stop"
                break
            count += 1
            detokenizer.add_token(token)
            text, stopped = stops.feed(detokenizer.last_segment)
            lps = ((token_logprob(loaded.tokenizer, token, logprobs, sampling.logprobs),)
                   if sampling.logprobs is not None else ())
            if stopped:
                yield _last(text, (token,), lps, "stop", prompt.num_tokens, count)
                return
            if count >= sampling.max_tokens:
                yield _last(text + _finish(detokenizer, stops), (token,), lps, "length",
                            prompt.num_tokens, count)
                return
            yield GenerationChunk(text=text, token_ids=(token,), logprobs=lps,
                                  prompt_tokens=prompt.num_tokens, completion_tokens=count)
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()
    yield _last(_finish(detokenizer, stops), (), (), finish, prompt.num_tokens, count)


def _finish(detokenizer: Any, stops: StopMatcher) -> str:
    detokenizer.finalize()
    text, stopped = stops.feed(detokenizer.last_segment)
    return text if stopped else text + stops.flush()


def _last(text: str, tokens: tuple[int, ...], lps: tuple, reason: FinishReason,
          prompt_tokens: int, count: int) -> GenerationChunk:
    return GenerationChunk(text=text, token_ids=tokens, logprobs=lps, finish_reason=reason,
                           prompt_tokens=prompt_tokens, completion_tokens=count)
