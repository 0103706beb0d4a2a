"""Thin routes of the video jobs API, and the basics of a server without a chat model.

:func:`install_videos` puts the :class:`~vllm_mlx.videos.VideoJobs` (or None) on
``app.state.videos`` and adds ``POST /v1/videos`` (multipart form, also JSON or urlencoded),
``POST /v1/videos/sync`` (raw ``video/mp4`` with ``X-Request-Id``, ``X-Model``,
``X-Inference-Time-S``; a client that hangs up cancels its job), ``GET /v1/videos``,
``GET /v1/videos/{id}``, ``GET /v1/videos/{id}/content`` and ``DELETE /v1/videos/{id}``.
Without a video model they answer 404 ``model_not_found``. :func:`install_video_only` is
for ``create_app`` without a chat engine: ``/health``, ``/v1/models`` (the video model), and
the chat routes answering 404 "no chat model loaded". Routes parse, call the service, return.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from ..config import Settings
from ..media import MediaPolicy
from ..videos.form import VideoForm, parse_form
from ..videos.reference import load_reference
from ..videos.service import VideoJobs
from ..videos.worker import Job, JobCancelled, WorkerStopped
from .errors import APIError
from .metrics import render_video_metrics
from .protocol_videos import CREATE_BODY, MP4_RESPONSE, VideoDeleted, VideoList, VideoObject

router = APIRouter()
video_only = APIRouter()
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_DISCONNECT_POLL_S = 0.5


def _jobs(request: Request) -> VideoJobs:
    jobs = request.app.state.videos
    if jobs is None:
        raise APIError(404, "no video model loaded: start the server with --video-model "
                       "PATH_OR_REPO (or tiny:wan2_1)", code="model_not_found")
    return jobs


def _as_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


async def _read_fields(request: Request) -> tuple[dict[str, str], bytes | None]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise APIError(400, "request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise APIError(400, "the JSON body must be an object", code="invalid_json")
        return {k: _as_text(v) for k, v in body.items() if v is not None}, None
    if not kind:  # no body at all: the form's checks say what is missing
        return {}, None
    if kind not in _FORM_TYPES:
        raise APIError(400, "send the request as multipart/form-data (curl -F name=value)",
                       code="invalid_content_type")
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    upload = form.get("input_reference")
    return fields, (await upload.read() if isinstance(upload, UploadFile) else None)


async def _prepare(request: Request) -> tuple[VideoJobs, VideoForm, Any, Any]:
    jobs = _jobs(request)
    fields, upload = await _read_fields(request)
    form = parse_form(fields)
    jobs.check_model(form.model)
    state = request.app.state
    image = await load_reference(upload, form.image_reference, state.video_media_policy,
                                 state.video_files)
    return jobs, form, jobs.plan(form, image[1] if image else None), image


@router.post("/v1/videos", response_model=None, responses={200: {"model": VideoObject}},
             openapi_extra=CREATE_BODY)
async def create_video(request: Request) -> dict[str, Any]:
    jobs, form, plan, image = await _prepare(request)
    return await asyncio.to_thread(jobs.create, plan, image, form.user)


def _settled(future: asyncio.Future) -> None:
    """Read the outcome of a future nobody awaits, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


async def _wait(request: Request, jobs: VideoJobs, job: Job) -> tuple[bytes, float]:
    from ..diffusion import Cancelled

    future = asyncio.wrap_future(job.done)
    while not future.done():
        await asyncio.wait({future}, timeout=_DISCONNECT_POLL_S)
        if not future.done() and await request.is_disconnected():
            future.add_done_callback(_settled)  # its JobCancelled has no reader
            jobs.worker.cancel(job.id, "disconnected")  # nobody is left to answer
            raise APIError(499, "the client disconnected", code="cancelled")
    try:
        return future.result()
    except (Cancelled, JobCancelled, WorkerStopped) as exc:
        if job.cancel_reason == "shutdown" or isinstance(exc, WorkerStopped):
            raise APIError(503, "the server is shutting down", code="shutting_down") from None
        raise APIError(499, "the request was cancelled", code="cancelled") from None
    except Exception as exc:
        raise APIError(500, f"video generation failed: {exc}", code="generation_failed",
                       type="server_error") from None


