"""Fixtures for fuzzing the HTTP API with schemathesis against its own OpenAPI schema.

One app with everything on (chat on the tiny qwen2_vl engine, the VLM Run domains and files
API, video jobs on the tiny Wan model), storage in a temporary folder, generation kept cheap
(``max_tokens_limit`` is small; video cases are made cheap before they are sent). The
figures of each fuzz test (cases, statuses, time per operation) are printed after the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz.checks import FuzzStats
from vllm_mlx.config import Settings

MAX_TOKENS_LIMIT = 8
STATS_KEY = pytest.StashKey[list[FuzzStats]]()


def fuzz_config(*, coverage: bool) -> Any:
    """Deterministic generation; the coverage phase (schemathesis' boundary and
    type-violation cases, a few hundred per body) only when ``coverage``; every check but
    the two that hold the schema for the whole contract:

    ``positive_data_acceptance`` wants every schema-valid request to succeed, but whether a
    domain, file id, URL or media file exists is not a matter of types; and
    ``negative_data_rejection`` wants every schema-invalid one refused, but requests are
    read leniently on purpose (pydantic's lax mode, as OpenAI-compatible servers do:
    ``"echo": 0`` is false, unknown fields are ignored).
    """
    from schemathesis.config import SchemathesisConfig

    return SchemathesisConfig.from_dict({
        "max-stream-events": 1000,  # whole streams, so that [DONE] is seen
        "generation": {"deterministic": True},
        "phases": {"coverage": {"enabled": coverage}},
        "checks": {"positive_data_acceptance": {"enabled": False},
                   "negative_data_rejection": {"enabled": False}},
    })


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for stats in config.stash.get(STATS_KEY, []):
        if stats.cases:
            terminalreporter.section(f"fuzz figures: {stats.name}")
            for line in stats.lines():
                terminalreporter.write_line(line)


@pytest.fixture
def fuzz_stats(request: pytest.FixtureRequest) -> FuzzStats:
    """One collector per test function, kept for the terminal summary."""
    collected = request.config.stash.setdefault(STATS_KEY, [])
    name = request.node.originalname
    for stats in collected:
        if stats.name == name:
            return stats
    collected.append(FuzzStats(name))
    return collected[-1]


@pytest.fixture(scope="module")
def fuzz_jobs(tmp_path_factory) -> Iterator[Any]:
    from schemathesis.python.asgi import shutdown_lifespans

    from tests.videos.conftest import start_jobs

    jobs = start_jobs(Path(tmp_path_factory.mktemp("fuzz-storage")), max_queued=2)
    yield jobs
    shutdown_lifespans()  # schemathesis started the apps' lifespans on their first requests
    jobs.shutdown()


@pytest.fixture(scope="module")
def fuzz_app(engine_for, fuzz_jobs, tmp_path_factory) -> Any:
    from tests.api.conftest import png_bytes
    from vllm_mlx.api.app import create_app

    media = Path(tmp_path_factory.mktemp("fuzz-media"))
    (media / "photo.png").write_bytes(png_bytes(1))
    engine = engine_for("qwen2_vl")
    settings = Settings(model=str(engine.model.reference), served_model_name="tiny-vl",
                        media_roots=(media,), storage_path=fuzz_jobs.store.folder.parent,
                        default_max_tokens=4, max_tokens_limit=MAX_TOKENS_LIMIT,
                        max_body_bytes=1024 * 1024)
    return create_app(settings, engine, fuzz_jobs)


def _schema(app: Any, *, coverage: bool) -> Any:
    import schemathesis

    return schemathesis.openapi.from_asgi("/openapi.json", app,
                                          config=fuzz_config(coverage=coverage))


@pytest.fixture(scope="module")
def smoke_schema(fuzz_app) -> Any:
    return _schema(fuzz_app, coverage=False)


@pytest.fixture(scope="module")
def full_schema(fuzz_app) -> Any:
    return _schema(fuzz_app, coverage=True)


@pytest.fixture(scope="module")
def video_only_schema(fuzz_jobs) -> Any:
    """A server with a video model and no chat model (``create_app(settings, None, jobs)``)."""
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:wan2_1", storage_path=fuzz_jobs.store.folder.parent)
    return _schema(create_app(settings, None, fuzz_jobs), coverage=False)
