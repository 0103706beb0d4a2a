"""Properties of message parsing (:mod:`vllm_mlx.content`) and of the request models
(:mod:`vllm_mlx.openai.protocol`, :mod:`vllm_mlx.domains.protocol`) over arbitrary JSON:

- anything at all gives messages or a :class:`ContentError` naming a ``messages...`` path,
  and the request models raise nothing but pydantic's ``ValidationError``;
- a message parses exactly when it is valid under the documented ``MESSAGE_JSON_SCHEMA``;
- valid content parts round-trip: texts, media kinds and sources, in their order;
- video sampling fields lifted from ``extra_body`` keep the bounds of the top-level ones.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from vllm_mlx.content import (
    ROLES,
    ContentError,
    MediaRef,
    TextRef,
    media_count,
    parse_message,
    parse_messages,
)
from vllm_mlx.domains.protocol import (
    FilePredictionRequest,
    ImagePredictionRequest,
    SchemaRequest,
)
from vllm_mlx.openai.protocol import MESSAGE_JSON_SCHEMA, ChatCompletionRequest, CompletionRequest

PROPERTY = settings(max_examples=150, deadline=None)
SCHEMA = jsonschema.Draft202012Validator(MESSAGE_JSON_SCHEMA)

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=6))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)

PART_FIELDS = {"text": "text", "input_text": "text", "image_url": "image_url",
               "input_image": "image_url", "image": "image", "video_url": "video_url",
               "video": "video", "input_file": "file_id"}
urls = st.sampled_from(["photo.png", " clip.mp4 ", "https://example.com/a.png",
                        "data:image/png;base64,AAAA", "file-1", "", "   "])
url_values = urls | st.fixed_dictionaries({"url": urls}) | json_values


@st.composite
def near_valid_part(draw: st.DrawFn) -> Any:
    """Mostly the shapes the parser knows, with invalid values and shapes mixed in."""
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return draw(json_values)
    if roll == 1:
        return draw(st.text(max_size=5))
    kind = draw(st.sampled_from([*PART_FIELDS, "hologram", None]))
    part: dict[str, Any] = {} if kind is None else {"type": kind}
    if kind in PART_FIELDS and roll > 3:
        part[PART_FIELDS[kind]] = draw(st.text(max_size=5) if kind.endswith("text")
                                       else urls | st.fixed_dictionaries({"url": urls}))
    for field in draw(st.sets(st.sampled_from(["text", "image_url", "url", "image",
                                               "video_url", "video", "file_id"]), max_size=1)):
        part[field] = draw(st.text(max_size=5) if field == "text" else url_values)
    return part


@st.composite
def near_valid_message(draw: st.DrawFn) -> Any:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return draw(json_values)
    role = draw(st.sampled_from(ROLES) if roll > 2 else st.sampled_from(["wizard", "", None])
                | json_values)
    message = {"role": role} if roll != 3 else {}
    content = draw(st.integers(0, 4))
    if content == 1:
        message["content"] = draw(st.text(max_size=5) | st.none())
    elif content in (2, 3):
        message["content"] = draw(st.lists(near_valid_part(), max_size=3))
    elif content == 4:
        message["content"] = draw(json_values)
    return message


def parse_or_error(messages: Any) -> tuple[Any, ContentError | None]:
    try:
        return parse_messages(messages), None
    except ContentError as exc:
        return None, exc


@PROPERTY
@given(messages=json_values | st.lists(near_valid_message(), max_size=4))
def test_any_json_gives_messages_or_a_content_error(messages: Any) -> None:
    parsed, error = parse_or_error(messages)
    if error is not None:
        assert error.param.startswith("messages") and str(error)
    else:
        assert len(parsed) == len(messages) > 0
        assert media_count(parsed) == sum(isinstance(p, MediaRef) for m in parsed
                                          for p in m.parts)


@PROPERTY
@given(message=near_valid_message())
def test_a_message_parses_exactly_when_the_documented_schema_accepts_it(message: Any) -> None:
    try:
        parse_message(message, 0)
    except ContentError as exc:
        parsed, param = False, exc.param
    else:
        parsed, param = True, ""
    event(f"parsed: {parsed}")  # --hypothesis-show-statistics: both outcomes are common
    assert parsed == SCHEMA.is_valid(message), (message, param)


valid_text_part = st.text(max_size=8).flatmap(lambda text: st.sampled_from([
    text, {"type": "text", "text": text}, {"type": "input_text", "text": text}]))
good_url = st.text(min_size=1, max_size=8).filter(str.strip)
valid_media_part = st.tuples(st.sampled_from(["image_url", "input_image", "image", "video_url",
                                              "video", "input_file"]), good_url, st.booleans())


def media_part(kind: str, url: str, wrapped: bool) -> tuple[dict[str, Any], MediaRef]:
    if kind == "input_file":
        return {"type": kind, "file_id": url}, MediaRef("file", url)
    field = "image_url" if kind == "input_image" else kind
    ref = MediaRef("video" if kind.startswith("video") else "image", url.strip())
    return {"type": kind, field: {"url": url} if wrapped else url}, ref


def text_of(part: Any) -> str:
    return part if isinstance(part, str) else part["text"]


@PROPERTY
@given(turns=st.lists(st.tuples(st.sampled_from(ROLES), st.lists(
    valid_text_part | valid_media_part, max_size=5)), min_size=1, max_size=4))
def test_valid_parts_round_trip_in_order(turns: list[tuple[str, list[Any]]]) -> None:
    messages, expected = [], []
    for role, items in turns:
        parts: list[Any] = []
        refs: list[TextRef | MediaRef] = []
        for item in items:
            ref: TextRef | MediaRef
            if isinstance(item, tuple):
                part, ref = media_part(*item)
            else:
                part, ref = item, TextRef(text_of(item))
            parts.append(part)
            refs.append(ref)
        reply: dict[str, Any] = {}
        if role == "tool":  # it answers a call of the assistant message before it
            call_id = f"call_{len(messages)}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "f", "arguments": "{}"}}]})
            expected.append(("assistant", ()))
            reply = {"tool_call_id": call_id}
        messages.append({"role": role, "content": parts, **reply})
        expected.append(("system" if role == "developer" else role, tuple(refs)))
    assert all(SCHEMA.is_valid(m) for m in messages)
    parsed = parse_messages(messages)
    assert [(m.role, m.parts) for m in parsed] == expected
    assert media_count(parsed) == sum(isinstance(r, MediaRef) for _, refs in expected
                                      for r in refs)


REQUEST_FIELDS = ["messages", "prompt", "model", "max_tokens", "temperature", "top_p", "n",
                  "stop", "stream", "logprobs", "top_logprobs", "response_format", "seed",
                  "logit_bias", "video_fps", "video_max_frames", "extra_body", "images",
                  "domain", "config", "metadata", "file_id", "url", "callback_url", "batch"]
request_bodies = st.dictionaries(
    st.sampled_from(REQUEST_FIELDS),
    json_values | st.lists(near_valid_message(), min_size=1, max_size=2), max_size=6)


@PROPERTY
@pytest.mark.parametrize("model", [ChatCompletionRequest, CompletionRequest,
                                   ImagePredictionRequest, FilePredictionRequest,
                                   SchemaRequest])
@given(body=request_bodies)
def test_request_models_raise_only_validation_errors(model: type[BaseModel],
                                                     body: dict[str, Any]) -> None:
    try:
        request = model.model_validate(body)
    except ValidationError:
        return
    if isinstance(request, ChatCompletionRequest):
        parse_or_error(request.messages)  # only ContentError may escape as "expected"


lifted_numbers = st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)


@PROPERTY
@given(fps=lifted_numbers, frames=lifted_numbers)
def test_extra_body_video_fields_keep_the_top_level_bounds(fps: Any, frames: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}],
            "extra_body": {"video_fps": fps, "video_max_frames": frames}}
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError:
        return
    assert request.video_fps is None or 0 < request.video_fps <= 120
    assert request.video_max_frames is None or 1 <= request.video_max_frames <= 1024
