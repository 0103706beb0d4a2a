"""Client side of the diffusion video jobs API (``/v1/videos``), for the Videos tab.

Contract (the server side is specified in shared/specs/video-jobs.md):

- :meth:`VideoJobs.run` submits one job, ``POST /v1/videos`` as a multipart form the way
  the OpenAI SDK's ``client.videos.create`` does (``prompt``, ``size`` ``"WxH"``, plus
  ``num_frames``, ``num_inference_steps``, ``seed``, ``negative_prompt``), then polls
  ``GET /v1/videos/{id}`` and yields a :class:`JobUpdate` each time, with the job's own
  ``progress`` (0-100), ``model`` and ``stage`` (when the record has one). When the job
  completes it downloads ``/content`` to
  ``output_dir/<id>.mp4`` and yields a last update carrying that path. Plain httpx, not
  the SDK, whose ``videos`` resource is deprecated.
- A failed job, or an HTTP error, raises :class:`~vllm_mlx.ui.errors.BackendError` with
  the server's message. Leaving the iterator before the job finished (Stop, closed tab)
  deletes the job, which cancels it on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .errors import BackendError

_SIZE = re.compile(r"^\d+x\d+$")
FINISHED = ("completed", "failed")


@dataclass(frozen=True)
class VideoParams:
    prompt: str
    size: str = "832x480"
    num_frames: int | None = None
    num_inference_steps: int | None = None
    seed: int | None = None
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError("write a prompt first")
        if not _SIZE.match(self.size):
            raise ValueError(f"size must look like 832x480, not {self.size!r}")

    def extra_fields(self) -> dict[str, Any]:
        """Form fields beyond what ``client.videos.create`` names."""
        extra: dict[str, Any] = {"num_frames": self.num_frames,
                                 "num_inference_steps": self.num_inference_steps,
                                 "seed": self.seed,
                                 "negative_prompt": self.negative_prompt or None}
        return {k: str(v) for k, v in extra.items() if v is not None}


@dataclass(frozen=True)
class JobUpdate:
    id: str
    status: str
    progress: float  # 0-100
    path: Path | None = None
    model: str = ""
    stage: str = ""  # what the job is doing now (e.g. "decoding"), when the server says

    @property
    def fraction(self) -> float:
        return min(max(self.progress / 100.0, 0.0), 1.0)


def _update(job: dict[str, Any], path: Path | None = None) -> JobUpdate:
    return JobUpdate(str(job["id"]), str(job["status"]), float(job.get("progress") or 0), path,
                     str(job.get("model") or ""), str(job.get("stage") or ""))


def _failure(job: dict[str, Any]) -> str:
    error = job.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    return f"video job {job['id']} failed: {message or 'no reason given'}"


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class VideoJobs:
    """Submit and follow video jobs on one server (``base`` ends in ``/v1``)."""

    def __init__(self, base: str, api_key: str | None = None, output_dir: Path | None = None,
                 poll_interval: float = 0.5, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.output_dir = output_dir or Path(tempfile.gettempdir()) / "vllm-mlx-chat-videos"
        self.poll_interval = poll_interval
        self.timeout = timeout

    async def _call(self, client: httpx.AsyncClient, method: str, path: str,
                    **kwargs: Any) -> httpx.Response:
        try:
            response = await client.request(method, f"{self.base}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach the video server at {self.base}: {exc}") from exc
        if response.status_code >= 400:
            raise BackendError(f"video server: {_error_text(response)}")
        return response

    async def _download(self, client: httpx.AsyncClient, job_id: str) -> Path:
        response = await self._call(client, "GET", f"/videos/{job_id}/content")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{job_id}.mp4"
        await asyncio.to_thread(path.write_bytes, response.content)
        return path

    async def run(self, params: VideoParams) -> AsyncIterator[JobUpdate]:
        async with httpx.AsyncClient(headers=self.headers, timeout=self.timeout) as client:
            form = {"prompt": params.prompt, "size": params.size, **params.extra_fields()}
            # multipart/form-data, as the OpenAI SDK's client.videos.create sends it
            files = {k: (None, v) for k, v in form.items()}
            job = (await self._call(client, "POST", "/videos", files=files)).json()
            finished = False
            try:
                while job["status"] not in FINISHED:
                    yield _update(job)
                    await asyncio.sleep(self.poll_interval)
                    job = (await self._call(client, "GET", f"/videos/{job['id']}")).json()
                finished = True
                if job["status"] == "failed":
                    raise BackendError(_failure(job))
                yield _update(job, await self._download(client, job["id"]))
            finally:
                if not finished:
                    with contextlib.suppress(Exception):
                        await client.delete(f"{self.base}/videos/{job['id']}")
