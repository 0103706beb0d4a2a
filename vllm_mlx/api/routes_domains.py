"""Thin routes of the VLM Run-compatible API (structured domain predictions and files).

:func:`install_domains` builds the feature's state from ``Settings`` (SQLite store and files
under ``settings.storage_path``, the domain registry, the prediction service, chat sessions),
puts it on ``app.state`` (``domains``, ``predictions``, ``files``), wires uploaded files into
chat ``input_file`` parts and the VLM Run chat extensions into ``app.state.chat``, and closes
everything when the app shuts down. Routes only parse, call a service and return.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile

from ..config import Settings
from ..content import VideoSampling
from ..domains.callbacks import CallbackSender, load_secret
from ..domains.catalog import schema_info
from ..domains.chat import VlmrunChatHook
from ..domains.files import FileNotFound, FileStore, public
from ..domains.inputs import InputResolver
from ..domains.protocol import (
    FILE_PURPOSES,
    DomainInfo,
    FileObject,
    FilePredictionRequest,
    ImagePredictionRequest,
    Prediction,
    SchemaInfo,
    SchemaRequest,
)
from ..domains.registry import default_registry
from ..domains.service import RESTART_REASON, PredictionService
from ..domains.sessions import SessionStore
from ..domains.store import Store
from ..engine import Engine
from .errors import APIError
from .protocol import ChatCompletionResponse, ModelList
from .routes import STREAM_RESPONSES, chat_completions, list_models
from .serving_common import ServingContext

router = APIRouter()
MAX_SKIP = 2**63 - 1  # SQLite's largest integer: more overflowed into a 500


def _files(request: Request) -> FileStore:
    return request.app.state.files


def _service(request: Request) -> PredictionService:
    return request.app.state.predictions


@router.get("/v1/domains", response_model=list[DomainInfo])
async def domains(request: Request) -> list[dict[str, Any]]:
    return request.app.state.domains.listing()


@router.post("/v1/schema", response_model=SchemaInfo)
async def schema(body: SchemaRequest, request: Request) -> dict[str, Any]:
    return schema_info(request.app.state.domains, body.domain, body.config.json_schema)


@router.post("/v1/image/generate", status_code=201, response_model=Prediction)
async def image_generate(body: ImagePredictionRequest, request: Request) -> dict[str, Any]:
    return await _service(request).image(body)


@router.post("/v1/document/generate", status_code=201, response_model=Prediction)
async def document_generate(body: FilePredictionRequest, request: Request) -> dict[str, Any]:
    return await _service(request).document(body)


@router.post("/v1/video/generate", status_code=201, response_model=Prediction)
async def video_generate(body: FilePredictionRequest, request: Request) -> dict[str, Any]:
    return await _service(request).video(body)


@router.post("/v1/audio/generate", status_code=201)
async def audio_generate() -> dict[str, Any]:
    raise APIError(400, "audio predictions are not supported by this server",
                   code="unsupported_input")


@router.get("/v1/predictions", response_model=list[Prediction])
async def list_predictions(request: Request, skip: int = Query(0, ge=0, le=MAX_SKIP),
                           limit: int = Query(10, ge=1, le=1000)) -> list[dict[str, Any]]:
    return _service(request).list(skip, limit)


@router.get("/v1/predictions/{prediction_id}", response_model=Prediction)
async def get_prediction(prediction_id: str, request: Request) -> dict[str, Any]:
    return _service(request).get(prediction_id)


def _file_or_404(call: Callable[[], dict[str, Any]], param: str) -> dict[str, Any]:
    try:
        return public(call())
    except FileNotFound as exc:
        raise APIError(404, str(exc), param=param, code="file_not_found") from exc


@router.post("/v1/files", status_code=201, response_model=FileObject,
             response_model_exclude_none=True)
async def upload_file(request: Request, file: Annotated[UploadFile, File()],
                      purpose: Annotated[str, Query()] = "assistants",
                      form_purpose: Annotated[str | None, Form(alias="purpose")] = None
                      ) -> dict[str, Any]:
    chosen = form_purpose or purpose
    if chosen not in FILE_PURPOSES:
        raise APIError(400, f"purpose must be one of {', '.join(FILE_PURPOSES)}",
                       param="purpose")
    record = await asyncio.to_thread(_files(request).save, file.file,
                                     file.filename or "upload", chosen)
    return public(record)


@router.get("/v1/files", response_model=list[FileObject], response_model_exclude_none=True)
async def list_files(request: Request, skip: int = Query(0, ge=0, le=MAX_SKIP),
                     limit: int = Query(10, ge=1, le=1000)) -> list[dict[str, Any]]:
    return [public(r) for r in _files(request).list(skip, limit)]


@router.get("/v1/files/hash/{md5}", response_model=FileObject,
            response_model_exclude_none=True)
async def file_by_hash(md5: str, request: Request) -> dict[str, Any]:
    return _file_or_404(lambda: _files(request).by_md5(md5), "md5")


@router.get("/v1/files/{file_id}", response_model=FileObject,
            response_model_exclude_none=True)
async def get_file(file_id: str, request: Request) -> dict[str, Any]:
    return _file_or_404(lambda: _files(request).get(file_id), "file_id")


@router.delete("/v1/files/{file_id}", response_model=FileObject,
               response_model_exclude_none=True)
async def delete_file(file_id: str, request: Request) -> dict[str, Any]:
    return _file_or_404(lambda: _files(request).delete(file_id), "file_id") | {"deleted": True}


# The seed's OpenAI base URL is ``.../v1/openai``: answer there too.
router.add_api_route("/v1/openai/chat/completions", chat_completions, methods=["POST"],
                     response_model=ChatCompletionResponse, responses=STREAM_RESPONSES)
router.add_api_route("/v1/openai/models", list_models, methods=["GET"], response_model=ModelList)


def _chat_files(files: FileStore) -> Callable[[str], str]:
    def resolve(file_id: str) -> str:
        try:
            return files.resolve(file_id)
        except FileNotFound as exc:
            raise APIError(404, str(exc), param="messages", code="file_not_found") from exc

    return resolve


def _close_on_shutdown(app: FastAPI, *closers: Callable[[], Awaitable[None]]) -> None:
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            try:
                yield state
            finally:
                for close in closers:
                    await close()

    app.router.lifespan_context = lifespan


def install_domains(app: FastAPI, settings: Settings, engine: Engine) -> None:
    ctx: ServingContext = app.state.serving
    storage = Path(settings.storage_path).expanduser()
    store = Store(storage, recover_reason=RESTART_REASON)
    files = FileStore(store, storage / "files")
    registry = default_registry()
    chat = app.state.chat
    max_frames = settings.default_video_max_frames
    video = VideoSampling(settings.default_video_fps, max_frames,
                          min(engine.model.video_min_frames, max_frames))
    inputs = InputResolver(chat.policy, files, video, lambda: ctx.http)
    callbacks = CallbackSender(lambda: load_secret(settings.callback_secret, storage))
    service = PredictionService(ctx, registry, store, inputs, callbacks)
    app.state.domains, app.state.predictions, app.state.files = registry, service, files
    ctx.files = _chat_files(files)
    chat.policy = replace(chat.policy, media_roots=(*chat.policy.media_roots, files.folder))
    chat.hook = VlmrunChatHook(registry, SessionStore(settings.max_sessions,
                                                      ttl_s=settings.session_ttl_s),
                               settings.max_tokens_limit)
    app.include_router(router)

    async def close_store() -> None:
        store.close()

    _close_on_shutdown(app, service.close, close_store)
