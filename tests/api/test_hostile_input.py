"""Client input that used to answer 500 or echo itself: lone surrogates in any string
field, schemas nested 100+ deep, and megabyte-long bad values. Every one must be a 4xx in
the standard error shape, with a short body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import data_url, png_bytes
from vllm_mlx.config import Settings

LONE = "\ud800"
CHAT = {"model": "tiny-vl", "max_tokens": 2, "user": "u", "stop": ["x"],
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [
                         {"type": "text", "text": "hi"},
                         {"type": "image_url", "image_url": {"url": "http://x/a.png"}},
                         {"type": "input_file", "file_id": "file-1"}]}],
        "tools": [{"type": "function", "function": {
            "name": "f", "description": "d",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "logit_bias": {"1": 1.0}, "extra_body": {"k": "v"}}
COMPLETION = {"model": "tiny-vl", "prompt": "hi", "max_tokens": 2, "stop": "x", "user": "u"}
PREDICTION = {"model": "vlm-1", "domain": "document.invoice", "callback_url": "http://x/c",
              "id": "i", "created_at": "t",
              "config": {"prompt": "p", "json_schema": {"type": "object", "properties": {
                  "a": {"type": "string", "description": "d"}}}},
              "metadata": {"session_id": "s", "extra": {"k": "v"}}}
ROUTES = [
    ("/v1/chat/completions", CHAT),
    ("/v1/chat/completions", {**CHAT, "response_format": {
        "type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}}),
    ("/v1/completions", COMPLETION),
    ("/v1/image/generate", {**PREDICTION, "images": ["aGk="]}),
    ("/v1/document/generate", {**PREDICTION, "file_id": "file-1"}),
    ("/v1/document/generate", {**PREDICTION, "url": "http://x/a.pdf"}),
    ("/v1/video/generate", {**PREDICTION, "url": "http://x/a.mp4"}),
    ("/v1/schema", {"domain": "document.invoice", "config": PREDICTION["config"]}),
]


def string_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path of every string in ``value``, dict keys included (marked with a tuple)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield (*path, (key,))
            yield from string_paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from string_paths(child, (*path, i))


def with_value(body: Any, path: tuple, value: str) -> Any:
    """A copy of ``body`` with the string at ``path`` (or the key, if ``path`` ends with a
    1-tuple) replaced by ``value``."""
    body = json.loads(json.dumps(body))
    *parents, last = path
    node = body
    for part in parents:
        node = node[part]
    if isinstance(last, tuple):
        node[value] = node.pop(last[0])
    else:
        node[last] = value
    return body


VARIANTS = [(route, body, path) for route, body in ROUTES for path in string_paths(body)]


@pytest.fixture(scope="module")
def client(engine_for, tmp_path_factory) -> Iterator[TestClient]:
    from vllm_mlx.api.app import create_app

    engine = engine_for("qwen2_vl")
    settings = Settings(model=str(engine.model.reference), served_model_name="tiny-vl",
                        storage_path=tmp_path_factory.mktemp("hostile-storage"))
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as test:
        yield test


def assert_error_shape(response, statuses=range(400, 500)) -> dict:
    assert response.status_code in statuses, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert len(response.content) < 2000, len(response.content)
    return error


@pytest.mark.parametrize(("route", "body", "path"), VARIANTS,
                         ids=[f"{r}:{'.'.join(map(str, p))}" for r, _, p in VARIANTS])
def test_a_lone_surrogate_in_any_string_is_a_400(client, route, body, path):
    raw = json.dumps(with_value(body, path, f"a{LONE}b"))  # ensure_ascii: "\ud800" escape
    assert "\\ud800" in raw
    response = client.post(route, content=raw, headers={"content-type": "application/json"})
    error = assert_error_shape(response, (400,))
    assert error["code"] == "invalid_text"


def test_a_surrogate_pair_is_text_not_an_error(client):
    body = {**COMPLETION, "prompt": "an emoji \U0001F600"}
    response = client.post("/v1/completions", content=json.dumps(body),
                           headers={"content-type": "application/json"})
    assert response.status_code == 200


def nested(depth: int) -> dict:
    schema: dict = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


DEEP = [
    ("/v1/chat/completions", lambda s: {**CHAT, "tool_choice": "auto", "tools": [
        {"type": "function", "function": {"name": "f", "parameters": s}}]}),
    ("/v1/chat/completions", lambda s: {**CHAT, "tools": None, "tool_choice": None,
                                        "response_format": {"type": "json_schema",
                                                            "json_schema": {"schema": s}}}),
    ("/v1/chat/completions", lambda s: {**CHAT, "tools": None, "tool_choice": None,
                                        "response_format": {"type": "json_schema",
                                                            "json_schema": s}}),
    ("/v1/image/generate", lambda s: {**PREDICTION, "images": ["aGk="],
                                      "config": {"json_schema": s}}),
    ("/v1/document/generate", lambda s: {**PREDICTION, "url": "http://x/a.pdf",
                                         "config": {"response_model": s}}),
    ("/v1/schema", lambda s: {"domain": "document.invoice", "config": {"json_schema": s}}),
]


@pytest.mark.parametrize("depth", [40, 100, 400])
@pytest.mark.parametrize(("route", "build"), DEEP, ids=[f"{r}-{i}" for i, (r, _) in
                                                         enumerate(DEEP)])
def test_deeply_nested_schemas_are_a_400(client, route, build, depth):
    response = client.post(route, json=build(nested(depth)))
    error = assert_error_shape(response, (400, 404, 200) if depth == 40 else (400,))
    if depth > 40:
        assert error["code"] == "schema_too_large" and "levels deep" in error["message"]


BIG = 5_000_000


def big_bodies() -> list[tuple[str, dict]]:
    junk = "x" * BIG
    return [
        ("/v1/chat/completions", {**CHAT, "tools": None, "tool_choice": None, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": junk}}]}]}),
        ("/v1/chat/completions", {**CHAT, "tools": None, "tool_choice": None, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {
                "url": "data:image/png;base64," + junk}}]}]}),
        ("/v1/chat/completions", {**CHAT, "tools": None, "tool_choice": None, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {
                "url": "file:///" + junk}}]}]}),
        ("/v1/chat/completions", {**CHAT, "tools": None, "tool_choice": None, "messages": [
            {"role": "user", "content": [{"type": junk, "x": 1}]}]}),
        ("/v1/chat/completions", {**CHAT, "model": junk}),
        ("/v1/chat/completions", {**CHAT, "tool_choice": {"type": "function",
                                                          "function": {"name": junk}}}),
        ("/v1/chat/completions", {**CHAT, "logit_bias": {junk: 1.0}}),
        ("/v1/chat/completions", {**CHAT, "logit_bias": {junk: 1e9}}),
        ("/v1/completions", {**COMPLETION, "model": junk}),
        ("/v1/image/generate", {**PREDICTION, "images": [junk + "%"]}),
        ("/v1/image/generate", {**PREDICTION, "model": junk, "images": ["aGk="]}),
        ("/v1/document/generate", {**PREDICTION, "url": junk}),
        ("/v1/document/generate", {**PREDICTION, "url": "http://" + junk}),
        ("/v1/schema", {"domain": "document.invoice", "config": {"json_schema": {
            "type": junk}}}),
    ]


@pytest.mark.parametrize("index", range(len(big_bodies())))
def test_megabytes_of_bad_input_get_a_short_error(client, index):
    route, body = big_bodies()[index]
    response = client.post(route, json=body)
    error = assert_error_shape(response)
    if "characters)" in error["message"]:  # quoted: a cut excerpt with the total length
        assert f"({BIG}" in error["message"] or "characters)" in error["message"]


def test_a_bad_image_is_still_reported_with_its_param(client):
    body = {**CHAT, "tools": None, "tool_choice": None, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(png_bytes()[:40], "image/png")}}]}]}
    error = assert_error_shape(client.post("/v1/chat/completions", json=body))
    assert error["code"] == "invalid_image"
