"""Image blocks on the tiny qwen2_vl model: base64 and URL sources give the reply chat
completions gives for the same image, under the same media policy (a file outside the
media folders is refused, in Anthropic's shape), and count_tokens counts the image."""

from __future__ import annotations

import base64

import anthropic
import pytest

from tests.anthropic.conftest import sdk
from tests.api.conftest import data_url
from tests.live_server import chat_about_image


def image_message(source: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "source": source},
                                         {"type": "text", "text": "What is this?"}]}]


def create(base_url: str, messages: list[dict]) -> anthropic.types.Message:
    return sdk(base_url).messages.create(model="claude-opus-4-1", max_tokens=8,
                                         messages=messages, extra_body={"temperature": 0})



def test_base64_and_url_images(vl_url, photo_dir):
    png = (photo_dir / "photo.png").read_bytes()
    inline = create(vl_url, image_message({"type": "base64", "media_type": "image/png",
                                           "data": base64.b64encode(png).decode()}))
    expected = chat_about_image(vl_url, data_url(png, "image/png"))
    assert inline.content[0].text == expected["choices"][0]["message"]["content"]
    assert inline.usage.input_tokens == expected["usage"]["prompt_tokens"]
    linked = create(vl_url, image_message({"type": "url",
                                           "url": f"file://{photo_dir / 'photo.png'}"}))
    assert linked.content[0].text == inline.content[0].text


def test_count_tokens_counts_the_image(vl_url, photo_dir):
    png = (photo_dir / "photo.png").read_bytes()
    source = {"type": "base64", "media_type": "image/png",
              "data": base64.b64encode(png).decode()}
    counted = sdk(vl_url).messages.count_tokens(model="claude-opus-4-1",
                                                messages=image_message(source))
    assert counted.input_tokens == create(vl_url, image_message(source)).usage.input_tokens


def test_media_policy_applies(vl_url, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not an image")
    with pytest.raises(anthropic.APIStatusError) as caught:
        create(vl_url, image_message({"type": "url", "url": f"file://{outside}"}))
    assert 400 <= caught.value.status_code < 500
    assert caught.value.body["type"] == "error"


def test_bad_base64_is_400(vl_url):
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(vl_url, image_message({"type": "base64", "media_type": "image/png",
                                      "data": "!!not base64!!"}))
    assert caught.value.body["error"]["type"] == "invalid_request_error"
