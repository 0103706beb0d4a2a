"""What /v1/models and /metrics say about the group (one process: size 1, mode none)."""

from __future__ import annotations

import dataclasses

from vllm_mlx.api.metrics import render_metrics
from vllm_mlx.config import Settings
from vllm_mlx.engine.stats import EngineStats


def test_settings_report_none_until_a_group_has_formed():
    settings = Settings(model="m", parallel="pipeline")
    assert settings.group_size == 1 and settings.parallel_mode == "none"
    grouped = dataclasses.replace(settings, group_size=3)
    assert grouped.parallel_mode == "pipeline"


def test_metrics_carry_group_size_and_mode():
    stats = EngineStats().snapshot()
    lines = render_metrics(stats, 2, "tensor").splitlines()
    assert "vllm_mlx_group_size 2" in lines
    assert 'vllm_mlx_parallel_info{mode="tensor"} 1' in lines
    assert "# TYPE vllm_mlx_group_size gauge" in lines
    single = render_metrics(stats).splitlines()
    assert "vllm_mlx_group_size 1" in single
    assert 'vllm_mlx_parallel_info{mode="none"} 1' in single
