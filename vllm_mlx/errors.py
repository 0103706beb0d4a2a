"""The one error contract, below every feature and free of any web framework.

Features raise :class:`APIError` (a status, a message and the OpenAI fields ``param``,
``code``, ``type``); :func:`to_api_error` maps every other exception a request can cause
(content, media, engine) to one, so HTTP responses, SSE error chunks and WebSocket close
messages all carry ``{"error": {"message", "type", "param", "code"}}``. Unknown exceptions
become a 500 with a generic message (details go to the log, not the client). Only the web
layer (:mod:`vllm_mlx.api`) turns an :class:`APIError` into an HTTP response.

A message that quotes a client's value does it with :func:`excerpt` (at most 200 escaped
characters, with the total length); as a last defence an :class:`APIError` cuts its
message to 1000 characters and its ``param`` to 200, and escapes lone surrogates, so an
error body stays small and always encodes as UTF-8 whatever the input.

:func:`storage_errors` wraps code that reads or writes the storage folder (SQLite
databases, uploaded files, generated videos): an ``OSError`` or ``sqlite3.Error`` raised
inside leaves as a :class:`StorageError` naming the folder and the cause (kept as
``__cause__``; the message is also logged). No space (``ENOSPC``, ``EDQUOT``), a file-size
limit (``EFBIG``) and SQLite's "database or disk is full" are ``507 storage_full``; anything
else (no permission, a read-only file system, a path through a regular file, a database that
cannot be opened) is ``503 storage_unavailable``.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bounds import excerpt, find_surrogate, safe_text
from .content import ContentError
from .engine.errors import (
    EngineClosed,
    EngineError,
    EngineOverloaded,
    InvalidRequest,
    ModelBusy,
    ModelInUse,
    ModelUnavailable,
    UnknownModel,
    UnsupportedInput,
)
from .media import MediaError

__all__ = ["APIError", "StorageError", "excerpt", "refuse_surrogates", "storage_error",
           "storage_errors", "to_api_error"]

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 1000  # an error message, client quotes included (see excerpt())
MAX_PARAM_CHARS = 200

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
          413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
          503: "server_overloaded"}
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass
class APIError(Exception):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        # the last line of defence against echoing a client's megabytes (or a lone
        # surrogate, which no UTF-8 response can carry): sites quote with excerpt()
        self.message = safe_text(self.message, MAX_MESSAGE_CHARS)
        if self.param is not None:
            self.param = safe_text(self.param, MAX_PARAM_CHARS)
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {
            "message": self.message,
            "type": self.type or _TYPES.get(self.status, "server_error"),
            "param": self.param,
            "code": self.code,
        }}


def refuse_surrogates(value: Any, root: str = "") -> None:
    """400 ``invalid_text`` naming the first string of a parsed JSON ``value`` that holds a
    lone surrogate (valid JSON, but no text a tokenizer or a UTF-8 response can take)."""
    where = find_surrogate(value, root)
    if where is not None:
        raise APIError(400, f"{where} holds a lone UTF-16 surrogate (an unpaired \\ud800-"
                       "\\udfff escape), which is not valid text", param=where,
                       code="invalid_text")


def _engine_error(exc: EngineError) -> APIError:
    if isinstance(exc, EngineOverloaded):
        return APIError(429, exc.message, code=exc.code)
    if isinstance(exc, (EngineClosed, ModelUnavailable, ModelBusy)):
        return APIError(503, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, ModelInUse):
        return APIError(409, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, UnknownModel):
        return APIError(404, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, (UnsupportedInput, InvalidRequest)):
        return APIError(400, exc.message, param=exc.param, code=exc.code)
    return APIError(500, exc.message, code=exc.code, type="server_error")


def to_api_error(exc: BaseException) -> APIError:
    """Map any exception raised while serving a request to an :class:`APIError`."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContentError):
        return APIError(400, str(exc), param=exc.param, code="invalid_content")
    if isinstance(exc, MediaError):
        status = int(getattr(exc, "status_code", 400))
        return APIError(status, str(exc), param=getattr(exc, "param", None),
                        code=getattr(exc, "code", "invalid_media"))
    if isinstance(exc, EngineError):
        return _engine_error(exc)
    logger.error("unhandled error while serving a request", exc_info=exc)
    return APIError(500, "internal server error", type="server_error", code="internal_error")


class StorageError(APIError):
    """The storage folder could not be used; ``status`` 507 (full) or 503 (unusable)."""


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)


def storage_error(exc: BaseException, folder: Path) -> StorageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if _is_full(exc):
        return StorageError(507, f"the storage folder {folder} is full ({reason}); free some "
                            "space and retry", code="storage_full", type="server_error")
    return StorageError(503, f"the storage folder {folder} cannot be used ({reason}); check "
                        "that it exists and is writable (--storage-path)",
                        code="storage_unavailable", type="server_error")


@contextmanager
def storage_errors(folder: Path) -> Iterator[None]:
    """Re-raise storage ``OSError`` / ``sqlite3.Error`` as :class:`StorageError`."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        error = storage_error(exc, folder)
        logger.error("%s", error.message)  # the client gets it too; the operator must see it
        raise error from exc
