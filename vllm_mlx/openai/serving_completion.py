"""``/v1/completions``: raw prompts, no chat template."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from ..engine import Engine, GenerationRequest, GenerationResult
from ..engine.registry import Lease
from ..engine.submission import Submission
from ..engine.types import TokenLogprob
from ..errors import APIError
from .protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    new_id,
)
from .serving_common import (
    SSE_DONE,
    ServingContext,
    fan_out,
    leased_submission,
    reported_logprob,
    sampling_params,
    screened_submission,
    sse,
    sse_error,
    usage_info,
)


def _completion_logprobs(items: tuple[TokenLogprob, ...], offset: int = 0
                         ) -> CompletionLogprobs:
    """Log-probs in the legacy layout; ``offset``: characters of text before the first."""
    out = CompletionLogprobs()
    for lp in items:
        out.tokens.append(lp.token)
        out.token_logprobs.append(reported_logprob(lp.logprob))
        out.top_logprobs.append({alt.token: reported_logprob(alt.logprob) for alt in lp.top})
        out.text_offset.append(offset)
        offset += len(lp.token)
    return out


@dataclass
class PreparedCompletion:
    lease: Lease  # the model's engine, kept loaded until the reply ends
    requests: list[GenerationRequest]  # n per prompt, prompts in order
    echo_texts: list[str]  # each prompt's text, with ``echo`` (else empty)
    n: int
    echo: bool
    logprobs: bool
    include_usage: bool

    @property
    def engine(self) -> Engine:
        return self.lease.engine

    @property
    def model(self) -> str:
        return self.lease.name

    def echoed(self, index: int) -> str:
        """The prompt a choice repeats before its completion (``echo``), else nothing."""
        return self.echo_texts[index // self.n] if self.echo else ""

    def prompt_tokens(self, per_choice: dict[int, int]) -> int:
        """Usage counts each prompt once, not once per choice."""
        return sum(count for index, count in per_choice.items() if index % self.n == 0)


def _prompt_list(prompt: str | list[str] | list[int] | list[list[int]]
                 ) -> list[str | tuple[int, ...]]:
    """One prompt or a batch, each text or token ids (the shapes the protocol allows)."""
    if isinstance(prompt, str):
        return [prompt]
    if prompt and isinstance(prompt[0], int):
        return [tuple(cast(list[int], prompt))]
    return [p if isinstance(p, str) else tuple(p)
            for p in cast(list[str | list[int]], prompt)]


class CompletionService:
    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    async def prepare(self, req: CompletionRequest) -> PreparedCompletion:
        lease = await self.ctx.lease(req.model, req.ttl)
        try:
            return self._prepared(req, lease)
        except BaseException:
            lease.release()
            raise

    def _prepared(self, req: CompletionRequest, lease: Lease) -> PreparedCompletion:
        if req.echo and req.logprobs is not None:
            raise APIError(400, "echo with logprobs would need the prompt's log-probs, which "
                           "this server does not compute: drop one of them", param="echo")
        sampling = sampling_params(req, self.ctx.max_tokens(req.max_tokens),
                                   logprobs=req.logprobs)
        prompts = _prompt_list(req.prompt)
        requests = [r for p in prompts for r in fan_out(GenerationRequest(
            **({"prompt": p} if isinstance(p, str) else {"prompt_ids": p}),
            sampling=sampling, request_id=new_id("cmpl")), req.n)]
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        tokenizer = lease.engine.model.tokenizer
        echo_texts = ([p if isinstance(p, str) else str(tokenizer.decode(list(p)))
                       for p in prompts] if req.echo else [])
        return PreparedCompletion(lease, requests, echo_texts, req.n, req.echo,
                                  req.logprobs is not None, include_usage)

    async def complete(self, prepared: PreparedCompletion) -> CompletionResponse:
        with prepared.lease:
            return await self._complete(prepared)

    async def _complete(self, prepared: PreparedCompletion) -> CompletionResponse:
        chunks: dict[int, list[Any]] = {i: [] for i in range(len(prepared.requests))}
        submission = await screened_submission(prepared.engine, prepared.requests)
        async for index, chunk in submission.chunks():
            chunks[index].append(chunk)
        results = [GenerationResult.from_chunks(chunks[i]) for i in sorted(chunks)]
        choices = [CompletionChoice(
            index=i, text=prepared.echoed(i) + r.text, finish_reason=r.finish_reason,
            logprobs=_completion_logprobs(r.logprobs) if prepared.logprobs else None,
        ) for i, r in enumerate(results)]
        prompt = prepared.prompt_tokens({i: r.prompt_tokens for i, r in enumerate(results)})
        cached = prepared.prompt_tokens({i: r.cached_tokens for i, r in enumerate(results)})
        completion = sum(r.completion_tokens for r in results)
        return CompletionResponse(id=prepared.requests[0].request_id, model=prepared.model,
                                  choices=choices, usage=usage_info(prompt, completion, cached))

    async def stream(self, prepared: PreparedCompletion) -> AsyncIterator[str]:
        """SSE lines, once the engine has accepted the requests (overload: a 429, a refused
        request: its 4xx, each before the response starts, not as an event)."""
        return self._events(prepared, await leased_submission(prepared.lease,
                                                              prepared.requests))

    async def _events(self, prepared: PreparedCompletion, submission: Submission
                      ) -> AsyncIterator[str]:
        rid, created = prepared.requests[0].request_id, int(time.time())
        prompt_tokens: dict[int, int] = {}
        cached: dict[int, int] = {}
        completion: dict[int, int] = {}
        offsets: dict[int, int] = {}  # text sent so far per choice (logprobs' text_offset)
        try:
            async for index, piece in submission.chunks():
                prompt_tokens[index] = piece.prompt_tokens
                cached[index] = piece.cached_tokens
                completion[index] = piece.completion_tokens
                wants_lps = prepared.logprobs and bool(piece.logprobs)
                if not piece.text and piece.finish_reason is None and not wants_lps:
                    continue
                text = piece.text if index in offsets else prepared.echoed(index) + piece.text
                logprobs = (_completion_logprobs(piece.logprobs, offsets.get(index, 0))
                            if wants_lps else None)
                offsets[index] = offsets.get(index, 0) + len(text)
                body = CompletionResponse(id=rid, created=created, model=prepared.model,
                                          choices=[CompletionChoice(
                                              index=index, text=text, logprobs=logprobs,
                                              finish_reason=piece.finish_reason)])
                # with include_usage, OpenAI's chunks carry "usage": null until the last
                yield sse(body.model_dump(exclude=None if prepared.include_usage else {"usage"}))
            if prepared.include_usage:
                yield sse(self._usage_chunk(prepared, rid, created, prompt_tokens, cached,
                                            completion))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            yield sse_error(exc)
        finally:
            prepared.lease.release()
        yield SSE_DONE

    @staticmethod
    def _usage_chunk(prepared: PreparedCompletion, rid: str, created: int,
                     prompt_tokens: dict[int, int], cached: dict[int, int],
                     completion: dict[int, int]) -> dict[str, Any]:
        prompt, total = prepared.prompt_tokens(prompt_tokens), sum(completion.values())
        usage = usage_info(prompt, total, prepared.prompt_tokens(cached))
        return CompletionResponse(id=rid, created=created, model=prepared.model, choices=[],
                                  usage=usage).model_dump()
