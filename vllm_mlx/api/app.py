"""``create_app(settings, engine, videos)``: the FastAPI application, with all state explicit.

The web layer's assembly. It builds each feature with what it needs, in dependency order
and with no feature patching another: the domains feature (storage, files, sessions) first,
then the OpenAI chat feature built with the domains' ``ChatExtension``, the Anthropic
Messages feature on its chat service, then the domains'
prediction service on the chat feature's context, the live stream and the video jobs
(given the files API's resolver). State lives on ``app.state``
(settings, engine, each feature's services); nothing is module-global, so several apps can
live in one process (tests do this). The lifespan holds the shared HTTP client for media
fetches and closes the features on shutdown. Every error leaves through
:func:`~.errors.install_error_handlers` in the one OpenAI shape, except on the Anthropic
routes, which answer in Anthropic's.
"""

from __future__ import annotations

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
from ..openai.routes import install_openai
from ..stream.route import install_stream
from ..videos.routes import install_videos
from ..videos.service import VideoJobs
from .errors import install_error_handlers
from .middleware import APIKeyMiddleware, BodyLimitMiddleware
from .openapi import install_openapi
from .routes import install_routes


def _install_features(app: FastAPI, settings: Settings, engine: Engine | None,
                      videos: VideoJobs | None) -> None:
    app.state.serving, app.state.stream, app.state.closers = None, None, []
    if engine is None:
        install_openai(app, settings, None)
        install_videos(app, settings, videos)
        return
    domains = Domains.open(settings, engine)
    ctx = install_openai(app, settings, engine, extension=domains.chat_extension())
    install_anthropic(app, app.state.chat)
    install_domains(app, domains, ctx)
    install_stream(app, settings, engine)
    install_videos(app, settings, videos, files=domains.files.resolve)
    app.state.closers.append(domains.close)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The shared HTTP client of media fetches for the app's lifetime; then close features."""
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            if app.state.serving is not None:
                app.state.serving.http = client
            yield
    finally:
        for close in app.state.closers:
            await close()


def create_app(settings: Settings, engine: Engine | None,
               videos: VideoJobs | None = None) -> FastAPI:
    """``engine`` None: no chat model (video-only server); ``videos``: the video jobs."""
    app = FastAPI(title="vllm-mlx", version=__version__, lifespan=_lifespan,
                  description="Local OpenAI-compatible multimodal inference on MLX")
    app.state.settings = settings
    app.state.engine = engine
    _install_features(app, settings, engine, videos)
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
