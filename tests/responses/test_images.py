"""``input_image`` and ``input_file`` on the tiny qwen2_vl model: a ``data:`` URL, a path
under the media folder and an uploaded file id (``POST /v1/files``) give the reply chat
completions gives for the same image, under the same media policy; a file outside the
media folders is a 403, an uploaded PDF a 400."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import data_url
from tests.live_server import chat_about_image
from tests.responses.conftest import sdk


def ask(image: dict) -> list[dict]:
    return [{"role": "user", "content": [image,
                                         {"type": "input_text", "text": "What is this?"}]}]


def create(base_url: str, image: dict):
    return sdk(base_url).responses.create(model="default", input=ask(image),
                                          max_output_tokens=8, temperature=0)



def upload(base_url: str, name: str, data: bytes) -> str:
    reply = httpx.post(f"{base_url}/v1/files", files={"file": (name, data)}, timeout=60)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def test_data_url_path_and_file_id_images(vl_url, photo_dir):
    png = (photo_dir / "photo.png").read_bytes()
    expected = chat_about_image(vl_url, data_url(png, "image/png"))
    text = expected["choices"][0]["message"]["content"]
    file_id = upload(vl_url, "photo.png", png)
    for image in ({"type": "input_image", "image_url": data_url(png, "image/png")},
                  {"type": "input_image", "image_url": "photo.png", "detail": "low"},
                  {"type": "input_image", "file_id": file_id},
                  {"type": "input_file", "file_id": file_id}):
        response = create(vl_url, image)
        assert response.output_text == text, image
        assert response.usage.input_tokens == expected["usage"]["prompt_tokens"], image


@pytest.mark.parametrize("image, status", [
    ({"type": "input_image", "image_url": "/etc/passwd"}, 403),
    ({"type": "input_image"}, 400),
    ({"type": "input_image", "file_id": "file-nope"}, 404),
])
def test_refused_images(vl_url, image, status):
    reply = httpx.post(f"{vl_url}/v1/responses", json={"input": ask(image)}, timeout=60)
    assert reply.status_code == status, reply.text
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_uploaded_pdf_is_400(vl_url):
    file_id = upload(vl_url, "doc.pdf", b"%PDF-1.4\n%...")
    reply = httpx.post(f"{vl_url}/v1/responses", timeout=60,
                       json={"input": ask({"type": "input_file", "file_id": file_id})})
    assert reply.status_code == 400, reply.text
    assert "PDF" in reply.json()["error"]["message"]
