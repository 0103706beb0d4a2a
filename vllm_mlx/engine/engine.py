"""The engine: one thread owns MLX; everyone else talks to it through queues.

``Engine.start(reference, options)`` spawns the owner thread, which loads the model and
then runs the continuous-batching :class:`Scheduler`, pulling jobs from a bounded queue
whenever the batch has room (a full queue answers :class:`EngineOverloaded`).

``generate`` returns an async iterator of :class:`GenerationChunk`; ``submit`` queues several
requests as one job (an API request's ``n`` choices: one queue slot, refused or accepted
together, at once) and returns a :class:`Submission` of index-tagged chunks; ``generate_sync``
and ``complete_sync`` are the blocking twins for the Python API. ``screen`` (awaited before
``submit``) refuses long prompts the context cannot hold, off the owner thread; what it
prepared travels with the job (:mod:`.preparation`: a prompt is rendered and tokenized
once, by screening, the check of a queued job or admission, whichever comes first). A
vision prompt's media go through the processor on the :class:`.preparer.MediaPreparer`'s
thread while the job waits (:mod:`.jobs`), so the owner thread's steps never wait for them.
Chunks reach the callers on one event loop in batches (one wake-up of that loop carries all
posted since the last, see :class:`.submission.Mailbox`; spaced by a :class:`StreamPace` while
many streams are open), and a reader that falls behind gets its waiting chunks merged.

Leaving an iterator early (client gone, ``break``) cancels the job: the owner thread drops
it from the batch at the next step. A job's failure reaches its caller as a raised
:class:`EngineError`, never as a dead thread or a hang.

A :class:`StepCoordinator` (``vllm_mlx.distributed``) may stand between the owner thread
and its scheduler to keep other processes' schedulers in step with this one: it wraps the
scheduler, may ask for a periodic empty step while idle (``idle_wait``), and ends the
engine by raising :class:`EngineClosed` from ``step()`` (every later job gets that error).

Exit: a started engine is shut down by an ``atexit`` hook (holding only a weak reference)
if its owner has not done so. The owner thread is a daemon; were it still inside an MLX
call when the interpreter finalizes, CPython would end it with ``pthread_exit`` as it
took the GIL back, and that forced unwind through MLX's C++ frames aborts the process
("terminate called without an active exception", exit 134). The hook stops the thread
after its current step, before finalization starts.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

from ._mlx import mx
from .errors import EngineClosed, EngineError
from .heap import HeapTrimmer
from .jobs import Job, JobQueue, Nothing, Sink
from .loader import LoadedModel, LoadOptions, load_model
from .preparation import Preparation, shared
from .preparer import MediaPreparer, has_media
from .sampler import check_sampling
from .scheduler import Scheduler
from .screening import PromptScreen
from .submission import DEFAULT_PACE, Inbox, Mailbox, StreamPace, Submission
from .types import (
    Accepted,
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
)

logger = logging.getLogger(__name__)

EXIT_TIMEOUT_S = 60.0  # how long interpreter exit waits for the owner thread's current step


class StepCoordinator(Protocol):
    """Keeps a process group's replicated schedulers in step (see vllm_mlx.distributed)."""

    idle_wait: float | None  # seconds between empty steps while idle; None: block

    def attach(self, scheduler: Scheduler) -> Any:
        """Return the object the engine uses as its scheduler (same methods)."""
        ...

    def close(self) -> None:
        """The engine is stopping: release the other processes."""
        ...


def _add(scheduler: Scheduler, request: GenerationRequest, sink: Callable[[Any], None],
         cancelled: threading.Event, preparation: Preparation | None) -> None:
    """Hand one request to the scheduler; a request it refuses fails alone."""
    if cancelled.is_set():
        scheduler.stats.requests_cancelled += 1
        sink(None)
        return
    try:
        if preparation is None:  # a coordinator's ranks each prepare their own prompts
            scheduler.add(request, sink, cancelled.is_set)
        else:
            scheduler.add(request, sink, cancelled.is_set, preparation)
    except EngineError as exc:  # e.g. an invalid JSON schema
        sink(exc)
    except Exception as exc:
        logger.exception("could not admit request %s", request.request_id)
        sink(EngineError(f"request failed: {type(exc).__name__}: {exc}"))


