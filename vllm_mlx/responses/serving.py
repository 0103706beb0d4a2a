"""``/v1/responses`` without the web framework.

:class:`ResponsesService` runs a Responses request on the OpenAI chat feature's
:class:`~vllm_mlx.openai.serving_chat.ChatService` (same engine, media policy, files
resolver, tool checking, forced-call and JSON-schema grammars, reasoning parsing):
:meth:`~ResponsesService.prepare` rebuilds the conversation (``previous_response_id``: from
the :class:`~.store.ResponseStore`; an unknown id is a 404), translates it
(:mod:`.translate`) and lets the chat service validate it and resolve its media;
:meth:`~ResponsesService.complete` returns the finished ``response``;
:meth:`~ResponsesService.stream` yields the typed events (:mod:`.streaming`) once the engine
has accepted the request, so a refusal is a status, not an event. A response is stored
(``store``, true by default) once finished, before it is returned or its last event sent.
:meth:`retrieve`, :meth:`delete` and :meth:`input_items` read the store. Errors are
:class:`~vllm_mlx.errors.APIError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import APIError, excerpt
from ..openai.serving_chat import ChatService, PreparedChat
from .protocol import (
    DeletedResponse,
    InputItemList,
    ResponseObject,
    ResponsesRequest,
    ToolChoiceFunction,
)
from .store import ResponseStore
from .streaming import ResponseEvents
from .translate import finish_response, input_items, output_items, to_chat_request


@dataclass
class PreparedResponse:
    chat: PreparedChat
    response: ResponseObject  # in progress: the request's settings, no output yet
    items: list[dict[str, Any]]  # the conversation so far, this request's input last


def _not_found(response_id: str, param: str) -> APIError:
    return APIError(404, f"No response with id {excerpt(response_id)} is stored (it was "
                    "made with store: false, deleted, or has expired).", param=param,
                    code="response_not_found")


def _started(req: ResponsesRequest, model: str) -> ResponseObject:
    """The response as it starts: the request's settings echoed, as OpenAI does."""
    choice = req.tool_choice
    return ResponseObject(
        model=model, instructions=req.instructions,
        previous_response_id=req.previous_response_id, store=req.store,
        max_output_tokens=req.max_output_tokens, temperature=req.temperature,
        top_p=req.top_p, user=req.user, metadata=req.metadata or {},
        tools=[t.model_dump(exclude_none=True) for t in req.tools or []],
        tool_choice=(choice.model_dump() if isinstance(choice, ToolChoiceFunction)
                     else choice or "auto"),
        parallel_tool_calls=req.parallel_tool_calls is not False,
        text=(req.text.model_dump(by_alias=True, exclude_none=True) if req.text
              else {"format": {"type": "text"}}),
        reasoning=req.reasoning.model_dump() if req.reasoning else None)


class ResponsesService:
    def __init__(self, chat: ChatService, store: ResponseStore) -> None:
        self.chat, self.store = chat, store
        self.ctx = chat.ctx

    async def prepare(self, req: ResponsesRequest) -> PreparedResponse:
        history: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            found = await asyncio.to_thread(self.store.conversation, req.previous_response_id)
            if found is None:
                raise _not_found(req.previous_response_id, "previous_response_id")
            history = found
        limit = self.ctx.settings.max_tokens_limit
        if req.max_output_tokens is not None and req.max_output_tokens > limit:
            raise APIError(400, f"max_output_tokens is {req.max_output_tokens}, more than "
                           f"this server's limit of {limit}", param="max_output_tokens")
        items = history + input_items(req)
        chat = await self.chat.prepare(
            to_chat_request(req, items, self.ctx.settings.served_name))
        return PreparedResponse(chat, _started(req, chat.model), items)

    async def _keep(self, prepared: PreparedResponse) -> None:
        response = prepared.response
        if response.store:
            await asyncio.to_thread(self.store.put, response.model_dump(mode="json"),
                                    prepared.items)

    async def complete(self, prepared: PreparedResponse) -> ResponseObject:
        result = await self.chat.complete(prepared.chat)
        choice = result.choices[0]
        message = choice.message
        output = output_items(message.content, message.reasoning_content, message.tool_calls,
                              incomplete=choice.finish_reason == "length")
        finish_response(prepared.response, output, choice.finish_reason or "stop",
                        result.usage.model_dump())
        await self._keep(prepared)
        return prepared.response

    async def stream(self, prepared: PreparedResponse) -> AsyncIterator[str]:
        """The typed events, once the engine has accepted the request."""
        lines = await self.chat.stream(prepared.chat)

        async def keep(_: ResponseObject) -> None:
            await self._keep(prepared)

        return ResponseEvents(prepared.response, keep).run(lines)

    async def retrieve(self, response_id: str) -> ResponseObject:
        found = await asyncio.to_thread(self.store.get, response_id)
        if found is None:
            raise _not_found(response_id, "response_id")
        return ResponseObject.model_validate(found)

    async def delete(self, response_id: str) -> DeletedResponse:
        if not await asyncio.to_thread(self.store.delete, response_id):
            raise _not_found(response_id, "response_id")
        return DeletedResponse(id=response_id)

    async def input_items(self, response_id: str, *, limit: int = 20,
                          order: Literal["asc", "desc"] = "desc", after: str | None = None
                          ) -> InputItemList:
        """A page of the response's input items (newest first unless ``order`` is asc)."""
        items = await asyncio.to_thread(self.store.input_items, response_id)
        if items is None:
            raise _not_found(response_id, "response_id")
        if order == "desc":
            items.reverse()
        start = 0
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise APIError(400, f"after: no input item {excerpt(after)} in this response",
                               param="after")
            start = ids.index(after) + 1
        page = items[start:start + limit]
        return InputItemList(data=page, has_more=start + limit < len(items),
                             first_id=page[0]["id"] if page else None,
                             last_id=page[-1]["id"] if page else None)
