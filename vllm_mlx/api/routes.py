"""Thin HTTP routes: parse, call a serving class from ``app.state``, return."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from .disconnect import unless_disconnected
from .metrics import render_metrics, render_stream_metrics, render_video_metrics
from .protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
)
from .serving_completion import model_list

router = APIRouter()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# With ``stream: true`` the 200 is a stream of server-sent events; each event's ``data`` is one
# JSON chunk (or an error in the one error shape), and the last is ``[DONE]``.
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {
    "schema": {"type": "object", "required": ["data"],
               "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}}}}}


@router.get("/health")
@router.get("/v1/health")
async def health(request: Request) -> dict[str, Any]:
    engine = request.app.state.engine
    return {"status": "ok", "model": request.app.state.settings.served_name,
            "vision": engine.model.is_vision, "waiting": engine.waiting}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    settings = request.app.state.settings
    text = render_metrics(request.app.state.engine.stats, settings.group_size,
                          settings.parallel_mode)
    jobs = getattr(request.app.state, "videos", None)
    if jobs is not None:
        text += render_video_metrics(jobs, memory=False)
    stream = getattr(request.app.state, "stream", None)
    if stream is not None:
        text += render_stream_metrics(stream)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    return model_list(request.app.state.serving)


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> ModelCard:
    """The served model's card under any name it answers to; 404 for any other."""
    serving = request.app.state.serving
    serving.check_model(model_id)
    return model_list(serving).data[0]


def _sse(events: Any) -> StreamingResponse:
    """A stream of SSE lines (its requests already accepted: a client gone while they
    waited for the engine cancelled them)."""
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse,
             responses=STREAM_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    service = request.app.state.chat
    prepared = await service.prepare(body)
    if body.stream:
        return _sse(await unless_disconnected(request, service.stream(prepared)))
    return await unless_disconnected(request, service.complete(prepared))


@router.post("/v1/completions", response_model=CompletionResponse, responses=STREAM_RESPONSES)
async def completions(body: CompletionRequest, request: Request) -> Any:
    service = request.app.state.completions
    prepared = service.prepare(body)
    if body.stream:
        return _sse(await unless_disconnected(request, service.stream(prepared)))
    return await unless_disconnected(request, service.complete(prepared))
