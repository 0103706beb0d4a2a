"""Loading at the lowest CPU priority (vllm_mlx.engine.quiet_load): the model loads as it
would otherwise, its load runs at nice 19 on Linux, errors reach the caller, and the
calling thread keeps its own priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from vllm_mlx.engine import loader, quiet_load
from vllm_mlx.engine.errors import ModelLoadError
from vllm_mlx.engine.loaded import LoadOptions

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="niceness is per thread on Linux")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_the_load_runs_at_the_lowest_priority_and_the_caller_keeps_its_own(monkeypatch,
                                                                          tiny_model):
    seen: list[int] = []

    def recording(reference, options):
        seen.append(_nice())
        return loader.load_model(reference, options)

    monkeypatch.setattr(quiet_load, "load_model", recording)
    before = _nice()
    loaded = quiet_load.load_quietly(str(tiny_model("qwen3")), LoadOptions(quiet=True))
    assert seen == [quiet_load.LOWEST_PRIORITY]
    assert _nice() == before
    assert loaded.config["model_type"] == "qwen3"


def test_a_load_error_reaches_the_caller(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        quiet_load.load_quietly(str(tmp_path), LoadOptions(quiet=True))
