"""Counters and gauges the scheduler updates on the owner thread and ``/metrics`` reads.

Plain ints and floats: a reader on another thread may see a value one update old, never
a torn one, which is all a metrics scrape needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class EngineStats:
    requests_started: int = 0
    requests_finished: int = 0
    requests_cancelled: int = 0
    requests_failed: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_steps: int = 0
    prefill_groups: int = 0
    prefill_group_rows: int = 0
    batch_size: int = 0
    prefilling: int = 0
    waiting: int = 0
    prefix_cache_hits: int = 0
    prefix_cache_misses: int = 0
    prefix_cache_tokens_reused: int = 0
    prefix_cache_bytes: int = 0
    vision_encodes_skipped: int = 0
    vision_encoder_passes: int = 0
    vision_cache_hits: int = 0
    vision_cache_misses: int = 0
    vision_cache_bytes: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0
    ttft_buckets: list[int] = field(default_factory=lambda: [0] * len(TTFT_BUCKETS))

    def observe_ttft(self, seconds: float) -> None:
        self.ttft_sum += seconds
        self.ttft_count += 1
        for i, bound in enumerate(TTFT_BUCKETS):
            if seconds <= bound:
                self.ttft_buckets[i] += 1

    def snapshot(self) -> dict:
        return asdict(self)
