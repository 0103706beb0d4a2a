"""Live loopback servers on tiny models for the official ``openai`` SDK's Responses client:
text (qwen3, whose chat template shows tools) and vision (qwen2_vl, with a media folder),
each with its own storage folder; :func:`serve` starts another app on a given folder (a
restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.live_server import photo_folder
from tests.live_server import serving_tiny as serve


@pytest.fixture(scope="module")
def text_storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("responses-qwen3")


@pytest.fixture(scope="module")
def text_url(engine_for, text_storage) -> Iterator[str]:
    with serve(engine_for("qwen3"), text_storage, "qwen3") as url:
        yield url


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    return photo_folder(tmp_path_factory, "responses-media")


@pytest.fixture(scope="module")
def vl_url(engine_for, tmp_path_factory, photo_dir) -> Iterator[str]:
    with serve(engine_for("qwen2_vl"), tmp_path_factory.mktemp("responses-vl"), "qwen2_vl",
               media_roots=(photo_dir,)) as url:
        yield url


def sdk(base_url: str, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=options.pop("api_key", "unused"),
                         max_retries=0, timeout=120, **options)
