"""Fixtures for the chat UI tests: small media files on disk, one headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.api.conftest import png_bytes


@pytest.fixture(scope="session")
def ui_media(tmp_path_factory) -> Path:
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("ui-media")
    (root / "photo.png").write_bytes(png_bytes(5))
    (root / "second.png").write_bytes(png_bytes(6, (32, 32)))
    write_test_video(root / "clip.mp4", seconds=1, fps=8, size=(64, 48))
    (root / "notes.txt").write_text("not media")
    return root


def _require(module: str) -> None:
    """Skip without the package on a developer machine; in CI its absence is a failure."""
    if os.environ.get("CI"):
        __import__(module)
    else:
        pytest.importorskip(module, reason=f"pip install {module} to run the browser tests")


@pytest.fixture(scope="session")
def chromium() -> str:
    from tests.ui.browser import chromium_path

    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does this "
                    "where apt is usable)")
    _require("gradio")
    _require("playwright")
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    """A headless system Chromium (never Playwright's download), per module: Playwright's
    sync API keeps an event loop running that would break later ``asyncio.run`` tests."""
    from playwright.sync_api import sync_playwright

    from tests.ui.browser import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
