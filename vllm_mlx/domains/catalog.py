"""``GET /v1/domains`` and ``POST /v1/schema`` answers.

Contract: :func:`schema_info` returns ``{domain, description, schema_version, schema_hash,
gql_stmt, json_schema}`` for a registered domain (or for the caller's ``config.json_schema``,
version ``custom``); an unknown domain is a 400 naming the valid ones. ``gql_stmt`` is a
GraphQL-style selection of every field (``$ref`` followed), which the ``vlmrun`` SDK expects.
"""

from __future__ import annotations

from typing import Any

from ..errors import APIError
from .predictor import check_user_schema
from .registry import DomainRegistry, UnknownDomain
from .spec import schema_hash

_MAX_DEPTH = 8


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(defs.get(ref.rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key) or ():
            if isinstance(option, dict) and option.get("type") != "null":
                return _resolve(option, defs)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return _resolve(node["items"], defs)
    return node


def _selection(node: dict[str, Any], defs: dict[str, Any], depth: int) -> str:
    props = _resolve(node, defs).get("properties")
    if not isinstance(props, dict) or depth > _MAX_DEPTH:
        return ""
    fields = []
    for key, value in props.items():
        inner = _selection(value, defs, depth + 1) if isinstance(value, dict) else ""
        fields.append(f"{key} {inner}" if inner else key)
    return "{ " + " ".join(fields) + " }"


def gql_statement(schema: dict[str, Any]) -> str:
    return _selection(schema, schema.get("$defs") or {}, 0) or "{ }"


def schema_info(registry: DomainRegistry, domain: str, custom: dict[str, Any] | None
                ) -> dict[str, Any]:
    if custom is not None:
        check_user_schema(custom)
        return {"domain": domain, "description": "caller-supplied JSON schema",
                "schema_version": "custom", "schema_hash": schema_hash(custom),
                "gql_stmt": gql_statement(custom), "json_schema": custom}
    try:
        spec = registry.get(domain)
    except UnknownDomain as exc:
        raise APIError(400, str(exc), param="domain", code="unknown_domain") from exc
    return {"domain": domain, "description": spec.description,
            "schema_version": spec.version, "schema_hash": spec.schema_hash,
            "gql_stmt": gql_statement(spec.schema), "json_schema": spec.json_schema()}
