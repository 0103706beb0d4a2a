"""The model registry's policy (vllm_mlx.engine.registry): loading on demand, one load at
a time, least-recently-used eviction under a count and a memory budget, idle TTLs, leases,
and failed loads. Engines here are stand-ins that record what happens to them (the real
ones are exercised end to end in tests/api/test_several_models.py)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vllm_mlx.engine.catalog import ModelSpec
from vllm_mlx.engine.errors import ModelBusy, ModelInUse, ModelUnavailable, UnknownModel
from vllm_mlx.engine.registry import ModelRegistry, ModelState


@dataclass
class _Model:
    reference: str
    path: Path = Path("/nonexistent")
    is_vision: bool = False


@dataclass
class _Engine:
    model: _Model
    busy: bool = False
    shut: bool = False

    def shutdown(self) -> None:
        self.shut = True


@dataclass
class _Starter:
    """Starts stand-in engines, recording the order; ``fail`` names references that fail,
    ``gate`` (when set) holds every load until it is set."""

    started: list[str] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    gate: threading.Event | None = None
    engines: dict[str, _Engine] = field(default_factory=dict)

    def __call__(self, spec: ModelSpec) -> _Engine:
        if self.gate is not None:
            self.gate.wait(5)
        self.started.append(spec.name)
        if spec.reference in self.fail:
            raise RuntimeError(f"no weights in {spec.reference}")
        engine = _Engine(_Model(spec.reference))
        self.engines[spec.name] = engine
        return engine


GIB = 1 << 30


def _registry(starter: _Starter, sizes: tuple[int, ...] = (1, 1, 1, 1), **options
              ) -> ModelRegistry:
    specs = [ModelSpec(name, f"ref-{name}", size * GIB)
             for name, size in zip("abcd", sizes)]
    registry = ModelRegistry(specs, starter, **options)
    registry.adopt_default(starter(specs[0]))  # type: ignore[arg-type]
    return registry


def _states(registry: ModelRegistry) -> dict[str, str]:
    return {s.spec.name: s.state.value for s in registry.statuses()}


def test_a_model_loads_when_first_asked_for_and_answers_to_its_reference():
    async def run():
        starter = _Starter()
        registry = _registry(starter)
        assert _states(registry) == {"a": "loaded", "b": "available", "c": "available",
                                     "d": "available"}
        with await registry.acquire("ref-b") as lease:
            assert lease.name == "b" and lease.engine is starter.engines["b"]
        assert _states(registry)["b"] == "loaded"
        assert (await registry.acquire("default")).name == "a"
        assert starter.started == ["a", "b"]

    asyncio.run(run())


def test_an_unknown_name_is_refused_with_the_served_names():
    async def run():
        registry = _registry(_Starter())
        with pytest.raises(UnknownModel, match="'a', 'b', 'c', 'd'"):
            await registry.acquire("nope")

    asyncio.run(run())


def test_concurrent_requests_for_one_model_share_one_load():
    async def run():
        gate = threading.Event()
        starter = _Starter(gate=gate)
        registry = _registry(starter)
        gate.set()  # the default's own start passed the gate already
        leases = await asyncio.gather(*(registry.acquire("b") for _ in range(5)))
        assert starter.started == ["a", "b"]
        assert {id(lease.engine) for lease in leases} == {id(starter.engines["b"])}

    asyncio.run(run())


def test_max_loaded_unloads_the_least_recently_used_idle_model_never_the_default():
    async def run():
        starter = _Starter()
        registry = _registry(starter, max_loaded=3)
        (await registry.acquire("b")).release()
        (await registry.acquire("c")).release()
        (await registry.acquire("b")).release()  # b is now more recent than c
        (await registry.acquire("d")).release()
        assert _states(registry) == {"a": "loaded", "b": "loaded", "c": "available",
                                     "d": "loaded"}
        assert starter.engines["c"].shut and not starter.engines["a"].shut

    asyncio.run(run())


def test_the_memory_budget_evicts_until_the_new_model_fits():
    async def run():
        starter = _Starter()
        registry = _registry(starter, sizes=(1, 2, 2, 3), budget=6 * GIB)
        (await registry.acquire("b")).release()
        (await registry.acquire("c")).release()  # a+b+c = 5 GiB
        (await registry.acquire("d")).release()  # 3 more: b (the older) goes, then it fits
        assert _states(registry) == {"a": "loaded", "b": "available", "c": "loaded",
                                     "d": "loaded"}
        registry.budget = 4 * GIB
        (await registry.acquire("b")).release()  # 2 more: c and d must both go
        assert _states(registry) == {"a": "loaded", "b": "loaded", "c": "available",
                                     "d": "available"}

    asyncio.run(run())


def test_a_model_larger_than_the_budget_is_refused_without_unloading_anything():
    async def run():
        starter = _Starter()
        registry = _registry(starter, sizes=(1, 1, 9, 1), budget=4 * GIB)
        (await registry.acquire("b")).release()
        with pytest.raises(ModelBusy, match="more than the memory budget"):
            await registry.acquire("c")
        assert _states(registry)["b"] == "loaded"
        assert _states(registry)["c"] == "available"

    asyncio.run(run())


def test_a_leased_or_busy_model_is_never_evicted_and_the_load_waits_then_gives_up():
    async def run():
        starter = _Starter()
        registry = _registry(starter, max_loaded=2, busy_wait_s=0.3)
        lease = await registry.acquire("b")
        with pytest.raises(ModelBusy, match="requests in flight"):
            await registry.acquire("c")
        lease.release()
        starter.engines["b"].busy = True  # its engine still has work queued
        with pytest.raises(ModelBusy):
            await registry.acquire("c")
        starter.engines["b"].busy = False
        (await registry.acquire("c")).release()
        assert _states(registry)["b"] == "available"

    asyncio.run(run())


def test_a_waiting_load_proceeds_as_soon_as_a_model_goes_idle():
    async def run():
        starter = _Starter()
        registry = _registry(starter, max_loaded=2, busy_wait_s=5)
        lease = await registry.acquire("b")
        waiting = asyncio.ensure_future(registry.acquire("c"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        lease.release()
        assert (await asyncio.wait_for(waiting, 2)).name == "c"

    asyncio.run(run())


def test_dropping_a_lease_releases_it():
    async def run():
        registry = _registry(_Starter(), max_loaded=2, busy_wait_s=0.3)
        await registry.acquire("b")  # dropped at once: no reference is kept
        (await registry.acquire("c")).release()
        assert _states(registry)["b"] == "available"

    asyncio.run(run())


def test_idle_models_past_their_ttl_are_unloaded_and_a_request_ttl_overrides():
    async def run():
        starter = _Starter()
        registry = _registry(starter, idle_ttl_s=60)
        (await registry.acquire("b")).release()
        (await registry.acquire("c", ttl_s=0.05)).release()
        await asyncio.sleep(0.1)
        assert await registry.sweep() == ["c"]
        assert _states(registry)["b"] == "loaded"
        assert await registry.sweep(now=10**9) == ["b"]  # the default stays
        assert _states(registry)["a"] == "loaded"

    asyncio.run(run())


def test_the_sweeper_runs_on_its_own():
    async def run():
        registry = _registry(_Starter())
        (await registry.acquire("b", ttl_s=0.1)).release()
        sweeper = asyncio.ensure_future(registry.run_sweeper())
        await asyncio.sleep(0.4)
        sweeper.cancel()
        assert _states(registry)["b"] == "available"

    asyncio.run(run())


def test_a_failed_load_is_reported_until_loaded_again_and_others_go_on():
    async def run():
        starter = _Starter(fail={"ref-b"})
        registry = _registry(starter)
        for _ in range(2):
            with pytest.raises(ModelUnavailable, match=r"model b \(ref-b\) failed to load: "
                                                       "no weights in ref-b"):
                await registry.acquire("b")
        assert starter.started.count("b") == 1  # later requests get the kept error
        (await registry.acquire("c")).release()
        starter.fail.clear()
        status = await registry.load("b")
        assert status.state is ModelState.LOADED and status.error is None

    asyncio.run(run())


def test_unload_refuses_the_default_and_a_model_in_use():
    async def run():
        registry = _registry(_Starter())
        with pytest.raises(ModelInUse, match="default"):
            await registry.unload("a")
        lease = await registry.acquire("b")
        with pytest.raises(ModelInUse, match="in flight"):
            await registry.unload("b")
        lease.release()
        assert (await registry.unload("b")).state is ModelState.AVAILABLE

    asyncio.run(run())


def test_an_unload_just_after_a_reply_waits_for_the_engine_to_finish_it():
    async def run():
        starter = _Starter()
        registry = _registry(starter)
        (await registry.acquire("b")).release()
        starter.engines["b"].busy = True  # the last step of the reply is still running

        async def finish() -> None:
            await asyncio.sleep(0.3)
            starter.engines["b"].busy = False

        done = asyncio.ensure_future(finish())
        assert (await registry.unload("b")).state is ModelState.AVAILABLE
        await done

    asyncio.run(run())


def test_aliases_and_added_names_resolve_to_their_model():
    async def run():
        specs = [ModelSpec("a", "ref-a"), ModelSpec("b", "ref-b")]
        registry = ModelRegistry(specs, _Starter(), aliases={"fast": "b"})
        registry.adopt_default(_Engine(_Model("ref-a")))  # type: ignore[arg-type]
        registry.add_names("a", ("/models/a",))
        assert registry.canonical("fast") == "b"
        assert registry.canonical("/models/a") == "a"
        assert set(registry.names("b")) == {"b", "ref-b", "fast"}
        with pytest.raises(ValueError, match="no served model"):
            ModelRegistry(specs, _Starter(), aliases={"x": "zzz"})

    asyncio.run(run())
