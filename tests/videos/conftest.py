"""Fixtures for the video jobs tests: tiny random-weight Wan models, a started
:class:`VideoJobs` on a temporary storage folder, and an in-process app around it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import TINY_CACHE
from vllm_mlx.config import Settings

FAST = {"num_inference_steps": "1", "num_frames": "1"}  # the quickest real job


def png_bytes(seed: int = 0, size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mp4_info(data: bytes) -> tuple[int, int, int, float]:
    """(width, height, decoded frames, average fps) of an mp4."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.width, stream.height, frames, float(stream.average_rate)


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {check}")


def start_jobs(storage: Path, reference: str = "tiny:wan2_1", **kwargs: Any):
    from vllm_mlx.videos.service import VideoJobs

    return VideoJobs.start(reference, storage, tiny_cache_dir=TINY_CACHE, **kwargs)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Iterator[Any]:
    started = start_jobs(tmp_path_factory.mktemp("video-store"), max_queued=4)
    yield started
    started.shutdown()


@pytest.fixture(scope="module")
def client(jobs) -> Iterator[TestClient]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:wan2_1", storage_path=jobs.store.folder.parent)
    with TestClient(create_app(settings, None, jobs)) as test_client:
        yield test_client


def poll_done(client: TestClient, video_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        record = client.get(f"/v1/videos/{video_id}").json()
        return record if record["status"] in ("completed", "failed") else None

    return wait_for(finished, timeout)
