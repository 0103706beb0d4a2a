"""Bounded field types for domain schemas.

Contract: every domain schema is built from these types so that its JSON schema is one that
llguidance enforces *completely* during decoding, and whose every grammatical output also
passes pydantic validation:

* strings carry ``maxLength`` (a model with random weights rarely closes a string, so the
  bound is what ends it) and no ``format`` llguidance would ignore (``uri``, ``email``);
* dates and date-times are strings with a ``pattern`` that only admits real calendar days
  (29 February excepted), validated by pydantic as ``date`` / ``datetime``;
* numbers carry ``minimum`` / ``maximum`` and ``multipleOf`` so they are finite and short;
* lists carry ``maxItems``; objects forbid extra keys (``additionalProperties: false``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
        r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))")
DATE_PATTERN = rf"^[12][0-9]{{3}}-{_DAY}$"
DATETIME_PATTERN = rf"^[12][0-9]{{3}}-{_DAY}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"


class Strict(BaseModel):
    """Base of every domain model: unknown keys are refused (and not generated)."""

    model_config = ConfigDict(extra="forbid")


ShortText = Annotated[str, StringConstraints(max_length=80)]
Name = Annotated[str, StringConstraints(max_length=120)]
Line = Annotated[str, StringConstraints(max_length=240)]
Paragraph = Annotated[str, StringConstraints(max_length=600)]
Long = Annotated[str, StringConstraints(max_length=4000)]

IsoDate = Annotated[date, WithJsonSchema({"type": "string", "pattern": DATE_PATTERN})]
IsoDateTime = Annotated[datetime, WithJsonSchema({"type": "string",
                                                  "pattern": DATETIME_PATTERN})]
# ``multipleOf`` bounds the decimals decoding may produce; it is published in the JSON schema
# only (pydantic's float ``multiple_of`` check would reject 0.07 for rounding reasons).
Amount = Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False), WithJsonSchema(
    {"type": "number", "minimum": -1e12, "maximum": 1e12, "multipleOf": 0.01})]
Rate = Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False), WithJsonSchema(
    {"type": "number", "minimum": -1e9, "maximum": 1e9, "multipleOf": 0.0001})]
Count = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False), WithJsonSchema(
    {"type": "number", "minimum": 0, "maximum": 1e9, "multipleOf": 0.001})]
Score = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), WithJsonSchema(
    {"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01})]
Seconds = Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False), WithJsonSchema(
    {"type": "number", "minimum": 0, "maximum": 86400, "multipleOf": 0.01})]
Tags = Annotated[list[ShortText], Field(max_length=16)]
