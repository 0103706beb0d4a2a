"""``confidence`` and ``grounding``: the ``X_metadata`` siblings of top-level fields.

Contract:

* confidence comes from the model's own token probabilities: the geometric mean probability
  of the tokens that spell a field's value (the distribution after the schema mask, so a
  value the schema forces is certain). ``hi`` >= 0.8 > ``med`` >= 0.5 > ``low``. Fields the
  model did not write get no metadata.
* boxes are never invented: with ``grounding`` the schema given to the decoder gets an optional
  ``X_metadata: {bboxes: [{xywh}]}`` after each top-level property (normalised 0-1
  ``[x, y, width, height]``); boxes appear in the answer only where the model wrote them.

:func:`token_spans` maps generated pieces (text, logprobs) to character spans;
:func:`value_spans` finds where each top-level value lies in the generated JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

HI, MED = 0.8, 0.5
SUFFIX = "_metadata"
BOX = {
    "type": "object",
    "properties": {"xywh": {
        "type": "array", "minItems": 4, "maxItems": 4,
        "items": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.001}}},
    "required": ["xywh"], "additionalProperties": False,
}
BOX_METADATA = {
    "type": "object",
    "description": "Where the value is shown: normalised [x, y, width, height] boxes",
    "properties": {"bboxes": {"type": "array", "maxItems": 4, "items": BOX}},
    "required": ["bboxes"], "additionalProperties": False,
}

Span = tuple[int, int, float]  # start, end (characters), logprob of one token


def grounding_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``schema`` with optional box metadata after each top-level property, and their keys."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return schema, ()
    new_props: dict[str, Any] = {}
    added = []
    for key, value in properties.items():
        new_props[key] = value
        meta = key + SUFFIX
        if meta not in properties:
            new_props[meta] = BOX_METADATA
            added.append(meta)
    return {**schema, "properties": new_props}, tuple(added)


def split_boxes(obj: Any, keys: Sequence[str]) -> tuple[Any, dict[str, list[Any]]]:
    """Remove the added metadata keys from ``obj``; return it and the model's boxes."""
    if not isinstance(obj, dict) or not keys:
        return obj, {}
    boxes = {}
    for meta in keys:
        value = obj.pop(meta, None)
        if isinstance(value, dict) and value.get("bboxes"):
            boxes[meta[: -len(SUFFIX)]] = value["bboxes"]
    return obj, boxes


def token_spans(pieces: Sequence[tuple[str, Sequence[tuple[str, float]]]]) -> list[Span]:
    """Character span of every token, from streamed pieces ``(text, [(token, logprob)])``.

    A piece may carry several tokens: when their texts spell the piece's text each gets its
    own span, otherwise all share the piece's span. A token whose text is not out yet (a
    partial character) shares the next piece's span.
    """
    spans: list[Span] = []
    offset, pending = 0, list[tuple[str, float]]()
    for text, tokens in pieces:
        pending.extend(tokens)
        if not text:
            continue
        if "".join(t for t, _ in pending) == text:
            for token, logprob in pending:
                spans.append((offset, offset + len(token), logprob))
                offset += len(token)
        else:
            spans.extend((offset, offset + len(text), lp) for _, lp in pending)
            offset += len(text)
        pending = []
    return spans


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def value_spans(text: str) -> dict[str, tuple[int, int]]:
    """Character span of each top-level value of the JSON object in ``text``."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(text, 0)
    if text[i:i + 1] != "{":
        return spans
    i = _skip(text, i + 1)
    try:
        while i < len(text) and text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past ':'
            _, end = decoder.raw_decode(text, i)
            spans[str(key)] = (i, end)
            i = _skip(text, end)
            if text[i:i + 1] == ",":
                i = _skip(text, i + 1)
    except (ValueError, IndexError):
        pass
    return spans


def level(probability: float) -> str:
    return "hi" if probability >= HI else "med" if probability >= MED else "low"


def span_probability(tokens: Sequence[Span], start: int, end: int) -> float | None:
    """Geometric mean probability of the tokens overlapping ``[start, end)``."""
    logprobs = [lp for s, e, lp in tokens if s < end and e > start and math.isfinite(lp)]
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


def attach(obj: Any, text: str, tokens: Sequence[Span],
           boxes: dict[str, list[Any]] | None) -> Any:
    """``obj`` with ``X_metadata`` after each top-level field the model wrote."""
    if not isinstance(obj, dict):
        return obj
    spans = value_spans(text)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[key] = value
        if key not in spans:
            continue
        probability = span_probability(tokens, *spans[key])
        meta: dict[str, Any] = {}
        if probability is not None:
            meta["confidence"] = level(probability)
        if boxes and boxes.get(key):
            meta["bboxes"] = boxes[key]
        if meta:
            out[key + SUFFIX] = meta
    return out
