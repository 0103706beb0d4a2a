"""``/metrics`` in the Prometheus text format, rendered from the engine's counters."""

from __future__ import annotations

from typing import Any

from ..engine.stats import TTFT_BUCKETS

_COUNTERS = {
    "requests_started": "Requests admitted by the scheduler",
    "requests_finished": "Requests that finished generating",
    "requests_cancelled": "Requests cancelled by their client",
    "requests_failed": "Requests that failed",
    "prompt_tokens": "Prompt tokens processed",
    "generated_tokens": "Tokens generated",
    "decode_steps": "Batched decode steps",
    "prefix_cache_hits": "Prompts that reused a cached prefix",
    "prefix_cache_misses": "Prompts with no reusable prefix",
    "prefix_cache_tokens_reused": "Prompt tokens served from the prefix cache",
    "vision_encodes_skipped": "Vision encoder passes skipped thanks to the prefix cache",
}
_SECONDS = {
    "prefill_seconds": "Time spent prefilling prompts",
    "decode_seconds": "Time spent in batched decode steps",
}
_GAUGES = {
    "batch_size": "Requests in the running batch",
    "prefilling": "Requests admitted and waiting for or in prefill",
    "waiting": "Requests queued before admission",
    "prefix_cache_bytes": "Bytes held by the prefix cache",
}


def _metric(name: str, kind: str, help_text: str, value: float) -> list[str]:
    full = f"vllm_mlx_{name}"
    return [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}", f"{full} {value}"]


def _ttft(stats: dict[str, Any]) -> list[str]:
    name = "vllm_mlx_time_to_first_token_seconds"
    lines = [f"# HELP {name} Time from admission to first token",
             f"# TYPE {name} histogram"]
    for bound, count in zip(TTFT_BUCKETS, stats["ttft_buckets"]):
        lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {stats["ttft_count"]}')
    lines += [f"{name}_sum {stats['ttft_sum']}", f"{name}_count {stats['ttft_count']}"]
    return lines


def render_metrics(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    lines: list[str] = []
    for key, text in _COUNTERS.items():
        lines += _metric(f"{key}_total", "counter", text, stats[key])
    for key, text in _SECONDS.items():
        lines += _metric(f"{key}_total", "counter", text, round(stats[key], 6))
    for key, text in _GAUGES.items():
        lines += _metric(key, "gauge", text, stats[key])
    decode = stats["decode_seconds"]
    rate = stats["generated_tokens"] / decode if decode else 0.0
    lines += _metric("decode_tokens_per_second", "gauge",
                     "Generated tokens per second of decode time since start", round(rate, 3))
    lines += _ttft(stats)
    return "\n".join(lines) + "\n"
