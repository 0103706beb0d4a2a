"""Vision prompts prepared off the owner thread.

Running a vision model's processor (resizing, normalizing and patching images and video
frames, then building the MLX input arrays) and hashing the media for the caches takes
tens of milliseconds per image; on the owner thread it would hold every running stream's
next token. A :class:`MediaPreparer` does that work on a thread of its own as soon as a
job with media is queued; the owner thread admits the job only once it is done (see
:mod:`.jobs`), and finds the prompt and the media hashes in each request's
:class:`~.preparation.Preparation`. Errors are kept there too and raised at admission, as
if they had happened on the owner thread.

MLX (>= 0.31.2) gives each thread its own default stream: the preparer evaluates every
array it makes, so the owner thread only reads their data. It clears its streams when it
stops, as the owner thread does (a stream left alive aborts the process at exit).
"""

from __future__ import annotations

import contextlib
import queue
import threading

from ._mlx import mx
from .errors import EngineError
from .jobs import Job
from .loaded import LoadedModel
from .types import GenerationRequest, ImagePart, VideoPart


def has_media(request: GenerationRequest) -> bool:
    return bool(request.images or request.videos) or any(
        isinstance(part, ImagePart | VideoPart)
        for message in request.messages for part in message.content)


class MediaPreparer:
    """One thread preparing the prompts of jobs with media, in the order they came (a
    vision model's engine has one; a text model's prompts have no media to prepare)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mlx-media-prep", daemon=True)
        self._thread.start()

    def start(self, job: Job) -> None:
        """Prepare ``job``'s prompts, then set its ``ready`` event (set to a new one before
        the job is queued, so that the owner thread parks it until then)."""
        self._queue.put(job)

    def close(self, timeout: float | None = 10.0) -> None:
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                try:
                    if not job.cancelled.is_set():
                        self._prepare(job)
                finally:
                    assert job.ready is not None
                    job.ready.set()
        finally:
            mx.synchronize()
            mx.clear_streams()

    def _prepare(self, job: Job) -> None:
        for request, preparation in zip(job.requests, job.preparations):
            with contextlib.suppress(EngineError):  # kept in the preparation: admission raises it
                preparation.prompt(self._loaded, request)  # also hashes the media
