"""``create_app(settings, engine)``: the FastAPI application, with all state explicit.

State lives on ``app.state`` (settings, engine, serving classes, the shared HTTP client
for media fetches); nothing is module-global, so several apps can live in one process
(tests do this). Every error leaves through the handlers below in the one OpenAI shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import __version__
from ..config import Settings
from ..content import ContentError
from ..engine import Engine, EngineError
from ..media import MediaError, MediaPolicy
from ..stream.route import install_stream
from ..videos.service import VideoJobs
from .errors import APIError, to_api_error, validation_message
from .middleware import APIKeyMiddleware, BodyLimitMiddleware
from .openapi import install_openapi
from .routes import router
from .routes_domains import install_domains
from .routes_videos import install_video_only, install_videos
from .serving_chat import ChatService
from .serving_common import ServingContext
from .serving_completion import CompletionService

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def media_policy(settings: Settings) -> MediaPolicy:
    return MediaPolicy(media_roots=tuple(settings.media_roots),
                       allow_private_urls=settings.allow_private_urls)


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _allow_header(request: Request, exc: HTTPException) -> Mapping[str, str] | None:
    """Every method of the matched path (Starlette's 405 names only one route's): the
    operations the OpenAPI document lists for the route's path template."""
    template = getattr(request.scope.get("route"), "path", None)
    operations = request.app.openapi()["paths"].get(template, {})
    methods = sorted(key.upper() for key in operations if key in _HTTP_METHODS)
    return {"Allow": ", ".join(methods)} if methods else exc.headers


def _install_error_handlers(app: FastAPI) -> None:
    def respond(error: APIError, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if errors and errors[0].get("type") == "json_invalid":
            return respond(APIError(400, "request body is not valid JSON", code="invalid_json"))
        message, param = validation_message(errors)
        return respond(APIError(400, message, param=param, code="invalid_request"))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = _allow_header(request, exc) if exc.status_code == 405 else exc.headers
        return respond(APIError(exc.status_code, message, code=_HTTP_CODES.get(exc.status_code)),
                       headers)

    async def on_known(_: Request, exc: Exception) -> JSONResponse:
        error = to_api_error(exc)
        # a full queue empties as requests finish: clients (the OpenAI SDK) wait this long
        return respond(error, {"Retry-After": "1"} if error.status == 429 else None)

    for known in (APIError, ContentError, MediaError, EngineError):
        app.add_exception_handler(known, on_known)
    app.add_exception_handler(Exception, on_known)  # last resort: a logged 500


def create_app(settings: Settings, engine: Engine | None,
               videos: VideoJobs | None = None) -> FastAPI:
    """``engine`` None: no chat model (video-only server); ``videos``: the video jobs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            if engine is not None:
                app.state.serving.http = client
            yield

    app = FastAPI(title="vllm-mlx", version=__version__, lifespan=lifespan,
                  description="Local OpenAI-compatible multimodal inference on MLX")
    app.state.settings = settings
    app.state.engine = engine
    if engine is None:
        install_video_only(app)
    else:
        ctx = ServingContext(engine=engine, settings=settings)
        app.state.serving = ctx
        app.state.chat = ChatService(ctx, media_policy(settings))
        app.state.completions = CompletionService(ctx)
        app.include_router(router)
    # Feature routers: each feature module owns its routes and puts its state on app.state.
    if engine is not None:
        install_domains(app, settings, engine)
        install_stream(app, settings, engine)
    install_videos(app, settings, videos)
    _install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(APIKeyMiddleware, api_key=settings.api_key)
    if settings.cors_origins:  # outermost: preflights carry no key, and a 401 needs CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])
    return app
