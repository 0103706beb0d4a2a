"""The seed examples run as written against ``vllm-mlx serve tiny:qwen2_vl`` in a subprocess:
seed 003's curl request, seed 001's OpenAI SDK calls (base URL ``.../v1/openai``), and the
``vlmrun`` SDK (skipped with a reason when it is not installed)."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.domains.conftest import b64_png
from tests.e2e.conftest import start_server, stop_server
from vllm_mlx.domains.callbacks import SIGNATURE_HEADER, verify
from vllm_mlx.domains.registry import default_registry

TOKEN = "local-token"
SECRET = "s3cret"
# Seed 003, verbatim but for the placeholders filled in by :func:`seed_curl`.
SEED_003_CURL = """curl --request POST \\
  --url https://api.vlm.run/v1/image/generate \\
  --header 'Authorization: Bearer <token>' \\
  --header 'Content-Type: application/json' \\
  --data '{
  "metadata": {
    "environment": "dev",
    "session_id": "<string>",
    "allow_training": true
  },
  "config": {
    "prompt": "<string>",
    "detail": "auto",
    "response_model": "<any>",
    "json_schema": {},
    "max_retries": 3,
    "max_tokens": 4096,
    "temperature": 0,
    "confidence": true,
    "grounding": true
  },
  "id": "<string>",
  "created_at": "2023-11-07T05:31:56Z",
  "callback_url": "<string>",
  "images": [
    "<string>"
  ],
  "model": "vlm-1",
  "domain": "aerospace.remote-sensing",
  "batch": false
}'"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed-e2e")
    srv = start_server(["tiny:qwen2_vl", "--storage-path", str(root / "storage"),
                        "--api-key", TOKEN, "--allow-private-urls",
                        "--callback-secret", SECRET], root / "server.log")
    yield srv
    stop_server(srv)


def seed_curl(base_url: str, callback_url: str | None) -> list[str]:
    text = SEED_003_CURL.replace("https://api.vlm.run", base_url)
    text = text.replace("<token>", TOKEN)
    if callback_url is not None:  # fill the placeholders with real values
        text = text.replace('"images": [\n    "<string>"', f'"images": [\n    "{b64_png(3)}"')
        text = text.replace('"callback_url": "<string>"', f'"callback_url": "{callback_url}"')
        text = text.replace('"prompt": "<string>"', '"prompt": "Describe the scene."')
    return shlex.split(text.replace("\\\n", " "))


def run_curl(argv: list[str]) -> tuple[int, dict]:
    result = subprocess.run([*argv, "--silent", "--write-out", "\n%{http_code}"],
                            capture_output=True, text=True, timeout=120, check=True)
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_seed_003_curl_request(server, receiver):
    status, body = run_curl(seed_curl(server.base_url, receiver.url))
    assert status == 201, body
    assert body["status"] == "completed" and body["domain"] == "aerospace.remote-sensing"
    response = body["response"]
    spec = default_registry().get("aerospace.remote-sensing")
    spec.model.model_validate({k: v for k, v in response.items()
                               if not k.endswith("_metadata")})
    assert all(response[f"{k}_metadata"]["confidence"] in ("hi", "med", "low")
               for k in ("description", "objects", "categories", "is_visible")
               if f"{k}_metadata" in response)
    assert body["usage"]["elements_processed"] == 1
    assert receiver.arrived.wait(30)
    (headers, raw), = receiver.received
    assert verify(SECRET, raw, headers[SIGNATURE_HEADER]) and json.loads(raw) == body


def test_seed_003_with_its_placeholders_is_a_clear_400(server):
    status, body = run_curl(seed_curl(server.base_url, None))
    assert status == 400 and body["error"]["param"] == "callback_url"


def test_seed_003_needs_the_token(server):
    response = httpx.post(f"{server.base_url}/v1/image/generate", json={
        "images": [b64_png(1)], "domain": "image.caption"})
    assert response.status_code == 401


def encode_image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_seed_001_openai_sdk(server, domain_media):
    import openai

    image = domain_media / "photo.png"
    client = openai.OpenAI(base_url=f"{server.base_url}/v1/openai", api_key=TOKEN)
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": encode_image(image), "detail": "auto"}},
        ]}
    ]
    chat_completion = client.chat.completions.create(
        model="vlm-agent-1", messages=messages, temperature=0,
        extra_body={"session_id": "seed-001"})
    assert isinstance(chat_completion.choices[0].message.content, str)
    chat_completion = client.chat.completions.create(
        model="vlm-agent-1", messages=messages, temperature=0,
        extra_body={"vlmrun": {"metadata": {"environment": "dev", "allow_retention": False}}})
    assert chat_completion.usage.prompt_tokens > 0
    chat_completion = client.chat.completions.create(
        model="vlm-1", messages=messages, temperature=0,
        extra_body={"vlmrun": {"domain": "document.invoice", "metadata": {
            "environment": "dev", "session_id": "s", "allow_training": False}}})
    invoice = default_registry().get("document.invoice").model
    invoice.model_validate_json(chat_completion.choices[0].message.content)


def test_vlmrun_sdk(server, domain_media):
    vlmrun = pytest.importorskip("vlmrun.client", reason="the vlmrun SDK is not installed "
                                 "(pip install vlmrun)")
    from PIL import Image

    client = vlmrun.VLMRun(api_key=TOKEN, base_url=f"{server.base_url}/v1")
    image = Image.open(domain_media / "photo.png")
    prediction = client.image.generate(domain="document.receipt", images=[image])
    assert prediction.status == "completed" and prediction.usage.elements_processed == 1
    assert client.predictions.get(prediction.id).response == prediction.response
    queued = client.image.generate(domain="image.caption", images=[image], batch=True)
    assert queued.status == "pending"
    done = client.predictions.wait(queued.id, timeout=60, sleep=1)
    assert done.status == "completed" and "caption" in done.response
    uploaded = client.files.upload(domain_media / "clip.mp4")
    assert "." not in uploaded.id and uploaded.bytes > 0
    again = client.files.upload(domain_media / "clip.mp4")  # found by its md5
    assert again.id == uploaded.id
    video = client.video.generate(file=uploaded.id, domain="video.caption")
    assert video.status == "completed" and "segments" in video.response
    document = client.document.generate(file=domain_media / "doc.pdf",
                                        domain="document.markdown")
    assert document.status == "completed" and document.usage.elements_processed == 3
    schema = client.get_schema("document.invoice")
    assert schema.schema_hash == default_registry().get("document.invoice").schema_hash
    assert {d.domain for d in client.list_domains()} >= {"document.invoice"}
    assert [p.id for p in client.predictions.list(limit=100)][:1] == [document.id]


@pytest.mark.slow
def test_a_restart_keeps_predictions(tmp_path):
    args = ["tiny:qwen2_vl", "--storage-path", str(tmp_path / "storage")]
    first = start_server(args, tmp_path / "first.log")
    try:
        prediction = httpx.post(f"{first.base_url}/v1/image/generate", timeout=60, json={
            "images": [b64_png(2)], "domain": "image.caption"}).json()
    finally:
        stop_server(first)
    again = start_server(args, tmp_path / "again.log")
    try:
        fetched = httpx.get(f"{again.base_url}/v1/predictions/{prediction['id']}").json()
        assert fetched == prediction and fetched["status"] == "completed"
    finally:
        stop_server(again)
