"""``create_app(settings, engine, videos)``: the FastAPI application, with all state explicit.

The web layer's assembly. It builds each feature with what it needs, in dependency order
and with no feature patching another: the domains feature (storage, files, sessions) first,
then the OpenAI chat feature built with the domains' ``ChatExtension``, the Anthropic
Messages and OpenAI Responses features on its chat service, then the domains'
prediction service on the chat feature's context, the live stream and the video jobs
(given the files API's resolver). With several models (``models``: a
:class:`~vllm_mlx.engine.registry.ModelRegistry`), chat and completions serve any of them
by name and the lifespan preloads and unloads them. State lives on ``app.state``
(settings, engine, each feature's services); nothing is module-global, so several apps can
live in one process (tests do this). The lifespan holds the shared HTTP client for media
fetches and closes the features on shutdown. Every error leaves through
:func:`~.errors.install_error_handlers` in the one OpenAI shape, except on the Anthropic
routes, which answer in Anthropic's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..anthropic.routes import install_anthropic
from ..config import Settings
from ..domains.feature import Domains
from ..domains.routes import install_domains
from ..engine import Engine
from ..engine.registry import ModelRegistry
from ..openai.routes import install_openai
from ..responses.routes import install_responses
from ..responses.store import ResponseStore
from ..stream.route import install_stream
from ..videos.routes import install_videos
from ..videos.service import VideoJobs
from .errors import install_error_handlers
from .middleware import APIKeyMiddleware, BodyLimitMiddleware
from .openapi import install_openapi
from .routes import install_routes

logger = logging.getLogger(__name__)


def _install_features(app: FastAPI, settings: Settings, engine: Engine | None,
                      videos: VideoJobs | None, models: ModelRegistry | None) -> None:
    app.state.serving, app.state.stream, app.state.closers = None, None, []
    if engine is None:
        install_openai(app, settings, None)
        install_videos(app, settings, videos)
        return
    domains = Domains.open(settings, engine)
    ctx = install_openai(app, settings, engine, extension=domains.chat_extension(),
                         models=models)
    app.state.models = ctx.registry
    install_anthropic(app, app.state.chat)
    install_responses(app, app.state.chat, ResponseStore(settings.storage_path))
    install_domains(app, domains, ctx)
    install_stream(app, settings, engine)
    install_videos(app, settings, videos, files=domains.files.resolve)
    app.state.closers.append(domains.close)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The shared HTTP client of media fetches for the app's lifetime, the models' idle
    sweeper and preloads; then close features."""
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            if app.state.serving is not None:
                app.state.serving.http = client
            async with _models_running(app):
                yield
    finally:
        for close in app.state.closers:
            await close()


@asynccontextmanager
async def _models_running(app: FastAPI) -> AsyncIterator[None]:
    """Load the ``--preload`` models, then unload idle ones while the app runs."""
    models: ModelRegistry | None = getattr(app.state, "models", None)
    if models is None:
        yield
        return
    for name in app.state.settings.preload:
        status = await models.load(name)
        if status.error:
            logger.warning("%s", status.error)
    sweeper = asyncio.create_task(models.run_sweeper())
    try:
        yield
    finally:
        sweeper.cancel()


def create_app(settings: Settings, engine: Engine | None,
               videos: VideoJobs | None = None,
               models: ModelRegistry | None = None) -> FastAPI:
    """``engine`` None: no chat model (video-only server); ``videos``: the video jobs;
    ``models``: every chat model it may serve, ``engine`` being the default's (None: that
    model alone)."""
    app = FastAPI(title="vllm-mlx", version=__version__, lifespan=_lifespan,
                  description="Local OpenAI-compatible multimodal inference on MLX")
    app.state.settings = settings
    app.state.engine = engine
    _install_features(app, settings, engine, videos, models)
    install_routes(app, chat=engine is not None)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(APIKeyMiddleware, api_key=settings.api_key)
    if settings.cors_origins:  # outermost: preflights carry no key, and a 401 needs CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])
    return app
