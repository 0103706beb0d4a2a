"""Schemathesis over the server's own OpenAPI schema: every operation of an app with chat,
the VLM Run domains and files API, and video jobs (and of a video-only app).

Every response is checked: no 5xx, status code, content type, headers and body as
documented, a 405's ``Allow`` right, every 4xx/5xx body exactly the one OpenAI error shape,
event streams well-formed (see :mod:`tests.fuzz.checks`). The smoke run (a few cases per
operation, no coverage phase) is in the default test run; the full run (schemathesis'
coverage phase, many more cases, and stateful sequences following the links it infers:
upload a file then fetch or delete it, create a video then poll, download or delete it) is
``slow``. Each prints its figures after the run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.fuzz.checks import FuzzStats, check_response, run_case, send

smoke = schemathesis.pytest.from_fixture("smoke_schema")
# the video routes are the same as in the full app: fuzz only what differs
video_only = schemathesis.pytest.from_fixture("video_only_schema").exclude(
    path_regex="^/v1/videos")
full = schemathesis.pytest.from_fixture("full_schema")
QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


@smoke.parametrize()
@settings(max_examples=10, derandomize=True, deadline=None, suppress_health_check=QUIET)
def test_fuzz_smoke(case: Any, fuzz_stats: FuzzStats) -> None:
    run_case(case, fuzz_stats)


@video_only.parametrize()
@settings(max_examples=10, derandomize=True, deadline=None, suppress_health_check=QUIET)
def test_fuzz_video_only_smoke(case: Any, fuzz_stats: FuzzStats) -> None:
    run_case(case, fuzz_stats)


@pytest.mark.slow
@full.parametrize()
@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=QUIET)
def test_fuzz_full(case: Any, fuzz_stats: FuzzStats) -> None:
    run_case(case, fuzz_stats)


@pytest.mark.slow
def test_fuzz_stateful(full_schema: Any, fuzz_stats: FuzzStats) -> None:
    class Workflow(full_schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            return send(case, fuzz_stats, **kwargs)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            super().validate_response(response, case, **kwargs)
            check_response(case, response)

    Workflow.run(settings=settings(max_examples=60, stateful_step_count=8, derandomize=True,
                                   deadline=None, suppress_health_check=QUIET))
