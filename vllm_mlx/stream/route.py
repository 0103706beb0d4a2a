"""The live-video WebSocket routes: ``ws://HOST:PORT/?api_key=KEY`` and ``/v1/stream``.

Thin: accept, open a session on ``app.state.stream`` (a refused one gets an
``{"error": ...}`` message and a close code: 1003 text-only model, 1008 bad settings,
1013 too many connections), then hand every message to it until the client leaves or the
session closes the socket. The API key is checked before this by
the web layer's ``APIKeyMiddleware`` (query ``api_key``; 1008 when wrong).
:func:`install_stream` puts the service on ``app.state.stream`` and adds the routes.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket

from ..config import Settings
from ..engine import Engine
from ..errors import to_api_error
from .config import StreamLimits
from .session import StreamRefused, StreamService, StreamSession

CLOSE_INTERNAL_ERROR = 1011

router = APIRouter()


class StarletteTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send(self, payload: dict[str, Any]) -> None:
        await self.websocket.send_text(json.dumps(payload, separators=(",", ":")))

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code=code, reason=reason)


@router.websocket("/")
@router.websocket("/v1/stream")
@router.websocket("/v1/stream/")
async def stream_socket(websocket: WebSocket) -> None:
    service: StreamService = websocket.app.state.stream
    await websocket.accept()
    transport = StarletteTransport(websocket)
    try:
        session = service.open(websocket.query_params, transport)
    except StreamRefused as exc:
        await transport.send(exc.body())
        await transport.close(exc.close_code, exc.message[:120])
        return
    try:
        await _serve(websocket, session)
    except Exception as exc:  # a bug, not the client's doing: say so and close cleanly
        error = to_api_error(exc)  # logs it
        with contextlib.suppress(Exception):  # the socket may be gone already
            await transport.send(error.body())
            await transport.close(CLOSE_INTERNAL_ERROR, error.message[:120])
    finally:
        await session.close()


async def _serve(websocket: WebSocket, session: StreamSession) -> None:
    """Hand each message to ``session`` until the client leaves or the session ends."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is not None and not await session.receive(data):
            return


def stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(max_window=settings.stream_max_window,
                        max_tokens=settings.max_tokens_limit,
                        max_message_bytes=settings.stream_max_message_bytes)


def install_stream(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Put the live-video service on ``app.state.stream`` and add its routes."""
    app.state.stream = StreamService(engine, stream_limits(settings),
                                     max_connections=settings.stream_max_connections)
    app.include_router(router)
