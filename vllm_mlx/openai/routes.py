"""Thin HTTP routes of the OpenAI chat feature, and its one install function.

:func:`install_openai` builds the feature's services from what it is given (settings, the
engine, and another feature's :class:`~.serving_chat.ChatExtension`), puts them on
``app.state`` (``serving``, ``chat``, ``completions``) and adds ``POST /v1/chat/completions``
(also at ``/v1/openai/chat/completions``, the VLM Run SDK's base URL), ``POST
/v1/completions``, ``GET /v1/models/{id}`` and ``POST /v1/models/{id}/load`` /
``unload``. Without an engine (a video-only server) the chat routes answer 404
``model_not_found``. Routes only parse, call a service and return.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, overload

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from ..config import Settings
from ..disconnect import unless_disconnected
from ..engine import Engine
from ..engine.registry import ModelRegistry
from ..errors import APIError
from .models import load_model, model_card, unload_model
from .protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
)
from .serving_chat import ChatExtension, ChatService
from .serving_common import ServingContext
from .serving_completion import CompletionService

router = APIRouter()
no_chat = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# With ``stream: true`` the 200 is a stream of server-sent events; each event's ``data`` is one
# JSON chunk (or an error in the one error shape), and the last is ``[DONE]``.
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {
    "schema": {"type": "object", "required": ["data"],
               "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}}}}}


@router.post("/v1/models/{model_id:path}/load", response_model=ModelCard)
async def load(model_id: str, request: Request) -> ModelCard:
    """Load a model now (or retry one that failed to load); its card after."""
    return await load_model(request.app.state.serving, model_id)


@router.post("/v1/models/{model_id:path}/unload", response_model=ModelCard)
async def unload(model_id: str, request: Request) -> ModelCard:
    """Unload a model now (not the default, nor one with requests in flight)."""
    return await unload_model(request.app.state.serving, model_id)


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> ModelCard:
    """A served model's card under any name it answers to; 404 for any other."""
    return await model_card(request.app.state.serving, model_id)


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A stream of SSE lines (its requests already accepted: a client gone while they
    waited for the engine cancelled them)."""
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse,
             responses=STREAM_RESPONSES)
@router.post("/v1/openai/chat/completions", response_model=ChatCompletionResponse,
             responses=STREAM_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    service: ChatService = request.app.state.chat
    prepared = await service.prepare(body)
    if body.stream:
        return sse_response(await unless_disconnected(request.is_disconnected,
                                              service.stream(prepared)))
    return await unless_disconnected(request.is_disconnected, service.complete(prepared))


@router.post("/v1/completions", response_model=CompletionResponse, responses=STREAM_RESPONSES)
async def completions(body: CompletionRequest, request: Request) -> Any:
    service: CompletionService = request.app.state.completions
    prepared = await service.prepare(body)
    if body.stream:
        return sse_response(await unless_disconnected(request.is_disconnected,
                                              service.stream(prepared)))
    return await unless_disconnected(request.is_disconnected, service.complete(prepared))


@no_chat.post("/v1/chat/completions")
@no_chat.post("/v1/completions")
async def no_chat_model() -> None:
    raise APIError(404, "no chat model loaded: this server only generates videos "
                   "(POST /v1/videos); serve a chat model with `vllm-mlx serve CHAT_MODEL "
                   "--video-model VIDEO_MODEL`", param="model", code="model_not_found")


@overload
def install_openai(app: FastAPI, settings: Settings, engine: Engine, *,
                   extension: ChatExtension | None = None,
                   models: ModelRegistry | None = None) -> ServingContext: ...


@overload
def install_openai(app: FastAPI, settings: Settings, engine: None, *,
                   extension: ChatExtension | None = None,
                   models: ModelRegistry | None = None) -> None: ...


def install_openai(app: FastAPI, settings: Settings, engine: Engine | None, *,
                   extension: ChatExtension | None = None,
                   models: ModelRegistry | None = None) -> ServingContext | None:
    """Build the chat services and add the routes; returns the context other features
    serve through (None without an engine). ``models``: every model the server may
    serve, ``engine`` being the default's (None: that model alone)."""
    if engine is None:
        app.include_router(no_chat)
        return None
    extension = extension or ChatExtension()
    ctx = ServingContext(engine=engine, settings=settings, files=extension.files,
                         extra_names=extension.model_names, models=models)
    app.state.serving = ctx
    app.state.closers.append(ctx.checks.close)
    app.state.chat = ChatService(ctx, settings.media_policy(*extension.media_roots),
                                 hook=extension.hook, documents=extension.documents)
    app.state.completions = CompletionService(ctx)
    app.include_router(router)
    return ctx
