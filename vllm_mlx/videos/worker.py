"""One background thread that owns the video pipeline and runs jobs one at a time.

Contract: ``JobWorker(load, execute, max_queued)``. :meth:`start` runs ``load()`` on the
worker's own thread (MLX arrays stay on the thread that made them) and returns what it
loaded, or raises its error. :meth:`submit` queues a :class:`Job` (:class:`QueueFull` when
``max_queued`` jobs already wait, unless ``bounded=False``, as for jobs recovered at start).
The thread takes jobs first in, first out and calls ``execute(loaded, job)``; ``execute``
owns the job's outcome and must settle ``job.done``. :meth:`cancel` takes a queued job out of
the queue (settling ``job.done`` with :class:`JobCancelled`), or flags the running one
(``job.cancel``, polled by the pipeline between steps). :meth:`shutdown` cancels the running
job (reason ``"shutdown"``), fails waiting non-persistent jobs, leaves persistent ones to
their records, and joins the thread. Nothing here touches the event loop: callers await
``job.done`` through ``asyncio.wrap_future``.

The thread runs at a lower scheduling priority (Linux: ``nice`` +:data:`NICE`, inherited by
the threads MLX starts from it) so that chat requests keep their latency during a job.

Exit: a started worker is shut down by an ``atexit`` hook (holding only a weak reference)
if its owner has not done so, and :meth:`shutdown` waits until the OS thread itself is gone,
not only its Python part: MLX's thread-local destructors take the GIL as the thread ends,
and doing so while the interpreter finalizes aborts the process ("terminate called without
an active exception").
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .plan import JobPlan

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)
NICE = 10  # added to the worker thread's nice value: chat wins the CPU while a job runs
EXIT_TIMEOUT_S = 60.0  # how long interpreter exit waits for the current unit of work


class QueueFull(Exception):
    """Too many jobs are waiting."""


class WorkerStopped(Exception):
    """The worker shut down before the job ran."""


class JobCancelled(Exception):
    """The job was taken out of the queue before it ran."""


@dataclass(eq=False)
class Job:
    id: str
    plan: JobPlan
    image: Image | None = None  # the reference of an image-to-video job
    persist: bool = True  # False: a /sync request, answered through ``done`` only
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None  # "deleted" | "shutdown" | "disconnected"
    progress: int = 0
    stage: str = "queued"  # the record's ``stage`` while the job runs
    done: Future[tuple[bytes | None, float]] = field(default_factory=Future)

    def request_cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel.set()


Loaded = TypeVar("Loaded")


class JobWorker(Generic[Loaded]):
    def __init__(self, load: Callable[[], Loaded], execute: Callable[[Loaded, Job], None],
                 max_queued: int) -> None:
        self._load, self._execute, self.max_queued = load, execute, max_queued
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._stopping = False
        self._ready: Future[Loaded] = Future()
        self._thread = threading.Thread(target=self._main, name="video-jobs", daemon=True)
        self._exit_hook: Callable[[], None] | None = None

    def start(self, timeout: float | None = None) -> Loaded:
        self._exit_hook = functools.partial(_shutdown_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)
        self._thread.start()
        return self._ready.result(timeout)

    @property
    def running(self) -> Job | None:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def find(self, job_id: str) -> Job | None:
        with self._cond:
            if self._running is not None and self._running.id == job_id:
                return self._running
            return next((job for job in self._queue if job.id == job_id), None)

    def submit(self, job: Job, bounded: bool = True) -> None:
        with self._cond:
            if self._stopping:
                raise WorkerStopped("the video worker is shutting down")
            if bounded and len(self._queue) >= self.max_queued:
                raise QueueFull(f"{len(self._queue)} video jobs are already waiting")
            self._queue.append(job)
            self._cond.notify_all()

    def cancel(self, job_id: str, reason: str) -> Job | None:
        """Dequeue or flag the job; returns it (None when it is neither queued nor running)."""
        with self._cond:
            job = self.find(job_id)
            if job is None:
                return None
            job.request_cancel(reason)
            if job is not self._running:
                self._queue.remove(job)
                job.done.set_exception(JobCancelled(reason))
        return job

    def shutdown(self, timeout: float = 10.0) -> None:
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        with self._cond:
            self._stopping = True
            if self._running is not None:
                self._running.request_cancel("shutdown")
            waiting, self._queue = list(self._queue), deque()
            self._cond.notify_all()
        for job in waiting:
            if not job.done.done():
                job.done.set_exception(WorkerStopped("the server is shutting down"))
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            deadline = time.monotonic() + timeout
            self._thread.join(timeout)
            _wait_thread_gone(self._thread, deadline)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            self._running = self._queue.popleft()
            return self._running

    def _main(self) -> None:
        _lower_priority()
        try:
            loaded = self._load()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(loaded)
        while (job := self._next()) is not None:
            try:
                self._execute(loaded, job)
            except BaseException as exc:  # execute settles its jobs; this is a last resort
                logger.exception("video job %s crashed the worker step", job.id)
                if not job.done.done():
                    job.done.set_exception(exc)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()


def _lower_priority() -> None:
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError as exc:  # a container may forbid it: jobs still run, chat less smooth
            logger.debug("could not lower the video worker's priority: %s", exc)


def _wait_thread_gone(thread: threading.Thread, deadline: float) -> None:
    """Wait (until ``deadline``) for the OS thread behind a joined ``thread`` to end."""
    if thread.is_alive() or thread.native_id is None:
        return
    task = f"/proc/self/task/{thread.native_id}"
    if not os.path.isdir("/proc/self/task"):
        time.sleep(0.05)  # no /proc (macOS): its thread-local destructors take microseconds
        return
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.002)


def _shutdown_at_exit(ref: weakref.ref[JobWorker[Any]]) -> None:
    worker = ref()
    if worker is not None:
        worker.shutdown(EXIT_TIMEOUT_S)
