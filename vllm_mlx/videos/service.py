"""Video generation jobs: create, run one at a time, store, list, download, delete, recover.

Contract: :meth:`VideoJobs.start` resolves the model reference, loads the pipeline on the
worker thread, opens the store and recovers: jobs a previous process left ``in_progress`` are
marked ``failed`` (``server_restarted``: the job may have been what stopped it), ``queued``
ones run again with the same plan (and seed), completed jobs whose file is gone are marked
``failed``. Then:

- The model is calibrated once at load (``WanPipeline.calibrate``: a second or so of small
  runs); :meth:`plan` refuses (400 ``job_too_long``) a job whose estimated time on this
  machine exceeds ``max_job_seconds`` (``--video-max-job-seconds``; 0: no limit), naming
  the estimate and the limit.
- Jobs run on the worker's own MLX stream (not the default stream the chat engine uses),
  in units of one transformer block or one VAE stage, so chat keeps its latency.
- :meth:`create` stores a ``queued`` record (and the reference image) and queues the job
  (``APIError`` 429 when ``max_queued`` jobs wait); :meth:`get` / :meth:`list_videos` return
  records with the running job's live ``progress`` (the share of the estimated work done,
  moving after every transformer block and VAE stage; at most 99 until the video is
  written; 100 once ``completed``) and its ``stage``: ``queued``, then ``encoding_prompt``,
  ``denoising``, ``decoding`` (as the pipeline reports them), ``writing`` (the mp4), and
  ``completed`` or ``failed``; each change is also written to the stored record.
- :meth:`delete` removes the record and its files at once and cancels the job: dequeued when
  waiting, stopped at the end of its current block or VAE stage when running.
- :meth:`content_path` is the mp4 of a ``completed`` job (404 unknown or unfinished, 422
  failed). :meth:`submit_sync` runs a job without storing anything; ``job.done`` gets
  ``(mp4 bytes, seconds)``.
- A failed generation ends ``failed`` with ``error = {code, message}``; records never stay
  ``in_progress`` after their job stops. :meth:`shutdown` puts a running job back to
  ``queued`` so that the next start runs it again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import APIError
from .model import resolve_video_model
from .plan import JobPlan, finish_frames, make_plan
from .protocol import VideoDeleted, VideoList, VideoStage
from .reference import ReferenceImage
from .request import VideoRequest
from .store import JobStore, VideoRecord, write_atomic
from .worker import Job, JobWorker, QueueFull, WorkerStopped

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..diffusion.pipeline import WanPipeline

logger = logging.getLogger(__name__)
RESTART = ("server_restarted",
           "the server stopped while this job was running; submit it again")
MAX_LIST = 100
DEFAULT_MAX_JOB_SECONDS = 3600.0


def _now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class VideoModelInfo:
    name: str
    reference: str
    path: Path
    random_weights: bool

    @property
    def names(self) -> set[str]:
        return {self.name, "default", self.reference, str(self.path)}

    def card(self) -> dict[str, object]:
        """The model's entry in ``GET /v1/models`` of a server without a chat model."""
        return {"id": self.name, "object": "model", "created": _now(), "owned_by": "vllm-mlx",
                "root": str(self.path), "aliases": sorted(self.names - {self.name}),
                "capabilities": {"vision": False, "video": False, "native_video": False,
                                 "video_generation": True},
                "random_weights": self.random_weights}


