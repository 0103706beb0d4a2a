"""Replicated scheduling: every rank runs the same scheduler steps on its shard.

The scheduler is deterministic given, before each step, which requests were admitted (in
order) and which were cancelled. So rank 0 (:class:`Leader`, wrapped around the HTTP
engine's scheduler) sends exactly that, as :class:`~.wire.StepInputs`, before every step,
and each other rank (:class:`Follower`, in an engine with no HTTP and no queue) applies it
to its own scheduler and takes the same step; the sharded forward passes then meet in the
model's own collectives. A request's output is produced on every rank and kept on rank 0.

Determinism the leader enforces: a request without a ``seed`` gets one before it is
broadcast (sampling then draws the same tokens on every rank), and cancellation is read
from a snapshot taken once per step (the scheduler sees ``uid in cancelled``, never a
live flag another thread may flip mid-step).

Failure: a collective that errors (a rank died), a step that raises (the ranks can no
longer be trusted to agree), a step slower than a second while :class:`~.liveness.PeerProbe`
finds a peer gone (MLX's ring backend leaves a forward pass hanging when a peer dies in
it), or a step longer than ``timeout`` (a rank hangs) fails the group; the last two are
seen by :class:`Watchdog` from another thread. Rank 0 then fails every request in flight
with :class:`GroupFailed` naming the rank and calls ``on_failure`` (the CLI stops the
server); the engine answers later requests with the same error.

Idle pacing: MLX's ring backend spins on a CPU core while a rank waits in a collective,
so a follower must not wait long for rank 0's next message. While idle, rank 0 takes an
empty step every ``idle_wait`` seconds (5 ms, growing to 50 ms: the longest a request
that arrives in an idle group waits for its first step) and announces that pause in the
message; the follower sleeps it before waiting again. The empty steps double as a
heartbeat: a follower notices a silent rank 0, and rank 0 a dead follower, with no
request in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..engine.errors import EngineClosed
from ..engine.types import GenerationRequest
from .group import Group
from .liveness import PeerProbe
from .wire import StepChannel, StepInputs

logger = logging.getLogger(__name__)

Sink = Callable[[Any], None]
IDLE_PAUSES = (0.005, 0.01, 0.02, 0.05)  # seconds between empty steps, growing while idle
_BACKEND_PREFIXES = ("[ring]", "[mpi]", "[jaccl]", "[nccl]", "[distributed]")


class GroupFailed(EngineClosed):
    """The process group cannot go on; the message names the rank at fault."""

    code = "distributed_group_failed"


class Watchdog:
    """Calls ``on_expire(reason)`` once when a watched section outlasts ``timeout``, or
    sooner when it has lasted ``suspect_after`` seconds and ``probe()`` names a dead peer."""

    def __init__(self, timeout: float, on_expire: Callable[[str], None],
                 probe: Callable[[], str | None] = lambda: None,
                 suspect_after: float = 1.0, peers: str = "another rank") -> None:
        self.timeout = timeout
        self.peers = peers
        self.suspect_after = suspect_after
        self._on_expire = on_expire
        self._probe = probe
        self._since: float | None = None
        self._what = ""
        self._limit = timeout
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def watch(self, what: str, limit: float | None = None) -> Iterator[None]:
        """Watch the block; ``limit`` replaces ``timeout`` for it."""
        self._what, self._limit = what, limit or self.timeout
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._since = None

    def _run(self) -> None:
        period = min(0.5, self.timeout / 4)
        while not self._stopped.wait(period):
            since = self._since
            if since is None:
                continue
            elapsed = time.monotonic() - since
            reason = self._probe() if elapsed > self.suspect_after else None
            if reason is None and elapsed > self._limit:
                reason = (f"{self._what} took {elapsed:.0f} s (limit {self._limit:.0f} s): "
                          f"{self.peers} does not answer")
            if reason is not None and self._since == since:
                self._stopped.set()
                self._on_expire(reason)

    def stop(self) -> None:
        self._stopped.set()


class _Replica:
    """Stands in for the engine's scheduler; what it does not define goes to the real one."""

    idle_wait: float | None = None

    def __init__(self, group: Group, timeout: float,
                 on_failure: Callable[[str], None] | None = None,
                 channel: StepChannel | None = None) -> None:
        self.group = group
        self.channel = channel or StepChannel(group.handle)
        self.timeout = timeout
        self.on_failure = on_failure or (lambda message: None)
        self.failure: str | None = None  # set once the group failed
        self.done = threading.Event()  # the engine loop ended, or the watchdog fired
        self._inner: Any = None
        self._cancelled: set[int] = set()
        self._watchdog: Watchdog | None = None
        self._failing = threading.Lock()  # the engine thread and the watchdog may both fail

    def attach(self, scheduler: Any) -> _Replica:
        self._inner = scheduler
        probe = PeerProbe(self.group)
        self._watchdog = Watchdog(self.timeout, self._expired, probe.dead_peer,
                                  peers=self.group.describe_peers())
        return self

    def __getattr__(self, name: str) -> Any:  # has_capacity, has_work, stats, abort_all, ...
        inner = self.__dict__.get("_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def _cancel_flag(self, uid: int) -> Callable[[], bool]:
        return lambda: uid in self._cancelled

    def _tracked(self, uid: int, sink: Sink) -> Sink:
        """The sink the scheduler calls: forgets ``uid`` once its request has ended."""
        def deliver(item: Any) -> None:
            if item is None or isinstance(item, BaseException):
                self._forget(uid)
            sink(item)
        return deliver

    def _forget(self, uid: int) -> None:
        self._cancelled.discard(uid)

    def _guarded(self, what: str, action: Callable[[], Any], limit: float | None = None
                 ) -> Any:
        """``action()`` under the watchdog; any failure of it fails the group."""
        assert self._watchdog is not None
        with self._watchdog.watch(what, limit):
            try:
                return action()
            except GroupFailed:
                raise
            except Exception as exc:
                if is_transport_error(exc):
                    raise self._fail(f"lost contact with {self.group.describe_peers()}: "
                                     f"{exc}") from exc
                raise self._fail(f"a step failed on rank {self.group.rank} "
                                 f"({type(exc).__name__}: {exc}); the ranks can no longer be "
                                 "kept in step") from exc

    def _fail(self, reason: str) -> GroupFailed:
        message = f"the distributed group failed: {reason}"
        with self._failing:
            first = self.failure is None
            if first:
                self.failure = message
        if first:
            logger.error("%s", message)
            self._fail_live(GroupFailed(message))
            self.on_failure(message)
        assert self.failure is not None
        return GroupFailed(self.failure)

    def _fail_live(self, error: GroupFailed) -> None:
        """Rank 0 fails the requests in flight; other ranks have nobody to tell."""

    def _expired(self, reason: str) -> None:
        """The watchdog's verdict: this rank's step is stuck and will not come back."""
        self._fail(reason)
        self.done.set()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self.done.set()


class Leader(_Replica):
    """Rank 0: admits requests from the HTTP queue and tells the group about each step."""

    def __init__(self, group: Group, timeout: float,
                 on_failure: Callable[[str], None] | None = None,
                 channel: StepChannel | None = None,
                 pauses: tuple[float, ...] = IDLE_PAUSES) -> None:
        super().__init__(group, timeout, on_failure, channel)
        self.pauses = pauses
        self.idle_wait = pauses[0]  # read by the engine before each wait for a job
        self._idle_steps = 0
        self._next_uid = 0
        self._pending: list[tuple[int, GenerationRequest]] = []
        self._live: dict[int, tuple[Sink, Callable[[], bool]]] = {}

    def add(self, request: GenerationRequest, sink: Sink,
            is_cancelled: Callable[[], bool]) -> None:
        if self.failure is not None:
            raise GroupFailed(self.failure)
        if request.sampling.seed is None:  # every rank must draw the same random tokens
            sampling = dataclasses.replace(request.sampling, seed=secrets.randbits(63))
            request = dataclasses.replace(request, sampling=sampling)
        uid = self._next_uid
        self._inner.add(request, self._tracked(uid, sink), self._cancel_flag(uid))
        self._next_uid += 1
        self._live[uid] = (sink, is_cancelled)
        self._pending.append((uid, request))

    def _forget(self, uid: int) -> None:
        super()._forget(uid)
        self._live.pop(uid, None)

    def step(self) -> None:
        if self.failure is not None:
            raise GroupFailed(self.failure)
        newly = [uid for uid, (_, cancelled) in list(self._live.items())
                 if uid not in self._cancelled and cancelled()]
        inputs = StepInputs(self._pending, newly, pause=self._next_pause(newly))
        self._pending = []
        self._cancelled.update(newly)
        self._guarded("a step", lambda: self._broadcast_and_step(inputs))
        self.idle_wait = inputs.pause or self.pauses[0]

    def _next_pause(self, cancelled: list[int]) -> float:
        """0 while there is work; while idle, the pause before the next empty step."""
        if self._pending or cancelled or self._inner.has_work:
            self._idle_steps = 0
            return 0.0
        self._idle_steps += 1
        return self.pauses[min(self._idle_steps, len(self.pauses)) - 1]

    def _broadcast_and_step(self, inputs: StepInputs) -> None:
        self.channel.send(inputs)
        self._inner.step()

    def _fail_live(self, error: GroupFailed) -> None:
        for sink, _ in list(self._live.values()):
            sink(GroupFailed(error.message))
        self._live.clear()

    def close(self) -> None:
        """Tell the followers to stop (unless the group already failed)."""
        if self.failure is None and self._watchdog is not None:
            try:
                with self._watchdog.watch("stopping the group"):
                    self.channel.send(StepInputs(stop=True))
            except RuntimeError as exc:
                logger.warning("could not tell %s to stop: %s",
                               self.group.describe_peers(), exc)
        super().close()


class Follower(_Replica):
    """A rank other than 0: takes the steps rank 0 announces, output discarded."""

    idle_wait: float | None = 0.0  # the local queue is always empty: rank 0 sets the pace

    def __init__(self, group: Group, timeout: float,
                 on_failure: Callable[[str], None] | None = None,
                 channel: StepChannel | None = None,
                 output: Callable[[GenerationRequest, Any], None] | None = None) -> None:
        super().__init__(group, timeout, on_failure, channel)
        self.stopped = False  # rank 0 said stop
        # This rank's copy of every output chunk; rank 0 already answers the client.
        self.output = output or (lambda request, item: None)

    def add(self, request: GenerationRequest, sink: Sink,
            is_cancelled: Callable[[], bool]) -> None:
        raise GroupFailed(f"rank {self.group.rank} takes requests from rank 0 only")

    def step(self) -> None:
        if self.failure is not None:
            raise GroupFailed(self.failure)
        # Rank 0 sends as soon as its own step ends, and fails the group itself when that
        # takes longer than the timeout: wait longer here, so the report comes from rank 0.
        inputs = self._guarded("waiting for rank 0's next step", self.channel.receive,
                               2 * self.timeout)
        if inputs.stop:
            self.stopped = True
            raise EngineClosed("rank 0 stopped the group")
        self._guarded("a step", lambda: self._apply_and_step(inputs))
        if inputs.pause:  # rank 0 is idle: wait asleep, not spinning in the collective
            time.sleep(inputs.pause)

    def _apply_and_step(self, inputs: StepInputs) -> None:
        for uid, request in inputs.admitted:
            self._inner.add(request, self._tracked(uid, self._copy_sink(request)),
                            self._cancel_flag(uid))
        self._cancelled.update(inputs.cancelled)
        self._inner.step()

    def _copy_sink(self, request: GenerationRequest) -> Sink:
        return lambda item: self.output(request, item)


def is_transport_error(exc: BaseException) -> bool:
    """An error of the distributed backend itself (MLX prefixes them with its name)."""
    return isinstance(exc, RuntimeError) and str(exc).startswith(_BACKEND_PREFIXES)

