"""What every fuzzed response must satisfy beyond schemathesis' own checks, and how a case
is sent: the one error shape (Anthropic's on the ``/v1/messages`` routes), well-formed event
streams (chat chunks, Anthropic's events, the Responses API's typed events), cheap video
jobs, figures kept."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vllm_mlx.openai.protocol import ChatCompletionChunk, CompletionResponse

ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class FuzzStats:
    """Cases sent, statuses seen and time spent, per operation (printed after the run)."""

    name: str
    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, label: str, status: int, seconds: float) -> None:
        self.cases[label] += 1
        self.statuses.setdefault(label, Counter())[status] += 1
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds

    def lines(self) -> list[str]:
        rows = [f"{label}: {count} cases in {self.seconds[label]:.1f} s, statuses "
                f"{dict(sorted(self.statuses[label].items()))}"
                for label, count in sorted(self.cases.items())]
        total = (f"total: {sum(self.cases.values())} cases over {len(self.cases)} operations "
                 f"in {sum(self.seconds.values()):.1f} s of requests")
        return [f"{self.name}: {row}" for row in (*rows, total)]


def assert_error_shape(status: int, body: Any) -> None:
    """Exactly ``{"error": {message, type, param, code}}``, with the types the docs give."""
    assert isinstance(body, dict) and set(body) == {"error"}, (status, body)
    error = body["error"]
    assert isinstance(error, dict) and set(error) == ERROR_KEYS, (status, body)
    assert isinstance(error["message"], str) and error["message"], (status, body)
    assert isinstance(error["type"], str) and error["type"], (status, body)
    assert error["param"] is None or isinstance(error["param"], str), (status, body)
    assert error["code"] is None or isinstance(error["code"], str), (status, body)


def assert_anthropic_error_shape(status: int, body: Any) -> None:
    """Exactly ``{"type": "error", "error": {type, message}}`` (the ``/v1/messages`` routes)."""
    assert isinstance(body, dict) and set(body) == {"type", "error"}, (status, body)
    error = body["error"]
    assert body["type"] == "error" and isinstance(error, dict), (status, body)
    assert set(error) == {"type", "message"}, (status, body)
    assert isinstance(error["message"], str) and error["message"], (status, body)
    assert isinstance(error["type"], str) and error["type"], (status, body)


def assert_anthropic_events(text: str, cut_short: bool) -> None:
    """``event: NAME`` / ``data: JSON`` pairs whose ``type`` is the name, from
    ``message_start`` to ``message_stop`` (or an error that is not the server's fault)."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        body = json.loads(lines["data"], parse_constant=_no_constants)
        assert body["type"] == lines["event"], block
        if body["type"] == "error":
            assert_anthropic_error_shape(200, body)
            assert body["error"]["type"] != "api_error", body  # a 5xx sent in-band
        events.append(body["type"])
    assert events and events[0] in ("message_start", "error"), events[:3]
    if not cut_short and events[-1] != "error":
        assert events[-1] == "message_stop", events[-3:]


RESPONSE_ENDS = ("response.completed", "response.incomplete", "response.failed")


def assert_responses_events(text: str, cut_short: bool) -> None:
    """The Responses API's typed events (``/v1/responses``): ``event: TYPE`` / ``data: JSON``
    pairs whose ``type`` is the name, numbered from 0, from ``response.created`` to a
    completed, incomplete or failed response; an ``error`` event is not the server's fault."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        body = json.loads(lines["data"], parse_constant=_no_constants)
        assert body["type"] == lines["event"], block
        assert body["sequence_number"] == len(events), block
        if body["type"] == "error":
            assert body.get("code") != "server_error", body  # a 5xx sent in-band
        events.append(body["type"])
    assert events and events[0] == "response.created", events[:3]
    if not cut_short:
        assert events[-1] in RESPONSE_ENDS, events[-3:]


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def assert_stream_events(text: str, cut_short: bool) -> None:
    """Each event is a valid chunk or an error that is not the server's fault, then [DONE]."""
    events = [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]
    assert events, text
    if not cut_short:
        assert events[-1] == "[DONE]", events[-3:]
    for data in events:
        if data == "[DONE]":
            continue
        body = json.loads(data, parse_constant=_no_constants)
        if "error" in body:
            assert_error_shape(200, body)
            assert body["error"]["type"] != "server_error", body  # a 5xx sent in-band
        elif body.get("object") == "chat.completion.chunk":
            ChatCompletionChunk.model_validate(body)
        else:
            CompletionResponse.model_validate(body)


# Form fields of POST /v1/videos that decide how long a job runs, with a cheap valid value.
_CHEAP_VIDEO = {"size": "32x32", "width": "32", "height": "32", "num_frames": "1",
                "seconds": "1", "fps": "4", "num_inference_steps": "1",
                "frame_interpolation_exp": "1"}
_VIDEO_CREATE = ("/v1/videos", "/v1/videos/sync")


def _is_integer(value: Any) -> bool:
    try:
        int(str(value).strip())
    except ValueError:
        return False
    return True


def _costly(name: str, value: Any) -> bool:
    if value is None or isinstance(value, (dict, list)):
        return False
    if name == "size":
        width, cross, height = str(value).partition("x")
        return bool(cross) and _is_integer(width) and _is_integer(height)
    return _is_integer(value)


def cheapen_video_case(case: Any) -> None:
    """Swap costly but valid video settings for cheap ones; invalid values are kept.

    A fuzzed 4096x4096, 10000-frame, 200-step job would run for hours on the worker; values
    that do not parse still reach the server's validation, which is what fuzzing is for.
    """
    body = case.body
    if case.operation.path not in _VIDEO_CREATE or not isinstance(body, dict):
        return
    for name, cheap in _CHEAP_VIDEO.items():
        if _costly(name, body.get(name)):
            body[name] = cheap
    extra = body.get("extra_params")
    if isinstance(extra, dict) and "max_sequence_length" in extra:
        extra["max_sequence_length"] = 8


def check_response(case: Any, response: Any) -> None:
    """Our checks on top of schemathesis' (which ``validate_response`` runs)."""
    anthropic = case.operation.path.startswith("/v1/messages")
    if response.status_code >= 400:
        (assert_anthropic_error_shape if anthropic else assert_error_shape)(
            response.status_code, response.json())
    elif any(v.startswith("text/event-stream") for v in response.headers.get("content-type", [])):
        check = (assert_anthropic_events if anthropic
                 else assert_responses_events if case.operation.path == "/v1/responses"
                 else assert_stream_events)
        check(response.text, response.stream_cut_short)


def send(case: Any, stats: FuzzStats, **kwargs: Any) -> Any:
    """Send one case, made cheap, and record it."""
    cheapen_video_case(case)
    started = time.perf_counter()
    response = case.call(**kwargs)
    stats.record(case.operation.label, response.status_code, time.perf_counter() - started)
    return response


def run_case(case: Any, stats: FuzzStats) -> None:
    """Send one case and run every check on the response."""
    response = send(case, stats)
    case.validate_response(response)
    check_response(case, response)
