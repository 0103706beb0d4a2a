"""The heap trimmer returns freed memory to the OS when the engine goes idle, and at most
every interval while it is busy (Linux; elsewhere it does nothing)."""

from __future__ import annotations

import sys

import pytest

from vllm_mlx.engine.heap import HeapTrimmer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_trims_on_going_idle_after_work_and_on_the_interval():
    trimmer = HeapTrimmer(interval_s=3600)
    assert trimmer.available
    assert not trimmer.after_step(idle=False)  # busy, interval not reached
    assert trimmer.after_step(idle=True)  # went idle after work
    assert not trimmer.after_step(idle=True)  # nothing happened since
    assert HeapTrimmer(interval_s=0).after_step(idle=False)  # interval reached while busy


def test_does_nothing_without_malloc_trim(monkeypatch):
    monkeypatch.setattr("vllm_mlx.engine.heap._malloc_trim", lambda: None)
    trimmer = HeapTrimmer(interval_s=0)
    assert not trimmer.available
    assert not trimmer.after_step(idle=True)
