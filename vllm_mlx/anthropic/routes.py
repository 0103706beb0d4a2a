"""Thin HTTP routes of the Anthropic Messages feature, and its one install function.

:func:`install_anthropic` builds a :class:`~.serving.MessagesService` on the chat feature's
:class:`~vllm_mlx.openai.serving_chat.ChatService` (the engine and media policy are shared),
puts it on ``app.state.messages`` and adds ``POST /v1/messages`` and ``POST
/v1/messages/count_tokens``. Their errors, and only theirs, leave in Anthropic's shape
``{"type": "error", "error": {"type", "message"}}``: :class:`AnthropicRoute` catches what
the route raises (request validation included) before the app's OpenAI-shaped handlers see
it (the web layer answers a 401, 405 or 413 on these paths in that shape too, with
:func:`~.protocol.is_anthropic_path`). The ``anthropic-version`` and ``anthropic-beta``
headers are accepted and not checked; ``x-api-key`` is the API-key middleware's. A client
that hangs up cancels its generation, streamed or not, as the chat routes do.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ..disconnect import unless_disconnected
from ..errors import APIError, to_api_error
from ..openai.serving_chat import ChatService
from .protocol import CountTokensRequest, CountTokensResponse, MessagesRequest, MessagesResponse
from .protocol import error_body as anthropic_error_body
from .serving import MessagesService

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
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


def _validation_error(exc: RequestValidationError) -> APIError:
    errors = list(exc.errors())
    if errors and errors[0].get("type") == "json_invalid":
        return APIError(400, "request body is not valid JSON", code="invalid_json")
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = first.get("msg", "invalid request")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return APIError(400, f"{where}: {message}" if where else message, param=where or None)


def anthropic_error(exc: Exception) -> JSONResponse:
    """Any failure of these routes as Anthropic's error body and its status."""
    if isinstance(exc, RequestValidationError):
        error = _validation_error(exc)
    elif isinstance(exc, HTTPException):
        error = APIError(exc.status_code, str(exc.detail))
    else:
        error = to_api_error(exc)
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    if error.status == 429:
        headers["Retry-After"] = "1"
    return JSONResponse(anthropic_error_body(error), status_code=error.status,
                        headers=headers or None)


class AnthropicRoute(APIRoute):
    """A route whose errors leave in Anthropic's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return anthropic_error(exc)

        return route


router = APIRouter(route_class=AnthropicRoute, tags=["anthropic"])


@router.post("/v1/messages", response_model=MessagesResponse, responses=RESPONSES)
async def create_message(body: MessagesRequest, request: Request) -> Any:
    """Anthropic's Messages API: a reply to a conversation, or its SSE events."""
    service: MessagesService = request.app.state.messages
    prepared = await service.prepare(body)
    if body.stream:
        events = await unless_disconnected(request.is_disconnected, service.stream(prepared))
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
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
