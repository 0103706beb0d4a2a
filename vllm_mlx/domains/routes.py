"""Thin routes of the VLM Run-compatible API (structured domain predictions and files).

:func:`install_domains` puts the feature's state (a :class:`~.feature.Domains`, opened before
the chat feature it extends) on ``app.state`` (``domains``, ``predictions``, ``files``) and
adds the routes; the app closes it on shutdown (:meth:`~.feature.Domains.close`). Routes
only parse, call a service and return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile

from ..errors import APIError
from ..openai.serving_common import ServingContext
from .catalog import schema_info
from .feature import Domains
from .files import FileNotFound, FileStore, public
from .protocol import (
    FILE_PURPOSES,
    DomainInfo,
    FileObject,
    FilePredictionRequest,
    ImagePredictionRequest,
    Prediction,
    SchemaInfo,
    SchemaRequest,
)
from .service import PredictionService

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


def install_domains(app: FastAPI, domains: Domains, ctx: ServingContext) -> None:
    """Put the feature's state on ``app.state`` (``domains``, ``predictions``, ``files``) and
    add its routes; ``ctx`` is the chat feature's, built with ``domains.chat_extension()``."""
    app.state.domains, app.state.files = domains.registry, domains.files
    app.state.predictions = domains.predictions(ctx)
    app.include_router(router)
