"""Thin HTTP routes of the Responses feature, and its one install function.

:func:`install_responses` builds a :class:`~.serving.ResponsesService` on the chat feature's
:class:`~vllm_mlx.openai.serving_chat.ChatService` (the engine, media policy and files
resolver are shared) and a :class:`~.store.ResponseStore`, puts the service on
``app.state.responses`` and adds ``POST /v1/responses``, ``GET`` and ``DELETE
/v1/responses/{response_id}`` and ``GET /v1/responses/{response_id}/input_items``. Errors
leave in the one OpenAI shape through the app's handlers. A client that hangs up cancels its
generation, streamed or not, as the chat routes do. The store is closed with the app.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request

from ..disconnect import unless_disconnected
from ..openai.routes import sse_response
from ..openai.serving_chat import ChatService
from .protocol import DeletedResponse, InputItemList, ResponseObject, ResponsesRequest
from .serving import ResponsesService
from .store import ResponseStore

# with ``stream: true``: typed events, each an ``event`` name and its JSON ``data``
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {
    "schema": {"type": "object", "required": ["event", "data"],
               "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}}}

router = APIRouter(tags=["responses"])


def _service(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.responses
    return service


@router.post("/v1/responses", response_model=ResponseObject, responses=STREAM_RESPONSES)
async def create_response(body: ResponsesRequest, request: Request) -> Any:
    """OpenAI's Responses API: a reply to ``input`` (and an earlier stored conversation),
    or its typed SSE events."""
    service = _service(request)
    prepared = await service.prepare(body)
    if body.stream:
        events = await unless_disconnected(request.is_disconnected, service.stream(prepared))
        return sse_response(events)
    return await unless_disconnected(request.is_disconnected, service.complete(prepared))


@router.get("/v1/responses/{response_id}", response_model=ResponseObject)
async def retrieve_response(response_id: str, request: Request) -> ResponseObject:
    """A stored response."""
    return await _service(request).retrieve(response_id)


@router.delete("/v1/responses/{response_id}", response_model=DeletedResponse)
async def delete_response(response_id: str, request: Request) -> DeletedResponse:
    """Forget a stored response (those that continued it keep their conversation)."""
    return await _service(request).delete(response_id)


@router.get("/v1/responses/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
        response_id: str, request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None) -> InputItemList:
    """The items a stored response answered: its conversation before its output."""
    return await _service(request).input_items(response_id, limit=limit, order=order,
                                               after=after)


def install_responses(app: FastAPI, chat: ChatService, store: ResponseStore
                      ) -> ResponsesService:
    """Add the Responses routes, served through ``chat`` and kept in ``store``."""
    service = ResponsesService(chat, store)
    app.state.responses = service
    chat.ctx.endpoints.append("/v1/responses")

    async def close() -> None:
        await asyncio.to_thread(store.close)

    app.state.closers.append(close)
    app.include_router(router)
    return service
