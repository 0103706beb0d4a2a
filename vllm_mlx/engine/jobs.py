"""The engine's waiting room: jobs queued by callers, taken by the owner thread.

A :class:`Job` is one caller's requests (an API request's ``n`` choices): one slot of the
bounded :class:`JobQueue`, refused at once when it is full (:class:`EngineOverloaded`).
The owner thread takes jobs in order with :meth:`JobQueue.next`. A job whose media are
still being prepared off the owner thread (``Job.ready`` not set, see :mod:`.preparer`)
is parked instead, still counted as waiting, and admitted once ready, before later
arrivals. Jobs whose callers left are taken out while they wait (:meth:`JobQueue.take`).

Any thread may put, take, count and fail jobs; only the owner thread calls ``next``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import EngineOverloaded
from .preparation import Preparation
from .types import Accepted, GenerationChunk, GenerationRequest

Sink = Callable[[int, GenerationChunk | Accepted | BaseException | None], None]
PARKED_POLL_S = 0.002  # how often an idle owner thread looks at parked jobs


@dataclass(eq=False)
class Job:
    """One caller's requests: one waiting slot."""

    requests: list[GenerationRequest]
    preparations: list[Preparation]  # one per request; shared by copies of one prompt
    sink: Sink  # (index, chunk), then (index, None); or (index, exception)
    cancelled: threading.Event = field(default_factory=threading.Event)
    checked: bool = False  # its prompts were checked while it waited (Engine._check_one)
    ready: threading.Event | None = None  # set once its media are prepared; None: no media

    @property
    def preparing(self) -> bool:
        return self.ready is not None and not self.ready.is_set()

    def end_all(self, item: BaseException | None) -> None:
        """End every request of the job with ``item`` (an error, or None: nothing more)."""
        for index in range(len(self.requests)):
            self.sink(index, item)


class Nothing:
    """What :meth:`JobQueue.next` returns when no job can be admitted now."""


NOTHING = Nothing()


class JobQueue:
    """Bounded FIFO of jobs, with the parked ones beside it (see the module)."""

    def __init__(self, max_waiting: int) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_waiting)
        self._parked: list[Job] = []  # guarded by the queue's mutex

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    def __len__(self) -> int:
        """Jobs waiting, parked ones included (a moment's view)."""
        return self._queue.qsize() + len(self._parked)

    def put(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise EngineOverloaded(
                f"too many waiting requests ({self.capacity}); retry later") from None

    def stop(self) -> None:
        """Wake the owner thread with the end marker (:meth:`next` returns None)."""
        self._queue.put(None)

    def next(self, block: bool, timeout: float | None) -> Job | Nothing | None:
        """Owner thread: a parked job now ready, else the next queued one (parked, and
        NOTHING returned, if its media are still being prepared); None means stop."""
        with self._queue.mutex:
            ready = next((job for job in self._parked if not job.preparing), None)
            if ready is not None:
                self._parked.remove(ready)
                return ready
            if block and self._parked:
                timeout = PARKED_POLL_S if timeout is None else min(timeout, PARKED_POLL_S)
        try:
            job = self._queue.get(block=block, timeout=timeout)
        except queue.Empty:
            return NOTHING
        if job is not None and job.preparing:
            with self._queue.mutex:
                self._parked.append(job)
            return NOTHING
        return job

    def take(self, doomed: Callable[[Job], bool]) -> list[Job]:
        """Remove the waiting jobs ``doomed`` picks (their slots free up); return them."""
        with self._queue.mutex:
            waiting = self._queue.queue
            gone = [j for j in (*self._parked, *waiting) if j is not None and doomed(j)]
            if gone:
                self._parked = [j for j in self._parked if not any(j is g for g in gone)]
                kept = [j for j in waiting if not any(j is g for g in gone)]
                waiting.clear()
                waiting.extend(kept)
                self._queue.not_full.notify(len(gone))
        return gone

    def first(self, wanted: Callable[[Job], bool]) -> Job | None:
        """The first queued job ``wanted`` picks, left in place."""
        with self._queue.mutex:
            return next((j for j in self._queue.queue if j is not None and wanted(j)), None)

    def take_all(self) -> list[Job]:
        """Every waiting job, parked ones included (to fail them at shutdown)."""
        return self.take(lambda _: True)
