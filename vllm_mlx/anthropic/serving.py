"""``/v1/messages`` and ``/v1/messages/count_tokens`` without the web framework.

:class:`MessagesService` runs a Messages request on the OpenAI chat feature's
:class:`~vllm_mlx.openai.serving_chat.ChatService` (same engine, media policy, tool
checking and forced-call grammars): :meth:`~MessagesService.prepare` translates it
(:mod:`.translate`) and lets the chat service validate it and resolve its media;
:meth:`~MessagesService.complete` gathers one reply as a ``message`` (its reasoning, read
as chat reads it, a ``thinking`` block first when the request enabled ``thinking``, and
left out otherwise);
:meth:`~MessagesService.stream` yields Anthropic's SSE events (:mod:`.streaming`) once the
engine has accepted the request, so a refusal is a status, not an event;
:meth:`~MessagesService.count_tokens` counts the prompt the template renders (text models:
tokenized off the event loop; images on a vision model: the engine's own count, from a
one-token generation). Errors are :class:`~vllm_mlx.errors.APIError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import Engine, GenerationRequest, GenerationResult
from ..engine.preparation import Preparation
from ..engine.types import ImagePart, VideoPart
from ..openai.protocol import ChatCompletionRequest
from ..openai.reasoning import template_source
from ..openai.serving_chat import ChatService, PreparedChat
from ..openai.serving_common import leased_submission, releasing, screened_submission
from ..openai.tool_calls import ToolCall
from .protocol import (
    CountTokensRequest,
    CountTokensResponse,
    MessagesRequest,
    MessagesResponse,
    ResponseText,
    ResponseThinking,
    ResponseToolUse,
    Usage,
    new_message_id,
    thinking_signature,
)
from .streaming import MessageEvents, stop_reason, tool_input
from .translate import model_name, to_chat_request


@dataclass
class PreparedMessages:
    chat: PreparedChat
    stops: tuple[str, ...]
    id: str
    show_thinking: bool = False  # ``thinking`` enabled: reasoning becomes thinking blocks


def matched_stop(tokenizer: Any, token_ids: Sequence[int], stops: Sequence[str]
                 ) -> str | None:
    """The stop sequence that ended a reply, if one did: the engine leaves it out of the
    text, so look for the first one in the decoded tokens (an end-of-sequence token is
    not among them)."""
    if not stops or not token_ids:
        return None
    text = tokenizer.decode(list(token_ids))
    found = [(i + len(s), i, s) for s in stops if s and (i := text.find(s)) >= 0]
    return min(found)[2] if found else None  # the first one complete stopped the reply


class MessagesService:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat
        self.ctx = chat.ctx

    async def _chat_request(self, req: CountTokensRequest) -> ChatCompletionRequest:
        """The chat request; whether the named model's template has a no-think switch
        decides how ``thinking`` disabled is said (the model is loaded first if needed)."""
        settings = self.ctx.settings
        with await self.ctx.lease(model_name(req.model, settings.served_name)) as lease:
            switch = "enable_thinking" in template_source(lease.engine.model)
        return to_chat_request(req, settings.served_name, settings.max_tokens_limit, switch)

    async def prepare(self, req: MessagesRequest) -> PreparedMessages:
        chat = await self.chat.prepare(await self._chat_request(req))
        return PreparedMessages(chat, tuple(req.stop_sequences or ()), new_message_id(),
                                req.thinks)

    def _split(self, prepared: PreparedMessages, result: GenerationResult
               ) -> tuple[str | None, str, list[ToolCall]]:
        """A finished reply's reasoning (None: not asked for, or none), text and calls."""
        reasoning, text, calls = prepared.chat.parts(result)
        return (reasoning if prepared.show_thinking else None), text, calls

    async def complete(self, prepared: PreparedMessages) -> MessagesResponse:
        with prepared.chat.lease:
            return await self._complete(prepared)

    async def _complete(self, prepared: PreparedMessages) -> MessagesResponse:
        engine = prepared.chat.engine
        submission = await screened_submission(engine, prepared.chat.requests)
        result = GenerationResult.from_chunks([c async for _, c in submission.chunks()])
        if prepared.chat.on_reply is not None:
            prepared.chat.on_reply(result.text)
        reasoning, text, calls = self._split(prepared, result)
        stop = (matched_stop(engine.model.tokenizer, result.token_ids, prepared.stops)
                if result.finish_reason == "stop" and not calls else None)
        content: list[ResponseThinking | ResponseText | ResponseToolUse] = [ResponseThinking(
            thinking=reasoning, signature=thinking_signature(reasoning))] if reasoning else []
        content += [ResponseText(text=text)] if text or not calls else []
        content += [ResponseToolUse(id=c.id, name=c.name, input=tool_input(c.arguments))
                    for c in calls]
        return MessagesResponse(
            id=prepared.id, model=prepared.chat.model, content=content, stop_sequence=stop,
            stop_reason=stop_reason(result.finish_reason, bool(calls), stop),
            usage=Usage(input_tokens=result.prompt_tokens,
                        output_tokens=result.completion_tokens,
                        cache_read_input_tokens=result.cached_tokens or None))

    async def stream(self, prepared: PreparedMessages) -> AsyncIterator[str]:
        """Anthropic's SSE events, once the engine has accepted the request."""
        lease = prepared.chat.lease
        submission = await leased_submission(lease, prepared.chat.requests)
        tokenizer = lease.engine.model.tokenizer
        events = MessageEvents(prepared.id, prepared.chat.model, prepared.chat.tools,
                               lambda ids: matched_stop(tokenizer, ids, prepared.stops),
                               prepared.chat.reasoning, prepared.show_thinking)
        return releasing(lease, events.run(submission, prepared.chat.on_reply))

    async def count_tokens(self, req: CountTokensRequest) -> CountTokensResponse:
        chat = await self.chat.prepare(await self._chat_request(req))
        with chat.lease:
            return await _count(chat.engine, chat.requests[0])


async def _count(engine: Engine, request: GenerationRequest) -> CountTokensResponse:
    """The prompt's tokens: counted by the tokenizer, or (images on a vision model) by
    the engine, which prefills it for one token."""
    loaded = engine.model
    if not (loaded.is_vision and _has_media(request)):
        counted = await asyncio.to_thread(Preparation().measure, loaded, request)
        if counted is not None:
            return CountTokensResponse(input_tokens=counted)
    submission = await screened_submission(engine, [request])
    chunks = [c async for _, c in submission.chunks()]
    return CountTokensResponse(input_tokens=chunks[-1].prompt_tokens)


def _has_media(request: GenerationRequest) -> bool:
    return any(isinstance(p, (ImagePart, VideoPart)) for m in request.messages
               for p in m.content)
