"""Two chat defects, on live tiny servers: ``max_tokens`` above ``--max-tokens-limit`` is
capped, not refused (clients send 32000); and OpenAI's ``file`` content part is read: a
PDF (``file_data`` or an uploaded ``file_id``) as its pages for a vision model, a 400
saying why for a text-only model, a UTF-8 text file as text, any other type a 400 naming
it."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import data_url, png_bytes
from tests.domains.conftest import pdf_bytes
from tests.live_server import serving
from vllm_mlx.config import Settings

LIMIT = 6


def _serve(engine, tmp_path_factory, name: str) -> Iterator[str]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model=f"tiny:{name}", storage_path=tmp_path_factory.mktemp(name),
                        max_tokens_limit=LIMIT)
    with serving(create_app(settings, engine)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def vl_url(engine_for, tmp_path_factory) -> Iterator[str]:
    yield from _serve(engine_for("qwen2_vl"), tmp_path_factory, "qwen2_vl")


@pytest.fixture(scope="module")
def text_url(engine_for, tmp_path_factory) -> Iterator[str]:
    yield from _serve(engine_for("qwen3"), tmp_path_factory, "qwen3")


def chat(url: str, content, **extra) -> httpx.Response:
    body = {"model": "default", "max_tokens": 1, "temperature": 0,
            "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def file_part(data: bytes, mime: str, filename: str | None = "doc.pdf") -> dict:
    spec = {"file_data": data_url(data, mime)}
    return {"type": "file", "file": spec | ({"filename": filename} if filename else {})}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_max_tokens_above_the_limit_is_capped(text_url, path):
    body = {"model": "default", "max_tokens": 32000, "ignore_eos": True}
    body |= ({"messages": [{"role": "user", "content": "hi"}]} if "chat" in path
             else {"prompt": "hi"})
    reply = httpx.post(f"{text_url}{path}", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == LIMIT
    assert reply.json()["choices"][0]["finish_reason"] == "length"


def test_a_pdf_becomes_its_pages_for_a_vision_model(vl_url):
    text = {"type": "text", "text": "Summarize."}
    alone = chat(vl_url, [text]).json()["usage"]["prompt_tokens"]
    one = chat(vl_url, [file_part(pdf_bytes(1), "application/pdf"), text])
    two = chat(vl_url, [file_part(pdf_bytes(2), "application/pdf"), text])
    assert one.status_code == 200 and two.status_code == 200, (one.text, two.text)
    pages = [r.json()["usage"]["prompt_tokens"] - alone for r in (one, two)]
    assert pages[0] > 0 and pages[1] == 2 * pages[0]  # each page is one image


def test_an_uploaded_pdf_by_file_id(vl_url):
    upload = httpx.post(f"{vl_url}/v1/files", files={"file": ("d.pdf", pdf_bytes(2))},
                        timeout=60)
    assert upload.status_code == 201, upload.text
    by_id = chat(vl_url, [{"type": "file", "file": {"file_id": upload.json()["id"]}}])
    inline = chat(vl_url, [file_part(pdf_bytes(2), "application/pdf")])
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["usage"]["prompt_tokens"] == inline.json()["usage"]["prompt_tokens"]


def test_a_pdf_for_a_text_only_model_is_a_400_saying_why(text_url):
    reply = chat(text_url, [file_part(pdf_bytes(1), "application/pdf", "report.pdf")])
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "report.pdf" in message and "text-only" in message


def test_a_text_file_is_inlined_as_text(text_url):
    notes = "Meeting notes: ship on Friday.\n"
    as_file = chat(text_url, [file_part(notes.encode(), "text/plain", "notes.txt")])
    as_text = chat(text_url, f"notes.txt:\n{notes}")
    assert as_file.status_code == 200, as_file.text
    assert as_file.json()["usage"]["prompt_tokens"] == as_text.json()["usage"]["prompt_tokens"]
    bare = {"type": "file", "file": {"file_data": base64.b64encode(notes.encode()).decode()}}
    assert chat(text_url, [bare]).json()["usage"]["prompt_tokens"] == \
        chat(text_url, notes).json()["usage"]["prompt_tokens"]


@pytest.mark.parametrize(("part", "says"), [
    (file_part(png_bytes(1), "image/png", "photo.png"), "image/png"),
    (file_part(b"\x00\x01binary\xff", "application/octet-stream", "blob.bin"), "binary"),
    ({"type": "file", "file": {"filename": "x.pdf"}}, "file_data"),
    ({"type": "file", "file": "nope"}, "file"),
])
def test_unreadable_file_parts_are_400s(text_url, part, says):
    reply = chat(text_url, [part])
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert says in error["message"] or says in (error["param"] or "")
