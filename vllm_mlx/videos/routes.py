"""Thin routes of the video jobs API, and its one install function.

:func:`install_videos` puts the :class:`~vllm_mlx.videos.service.VideoJobs` (or None) on
``app.state.videos``, with the media policy and the files API's resolver (when the server
runs one) that reference images are read under, and adds ``POST /v1/videos`` (multipart
form, also JSON or urlencoded: both parse to one :class:`~.request.VideoRequest`),
``POST /v1/videos/sync`` (raw ``video/mp4`` with ``X-Request-Id``, ``X-Model``,
``X-Inference-Time-S``; a client that hangs up cancels its job), ``GET /v1/videos``,
``GET /v1/videos/{id}``, ``GET /v1/videos/{id}/content`` and ``DELETE /v1/videos/{id}``.
Without a video model they answer 404 ``model_not_found``. Routes parse, call the service,
return; a failed generation is a 500 whose details stay in the server log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.datastructures import UploadFile

from ..config import Settings
from ..disconnect import unless_disconnected
from ..errors import APIError
from .plan import JobPlan
from .protocol import CREATE_BODY, MP4_RESPONSE, VideoDeleted, VideoList, VideoObject
from .reference import ReferenceImage, load_reference
from .request import FieldValue, VideoRequest, parse_request
from .service import VideoJobs
from .worker import Job, JobCancelled, WorkerStopped

router = APIRouter()
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _jobs(request: Request) -> VideoJobs:
    jobs: VideoJobs | None = request.app.state.videos
    if jobs is None:
        raise APIError(404, "no video model loaded: start the server with --video-model "
                       "PATH_OR_REPO (or tiny:wan2_1)", code="model_not_found")
    return jobs


async def _json_fields(request: Request) -> dict[str, FieldValue]:
    try:
        body = await request.json()
    except ValueError:
        raise APIError(400, "request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the JSON body must be an object", code="invalid_json")
    return body


async def read_request(request: Request) -> VideoRequest:
    """A JSON object, a multipart or an urlencoded form -> one :class:`VideoRequest`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return parse_request(await _json_fields(request))
    if not kind:  # no body at all: the request's checks say what is missing
        return parse_request({})
    if kind not in _FORM_TYPES:
        raise APIError(400, "send the request as multipart/form-data (curl -F name=value)",
                       code="invalid_content_type")
    form = await request.form()
    fields: dict[str, FieldValue] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    upload = form.get("input_reference")
    return parse_request(fields, await upload.read() if isinstance(upload, UploadFile) else None)


async def _prepare(request: Request
                   ) -> tuple[VideoJobs, VideoRequest, JobPlan, ReferenceImage | None]:
    jobs = _jobs(request)
    body = await read_request(request)
    jobs.check_model(body.model)
    state = request.app.state
    image = await load_reference(body, state.video_media_policy, state.video_files)
    return jobs, body, jobs.plan(body, image.image if image else None), image


@router.post("/v1/videos", response_model=None, responses={200: {"model": VideoObject}},
             openapi_extra=CREATE_BODY)
async def create_video(request: Request) -> VideoObject:
    jobs, body, plan, image = await _prepare(request)
    return await asyncio.to_thread(jobs.create, plan, image, body.user)


def _settled(future: asyncio.Future[tuple[bytes | None, float]]) -> None:
    """Read the outcome of a future nobody awaits, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


async def _wait(request: Request, jobs: VideoJobs, job: Job) -> tuple[bytes | None, float]:
    from ..diffusion import Cancelled

    future = asyncio.wrap_future(job.done)

    def hang_up() -> None:
        future.add_done_callback(_settled)  # its JobCancelled has no reader
        jobs.worker.cancel(job.id, "disconnected")  # nobody is left to answer

    try:  # shielded: the job's own future is settled by the worker, never cancelled here
        return await unless_disconnected(request.is_disconnected, asyncio.shield(future),
                                         on_disconnect=hang_up)
    except APIError:
        raise
    except (Cancelled, JobCancelled, WorkerStopped) as exc:
        if job.cancel_reason == "shutdown" or isinstance(exc, WorkerStopped):
            raise APIError(503, "the server is shutting down", code="shutting_down") from None
        raise APIError(499, "the request was cancelled", code="cancelled") from None
    except Exception:  # the worker logged it; its text may hold paths and internals
        raise APIError(500, "video generation failed; the server log has the details",
                       code="generation_failed", type="server_error") from None


@router.post("/v1/videos/sync", response_class=Response, responses=MP4_RESPONSE,
             openapi_extra=CREATE_BODY)
async def create_video_sync(request: Request) -> Response:
    jobs, _, plan, image = await _prepare(request)
    job = jobs.submit_sync(plan, image.image if image else None)
    data, seconds = await _wait(request, jobs, job)
    headers = {"X-Request-Id": job.id, "X-Model": jobs.model.name,
               "X-Inference-Time-S": f"{seconds:.3f}",
               "Content-Disposition": f'attachment; filename="{job.id}.mp4"'}
    return Response(data, media_type="video/mp4", headers=headers)


@router.get("/v1/videos", response_model=None, responses={200: {"model": VideoList}})
async def list_videos(request: Request, after: str | None = None,
                      limit: int = Query(20), order: str = Query("desc")) -> VideoList:
    return await asyncio.to_thread(_jobs(request).list_videos, after, limit, order)


@router.get("/v1/videos/{video_id}", response_model=None,
            responses={200: {"model": VideoObject}})
async def get_video(video_id: str, request: Request) -> VideoObject:
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
async def delete_video(video_id: str, request: Request) -> VideoDeleted:
    return await asyncio.to_thread(_jobs(request).delete, video_id)


def install_videos(app: FastAPI, settings: Settings, videos: VideoJobs | None, *,
                   files: Callable[[str], str] | None = None) -> None:
    """``files``: the files API's resolver of ``{"file_id": ...}`` references, if any."""
    app.state.videos = videos
    app.state.video_files = files
    app.state.video_media_policy = settings.media_policy()
    app.include_router(router)
