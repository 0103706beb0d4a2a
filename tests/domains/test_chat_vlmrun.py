"""Chat completions with the VLM Run extensions: ``vlmrun.domain`` answers in the domain's
JSON, ``session_id`` carries the conversation, ``input_file`` parts read uploaded files."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import data_url, png_bytes
from vllm_mlx.domains.registry import default_registry

REGISTRY = default_registry()


def image_message(text: str = "What is in this image?") -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": data_url(png_bytes(8), "image/png"),
                                            "detail": "auto"}}]}]


@pytest.mark.parametrize("domain", ["retail.product-catalog", "document.invoice",
                                    "media.tv-news"])
def test_domain_reply_is_the_domains_json(client, domain):
    response = client.post("/v1/chat/completions", json={
        "model": "vlm-1", "messages": image_message(), "temperature": 0,
        "vlmrun": {"domain": domain, "metadata": {"environment": "dev"}}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    REGISTRY.get(domain).model.model_validate_json(body["choices"][0]["message"]["content"])


def test_literal_extra_body_and_openai_path_alias(client):
    response = client.post("/v1/openai/chat/completions", json={
        "model": "vlm-agent-1", "messages": image_message(),
        "extra_body": {"vlmrun": {"domain": "image.caption"}}})
    assert response.status_code == 200, response.text
    json.loads(response.json()["choices"][0]["message"]["content"])
    assert client.get("/v1/openai/models").status_code == 200


def _prompt_tokens(client, session_id: str | None, text: str, stream: bool = False) -> int:
    extra = {"session_id": session_id} if session_id else {}
    body = {"model": "vlm-1", "max_tokens": 5, "temperature": 0, **extra,
            "messages": [{"role": "user", "content": text}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        lines = [line for line in client.post("/v1/chat/completions", json=body).text.split(
            "\n") if line.startswith("data: {")]
        return json.loads(lines[-1][6:])["usage"]["prompt_tokens"]
    return client.post("/v1/chat/completions", json=body).json()["usage"]["prompt_tokens"]


def test_session_id_keeps_the_conversation(client):
    alone = _prompt_tokens(client, None, "hello there")
    first = _prompt_tokens(client, "s-1", "hello there")
    assert first == alone
    second = _prompt_tokens(client, "s-1", "hello there")
    assert second > first + 3  # the first turn and its reply were prepended
    streamed = _prompt_tokens(client, "s-1", "hello there", stream=True)
    assert streamed > second  # streaming turns are recorded too
    assert _prompt_tokens(client, "s-2", "hello there") == alone


def test_input_file_parts_read_uploaded_files(client):
    file_id = client.post("/v1/files", files={"file": ("p.png", png_bytes(9))}).json()["id"]
    messages = [{"role": "user", "content": [{"type": "input_file", "file_id": file_id},
                                             {"type": "text", "text": "Describe"}]}]
    with_file = client.post("/v1/chat/completions", json={"messages": messages,
                                                          "max_tokens": 4, "temperature": 0})
    assert with_file.status_code == 200, with_file.text
    inline = client.post("/v1/chat/completions", json={"max_tokens": 4, "temperature": 0,
                                                       "messages": [
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png_bytes(9), "image/png")}},
            {"type": "text", "text": "Describe"}]}]})
    text_only = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Describe"}], "max_tokens": 4})
    # the same image was read (prompt_tokens_details may differ: the prefix cache)
    assert with_file.json()["usage"]["prompt_tokens"] == inline.json()["usage"]["prompt_tokens"]
    assert with_file.json()["choices"][0]["message"] == inline.json()["choices"][0]["message"]
    assert with_file.json()["usage"]["prompt_tokens"] > text_only.json()["usage"][
        "prompt_tokens"]
    messages[0]["content"][0]["file_id"] = "file-unknown"
    missing = client.post("/v1/chat/completions", json={"messages": messages})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"


def _chat_on_file(client, file_id: str):
    return client.post("/v1/chat/completions", json={"max_tokens": 2, "messages": [
        {"role": "user", "content": [{"type": "input_file", "file_id": file_id},
                                     {"type": "text", "text": "Describe"}]}]})


def test_input_file_kind_comes_from_the_content(client, tmp_path):
    from vllm_mlx.media.testing import write_test_video

    write_test_video(tmp_path / "v.mp4", seconds=1, fps=4, size=(32, 32))
    for name in ("clip.m4v", "clip"):  # a video whatever its name says
        upload = client.post("/v1/files", files={"file": (name, (tmp_path / "v.mp4").read_bytes())})
        reply = _chat_on_file(client, upload.json()["id"])
        assert reply.status_code == 200, reply.text
    pdf = client.post("/v1/files", files={"file": ("doc.pdf", b"%PDF-1.4\n%...")}).json()["id"]
    refused = _chat_on_file(client, pdf)  # a PDF's pages are read (this one is corrupt)
    assert refused.status_code == 400 and pdf in refused.json()["error"]["message"]
    corrupt = client.post("/v1/files", files={"file": ("x.png", b"\x89PNG\r\n\x1a\nnope")})
    broken = _chat_on_file(client, corrupt.json()["id"])
    assert broken.status_code == 400 and corrupt.json()["id"] in broken.json()["error"]["message"]
    assert str(tmp_path) not in broken.text and "files/" not in broken.text


@pytest.mark.parametrize(("extra", "param"), [
    ({"vlmrun": {"domain": "nope.nope"}}, "vlmrun.domain"),
    ({"vlmrun": "invoice"}, "vlmrun"),
    ({"vlmrun": {"domain": "image.caption", "metadata": {"environment": "moon"}}},
     "vlmrun.metadata"),
    ({"vlmrun": {"domain": "image.caption"}, "response_format": {"type": "json_object"}},
     "response_format"),
    ({"session_id": 12}, "session_id"),
])
def test_bad_vlmrun_extensions_are_400(client, extra, param):
    response = client.post("/v1/chat/completions", json={"messages": image_message(), **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
