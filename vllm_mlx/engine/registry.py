"""Several models behind one server, each loaded when it is first asked for.

Contract:

- A :class:`ModelRegistry` knows every model it may serve (a :class:`ModelSpec` each: the
  name clients send, the reference that loads it, its size on disk) and the state of each
  (``available``, ``loading``, ``loaded``, ``failed``). The first spec is the default
  model: it is loaded when the server starts (:meth:`ModelRegistry.start_default`) and is
  never unloaded to make room or for idleness.
- :meth:`~ModelRegistry.acquire` returns a :class:`Lease` on the model's engine, loading it
  first when needed. Loads run one at a time on a worker thread, so requests to models
  already loaded go on; requests for a model being loaded wait for that one load. A lease
  keeps its model loaded until :meth:`Lease.release` (or until the lease is dropped).
- Before a load, models are unloaded until the new one fits ``max_loaded`` and the memory
  ``budget`` (bytes, counted from the models' weights on disk): least recently used first,
  never the default, one with a lease, or one whose engine still has work. When every
  candidate is busy, the load waits up to ``busy_wait_s`` and then answers
  :class:`ModelBusy`.
- :meth:`~ModelRegistry.sweep` unloads models idle longer than their TTL (the registry's
  ``idle_ttl_s``, or the last ``ttl`` a request gave); :meth:`~ModelRegistry.run_sweeper`
  calls it periodically.
- A model that fails to load keeps its error: that request and later ones get
  :class:`ModelUnavailable` naming the model and the cause, until an explicit
  :meth:`~ModelRegistry.load` tries again. Other models are not disturbed.

Everything here runs on one event loop (the server's); only loading and shutting engines
down happen on worker threads. No web framework, no pydantic.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .catalog import ModelSpec, weights_size
from .errors import ModelBusy, ModelInUse, ModelLoadError, ModelUnavailable, UnknownModel

if TYPE_CHECKING:
    from .engine import Engine

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 5.0  # the longest time between two idle checks
BUSY_POLL_S = 0.1  # how often a load waiting for room looks again
UNLOAD_WAIT_S = 2.0  # how long an unload with no request in flight waits for the engine


class ModelState(str, Enum):
    AVAILABLE = "available"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"


@dataclass(eq=False)
class _Entry:
    spec: ModelSpec
    pinned: bool = False
    state: ModelState = ModelState.AVAILABLE
    engine: Engine | None = None
    error: str | None = None
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ttl_s: float | None = None  # a request's own idle TTL (the latest given wins)
    footprint: int = 0  # bytes counted against the budget while loaded
    loading: asyncio.Future[None] | None = None
    created: int = field(default_factory=lambda: int(time.time()))  # its card's date, fixed

    @property
    def idle(self) -> bool:
        return self.leases == 0 and self.engine is not None and not self.engine.busy


@dataclass(frozen=True)
class ModelStatus:
    """One model as ``/v1/models`` shows it."""

    spec: ModelSpec
    state: ModelState
    engine: Engine | None
    error: str | None
    default: bool
    size_bytes: int | None  # its weights on disk, once known (from its files, or its load)
    created: int  # Unix time the server first listed it


class Lease:
    """A model's engine, kept loaded until :meth:`release` (idempotent; dropping the lease
    releases it too)."""

    def __init__(self, entry: _Entry) -> None:
        assert entry.engine is not None
        self.engine: Engine = entry.engine
        self.name = entry.spec.name
        self._entry: _Entry | None = entry
        entry.leases += 1

    def release(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            entry.leases -= 1
            entry.last_used = time.monotonic()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


Starter = Callable[[ModelSpec], "Engine"]


class ModelRegistry:
    """The served models and their engines; see the module docstring."""

    def __init__(self, specs: list[ModelSpec], starter: Starter, *,
                 max_loaded: int | None = None, budget: int | None = None,
                 idle_ttl_s: float | None = None, busy_wait_s: float = 300.0,
                 aliases: dict[str, str] | None = None) -> None:
        if not specs:
            raise ValueError("a registry needs at least one model")
        self._entries = [_Entry(spec) for spec in specs]
        self._entries[0].pinned = True
        self._starter = starter
        self.max_loaded = max_loaded
        self.budget = budget
        self.idle_ttl_s = idle_ttl_s
        self.busy_wait_s = busy_wait_s
        self._names = self._name_table(aliases or {})
        self._load_lock = asyncio.Lock()

    @classmethod
    def of(cls, engine: Engine, name: str) -> ModelRegistry:
        """A registry of one model already loaded (the default): a single-model server."""
        registry = cls([ModelSpec(name, engine.model.reference)], _no_starter)
        registry.adopt_default(engine)
        return registry

    def _name_table(self, aliases: dict[str, str]) -> dict[str, _Entry]:
        table: dict[str, _Entry] = {}
        for entry in reversed(self._entries):  # on a clash, the earlier model keeps the name
            table[entry.spec.reference] = entry
            table[entry.spec.name] = entry
        for alias, target in aliases.items():
            if target not in table:
                raise ValueError(f"alias {alias}={target}: no served model is named {target}")
            table[alias] = table[target]
        table["default"] = self._entries[0]
        return table

    @property
    def default_name(self) -> str:
        return self._entries[0].spec.name

    @property
    def default_engine(self) -> Engine | None:
        return self._entries[0].engine

    def add_names(self, entry_name: str, names: tuple[str, ...]) -> None:
        """More names for a served model (its folder, its template's aliases, ...)."""
        entry = self._entry(entry_name)
        for name in names:
            self._names.setdefault(name, entry)

    def names(self, name: str) -> tuple[str, ...]:
        """Every name the model ``name`` answers to."""
        entry = self._entry(name)
        return tuple(n for n, e in self._names.items() if e is entry)

    def statuses(self) -> list[ModelStatus]:
        return [self._status(e) for e in self._entries]

    def canonical(self, name: str | None) -> str:
        """The served name of the model ``name`` stands for (None: the default)."""
        return self._entry(name).spec.name

    def _entry(self, name: str | None) -> _Entry:
        if name is None:
            return self._entries[0]
        entry = self._names.get(name)
        if entry is None:
            served = ", ".join(repr(e.spec.name) for e in self._entries)
            raise UnknownModel(f"The model {name[:200]!r} does not exist. This server serves "
                               f"{served} (also 'default').", param="model")
        return entry

    def _loaded(self, entry: _Entry, engine: Engine) -> None:
        entry.engine, entry.state, entry.error = engine, ModelState.LOADED, None
        entry.footprint = entry.spec.size_bytes or weights_size(engine.model.path)
        entry.last_used = time.monotonic()
        self._names.setdefault(str(engine.model.path), entry)  # its folder names it too

    def adopt_default(self, engine: Engine) -> None:
        """The default model's engine, loaded before the server started."""
        self._loaded(self._entries[0], engine)

    async def acquire(self, name: str | None, ttl_s: float | None = None) -> Lease:
        """A lease on the model's engine, loading the model first when needed."""
        entry = self._entry(name)
        if ttl_s is not None:
            entry.ttl_s = ttl_s
        while entry.state is not ModelState.LOADED:
            if entry.state is ModelState.FAILED:
                raise ModelUnavailable(entry.error or f"model {entry.spec.name} failed to load",
                                       param="model")
            await self._ensure_loading(entry)
        entry.last_used = time.monotonic()
        return Lease(entry)

    async def load(self, name: str) -> ModelStatus:
        """Load ``name`` now (again, when it had failed); its status after."""
        entry = self._entry(name)
        if entry.state is ModelState.FAILED:
            entry.state, entry.error = ModelState.AVAILABLE, None
        with contextlib.suppress(ModelUnavailable):  # its status tells the error
            (await self.acquire(name)).release()
        return self._status(entry)

    async def unload(self, name: str) -> ModelStatus:
        """Unload ``name`` now; :class:`ModelInUse` for the default or a model with requests
        in flight."""
        entry = self._entry(name)
        if entry.pinned:
            raise ModelInUse(f"{entry.spec.name} is the default model: it stays loaded",
                            param="model")
        if entry.state is ModelState.LOADED:
            if entry.leases == 0:  # a reply just sent may still be leaving its engine's batch
                await _until(lambda: entry.idle, UNLOAD_WAIT_S)
            if not entry.idle:
                raise ModelInUse(f"{entry.spec.name} has requests in flight; unload it "
                                "when they end", param="model")
            await self._unload(entry)
        return self._status(entry)

    def _status(self, entry: _Entry) -> ModelStatus:
        return ModelStatus(entry.spec, entry.state, entry.engine, entry.error, entry.pinned,
                           entry.spec.size_bytes or entry.footprint or None, entry.created)

    async def _ensure_loading(self, entry: _Entry) -> None:
        """Start the entry's load if nobody has, then wait for it to end."""
        if entry.loading is None:
            entry.loading = asyncio.ensure_future(self._load(entry))
        await asyncio.shield(entry.loading)

    async def _load(self, entry: _Entry) -> None:
        try:
            async with self._load_lock:  # one load at a time: memory is checked before each
                await self._make_room(entry)
                entry.state = ModelState.LOADING
                started = time.perf_counter()
                engine = await asyncio.to_thread(self._starter, entry.spec)
                self._loaded(entry, engine)
                logger.info("loaded %s in %.1f s", entry.spec.name, time.perf_counter() - started)
        except ModelBusy:
            entry.state = ModelState.AVAILABLE
            raise
        except Exception as exc:  # any cause: the model is reported failed, the server lives
            entry.state, entry.error = ModelState.FAILED, _load_error(entry.spec, exc)
            logger.warning("%s", entry.error)
        finally:
            entry.loading = None

    def _loaded_entries(self) -> list[_Entry]:
        return [e for e in self._entries if e.state is ModelState.LOADED]

    def _needs_room(self, entry: _Entry) -> bool:
        loaded = self._loaded_entries()
        if self.max_loaded is not None and len(loaded) >= self.max_loaded:
            return True
        need = entry.spec.size_bytes or 0
        return self.budget is not None and sum(e.footprint for e in loaded) + need > self.budget

    async def _make_room(self, entry: _Entry) -> None:
        """Unload least recently used idle models until ``entry`` fits; wait while every
        candidate is busy, at most ``busy_wait_s``."""
        self._check_fits(entry)
        deadline = time.monotonic() + self.busy_wait_s
        while self._needs_room(entry):
            candidates = [e for e in self._loaded_entries() if not e.pinned]
            if not candidates:
                logger.warning("loading %s beyond the limits: only the default model is "
                               "loaded", entry.spec.name)
                return
            idle = [e for e in candidates if e.idle]
            if idle:
                await self._unload(min(idle, key=lambda e: e.last_used))
                continue
            if time.monotonic() >= deadline:
                raise ModelBusy(f"no room to load {entry.spec.name}: every loaded model has "
                                "requests in flight; retry later", param="model")
            await asyncio.sleep(BUSY_POLL_S)

    def _check_fits(self, entry: _Entry) -> None:
        size = entry.spec.size_bytes
        if self.budget is not None and size is not None and size > self.budget:
            raise ModelBusy(f"{entry.spec.name} needs {_gib(size)} of weights, more than the "
                            f"memory budget of {_gib(self.budget)} (--memory-budget)",
                            param="model")

    async def _unload(self, entry: _Entry) -> None:
        engine, entry.engine = entry.engine, None
        entry.state, entry.footprint = ModelState.AVAILABLE, 0
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)
            del engine  # the last reference: its arrays go, but cycles wait for the collector
            await asyncio.to_thread(_give_memory_back)
        logger.info("unloaded %s", entry.spec.name)

    async def sweep(self, now: float | None = None) -> list[str]:
        """Unload the models idle longer than their TTL; return their names."""
        now = time.monotonic() if now is None else now
        expired = [e for e in self._loaded_entries() if not e.pinned and e.idle
                   and (ttl := e.ttl_s if e.ttl_s is not None else self.idle_ttl_s) is not None
                   and now - e.last_used >= ttl]
        for entry in expired:
            await self._unload(entry)
        return [e.spec.name for e in expired]

    async def run_sweeper(self) -> None:
        """Sweep until cancelled (the app's lifespan runs this)."""
        while True:
            await asyncio.sleep(self._sweep_interval())
            await self.sweep()

    def _sweep_interval(self) -> float:
        ttls = [t for t in (self.idle_ttl_s, *(e.ttl_s for e in self._entries))
                if t is not None]
        return max(0.05, min([SWEEP_EVERY_S, *(t / 4 for t in ttls)]))

    def engines(self) -> Iterator[tuple[str, Engine]]:
        """The loaded models' engines, by name."""
        for entry in self._loaded_entries():
            assert entry.engine is not None
            yield entry.spec.name, entry.engine

    def shutdown(self) -> None:
        """Shut every loaded engine down (the server is stopping)."""
        for entry in self._loaded_entries():
            engine, entry.engine, entry.state = entry.engine, None, ModelState.AVAILABLE
            if engine is not None:
                engine.shutdown()


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(BUSY_POLL_S)


def _give_memory_back() -> None:
    """Collect the unloaded model's reference cycles now and let MLX release its cache."""
    from ._mlx import mx

    gc.collect()
    mx.clear_cache()


def _no_starter(spec: ModelSpec) -> Engine:
    raise ModelLoadError(f"{spec.name} cannot be loaded again in this server")


def _load_error(spec: ModelSpec, exc: BaseException) -> str:
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"model {spec.name} ({spec.reference}) failed to load: {cause}"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.2f} GiB"