def _prompt_error(loaded: LoadedModel, job: Job) -> EngineError | None:
    """The error admitting ``job`` would give one of its requests' prompts, if any (an
    empty prompt, one the context cannot hold, media the processor refuses). The prompts
    it prepares are kept for admission."""
    try:
        for request, preparation in zip(job.requests, job.preparations):
            preparation.prompt(loaded, request)
    except EngineError as exc:
        return exc
    return None


class Engine:
    """Owns the model and the MLX thread. Create with :meth:`start`."""

    def __init__(self, max_waiting: int = 256, max_batch: int = 32,
                 prefill_chunk: int = 256, prefix_cache_bytes: int = 512 << 20,
                 coordinator: StepCoordinator | None = None,
                 vision_cache_bytes: int = 256 << 20, prefill_step_s: float = 0.0,
                 stream_pace: StreamPace = DEFAULT_PACE) -> None:
        self._jobs = JobQueue(max_waiting)
        self._preparer: MediaPreparer | None = None
        # Ranks of a group must cut prompts alike: no per-machine chunk calibration there.
        step_s = prefill_step_s if coordinator is None else 0.0
        self._scheduler_options: dict[str, Any] = {
            "max_batch": max_batch, "prefill_chunk": prefill_chunk,
            "prefix_cache_bytes": prefix_cache_bytes, "vision_cache_bytes": vision_cache_bytes,
            "prefill_step_s": step_s}
        self._scheduler: Scheduler | None = None
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._loaded: LoadedModel | None = None
        self._screen: PromptScreen | None = None
        self._closed = False
        self._stop = threading.Event()  # the owner thread ends after its current step
        self._exit_hook: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._coordinator = coordinator
        self._fatal: EngineClosed | None = None  # why the engine stopped on its own
        self._heap = HeapTrimmer()
        self._mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = \
            weakref.WeakKeyDictionary()
        self._mailboxes_lock = threading.Lock()
        self._stream_pace = stream_pace

    @classmethod
    def start(cls, reference: str, options: LoadOptions | None = None,
              max_waiting: int = 256, max_batch: int = 32, prefill_chunk: int = 256,
              prefix_cache_bytes: int = 512 << 20,
              coordinator: StepCoordinator | None = None,
              vision_cache_bytes: int = 256 << 20, prefill_step_s: float = 0.0,
              stream_pace: StreamPace = DEFAULT_PACE) -> Engine:
        """Load ``reference`` on a new owner thread; raise its load error, if any.

        ``prefill_step_s`` > 0 sizes prefill chunks (up to ``prefill_chunk`` tokens) to take
        about that long on this machine, measured once at load (text models).
        ``stream_pace`` spaces the chunks' hand-over to an event loop serving many streams
        (see :class:`.submission.StreamPace`)."""
        engine = cls(max_waiting, max_batch, prefill_chunk, prefix_cache_bytes, coordinator,
                     vision_cache_bytes, prefill_step_s, stream_pace)
        engine._thread = threading.Thread(target=engine._run, args=(reference, options),
                                          name="mlx-engine", daemon=True)
        engine._thread.start()
        engine._ready.wait()
        if engine._load_error is not None:
            raise engine._load_error
        engine._exit_hook = functools.partial(_shutdown_at_exit, weakref.ref(engine))
        atexit.register(engine._exit_hook)
        return engine

    @property
    def model(self) -> LoadedModel:
        assert self._loaded is not None
        return self._loaded

    def _run(self, reference: str, options: LoadOptions | None) -> None:
        try:
            self._loaded = load_model(reference, options)
            self._screen = PromptScreen(self._loaded)
        except BaseException as exc:  # surfaced to the starting thread
            self._load_error = exc
            self._ready.set()
            return
        scheduler: Any = Scheduler(self._loaded, **self._scheduler_options)
        self._scheduler = scheduler
        if self._coordinator is not None:
            scheduler = self._coordinator.attach(scheduler)
        elif self._loaded.is_vision:  # a group's ranks prepare each prompt themselves, alike
            self._preparer = MediaPreparer(self._loaded)
        self._ready.set()
        try:
            while not self._stop.is_set() and self._admit(scheduler) and self._step(scheduler):
                self._heap.after_step(idle=not scheduler.has_work)
        finally:
            self._closed = True
            scheduler.abort_all(self._closed_error("the engine is shutting down"))
            self._fail_queued()
            if self._preparer is not None:
                self._preparer.close()
            if self._coordinator is not None:
                self._coordinator.close()
            # Streams are per thread; one left alive aborts the process at exit.
            mx.synchronize()
            mx.clear_streams()

    def _admit(self, scheduler: Scheduler) -> bool:
        """Move queued jobs into the scheduler while it has room; False on shutdown."""
        idle_wait = self._coordinator.idle_wait if self._coordinator is not None else None
        scheduler.stats.requests_cancelled += self._drop_abandoned()
        while scheduler.has_capacity:
            job = self._jobs.next(block=not scheduler.has_work, timeout=idle_wait)
            if job is None:
                return False
            if isinstance(job, Nothing):
                break
            # before the next get, which may block: a job cancelled while queued adds no work
            scheduler.stats.waiting = len(self._jobs)
            for index, request in enumerate(job.requests):
                preparation = job.preparations[index] if self._coordinator is None else None
                _add(scheduler, request, functools.partial(job.sink, index), job.cancelled,
                     preparation)
        if not scheduler.has_capacity:
            self._check_one(scheduler)
        scheduler.stats.waiting = len(self._jobs)
        return True

    def _check_one(self, scheduler: Scheduler) -> None:
        """With the batch full, check the prompts of one queued job: one its model cannot
        take (too long for the context, say) is refused now, not once a slot frees. The
        prompts prepared here are the ones admission starts."""
        # a job with media is checked once the preparer is done with it (nothing left to do)
        job = self._jobs.first(lambda j: not j.checked and not j.cancelled.is_set()
                               and not j.preparing)
        if job is None:
            return
        job.checked = True
        error = _prompt_error(self.model, job)
        if error is None:
            return
        self._jobs.take(lambda queued: queued is job)
        scheduler.stats.requests_started += len(job.requests)
        scheduler.stats.requests_failed += len(job.requests)
        job.end_all(error)

    def _drop_abandoned(self) -> int:
        """Take out queued jobs whose callers have left, which would otherwise hold waiting
        slots (and turn new requests away) until the batch had room; return how many
        requests they held."""
        gone = self._jobs.take(lambda job: job.cancelled.is_set())
        for job in gone:
            job.end_all(None)
        return sum(len(job.requests) for job in gone)

    def _step(self, scheduler: Scheduler) -> bool:
        """One scheduler step; False when the engine cannot go on (a coordinator said so)."""
        try:
            scheduler.step()
        except EngineClosed as exc:  # only a coordinator raises it: the group is gone
            self._fatal = exc
            return False
        except Exception as exc:  # a failed batch step fails its requests, not the thread
            logger.exception("decode step failed")
            scheduler.abort_all(EngineError(f"generation failed: {type(exc).__name__}: {exc}"))
        return True

    @property
    def stats(self) -> dict:
        """A snapshot of the scheduler's counters (see :class:`EngineStats`)."""
        return self._scheduler.stats.snapshot() if self._scheduler is not None else {}

    def _submit(self, requests: list[GenerationRequest], sink: Sink,
                cancelled: threading.Event,
                preparations: list[Preparation] | None = None) -> Job:
        if self._closed:
            raise self._closed_error("the engine is shut down")
        loaded, screen = self.model, self._screen
        for request in requests:  # a request no decoding can honour is refused before queueing
            check_sampling(request.sampling, lambda: loaded.grammar_compiler,
                           vocab_size=loaded.vocab_size)
            if screen is not None:
                screen.check_chars(request)
        if preparations is None:
            preparations = shared(requests)
        elif len(preparations) != len(requests):
            raise ValueError("give one preparation per request (as screen() returns them)")
        preparer = self._preparer
        with_media = preparer is not None and any(has_media(r) for r in requests)
        # a job with media is parked by the owner thread until the preparer sets ``ready``
        job = Job(requests, preparations, sink, cancelled,
                  ready=threading.Event() if with_media else None)
        self._jobs.put(job)
        if preparer is not None and with_media:
            preparer.start(job)
        return job

    def _mailbox(self, loop: asyncio.AbstractEventLoop) -> Mailbox:
        with self._mailboxes_lock:
            mailbox = self._mailboxes.get(loop)
            if mailbox is None:
                mailbox = self._mailboxes[loop] = Mailbox(loop, self._stream_pace)
            return mailbox

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    @property
    def busy(self) -> bool:
        """Whether requests wait or run (read from any thread: a moment's view)."""
        scheduler = self._scheduler
        return len(self._jobs) > 0 or (scheduler is not None and scheduler.has_work)

    async def screen(self, requests: list[GenerationRequest]) -> list[Preparation]:
        """Refuse long prompts the context cannot hold by tokenizing them on a worker
        thread, so the owner thread never spends long on a prompt it must refuse. Returns
        the requests' preparations, for :meth:`submit`: the work is not done again."""
        preparations = shared(requests)
        screen = self._screen
        if screen is None:
            return preparations
        distinct = {id(p): (p, r) for p, r in zip(preparations, requests)}  # n copies: one
        for preparation, request in distinct.values():
            screen.check_chars(request)
            if screen.needs_count(request):
                counted = await asyncio.to_thread(screen.check_tokens, request)
                preparations = [counted if p is preparation else p for p in preparations]
        return preparations

    def submit(self, requests: list[GenerationRequest],
               preparations: list[Preparation] | None = None) -> Submission:
        """Queue ``requests`` as one job (call on the event loop that will read them), with
        the ``preparations`` :meth:`screen` returned for them, if it was awaited.

        Raises :class:`EngineOverloaded` / :class:`EngineClosed` at once, so an HTTP
        layer can answer with a status before it starts a response."""
        mailbox = self._mailbox(asyncio.get_running_loop())
        inbox = Inbox()
        cancelled = threading.Event()

        # The sink must not refer to the job or the submission (a cycle would keep every
        # request's media alive until a full garbage collection, and the submission's
        # end would no longer cancel its requests).
        def sink(index: int, item: GenerationChunk | Accepted | BaseException | None) -> None:
            if not mailbox.post(inbox, (index, item)):
                cancelled.set()  # the caller's loop is gone: so is the caller

        self._submit(list(requests), sink, cancelled, preparations)
        return Submission(inbox, cancelled, len(requests))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Chunks as they are decoded; closing the iterator cancels the request."""
        async for _, chunk in self.submit([request]).chunks():
            yield chunk

    def generate_sync(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Blocking twin of :meth:`generate`, for scripts and the Python API."""
        inbox: queue.Queue[GenerationChunk | Accepted | BaseException | None] = queue.Queue()
        cancelled = threading.Event()
        self._submit([request], lambda _, item: inbox.put(item), cancelled)
        try:
            while (item := inbox.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, GenerationChunk):
                    yield item
        finally:
            cancelled.set()

    def complete_sync(self, request: GenerationRequest) -> GenerationResult:
        return GenerationResult.from_chunks(list(self.generate_sync(request)))

    async def complete(self, request: GenerationRequest) -> GenerationResult:
        return GenerationResult.from_chunks([c async for c in self.generate(request)])

    def _closed_error(self, default: str) -> EngineClosed:
        """A fresh error per job: the reason the engine stopped on its own, if it did."""
        if self._fatal is not None:
            return type(self._fatal)(self._fatal.message)
        return EngineClosed(default)

    def _fail_queued(self) -> None:
        """Jobs still queued never reached the scheduler: fail them, never leave them."""
        for job in self._jobs.take_all():
            job.end_all(self._closed_error("the engine is shutting down"))

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop the owner thread after its current step; running and waiting jobs end with
        :class:`EngineClosed`. Waits up to ``timeout`` seconds for the thread."""
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        if not self._stop.is_set():
            self._closed = True
            self._stop.set()
            self._fail_queued()
            self._jobs.stop()  # wakes an idle owner thread
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


def _shutdown_at_exit(ref: weakref.ref[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.shutdown(EXIT_TIMEOUT_S)
