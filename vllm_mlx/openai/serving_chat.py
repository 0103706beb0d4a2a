"""``/v1/chat/completions`` without the web framework.

:meth:`ChatService.prepare` validates the request (tools' schemas and JSON / tool-call
grammars on the validation threads, off the event loop), fetches and decodes its media
(per-request ``video_fps`` / ``video_max_frames``) and builds engine requests;
:meth:`complete` gathers them into one response; :meth:`stream` yields SSE lines,
ending an error with one error chunk and ``[DONE]`` instead of a broken stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..content import (
    FileResolver,
    MessageRef,
    Resolver,
    VideoSampling,
    parse_messages,
    resolve_messages,
)
from ..engine import GenerationChunk, GenerationRequest, GenerationResult, SamplingParams
from ..engine.sampler import check_sampling
from ..engine.submission import Submission
from ..errors import APIError
from ..media import MediaPolicy
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
    accepted_submission,
    chat_logprobs,
    fan_out,
    sampling_params,
    screened_submission,
    sse,
    sse_error,
    timing,
    usage_info,
)
from .tool_calls import ToolCall, ToolCallStream, ToolSet

PARSE_ON_LOOP = 1000  # messages parsed on the event loop; longer lists go to the check pool

OnReply = Callable[[str], None]


class ChatHook(Protocol):
    """A feature's say in a chat request (e.g. VLM Run domains and sessions): it may rewrite
    the request and its parsed messages, and get the first choice's reply text."""

    def begin(self, req: ChatCompletionRequest, refs: tuple[MessageRef, ...]
              ) -> tuple[ChatCompletionRequest, tuple[MessageRef, ...], OnReply | None]: ...


@dataclass
class PreparedChat:
    model: str
    requests: list[GenerationRequest]
    include_usage: bool
    logprobs: bool
    on_reply: OnReply | None = None
    tools: ToolSet | None = None  # set when replies are read for tool calls

    def message(self, result: GenerationResult) -> tuple[ChatMessageOut, str]:
        """A finished choice's message and finish reason (``tool_calls`` when it called)."""
        content, calls = (self.tools.split(result.text, result.finish_reason == "length")
                          if self.tools is not None else (result.text, []))
        if not calls:
            return ChatMessageOut(content=content), result.finish_reason
        finish = "tool_calls" if result.finish_reason == "stop" else result.finish_reason
        return ChatMessageOut(content=content or None,
                              tool_calls=[c.to_openai() for c in calls]), finish


@dataclass(frozen=True)
class ChatExtension:
    """What another feature adds to chat, given when the chat feature is built: a
    :class:`ChatHook`, a resolver of ``input_file`` ids, and folders media may be read from."""

    hook: ChatHook | None = None
    files: FileResolver | None = None
    media_roots: tuple[Path, ...] = ()
    model_names: tuple[str, ...] = ()  # more names for the model (listed in /v1/models)