@router.post("/v1/videos/sync", response_class=Response, responses=MP4_RESPONSE,
             openapi_extra=CREATE_BODY)
async def create_video_sync(request: Request) -> Response:
    jobs, _, plan, image = await _prepare(request)
    job = jobs.submit_sync(plan, image[1] if image else None)
    data, seconds = await _wait(request, jobs, job)
    headers = {"X-Request-Id": job.id, "X-Model": jobs.model.name,
               "X-Inference-Time-S": f"{seconds:.3f}",
               "Content-Disposition": f'attachment; filename="{job.id}.mp4"'}
    return Response(data, media_type="video/mp4", headers=headers)


@router.get("/v1/videos", response_model=None, responses={200: {"model": VideoList}})
async def list_videos(request: Request, after: str | None = None,
                      limit: int = Query(20), order: str = Query("desc")) -> dict[str, Any]:
    return await asyncio.to_thread(_jobs(request).list_videos, after, limit, order)


@router.get("/v1/videos/{video_id}", response_model=None,
            responses={200: {"model": VideoObject}})
async def get_video(video_id: str, request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(_jobs(request).get, video_id)


@router.get("/v1/videos/{video_id}/content", response_class=FileResponse,
            responses=MP4_RESPONSE)
async def video_content(video_id: str, request: Request,
                        variant: str | None = None) -> FileResponse:
    if variant not in (None, "video"):
        raise APIError(400, f"variant {variant!r} is not available: only 'video' is generated",
                       param="variant", code="invalid_value")
    path = await asyncio.to_thread(_jobs(request).content_path, video_id)
    return FileResponse(path, media_type="video/mp4", filename=path.name)


@router.delete("/v1/videos/{video_id}", response_model=None,
               responses={200: {"model": VideoDeleted}})
async def delete_video(video_id: str, request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(_jobs(request).delete, video_id)


def install_videos(app: FastAPI, settings: Settings, videos: VideoJobs | None) -> None:
    files = getattr(app.state, "files", None)  # the files API, when the server runs one
    app.state.videos = videos
    app.state.video_files = getattr(files, "resolve", None)
    app.state.video_media_policy = MediaPolicy(media_roots=tuple(settings.media_roots),
                                               allow_private_urls=settings.allow_private_urls)
    app.include_router(router)


# --- a server with a video model only ------------------------------------------------------
@video_only.get("/health")
@video_only.get("/v1/health")
async def health(request: Request) -> dict[str, Any]:
    jobs: VideoJobs | None = request.app.state.videos
    running = jobs.worker.running if jobs else None
    return {"status": "ok", "model": request.app.state.settings.served_name, "chat": False,
            "video": jobs is not None, "running": running.id if running else None,
            "waiting": jobs.worker.waiting if jobs else 0}


@video_only.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    text = render_video_metrics(request.app.state.videos)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@video_only.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    jobs: VideoJobs | None = request.app.state.videos
    data = []
    if jobs is not None:
        info = jobs.model
        data.append({"id": info.name, "object": "model", "created": int(time.time()),
                     "owned_by": "vllm-mlx", "root": str(info.path),
                     "aliases": sorted(info.names - {info.name}),
                     "capabilities": {"vision": False, "video": False, "native_video": False,
                                      "video_generation": True},
                     "random_weights": info.random_weights})
    return {"object": "list", "data": data}


@video_only.post("/v1/chat/completions")
@video_only.post("/v1/completions")
async def no_chat_model(request: Request) -> None:
    raise APIError(404, "no chat model loaded: this server only generates videos "
                   "(POST /v1/videos); serve a chat model with `vllm-mlx serve CHAT_MODEL "
                   "--video-model VIDEO_MODEL`", param="model", code="model_not_found")


def install_video_only(app: FastAPI) -> None:
    app.include_router(video_only)
