"""The web layer's side of the one error path: :class:`~vllm_mlx.errors.APIError` -> HTTP.

:func:`install_error_handlers` makes every failure of a request leave in the one OpenAI
shape ``{"error": {message, type, param, code}}``: request validation (pydantic's errors,
summarised by :func:`validation_message`), Starlette's HTTP errors (404, a 405 with every
allowed method in ``Allow``; in Anthropic's shape under ``/v1/messages``),
:class:`~vllm_mlx.errors.APIError` raised by a feature, and anything else through
:func:`~vllm_mlx.errors.to_api_error` (a logged 500). A 429 carries ``Retry-After: 1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..anthropic.protocol import error_body as anthropic_error_body
from ..anthropic.protocol import is_anthropic_path
from ..content import ContentError
from ..engine import EngineError
from ..errors import APIError, to_api_error
from ..media import MediaError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _allow_header(request: Request, exc: HTTPException) -> Mapping[str, str] | None:
    """Every method of the matched path (Starlette's 405 names only one route's): the
    operations the OpenAPI document lists for the route's path template."""
    template = getattr(request.scope.get("route"), "path", None)
    operations = request.app.openapi()["paths"].get(template, {})
    methods = sorted(key.upper() for key in operations if key in _HTTP_METHODS)
    return {"Allow": ", ".join(methods)} if methods else exc.headers


def _respond(request: Request, error: APIError,
             headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``error`` in the one shape, or in Anthropic's under its routes."""
    body = anthropic_error_body(error) if is_anthropic_path(request.url.path) else error.body()
    return JSONResponse(body, status_code=error.status, headers=headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if errors and errors[0].get("type") == "json_invalid":
        return _respond(request, APIError(400, "request body is not valid JSON",
                                          code="invalid_json"))
    message, param = validation_message(errors)
    return _respond(request, APIError(400, message, param=param, code="invalid_request"))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = _allow_header(request, exc) if exc.status_code == 405 else exc.headers
    error = APIError(exc.status_code, message, code=_HTTP_CODES.get(exc.status_code))
    return _respond(request, error, headers)


async def _on_known(request: Request, exc: Exception) -> JSONResponse:
    error = to_api_error(exc)
    # a full queue empties as requests finish: clients (the OpenAI SDK) wait this long
    return _respond(request, error, {"Retry-After": "1"} if error.status == 429 else None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    for known in (APIError, ContentError, MediaError, EngineError):
        app.add_exception_handler(known, _on_known)
    app.add_exception_handler(Exception, _on_known)  # last resort: a logged 500


_TYPE_TAGS = re.compile(r"^(constrained-)?(str|int|float|bool|dict|list|none)$|^[\w-]+\[.*\]$")


def _is_type_tag(part: Any) -> bool:
    """pydantic names each alternative of a union in the error's location ('str')."""
    return isinstance(part, str) and bool(_TYPE_TAGS.match(part))


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A readable message and param path from pydantic's error list; a value that fits no
    alternative of a union is one error naming the alternatives."""
    if not errors:
        return "invalid request", None
    if tuple(errors[0].get("loc", ())) == ("body",):  # the body itself, not one field
        return _body_message(errors[0]), None
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


def _body_message(error: dict[str, Any]) -> str:
    if error.get("type") == "missing":
        return "the request body is missing: send a JSON object"
    return ("the request body must be a JSON object (sent with Content-Type: "
            "application/json)")


def _common_prefix(paths: list[list[str]]) -> list[str]:
    prefix = paths[0]
    for path in paths[1:]:
        while path[:len(prefix)] != prefix:
            prefix = prefix[:-1]
    return prefix
