"""What every serving class shares: the model-name check, request -> sampling
conversion, logprob formatting, fan-out of ``n`` choices, and SSE framing.
No FastAPI here: serving classes take protocol models and return protocol models or
async iterators of SSE lines."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson

from ..config import Settings
from ..content import FileResolver
from ..engine import Engine, GenerationRequest, SamplingParams
from ..engine.registry import Lease, ModelRegistry
from ..engine.submission import Submission
from ..engine.types import TokenLogprob
from ..errors import APIError, excerpt, to_api_error
from .protocol import (
    ChatChunkChoice,
    DeltaMessage,
    SamplingFields,
    TokenLogprobOut,
    TopLogprob,
    UsageInfo,
)
from .validation import OffLoop


@dataclass
class ServingContext:
    """Dependencies of the serving classes, built once by :func:`~.routes.install_openai`;
    ``http`` is the app's shared client, set by its lifespan while it runs."""

    engine: Engine
    settings: Settings
    http: httpx.AsyncClient | None = None  # set for the app's lifetime by its lifespan
    files: FileResolver | None = None
    extra_names: tuple[str, ...] = ()  # other features' names for the model (VLM Run's)
    checks: OffLoop = field(default_factory=OffLoop)  # costly request checks, off the loop
    # every model the server may serve; ``engine`` is the default's (a registry of it alone
    # unless one is given)
    models: ModelRegistry | None = None
    # the routes the models answer on (features that serve through chat add theirs)
    endpoints: list[str] = field(default_factory=lambda: [
        "/v1/chat/completions", "/v1/completions"])

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = ModelRegistry.of(self.engine, self.settings.served_name)
        self.models.add_names(self.models.default_name, tuple(sorted(self.model_names)))

    @property
    def registry(self) -> ModelRegistry:
        assert self.models is not None
        return self.models

    @property
    def model_names(self) -> set[str]:
        """The default model's names."""
        loaded = self.engine.model
        return {self.settings.served_name, "default", loaded.reference, str(loaded.path),
                *loaded.capabilities.aliases, *self.extra_names}

    def check_model(self, name: str | None) -> str:
        """The served name if ``name`` names the default model; 404 otherwise (features
        that serve the default model only: chat and completions serve any, see
        :meth:`lease`)."""
        if name is not None and name not in self.model_names:
            raise APIError(404, f"The model {excerpt(name)} does not exist. This server serves "
                           f"'{self.settings.served_name}' (also answers to 'default').",
                           param="model", code="model_not_found")
        return self.settings.served_name

    async def lease(self, name: str | None, ttl_s: float | None = None) -> Lease:
        """The engine of the model ``name`` names, loaded first if needed, kept loaded
        until the lease is released; 404 for a name no model answers to."""
        return await self.registry.acquire(name, ttl_s)

    def max_tokens(self, *candidates: int | None) -> int:
        """The first value given, else the server's default, else its limit (OpenAI sets
        no default: a reply runs until it ends, or the context does). A value above the
        limit is capped to it, not refused: clients send large ones (32000) to mean "as
        long as it takes"; the engine ends a reply where the context ends in any case."""
        limit = self.settings.max_tokens_limit
        value = next((c for c in (*candidates, self.settings.default_max_tokens)
                      if c is not None), limit)
        return min(value, limit)


def _logit_bias(raw: dict[str, float] | None) -> dict[int, float] | None:
    if not raw:
        return None
    try:
        return {int(k): float(v) for k, v in raw.items()}
    except ValueError:
        raise APIError(400, "logit_bias keys must be token ids", param="logit_bias") from None


_SEED_SPACE = 2**64  # the engine's PRNG keys are unsigned 64-bit


def engine_seed(seed: int | None) -> int | None:
    """OpenAI seeds are any integer (negative too): fold them into the engine's key space."""
    return None if seed is None else seed % _SEED_SPACE


def sampling_params(req: SamplingFields, max_tokens: int, **extra: Any) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=max(req.top_k or 0, 0), min_p=req.min_p or 0.0,
        repetition_penalty=req.repetition_penalty,
        presence_penalty=req.presence_penalty or None,
        frequency_penalty=req.frequency_penalty or None,
        seed=engine_seed(req.seed), stop=req.stop_list(), logit_bias=_logit_bias(req.logit_bias),
        ignore_eos=req.ignore_eos, min_tokens=req.min_tokens,
        skip_special_tokens=req.skip_special_tokens, **extra,
    )


def fan_out(request: GenerationRequest, n: int) -> list[GenerationRequest]:
    """``n`` independent requests; seeded ones get distinct, reproducible seeds."""
    if n == 1:
        return [request]
    seed = request.sampling.seed
    return [replace(request, sampling=replace(
        request.sampling, seed=None if seed is None else engine_seed(seed + i)))
        for i in range(n)]


ZERO_PROBABILITY_LOGPROB = -9999.0  # OpenAI's stand-in for -inf, which JSON cannot carry


def reported_logprob(value: float) -> float:
    """-inf (a token masked out, e.g. by a grammar) as OpenAI reports it."""
    return ZERO_PROBABILITY_LOGPROB if value == -math.inf else value


