"""Prefill chunks sized to a time budget on this machine, measured once at load."""

from __future__ import annotations

from vllm_mlx.engine import Engine
from vllm_mlx.engine.loader import load_model
from vllm_mlx.engine.runner import MIN_CHUNK, ModelRunner


def test_the_chunk_shrinks_to_the_budget_and_never_below_the_minimum(tiny_model):
    loaded = load_model(str(tiny_model("qwen3")))
    assert ModelRunner(loaded, 256).calibrate_chunk(0) == 256  # off
    assert ModelRunner(loaded, 256).calibrate_chunk(3600.0) == 256  # fits: the maximum
    assert ModelRunner(loaded, 256).calibrate_chunk(1e-9) == MIN_CHUNK
    assert ModelRunner(loaded, 16).calibrate_chunk(1e-9) == 16  # the maximum wins


def test_a_calibrated_engine_gives_the_same_tokens(tiny_model, engine_for):
    from tests.engine.test_batching import request
    from vllm_mlx.engine import TextPart

    long = request([TextPart("word " * 300)], max_tokens=6)
    engine = Engine.start(str(tiny_model("qwen3")), prefill_step_s=1e-9)
    try:
        assert engine.complete_sync(long).token_ids == engine_for("qwen3").complete_sync(
            long).token_ids
    finally:
        engine.shutdown()


def test_the_step_budget_flag_reaches_the_settings():
    from vllm_mlx.cli import build_parser, settings_from_args

    def budget(*args: str) -> float:
        return settings_from_args(build_parser().parse_args(["serve", "m", *args])).prefill_step_s

    assert budget() == 0.5
    assert budget("--prefill-step-seconds", "0") == 0.0
