"""The served OpenAPI document, made to say what the routes really answer.

FastAPI documents a 422 ``HTTPValidationError`` for every route that takes parameters, but
this server answers invalid requests with 400 in the one OpenAI error shape (see
:mod:`.errors`). :func:`install_openapi` rewrites each operation's error responses:
``400`` when it takes parameters or a body, ``404`` when it has path parameters, and
``default`` for every other error a route can give (401, 405, 413, 429, 499, 503, 500), all
with :class:`ErrorResponse`. Success responses are left as the routes declare them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

_REF = "#/components/schemas/{model}"
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """The one error shape of every route: ``{"error": {message, type, param, code}}``."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": _REF.format(model=ErrorResponse.__name__)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(operation: dict[str, Any]) -> dict[str, Any]:
    """The error entries documented for one operation."""
    parameters = operation.get("parameters", [])
    responses: dict[str, Any] = {}
    if parameters or "requestBody" in operation:
        responses["400"] = _error("Invalid request")
    if any(p.get("in") == "path" for p in parameters):
        responses["404"] = _error("Not found")
    responses["default"] = _error("Error")
    return responses


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's 422 entries by the server's real error responses, in place."""
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, entry in error_responses(operation).items():
                responses.setdefault(status, entry)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ERRORS:
        components.pop(name, None)
    error_schema = ErrorResponse.model_json_schema(ref_template=_REF)
    components.update(error_schema.pop("$defs", {}))
    components[ErrorResponse.__name__] = error_schema
    return schema


def install_openapi(app: FastAPI) -> None:
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(build())  # FastAPI caches what build() returns on the app
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
