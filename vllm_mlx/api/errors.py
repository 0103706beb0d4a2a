"""The one error path: every failure becomes ``{"error": {message, type, param, code}}``.

:class:`APIError` is what serving classes raise; :func:`to_api_error` maps every other
exception a request can cause (engine, media, content, validation) to one, so routes,
SSE streams and WebSocket handlers all report errors in the same shape. Unknown
exceptions become a 500 with a generic message (details go to the log, not the client).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ..content import ContentError
from ..engine.errors import (
    EngineClosed,
    EngineError,
    EngineOverloaded,
    InvalidRequest,
    UnsupportedInput,
)
from ..media import MediaError

logger = logging.getLogger(__name__)

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
          413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
          503: "server_overloaded"}


@dataclass
class APIError(Exception):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {
            "message": self.message,
            "type": self.type or _TYPES.get(self.status, "server_error"),
            "param": self.param,
            "code": self.code,
        }}


def _engine_error(exc: EngineError) -> APIError:
    if isinstance(exc, EngineOverloaded):
        return APIError(429, exc.message, code=exc.code)
    if isinstance(exc, EngineClosed):
        return APIError(503, exc.message, code=exc.code)
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


_TYPE_TAGS = re.compile(r"^(constrained-)?(str|int|float|bool|dict|list|none)$|^[\w-]+\[.*\]$")


def _is_type_tag(part: Any) -> bool:
    """pydantic names each alternative of a union in the error's location ('str')."""
    return isinstance(part, str) and bool(_TYPE_TAGS.match(part))


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A readable message and param path from pydantic's error list; a value that fits no
    alternative of a union is one error naming the alternatives."""
    if not errors:
        return "invalid request", None
    locs = [[p for p in e.get("loc", ()) if p != "body"] for e in errors]
    fields = [[str(p) for p in loc if not _is_type_tag(p)] for loc in locs]
    tags = list(dict.fromkeys(next((str(p).replace("constrained-", "") for p in loc
                                    if _is_type_tag(p)), "") for loc in locs))
    param = ".".join(fields[0]) or None
    message = errors[0].get("msg", "invalid value")
    if len(tags) > 1 and all(tags):  # every error is one union alternative failing
        common = _common_prefix(fields)
        param = ".".join(common) or None
        message = f"must be {' or '.join(tags)}"
    elif len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return (f"{param}: {message}" if param else message), param


def _common_prefix(paths: list[list[str]]) -> list[str]:
    prefix = paths[0]
    for path in paths[1:]:
        while path[:len(prefix)] != prefix:
            prefix = prefix[:-1]
    return prefix