class VideoJobs:
    def __init__(self, info: VideoModelInfo, store: JobStore, max_queued: int,
                 max_job_seconds: float = DEFAULT_MAX_JOB_SECONDS) -> None:
        self.model, self.store = info, store
        self.max_job_seconds = max_job_seconds
        self.worker = JobWorker(self._load, self._execute, max_queued)
        self.pipeline: WanPipeline | None = None  # set by start(), once loaded
        self._stream: Any = None  # the worker thread's MLX stream (streams are per thread)

    @classmethod
    def start(cls, reference: str, storage_path: Path, *, name: str | None = None,
              tiny_cache_dir: Path | None = None, max_queued: int = 16,
              max_job_seconds: float = DEFAULT_MAX_JOB_SECONDS) -> VideoJobs:
        """Load the model and recover stored jobs (``VideoModelError`` / ``OSError``)."""
        path, random_weights = resolve_video_model(reference, tiny_cache_dir)
        info = VideoModelInfo(name or reference, reference, path, random_weights)
        jobs = cls(info, JobStore(storage_path), max_queued, max_job_seconds)
        try:
            jobs.pipeline = jobs.worker.start()
        except BaseException:
            jobs.store.close()
            raise
        jobs.recover()
        return jobs

    def shutdown(self) -> None:
        self.worker.shutdown()
        self.store.close()

    def _load(self) -> WanPipeline:
        from ..diffusion import WanPipeline
        from ..diffusion._mlx import mx

        self._stream = mx.new_stream(mx.default_device())
        with mx.stream(self._stream):
            pipeline = WanPipeline.from_pretrained(self.model.path)
            cost = pipeline.calibrate()
        logger.info("video model calibrated: %.3g GFLOP/s, %.3f s per transformer call, "
                    "%.3f s per VAE chunk + %.3g s per pixel", cost.flops_per_s / 1e9,
                    cost.forward_overhead_s, cost.chunk_overhead_s, cost.chunk_s_per_pixel)
        return pipeline

    # --- requests ------------------------------------------------------------------------
    def check_model(self, name: str | None) -> None:
        if name is not None and name not in self.model.names:
            raise APIError(404, f"The model '{name}' does not exist. This server generates "
                           f"videos with '{self.model.name}' (also answers to 'default').",
                           param="model", code="model_not_found")

    def plan(self, request: VideoRequest, image: Image | None = None) -> JobPlan:
        self.check_model(request.model)
        if self.pipeline is None:
            raise APIError(503, "the video model is not loaded yet", code="model_loading")
        plan = make_plan(request, self.pipeline, image)
        self._check_budget(plan)
        return plan

    def _check_budget(self, plan: JobPlan) -> None:
        assert self.pipeline is not None
        if self.max_job_seconds <= 0:
            return
        cost = self.pipeline.estimate(plan.generation())
        if cost.total_s <= self.max_job_seconds:
            return
        raise APIError(
            400, f"this job would take about {cost.total_s:.0f} s on this server "
            f"({plan.num_inference_steps} steps of ~{cost.step_s:.3g} s at "
            f"{plan.gen_width}x{plan.gen_height} with {plan.num_frames} frames, then "
            f"~{cost.decode_s:.0f} s of VAE decode), over its limit of "
            f"{self.max_job_seconds:g} s per job (--video-max-job-seconds): ask for fewer "
            "steps, fewer frames or a smaller size", param="num_inference_steps",
            code="job_too_long")

    def create(self, plan: JobPlan, image: ReferenceImage | None = None,
               user: str | None = None) -> VideoRecord:
        job = Job(f"video_{uuid.uuid4().hex}", plan, image.image if image else None)
        record = self._new_record(job.id, plan, user)
        if image is not None:
            write_atomic(self.store.input_path(job.id), image.data)
        try:
            self.store.add(record, {"plan": plan.to_dict(), "image": image is not None})
        except BaseException:  # e.g. a full disk: no reference image without its record
            self.store.remove_files(job.id)
            raise
        try:
            self.worker.submit(job)
        except (QueueFull, WorkerStopped) as exc:
            self.store.delete(job.id)
            self.store.remove_files(job.id)
            raise self._busy(exc) from None
        return record

    def submit_sync(self, plan: JobPlan, image: Image | None = None) -> Job:
        job = Job(f"video_{uuid.uuid4().hex}", plan, image, persist=False)
        try:
            self.worker.submit(job)
        except (QueueFull, WorkerStopped) as exc:
            raise self._busy(exc) from None
        return job

    @staticmethod
    def _busy(exc: Exception) -> APIError:
        if isinstance(exc, QueueFull):
            return APIError(429, f"the video queue is full ({exc}); retry later",
                            code="queue_full")
        return APIError(503, str(exc), code="shutting_down")

    def _new_record(self, video_id: str, plan: JobPlan, user: str | None) -> VideoRecord:
        return {
            "id": video_id, "object": "video", "status": "queued", "stage": "queued",
            "progress": 0,
            "created_at": _now(), "completed_at": None, "expires_at": None,
            "model": self.model.name, "prompt": plan.prompt, "size": plan.size,
            "seconds": plan.seconds, "quality": "standard", "remixed_from_video_id": None,
            "error": None, "inference_time_s": None, "file_name": None,
            "media_type": "video/mp4", "user": user, "settings": plan.settings(),
            "notes": list(plan.notes),
        }

    def _live(self, record: VideoRecord) -> VideoRecord:
        running = self.worker.running
        if record["status"] == "in_progress" and running is not None \
                and running.id == record["id"]:
            return {**record, "progress": running.progress,
                    "stage": cast(VideoStage, running.stage)}
        if "stage" not in record:  # stored by a version without stages
            return {**record, "stage": _STAGE_OF_STATUS[record["status"]]}
        return record

    def get(self, video_id: str) -> VideoRecord:
        record = self.store.get(video_id)
        if record is None:
            raise APIError(404, f"No video job with id '{video_id}'", param="video_id",
                           code="video_not_found")
        return self._live(record)

    def list_videos(self, after: str | None, limit: int, order: str) -> VideoList:
        if order not in ("asc", "desc"):
            raise APIError(400, f"order must be 'asc' or 'desc', got {order!r}", param="order")
        if not 1 <= limit <= MAX_LIST:
            raise APIError(400, f"limit must be between 1 and {MAX_LIST}, got {limit}",
                           param="limit")
        try:
            records, more = self.store.page(after, limit, order == "asc")
        except KeyError:
            raise APIError(400, f"after: no video job with id '{after}'", param="after") from None
        data = [self._live(r) for r in records]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": more}

    def content_path(self, video_id: str) -> Path:
        record = self.get(video_id)
        if record["status"] == "failed":
            error = record.get("error")
            message = error["message"] if error else "unknown"
            raise APIError(422, f"video {video_id} failed: {message}",
                           param="video_id", code="video_failed")
        path = self.store.video_path(video_id)
        if record["status"] != "completed" or not path.is_file():
            raise APIError(404, f"video {video_id} is not ready (status {record['status']}); "
                           "poll GET /v1/videos/{id} until it is completed",
                           param="video_id", code="video_not_ready")
        return path

    def delete(self, video_id: str) -> VideoDeleted:
        self.get(video_id)
        self.worker.cancel(video_id, "deleted")
        self.store.delete(video_id)
        self.store.remove_files(video_id)
        return {"id": video_id, "deleted": True, "object": "video.deleted"}

    # --- the worker side -----------------------------------------------------------------
    def _execute(self, pipeline: WanPipeline, job: Job) -> None:
        from ..diffusion._mlx import mx

        with mx.stream(self._stream):
            self._run(pipeline, job)

    def _run(self, pipeline: WanPipeline, job: Job) -> None:
        from ..diffusion import Cancelled

        job.stage = "encoding_prompt"
        if job.persist and self.store.update(job.id, status="in_progress",
                                             stage=job.stage) is None:
            job.done.set_exception(Cancelled("deleted before it started"))
            return
        started = time.perf_counter()
        try:
            result = pipeline.generate(job.plan.generation(job.image),
                                       progress=lambda done: _progress(job, done),
                                       should_cancel=job.cancel.is_set,
                                       stage=lambda name: self._stage(job, name))
            frames, fps = finish_frames(result.frames, result.fps, job.plan)
            if job.cancel.is_set():
                raise Cancelled(job.cancel_reason or "cancelled")
            self._stage(job, "writing")
            output = self._write(job, frames, fps)
        except Cancelled as exc:
            self._cancelled(job, exc)
        except Exception as exc:
            logger.exception("video job %s failed", job.id)
            self._failed(job, exc)
        else:
            seconds = round(time.perf_counter() - started, 3)
            if job.persist:
                self._completed(job, seconds, result.notes)
            job.done.set_result((output, seconds))

    def _stage(self, job: Job, name: str) -> None:
        if name == job.stage:
            return
        job.stage = name
        if job.persist:
            self.store.update(job.id, stage=name)

    def _write(self, job: Job, frames: np.ndarray, fps: float) -> bytes | None:
        from ..diffusion import encode_mp4, write_mp4

        if not job.persist:
            return encode_mp4(frames, fps)
        write_mp4(frames, fps, self.store.video_path(job.id))
        return None

    def _completed(self, job: Job, seconds: float, notes: list[str]) -> None:
        self.store.input_path(job.id).unlink(missing_ok=True)
        notes = [*job.plan.notes, *(n for n in notes if n not in job.plan.notes)]
        record = self.store.update(job.id, status="completed", stage="completed",
                                   progress=100, completed_at=_now(), inference_time_s=seconds,
                                   file_name=self.store.video_path(job.id).name, notes=notes)
        if record is None:  # deleted while the file was being written
            self.store.remove_files(job.id)

    def _cancelled(self, job: Job, exc: Exception) -> None:
        if job.persist and job.cancel_reason == "shutdown":
            self.store.update(job.id, status="queued", stage="queued", progress=0)
        elif job.persist:
            self.store.remove_files(job.id)
        job.done.set_exception(exc)

    def _failed(self, job: Job, exc: Exception) -> None:
        if job.persist:
            self._mark_failed([job.id], "generation_failed", f"video generation failed: {exc}")
            self.store.video_path(job.id).unlink(missing_ok=True)
        job.done.set_exception(exc)

    def _mark_failed(self, ids: Iterable[str], code: str, message: str) -> None:
        for video_id in ids:
            self.store.input_path(video_id).unlink(missing_ok=True)
            self.store.update(video_id, status="failed", stage="failed", completed_at=_now(),
                              error={"code": code, "message": message})

    # --- restart -------------------------------------------------------------------------
    def recover(self) -> None:
        self.store.sweep_temp_files()
        self._mark_failed(self.store.ids_with_status("in_progress"), *RESTART)
        missing = [i for i in self.store.ids_with_status("completed")
                   if not self.store.video_path(i).is_file()]
        self._mark_failed(missing, "output_missing", "the video file is missing from storage")
        for video_id in self.store.ids_with_status("queued"):
            try:
                job = self._stored_job(video_id)
            except Exception as exc:  # a record this version cannot run: say why
                self._mark_failed([video_id], "recovery_failed",
                                  f"could not run again after a restart: {exc}")
                continue
            self.worker.submit(job, bounded=False)

    def _stored_job(self, video_id: str) -> Job:
        from ..media import decode_image

        stored = self.store.plan(video_id)
        if stored is None:
            raise KeyError("plan")
        plan = JobPlan.from_dict(stored["plan"])
        image = None
        if stored.get("image"):
            data = self.store.input_path(video_id).read_bytes()
            image = decode_image(data)
        return Job(video_id, plan, image)


_STAGE_OF_STATUS: dict[str, VideoStage] = {
    "queued": "queued", "in_progress": "denoising", "completed": "completed", "failed": "failed"}


def _progress(job: Job, fraction: float) -> None:
    job.progress = max(job.progress, min(99, int(100 * fraction)))
