"""``vllm-mlx serve tiny:qwen2_vl`` in a subprocess, driven by the official OpenAI SDK
exactly as seed 004 does, and by raw HTTP for hostile input."""

from __future__ import annotations

import base64
import json
import sys

import httpx
import jsonschema
import pytest
from openai import OpenAI

from tests.e2e.conftest import start_server, stop_server


@pytest.fixture(scope="module")
def client(vl_server):
    return OpenAI(base_url=f"{vl_server.base_url}/v1", api_key="not-needed")


def test_startup_log_says_what_was_loaded(vl_server):
    out = vl_server.output()
    assert "vision-language" in out and "RANDOM weights" in out


def test_seed_base64_image(client, media_files):
    b64 = base64.b64encode((media_files / "photo.jpg").read_bytes()).decode()
    response = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe this image"},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}}]}],
    )
    assert isinstance(response.choices[0].message.content, str)
    assert response.usage.prompt_tokens > 20


def test_local_image_file_and_stream(client, media_files):
    stream = client.chat.completions.create(
        model="default", max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": str(media_files / "photo.jpg")}}]}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(
        model="default", max_tokens=16, temperature=0,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": str(media_files / "photo.jpg")}}]}],
    )
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_seed_video_with_extra_body(client, media_files):
    def ask(fps, frames):
        return client.chat.completions.create(
            model="default", max_tokens=8,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "Describe this video"},
                {"type": "video_url", "video_url": {"url": "video.mp4"}}]}],
            extra_body={"video_fps": fps, "video_max_frames": frames},
        )
    small, large = ask(1.0, 2), ask(2.0, 8)
    assert large.usage.prompt_tokens > small.usage.prompt_tokens


def test_json_schema_with_sdk(client):
    schema = {"type": "object", "properties": {
        "label": {"type": "string", "enum": ["cat", "dog"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 10}},
        "required": ["label", "score"], "additionalProperties": False}
    response = client.chat.completions.create(
        model="default", max_tokens=40, temperature=0.7, seed=2,
        messages=[{"role": "user", "content": "Classify"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "c", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(response.choices[0].message.content), schema)


def test_models_endpoint(client):
    models = client.models.list()
    assert models.data[0].id == "tiny:qwen2_vl"


@pytest.mark.parametrize("body, status", [
    (b"{bad json", 400),
    (json.dumps({"model": "default", "messages": "nope"}).encode(), 400),
    (json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
     404),
    (json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url",
     "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"}}]}]}).encode(),
     400),
    (json.dumps({"messages": [{"role": "user", "content": [{"type": "video_url",
     "video_url": {"url": "data:video/mp4;base64,AAAAGGZ0eXBtcDQy"}}]}]}).encode(), 400),
])
def test_bad_input_gets_4xx_and_server_lives(vl_server, body, status):
    r = httpx.post(f"{vl_server.base_url}/v1/chat/completions", content=body,
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{vl_server.base_url}/health").status_code == 200


def test_oversized_body(vl_server):
    r = httpx.post(f"{vl_server.base_url}/v1/chat/completions",
                   content=b"{" + b" " * (65 * 1024 * 1024) + b"}",
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413


def test_api_key_and_clean_shutdown(tmp_path):
    server = start_server(["tiny:qwen3", "--api-key", "k3y"], tmp_path / "log")
    try:
        bad = OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(Exception) as info:
            bad.chat.completions.create(model="default", messages=[
                {"role": "user", "content": "hi"}])
        assert getattr(info.value, "status_code", None) == 401
        good = OpenAI(base_url=f"{server.base_url}/v1", api_key="k3y")
        reply = good.chat.completions.create(model="default", max_tokens=4,
                                             messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert "text-only" in server.output()
    finally:
        assert stop_server(server) == 0


def test_bad_model_fails_fast(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "vllm_mlx.cli", "serve",
                             str(tmp_path / "missing-model")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "missing-model" in result.stderr
