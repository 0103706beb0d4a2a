"""Thin HTTP routes of the Anthropic Messages feature, and its one install function.

:func:`install_anthropic` builds a :class:`~.serving.MessagesService` on the chat feature's
:class:`~vllm_mlx.openai.serving_chat.ChatService` (the engine and media policy are shared),
puts it on ``app.state.messages`` and adds ``POST /v1/messages`` and ``POST
/v1/messages/count_tokens``. Their errors, and only theirs, leave in Anthropic's shape
``{"type": "error", "error": {"type", "message"}}``: the web layer's one error path picks
that shape for these paths (:func:`~.protocol.is_anthropic_path`), whatever failed (request
validation, the service, a 401, 405 or 413). The ``anthropic-version`` and ``anthropic-beta``
headers are accepted and not checked; ``x-api-key`` is the API-key middleware's. A client
that hangs up cancels its generation, streamed or not, as the chat routes do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from ..disconnect import unless_disconnected
from ..openai.routes import sse_response
from ..openai.serving_chat import ChatService
from .protocol import CountTokensRequest, CountTokensResponse, MessagesRequest, MessagesResponse
from .serving import MessagesService

_ERROR_DOC = {"type": "object", "required": ["type", "error"], "properties": {
    "type": {"const": "error"}, "error": {"type": "object", "required": ["type", "message"],
                                          "properties": {"type": {"type": "string"},
                                                         "message": {"type": "string"}}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    # with ``stream: true``: Anthropic's events, each an ``event`` name and its JSON ``data``
    200: {"content": {"text/event-stream": {"schema": {
        "type": "object", "required": ["event", "data"],
        "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}},
    **{status: {"content": {"application/json": {"schema": _ERROR_DOC}}}
       for status in (400, 401, 404, 413, 429, 500)}}


router = APIRouter(tags=["anthropic"])


@router.post("/v1/messages", response_model=MessagesResponse, responses=RESPONSES)
async def create_message(body: MessagesRequest, request: Request) -> Any:
    """Anthropic's Messages API: a reply to a conversation, or its SSE events."""
    service: MessagesService = request.app.state.messages
    prepared = await service.prepare(body)
    if body.stream:
        events = await unless_disconnected(request.is_disconnected, service.stream(prepared))
        return sse_response(events)
    return await unless_disconnected(request.is_disconnected, service.complete(prepared))


@router.post("/v1/messages/count_tokens", response_model=CountTokensResponse,
             responses=RESPONSES)
async def count_tokens(body: CountTokensRequest, request: Request) -> Any:
    """The prompt's token count for a conversation (and its tools), without generating."""
    service: MessagesService = request.app.state.messages
    return await unless_disconnected(request.is_disconnected, service.count_tokens(body))


def install_anthropic(app: FastAPI, chat: ChatService) -> MessagesService:
    """Add the Messages routes, served through ``chat`` (the OpenAI feature's service)."""
    service = MessagesService(chat)
    app.state.messages = service
    chat.ctx.endpoints += ["/v1/messages", "/v1/messages/count_tokens"]
    app.include_router(router)
    return service
