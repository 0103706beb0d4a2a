"""``/v1/chat/completions`` without the web framework.

:meth:`ChatService.prepare` validates the request, fetches and decodes its media
(per-request ``video_fps`` / ``video_max_frames``) and builds engine requests;
:meth:`complete` gathers them into one response; :meth:`stream` yields SSE lines,
ending an error with one error chunk and ``[DONE]`` instead of a broken stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..content import Resolver, VideoSampling, parse_messages, resolve_messages
from ..engine import GenerationRequest, GenerationResult
from ..media import MediaPolicy
from .errors import APIError
from .protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessageOut,
    ChoiceLogprobs,
    DeltaMessage,
    UsageInfo,
    new_id,
)
from .serving_common import (
    SSE_DONE,
    ServingContext,
    chat_logprobs,
    fan_out,
    merged_streams,
    sampling_params,
    sse,
    sse_error,
)


@dataclass
class PreparedChat:
    model: str
    requests: list[GenerationRequest]
    include_usage: bool
    logprobs: bool


class ChatService:
    def __init__(self, ctx: ServingContext, policy: MediaPolicy) -> None:
        self.ctx = ctx
        self.policy = policy

    def _response_format(self, req: ChatCompletionRequest) -> dict[str, Any]:
        fmt = req.response_format
        if fmt is None or fmt.type == "text":
            return {}
        if fmt.type == "json_object":
            return {"json_object": True}
        schema = fmt.schema_dict()
        if not isinstance(schema, dict):
            raise APIError(400, "response_format json_schema needs a 'schema' object",
                           param="response_format.json_schema")
        return {"json_schema": schema}

    def _resolver(self, req: ChatCompletionRequest) -> Resolver:
        settings = self.ctx.settings
        max_frames = req.video_max_frames or settings.default_video_max_frames
        min_frames = min(self.ctx.engine.model.video_min_frames, max_frames)
        video = VideoSampling(req.video_fps or settings.default_video_fps, max_frames,
                              min_frames)
        return Resolver(self.policy, video, self.ctx.files)

    async def prepare(self, req: ChatCompletionRequest) -> PreparedChat:
        model = self.ctx.check_model(req.model)
        refs = parse_messages(req.messages)
        max_tokens = self.ctx.max_tokens(req.max_completion_tokens, req.max_tokens)
        want_logprobs = req.logprobs or req.top_logprobs is not None
        sampling = sampling_params(
            req, max_tokens, logprobs=(req.top_logprobs or 0) if want_logprobs else None,
            **self._response_format(req))
        messages = await resolve_messages(refs, self._resolver(req), self.ctx.http)
        request = GenerationRequest(messages=messages, sampling=sampling,
                                    request_id=new_id("chatcmpl"))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return PreparedChat(model, fan_out(request, req.n), include_usage, want_logprobs)

    async def complete(self, prepared: PreparedChat) -> ChatCompletionResponse:
        start = time.perf_counter()
        results: list[GenerationResult] = []
        chunks: dict[int, list[Any]] = {i: [] for i in range(len(prepared.requests))}
        async for index, chunk in merged_streams(self.ctx.engine, prepared.requests):
            chunks[index].append(chunk)
        results = [GenerationResult.from_chunks(chunks[i]) for i in sorted(chunks)]
        choices = [ChatChoice(
            index=i, message=ChatMessageOut(content=r.text), finish_reason=r.finish_reason,
            logprobs=ChoiceLogprobs(content=chat_logprobs(r.logprobs))
            if prepared.logprobs else None,
        ) for i, r in enumerate(results)]
        prompt = results[0].prompt_tokens
        completion = sum(r.completion_tokens for r in results)
        return ChatCompletionResponse(
            id=prepared.requests[0].request_id, model=prepared.model, choices=choices,
            usage=UsageInfo(prompt_tokens=prompt, completion_tokens=completion,
                            total_tokens=prompt + completion),
            timing={"total_s": round(time.perf_counter() - start, 4)},
        )

    async def stream(self, prepared: PreparedChat) -> AsyncIterator[str]:
        rid, created = prepared.requests[0].request_id, int(time.time())

        def chunk(choices: list[ChatChunkChoice], usage: UsageInfo | None = None) -> str:
            body = ChatCompletionChunk(id=rid, created=created, model=prepared.model,
                                       choices=choices, usage=usage)
            return sse(body.model_dump(exclude_none=False))

        yield chunk([ChatChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
                     for i in range(len(prepared.requests))])
        prompt_tokens, completion = 0, {}
        try:
            async for index, piece in merged_streams(self.ctx.engine, prepared.requests):
                prompt_tokens = piece.prompt_tokens
                completion[index] = piece.completion_tokens
                if not piece.text and piece.finish_reason is None:
                    continue
                logprobs = (ChoiceLogprobs(content=chat_logprobs(piece.logprobs))
                            if prepared.logprobs else None)
                yield chunk([ChatChunkChoice(
                    index=index, delta=DeltaMessage(content=piece.text or None),
                    logprobs=logprobs, finish_reason=piece.finish_reason)])
            if prepared.include_usage:
                total = sum(completion.values())
                yield chunk([], UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=total,
                                          total_tokens=prompt_tokens + total))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            yield sse_error(exc)
        yield SSE_DONE