class ChatService:
    def __init__(self, ctx: ServingContext, policy: MediaPolicy, *,
                 hook: ChatHook | None = None) -> None:
        self.ctx = ctx
        self.policy = policy
        self.hook = hook

    def _response_format(self, req: ChatCompletionRequest) -> dict[str, Any]:
        fmt = req.response_format
        if fmt is None or fmt.type == "text":
            return {}
        # with EOS suppressed, a finished JSON value leaves no allowed token: output breaks
        if req.ignore_eos or req.min_tokens:
            param = "ignore_eos" if req.ignore_eos else "min_tokens"
            raise APIError(400, f"{param} cannot be combined with a JSON response_format: "
                           "the output must be able to end where the JSON ends", param=param)
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
        refs, on_reply = await self._parsed(req.messages), None
        if self.hook is not None:
            req, refs, on_reply = self.hook.begin(req, refs)
        model = self.ctx.check_model(req.model)
        max_tokens = self.ctx.max_tokens(req.max_completion_tokens, req.max_tokens)
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs set to true", param="top_logprobs")
        want_logprobs = bool(req.logprobs)
        tools = await self._tools(req)
        sampling = sampling_params(
            req, max_tokens, logprobs=(req.top_logprobs or 0) if want_logprobs else None,
            **self._response_format(req), **self._tool_grammar(req, tools))
        await self._compile_constraints(sampling)
        if tools is not None and tools.forced:  # the grammar ends the call, not stop strings
            sampling = replace(sampling, stop=())
        messages = await resolve_messages(refs, self._resolver(req), self.ctx.http)
        request = GenerationRequest(messages=messages, sampling=sampling,
                                    request_id=new_id("chatcmpl"),
                                    tools=tools.tools if tools else ())
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return PreparedChat(model, fan_out(request, req.n), include_usage, want_logprobs,
                            on_reply, tools if tools and tools.parses_calls else None)

    async def _parsed(self, messages: list[Any]) -> tuple[MessageRef, ...]:
        """The messages' content parts; a long conversation is parsed off the event loop
        (100k messages took it 2 s, holding every client)."""
        if len(messages) < PARSE_ON_LOOP:
            return parse_messages(messages)
        return await self.ctx.checks.run(parse_messages, messages)

    async def _tools(self, req: ChatCompletionRequest) -> ToolSet | None:
        """The request's tools, their schemas checked off the event loop (cost grows with
        them: see :mod:`.validation`)."""
        parallel = req.parallel_tool_calls is not False
        if not req.tools:
            return ToolSet.of(req.tools, req.tool_choice, parallel)
        return await self.ctx.checks.run(ToolSet.of, req.tools, req.tool_choice, parallel)

    async def _compile_constraints(self, sampling: SamplingParams) -> None:
        """Compile a JSON schema or a forced call's grammar off the event loop; the model's
        compiler remembers it, so the engine's check when the request is queued is quick."""
        if sampling.json_schema is None and not sampling.json_object \
                and sampling.grammar is None:
            return
        loaded = self.ctx.engine.model
        await self.ctx.checks.run(check_sampling, sampling, lambda: loaded.grammar_compiler,
                       vocab_size=loaded.vocab_size)

    def _tool_grammar(self, req: ChatCompletionRequest, tools: ToolSet | None
                      ) -> dict[str, Any]:
        """A forced call (tool_choice required or named) is decoded under its grammar."""
        if tools is None or not tools.forced:
            return {}
        if req.response_format is not None and req.response_format.type != "text":
            raise APIError(400, "tool_choice that forces a call cannot be combined with a JSON "
                           "response_format", param="tool_choice")
        return {"grammar": tools.grammar(self.ctx.engine.model.tokenizer)}

    async def complete(self, prepared: PreparedChat) -> ChatCompletionResponse:
        start, first = time.perf_counter(), None
        chunks: dict[int, list[Any]] = {i: [] for i in range(len(prepared.requests))}
        submission = await screened_submission(self.ctx.engine, prepared.requests)
        async for index, chunk in submission.chunks():
            first = first or time.perf_counter()
            chunks[index].append(chunk)
        results = [GenerationResult.from_chunks(chunks[i]) for i in sorted(chunks)]
        if prepared.on_reply is not None:
            prepared.on_reply(results[0].text)
        choices = [ChatChoice(
            index=i, message=message, finish_reason=finish,
            logprobs=ChoiceLogprobs(content=chat_logprobs(r.logprobs))
            if prepared.logprobs else None,
        ) for i, r in enumerate(results) for message, finish in [prepared.message(r)]]
        prompt = results[0].prompt_tokens
        completion = sum(r.completion_tokens for r in results)
        return ChatCompletionResponse(
            id=prepared.requests[0].request_id, model=prepared.model, choices=choices,
            usage=usage_info(prompt, completion, results[0].cached_tokens),
            timing=timing(start, first, completion),
        )

    async def stream(self, prepared: PreparedChat) -> AsyncIterator[str]:
        """SSE lines, once the engine has accepted the requests: an overloaded engine (429)
        or a request it refuses (a prompt too long, tools its template ignores: 400) is a
        status before the response starts, not an error event inside a 200."""
        return self._events(prepared, await accepted_submission(self.ctx.engine,
                                                                prepared.requests))

    async def _events(self, prepared: PreparedChat, submission: Submission
                      ) -> AsyncIterator[str]:
        rid, created = prepared.requests[0].request_id, int(time.time())

        def chunk(choices: list[ChatChunkChoice], usage: UsageInfo | None = None) -> str:
            body = ChatCompletionChunk(id=rid, created=created, model=prepared.model,
                                       choices=choices, usage=usage)
            return sse(body.model_dump(exclude_none=False))

        yield chunk([ChatChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
                     for i in range(len(prepared.requests))])
        prompt_tokens, completion, reply = 0, {}, []
        readers = ({i: ToolCallStream(prepared.tools) for i in range(len(prepared.requests))}
                   if prepared.tools is not None else {})
        try:
            async for index, piece in submission.chunks():
                prompt_tokens, cached = piece.prompt_tokens, piece.cached_tokens
                completion[index] = piece.completion_tokens
                if index == 0:
                    reply.append(piece.text)
                for choice in _deltas(index, piece, readers.get(index), prepared.logprobs):
                    yield chunk([choice])
            if prepared.on_reply is not None:
                prepared.on_reply("".join(reply))
            if prepared.include_usage:
                yield chunk([], usage_info(prompt_tokens, sum(completion.values()), cached))
        except Exception as exc:  # reported in-band: the HTTP status is already sent
            yield sse_error(exc)
        yield SSE_DONE


def _deltas(index: int, piece: GenerationChunk, reader: ToolCallStream | None,
            logprobs: bool) -> list[ChatChunkChoice]:
    """What one engine chunk of a choice sends: text (less what may be a tool call), its
    logprobs, and at the end any tool calls, then the finish reason."""
    text, calls = piece.text, list[ToolCall]()
    if reader is not None:
        text = reader.feed(piece.text)
        if piece.finish_reason is not None:
            rest, calls = reader.finish(piece.finish_reason == "length")
            text += rest
    lps = (ChoiceLogprobs(content=chat_logprobs(piece.logprobs))
           if logprobs and piece.logprobs else None)
    if calls:
        finish = "tool_calls" if piece.finish_reason == "stop" else piece.finish_reason
        return [ChatChunkChoice(index=index, logprobs=lps, delta=DeltaMessage(
                    content=text or None,
                    tool_calls=[c.to_openai(k) for k, c in enumerate(calls)])),
                ChatChunkChoice(index=index, delta=DeltaMessage(), finish_reason=finish)]
    if not text and piece.finish_reason is None and lps is None:
        return []
    return [ChatChunkChoice(index=index, delta=DeltaMessage(content=text or None),
                            logprobs=lps, finish_reason=piece.finish_reason)]
