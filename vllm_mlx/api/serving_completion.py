"""``/v1/completions`` (raw prompts, no chat template) and ``/v1/models``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..engine import GenerationRequest, GenerationResult
from ..engine.types import TokenLogprob
from .protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    ModelCapabilities,
    ModelCard,
    ModelList,
    UsageInfo,
    new_id,
)
from .serving_common import (
    SSE_DONE,
    ServingContext,
    fan_out,
    merged_streams,
    reported_logprob,
    sampling_params,
    sse,
    sse_error,
)


def _completion_logprobs(items: tuple[TokenLogprob, ...]) -> CompletionLogprobs:
    out = CompletionLogprobs()
    offset = 0
    for lp in items:
        out.tokens.append(lp.token)
        out.token_logprobs.append(reported_logprob(lp.logprob))
        out.top_logprobs.append({t: reported_logprob(v) for _, t, v in lp.top})
        out.text_offset.append(offset)
        offset += len(lp.token)
    return out


class CompletionService:
    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    def prepare(self, req: CompletionRequest) -> tuple[str, list[GenerationRequest]]:
        model = self.ctx.check_model(req.model)
        sampling = sampling_params(req, self.ctx.max_tokens(req.max_tokens),
                                   logprobs=req.logprobs)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        requests = [r for p in prompts for r in fan_out(
            GenerationRequest(prompt=p, sampling=sampling, request_id=new_id("cmpl")), req.n)]
        return model, requests

    async def complete(self, model: str, requests: list[GenerationRequest],
                       with_logprobs: bool) -> CompletionResponse:
        chunks: dict[int, list[Any]] = {i: [] for i in range(len(requests))}
        async for index, chunk in merged_streams(self.ctx.engine, requests):
            chunks[index].append(chunk)
        results = [GenerationResult.from_chunks(chunks[i]) for i in sorted(chunks)]
        choices = [CompletionChoice(
            index=i, text=r.text, finish_reason=r.finish_reason,
            logprobs=_completion_logprobs(r.logprobs) if with_logprobs else None,
        ) for i, r in enumerate(results)]
        per_prompt = {r.request_id: res.prompt_tokens for r, res in zip(requests, results)}
        prompt = sum(per_prompt.values())
        completion = sum(r.completion_tokens for r in results)
        return CompletionResponse(id=requests[0].request_id, model=model, choices=choices,
                                  usage=UsageInfo(prompt_tokens=prompt,
                                                  completion_tokens=completion,
                                                  total_tokens=prompt + completion))

    async def stream(self, model: str, requests: list[GenerationRequest], include_usage: bool
                     ) -> AsyncIterator[str]:
        rid, created = requests[0].request_id, int(time.time())
        prompt_tokens, completion = 0, {}
        try:
            async for index, piece in merged_streams(self.ctx.engine, requests):
                prompt_tokens = piece.prompt_tokens
                completion[index] = piece.completion_tokens
                if not piece.text and piece.finish_reason is None:
                    continue
                body = CompletionResponse(id=rid, created=created, model=model, choices=[
                    CompletionChoice(index=index, text=piece.text,
                                     finish_reason=piece.finish_reason)])
                yield sse(body.model_dump(exclude={"usage"}))
            if include_usage:
                total = sum(completion.values())
                usage = UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=total,
                                  total_tokens=prompt_tokens + total)
                body = CompletionResponse(id=rid, created=created, model=model, choices=[],
                                          usage=usage)
                yield sse(body.model_dump())
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            yield sse_error(exc)
        yield SSE_DONE


def model_list(ctx: ServingContext) -> ModelList:
    loaded = ctx.engine.model
    caps = loaded.capabilities
    card = ModelCard(
        id=ctx.settings.served_name, root=str(loaded.path), aliases=list(caps.aliases),
        capabilities=ModelCapabilities(vision=caps.vision, video=caps.video,
                                       native_video=caps.native_video,
                                       max_context=caps.context_length),
        max_model_len=caps.context_length, random_weights=loaded.random_weights,
        group_size=ctx.settings.group_size,
        parallel=ctx.settings.parallel_mode,  # type: ignore[arg-type]
    )
    return ModelList(data=[card])
