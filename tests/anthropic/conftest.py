"""Live loopback servers on tiny models for the Anthropic SDK: text (qwen3, whose chat
template shows tools) and vision (qwen2_vl, with a media folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.live_server import photo_folder, serving_tiny


def _serve(engine, tmp_path_factory, name: str, **settings) -> Iterator[str]:
    with serving_tiny(engine, tmp_path_factory.mktemp(f"anthropic-{name}"), name,
                      **settings) as url:
        yield url


@pytest.fixture(scope="module")
def text_url(engine_for, tmp_path_factory) -> Iterator[str]:
    yield from _serve(engine_for("qwen3"), tmp_path_factory, "qwen3")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    return photo_folder(tmp_path_factory, "anthropic-media")


@pytest.fixture(scope="module")
def vl_url(engine_for, tmp_path_factory, photo_dir) -> Iterator[str]:
    yield from _serve(engine_for("qwen2_vl"), tmp_path_factory, "qwen2_vl",
                      media_roots=(photo_dir,))


def sdk(base_url: str, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=options.pop("api_key", "unused"),
                               max_retries=0, timeout=120, **options)
