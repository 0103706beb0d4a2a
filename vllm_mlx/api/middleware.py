"""Pure ASGI middleware: API-key check and request-body size limit.

Both answer in the one error shape (Anthropic's on the ``/v1/messages`` routes). The key
is compared in constant time and accepted as ``Authorization: Bearer``, ``x-api-key``, or
(WebSocket only, as browsers and the seed's client cannot set headers) an ``api_key`` query
parameter; a WebSocket with a wrong key is closed with 1008.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException

from ..anthropic.protocol import error_body as anthropic_error_body
from ..anthropic.protocol import is_anthropic_path
from ..errors import APIError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/v1/health"})


async def send_error(send: Send, error: APIError, path: str = "") -> None:
    shaped = anthropic_error_body(error) if is_anthropic_path(path) else error.body()
    body = json.dumps(shaped).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _presented_key(scope: Scope) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-api-key" in headers:
        return headers["x-api-key"].strip()
    if scope["type"] == "websocket":
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
        return values[0] if values else None
    return None


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    def _allowed(self, scope: Scope) -> bool:
        presented = _presented_key(scope)
        return presented is not None and hmac.compare_digest(presented.encode(), self.api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if self._allowed(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            # accept first: a close before the handshake completes is an HTTP 403, not 1008
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid API key"})
            return None
        await send_error(send, APIError(401, "Invalid or missing API key. Send it as "
                                        "'Authorization: Bearer KEY'.", code="invalid_api_key"),
                         scope["path"])
        return None


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> APIError:
        return APIError(413, f"request body is larger than this server's limit of "
                        f"{self.limit} bytes", code="request_too_large")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await send_error(send, self._too_large(), scope["path"])
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # an HTTPException passes through FastAPI's body parsing unchanged
                    raise HTTPException(413, self._too_large().message)
            return message

        await self.app(scope, limited_receive, send)
