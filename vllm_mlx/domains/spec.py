"""What a domain is: a pydantic schema plus the words and limits used to fill it.

Contract: :class:`DomainSpec` is an immutable registry entry. ``json_schema()`` is the
pydantic JSON schema of ``model`` (the one decoding is constrained to and the one
``POST /v1/schema`` returns); ``schema_hash`` is the first 8 hex digits of the sha256 of that
schema dumped with sorted keys. Adding a domain is one ``DomainSpec(...)`` in a family module
listed in :mod:`.registry`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

InputKind = Literal["image", "document", "video"]


def schema_hash(schema: dict[str, Any]) -> str:
    """First 8 hex digits of sha256 over the schema dumped with sorted keys."""
    dumped = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(dumped.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class DomainSpec:
    """One domain: its schema, prompt, description and the inputs it accepts."""

    name: str
    model: type[BaseModel]
    description: str
    prompt: str
    inputs: tuple[InputKind, ...] = ("image", "document")
    aliases: tuple[str, ...] = ()
    version: str = "1.0.0"
    max_tokens: int = 2048  # default generation budget for one prediction
    tags: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    def json_schema(self) -> dict[str, Any]:
        """A copy of the schema (callers may change it)."""
        return json.loads(json.dumps(self.schema))

    @property
    def schema_hash(self) -> str:
        return schema_hash(self.schema)

    def accepts(self, kind: InputKind) -> bool:
        return kind in self.inputs
