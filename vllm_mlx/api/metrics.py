"""``/metrics`` in the Prometheus text format, rendered from the engine's counters, plus
MLX's allocator gauges (active, cache and peak memory; safe to read from any thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engine._mlx import mx
from ..engine.stats import TTFT_BUCKETS

if TYPE_CHECKING:
    from ..engine.registry import ModelStatus
    from ..stream.session import StreamService
    from ..videos.service import VideoJobs

_COUNTERS = {
    "requests_started": "Requests admitted by the scheduler",
    "requests_finished": "Requests that finished generating",
    "requests_cancelled": "Requests cancelled by their client",
    "requests_failed": "Requests that failed",
    "prompt_tokens": "Prompt tokens processed",
    "generated_tokens": "Tokens generated",
    "decode_steps": "Batched decode steps",
    "prefill_groups": "Prefill forward passes shared by several prompts",
    "prefill_group_rows": "Prompt chunks prefilled in such shared forward passes",
    "prefix_cache_hits": "Prompts that reused a cached prefix",
    "prefix_cache_misses": "Prompts with no reusable prefix",
    "prefix_cache_tokens_reused": "Prompt tokens served from the prefix cache",
    "vision_encodes_skipped": "Vision encoder passes skipped thanks to the prefix cache",
    "vision_encoder_passes": "Vision-tower passes run (one per image or video piece)",
    "vision_cache_hits": "Vision encoder passes served from the vision feature cache",
    "vision_cache_misses": "Vision encoder passes run and recorded in the feature cache",
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
    "vision_cache_bytes": "Bytes held by the vision feature cache",
}


def _metric(name: str, kind: str, help_text: str, value: float) -> list[str]:
    full = f"vllm_mlx_{name}"
    return [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}", f"{full} {value}"]


def _mlx_memory() -> list[str]:
    lines: list[str] = []
    for name, read, text in (
            ("active", mx.get_active_memory, "Bytes held by live MLX arrays"),
            ("cache", mx.get_cache_memory, "Bytes MLX keeps cached for reuse"),
            ("peak", mx.get_peak_memory, "Most bytes MLX arrays held at once since start")):
        lines += _metric(f"mlx_{name}_memory_bytes", "gauge", text, read())
    return lines


def _ttft(stats: dict[str, Any]) -> list[str]:
    name = "vllm_mlx_time_to_first_token_seconds"
    lines = [f"# HELP {name} Time from admission to first token",
             f"# TYPE {name} histogram"]
    for bound, count in zip(TTFT_BUCKETS, stats["ttft_buckets"]):
        lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {stats["ttft_count"]}')
    lines += [f"{name}_sum {stats['ttft_sum']}", f"{name}_count {stats['ttft_count']}"]
    return lines


def _group(size: int, parallel: str) -> list[str]:
    """How many processes serve the model (vllm_mlx.distributed) and how it is split."""
    info = "vllm_mlx_parallel_info"
    return _metric("group_size", "gauge", "Processes serving the model together", size) + [
        f"# HELP {info} How the model is split across the group (none: one process)",
        f"# TYPE {info} gauge", f'{info}{{mode="{parallel}"}} 1']


def render_metrics(stats: dict[str, Any], group_size: int = 1, parallel: str = "none") -> str:
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
    lines += _mlx_memory()
    lines += _group(group_size, parallel)
    return "\n".join(lines) + "\n"


def render_video_metrics(jobs: VideoJobs | None, memory: bool = True) -> str:
    """Video generation jobs and, for a server without a chat
    model, MLX's memory."""
    running = int(jobs is not None and jobs.worker.running is not None)
    waiting = jobs.worker.waiting if jobs is not None else 0
    lines = _metric("video_jobs_running", "gauge", "Video generation jobs running", running)
    lines += _metric("video_jobs_waiting", "gauge", "Video generation jobs queued", waiting)
    if memory:
        lines += _mlx_memory()
    return "\n".join(lines) + "\n"


def render_stream_metrics(service: StreamService) -> str:
    """Live-video connections: open now, and totals since start."""
    lines = _metric("stream_connections", "gauge", "Live-video WebSocket connections open",
                    len(service.sessions))
    lines += _metric("stream_analyses_running", "gauge",
                     "Live-video analyses in the engine now", service.analysing)
    for name, text, value in (
            ("frames_accepted", "Live-video frames accepted", service.frames_accepted),
            ("replies", "Live-video replies sent", service.replies_sent),
            ("messages_refused", "Live-video messages answered with an error",
             service.messages_refused)):
        lines += _metric(f"stream_{name}_total", "counter", text, value)
    return "\n".join(lines) + "\n"


_PER_MODEL = {
    "requests_finished": ("counter", "Requests that finished generating, per model"),
    "generated_tokens": ("counter", "Tokens generated, per model"),
    "prompt_tokens": ("counter", "Prompt tokens processed, per model"),
    "batch_size": ("gauge", "Requests in the model's running batch"),
    "waiting": ("gauge", "Requests queued for the model"),
}


def render_model_metrics(statuses: list[ModelStatus]) -> str:
    """Each served model's state and, while loaded, its engine's main counters, labelled
    ``model="NAME"`` (for a server of several models; the unlabelled series above are the
    default model's)."""
    state = "vllm_mlx_model_loaded"
    lines = [f"# HELP {state} 1 while the model is loaded", f"# TYPE {state} gauge"]
    lines += [f'{state}{{model="{_label(s.spec.name)}"}} {int(s.engine is not None)}'
              for s in statuses]
    loaded = [(s.spec.name, s.engine.stats) for s in statuses if s.engine is not None]
    for key, (kind, text) in _PER_MODEL.items():
        name = f"vllm_mlx_model_{key}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{model="{_label(model)}"}} {stats[key]}'
                  for model, stats in loaded if stats]
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
