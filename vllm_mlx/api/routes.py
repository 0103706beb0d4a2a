"""The server's own routes, whatever it serves: ``/health``, ``/metrics``, ``/v1/models``.

``/health`` (also ``/v1/health``) answers ``{"status": "ok", "model", ...}``: with a chat
model, whether the default model takes images, how many requests wait and which models are
loaded; without one (a video-only server), ``chat: false`` and the video worker's running
job and queue. ``/metrics`` is the Prometheus text of the engine, the video jobs and the
live-video connections (MLX's memory once), with per-model series when several models are
served. ``/v1/models`` (also ``/v1/openai/models`` with a chat model) lists every chat
model with its state, or the video model's card on a video-only server. State comes from
``app.state``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse

from ..openai.models import model_list
from ..openai.protocol import ModelList
from .metrics import (
    render_metrics,
    render_model_metrics,
    render_stream_metrics,
    render_video_metrics,
)

router = APIRouter()
_MODELS_DOC: dict[int | str, dict[str, Any]] = {200: {"model": ModelList}}


@router.get("/health")
@router.get("/v1/health")
async def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    found = {"status": "ok", "model": state.settings.served_name}
    if state.engine is not None:
        loaded = [name for name, _ in state.models.engines()]
        return found | {"vision": state.engine.model.is_vision, "waiting": state.engine.waiting,
                        "loaded_models": loaded}
    jobs = state.videos
    running = jobs.worker.running if jobs else None
    return found | {"chat": False, "video": jobs is not None,
                    "running": running.id if running else None,
                    "waiting": jobs.worker.waiting if jobs else 0}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    state = request.app.state
    if state.engine is None:
        text = render_video_metrics(state.videos)
    else:
        settings = state.settings
        text = render_metrics(state.engine.stats, settings.group_size, settings.parallel_mode)
        statuses = state.models.statuses()
        if len(statuses) > 1:
            text += render_model_metrics(statuses)
        if state.videos is not None:
            text += render_video_metrics(state.videos, memory=False)
        if state.stream is not None:
            text += render_stream_metrics(state.stream)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def list_models(request: Request) -> Any:
    state = request.app.state
    if state.engine is not None:
        return await model_list(state.serving)
    jobs = state.videos
    return {"object": "list", "data": [jobs.model.card()] if jobs is not None else []}


def install_routes(app: FastAPI, *, chat: bool) -> None:
    """``chat``: a chat model is served (its models list also answers at the VLM Run
    SDK's ``/v1/openai/models``)."""
    app.include_router(router)
    paths = ("/v1/models", "/v1/openai/models") if chat else ("/v1/models",)
    for path in paths:  # a video-only server's card is not a chat ModelCard
        app.add_api_route(path, list_models, methods=["GET"], response_model=None,
                          responses=_MODELS_DOC if chat else None)
