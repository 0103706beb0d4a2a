"""A stand-in for the ``/v1/videos`` jobs API (shared/specs/video-jobs.md), for client tests.

It implements only what a client sees of the contract: multipart create -> a ``queued``
record, progress that advances one ``step`` per poll (with the ``stage``: denoising, then
decoding from 75), ``completed`` at 100 (or ``failed``
when the prompt contains "fail"), ``/content`` (404 until completed), ``DELETE`` recording
cancellations, and a ``/v1/models`` card so the chat backend can connect. It generates
nothing: the content is a small test mp4.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.live_server import serving


@dataclass
class ContractState:
    video: bytes
    step: int = 50
    forms: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


def _stage(progress: int) -> str:
    """The real server's phases, by share of the work (decoding in the last quarter)."""
    if progress < 20:
        return "encoding_prompt"
    return "denoising" if progress < 75 else "decoding"


def _advance(job: dict[str, Any], step: int) -> None:
    if job["status"] in ("completed", "failed"):
        return
    job["progress"] = min(100, job["progress"] + step)
    job["status"] = "in_progress"
    job["stage"] = _stage(job["progress"])
    if "fail" in job["prompt"] and job["progress"] >= 50:
        job.update(status="failed", stage="failed",
                   error={"code": "boom", "message": "the model exploded"})
    elif job["progress"] == 100:
        job.update(status="completed", stage="completed", completed_at=int(time.time()))


def contract_app(state: ContractState) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "tiny-wan", "object": "model",
                                            "capabilities": {"vision": False, "video": False,
                                                             "native_video": False}}]}

    @app.get("/v1/videos")
    async def list_jobs() -> dict[str, Any]:
        data = list(state.jobs.values())
        return {"object": "list", "data": data, "first_id": None, "last_id": None,
                "has_more": False}

    @app.post("/v1/videos")
    async def create(request: Request) -> dict[str, Any]:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        state.forms.append(form)
        job_id = f"video_{len(state.jobs) + 1}"
        state.jobs[job_id] = {
            "id": job_id, "object": "video", "status": "queued", "stage": "queued",
            "progress": 0,
            "created_at": int(time.time()), "completed_at": None, "model": "tiny-wan",
            "prompt": form["prompt"], "size": form.get("size", "832x480"), "seconds": "4",
            "quality": "standard", "error": None}
        return state.jobs[job_id]

    @app.get("/v1/videos/{job_id}")
    async def retrieve(job_id: str) -> Any:
        if job_id not in state.jobs:
            return JSONResponse({"error": {"message": "no such job"}}, status_code=404)
        _advance(state.jobs[job_id], state.step)
        return state.jobs[job_id]

    @app.get("/v1/videos/{job_id}/content")
    async def content(job_id: str) -> Response:
        if state.jobs.get(job_id, {}).get("status") != "completed":
            return JSONResponse({"error": {"message": "not finished"}}, status_code=404)
        return Response(state.video, media_type="video/mp4")

    @app.delete("/v1/videos/{job_id}")
    async def delete(job_id: str) -> dict[str, Any]:
        state.deleted.append(job_id)
        return {"id": job_id, "deleted": True, "object": "video.deleted"}

    return app


@contextmanager
def running_contract_server(state: ContractState) -> Iterator[str]:
    """Serve the stand-in on a free port in a thread; yields its base URL."""
    with serving(contract_app(state), startup_s=20) as port:
        yield f"http://127.0.0.1:{port}"