def chat_logprobs(items: Sequence[TokenLogprob]) -> list[TokenLogprobOut]:
    return [TokenLogprobOut(
        token=lp.token, logprob=reported_logprob(lp.logprob), bytes=list(lp.raw),
        top_logprobs=[TopLogprob(token=alt.token, logprob=reported_logprob(alt.logprob),
                                 bytes=list(alt.raw)) for alt in lp.top],
    ) for lp in items]


def usage_info(prompt: int, completion: int, cached: int = 0) -> UsageInfo:
    details = {"cached_tokens": cached} if cached else None
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion, prompt_tokens_details=details)


def timing(start: float, first: float | None, tokens: int) -> dict[str, float]:
    """Per-response timing: time to first token, total, and decode rate after it."""
    end = time.perf_counter()
    out = {"total_s": round(end - start, 4)}
    if first is not None:
        out["ttft_s"] = round(first - start, 4)
        if tokens > 1 and end > first:
            out["decode_tokens_per_s"] = round((tokens - 1) / (end - first), 2)
    return out


def sse(payload: dict[str, Any] | str, event: str | None = None) -> str:
    """One server-sent event: ``payload`` as compact JSON, named ``event`` if given."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n" if event else f"data: {data}\n\n"


class ChunkRenderer:
    """The SSE events of one chat stream, rendered cheaply: the envelope (``id``,
    ``object``, ``created``, ``model``) is encoded once, each choice by pydantic's compiled
    serializer, the whole with orjson; the JSON is the same as ``sse(ChatCompletionChunk(
    ...).model_dump(exclude_none=False))`` would give (non-ASCII text as UTF-8, not
    ``\\u`` escapes). Per token this is a quarter of the cost of building and dumping the
    chunk model, and it runs on the event loop, which shares the interpreter with the
    engine's thread."""

    _MARK = "\ue000"  # stands for the value in a one-field delta's JSON

    def __init__(self, request_id: str, created: int, model: str) -> None:
        head = orjson.dumps({"id": request_id, "object": "chat.completion.chunk",
                             "created": created, "model": model})
        self._head = b"data: " + head[:-1] + b',"choices":['
        self._templates: dict[tuple[str, int], list[bytes]] = {}

    def __call__(self, choices: Sequence[ChatChunkChoice], usage: UsageInfo | None = None
                 ) -> str:
        parts = b",".join(choice.__pydantic_serializer__.to_json(choice) for choice in choices)
        tail = b"null" if usage is None else usage.__pydantic_serializer__.to_json(usage)
        return (self._head + parts + b'],"usage":' + tail + b"}\n\n").decode()

    def text(self, index: int, text: str) -> str:
        """``self([ChatChunkChoice(index=index, delta=DeltaMessage(content=text))])``, the
        same JSON, without building the models: most events of a plain stream are this."""
        return self._delta_event("content", index, text)

    def reasoning(self, index: int, text: str) -> str:
        """As :meth:`text`, for ``DeltaMessage(reasoning_content=text, reasoning=text)``."""
        return self._delta_event("reasoning", index, text)

    def _delta_event(self, kind: str, index: int, value: str) -> str:
        parts = self._templates.get((kind, index)) or self._template(kind, index)
        return orjson.dumps(value).join(parts).decode()

    def _template(self, kind: str, index: int) -> list[bytes]:
        """The event of a one-field delta, split where the value goes (the choice's JSON is
        the model's own, so the two paths stay the same)."""
        mark = self._MARK
        delta = (DeltaMessage(content=mark) if kind == "content"
                 else DeltaMessage(reasoning_content=mark, reasoning=mark))
        choice = ChatChunkChoice(index=index, delta=delta)
        parts = choice.__pydantic_serializer__.to_json(choice).split(orjson.dumps(mark))
        parts[0] = self._head + parts[0]
        parts[-1] += b'],"usage":null}\n\n'
        self._templates[(kind, index)] = parts
        return parts


def sse_error(exc: BaseException) -> str:
    return sse(to_api_error(exc).body())


SSE_DONE = sse("[DONE]")


async def releasing(lease: Lease, events: AsyncIterator[str]) -> AsyncIterator[str]:
    """``events``, then ``lease`` released (also when the stream is left early)."""
    try:
        async for event in events:
            yield event
    finally:
        lease.release()


async def screened_submission(engine: Engine, requests: list[GenerationRequest]
                              ) -> Submission:
    """Queue ``requests`` once long prompts are known to fit the context (checked off the
    event loop and the engine's thread: see ``Engine.screen``)."""
    preparations = await engine.screen(requests)
    return engine.submit(requests, preparations)


async def leased_submission(lease: Lease, requests: list[GenerationRequest]) -> Submission:
    """:func:`accepted_submission` on the lease's engine; the lease is released when the
    engine refuses the requests (a stream that starts releases it when it ends)."""
    try:
        return await accepted_submission(lease.engine, requests)
    except BaseException:
        lease.release()
        raise


async def accepted_submission(engine: Engine, requests: list[GenerationRequest]) -> Submission:
    """Queue ``requests`` and wait until the engine has accepted them: an overloaded engine
    (429) or a request it refuses (4xx) raises here, before any response starts."""
    submission = await screened_submission(engine, requests)
    await submission.accepted()
    return submission
