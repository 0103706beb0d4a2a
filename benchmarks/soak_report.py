"""The soak's records and figures: request outcomes, memory samples, percentiles, slopes,
and the markdown tables ``soak.py`` prints and writes to ``RESULTS.md``.

Contract: :class:`Outcome` is one request (``verdict`` ok | 5xx | hung | failed);
:class:`Sample` one memory reading (bytes; derived series subtract the prefix cache, which
grows by design up to its cap); :func:`slope_mb_per_min` is the least-squares slope of a
series after ``after_s``; :func:`percentile` is nearest-rank; :func:`kinds_table` and
:func:`summary_lines` render a :class:`Run`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

MB = 1024 * 1024
MEMORY_LABELS = {"rss": "server RSS", "mlx_active": "MLX active memory",
                 "mlx_cache": "MLX cache memory", "prefix_cache": "prefix cache bytes",
                 "rss_less_prefix": "RSS minus prefix cache",
                 "mlx_active_less_prefix": "MLX active minus prefix cache"}


@dataclass
class Outcome:
    kind: str
    verdict: str  # ok | 5xx | hung | failed
    latency_s: float
    ttft_s: float | None = None
    status: int = 0
    error: str = ""
    hung_up: bool = False  # cancel: the client closed the stream before its end


@dataclass
class Sample:
    t: float  # seconds since the start of the load
    rss: float | None = None  # bytes
    mlx_active: float | None = None
    mlx_cache: float | None = None
    prefix_cache: float | None = None

    def _less_prefix(self, value: float | None) -> float | None:
        return None if value is None or self.prefix_cache is None else value - self.prefix_cache

    @property
    def rss_less_prefix(self) -> float | None:
        return self._less_prefix(self.rss)

    @property
    def mlx_active_less_prefix(self) -> float | None:
        return self._less_prefix(self.mlx_active)


@dataclass
class Run:
    outcomes: list[Outcome]
    samples: list[Sample]
    idle: dict[str, float]
    wall_s: float
    load_before: str
    load_after: str


def slope_mb_per_min(samples: list[Sample], key: str, after_s: float) -> float | None:
    points = [(s.t / 60, getattr(s, key) / MB) for s in samples
              if s.t >= after_s and getattr(s, key) is not None]
    if len(points) < 3:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var if var else None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def kinds_table(outcomes: list[Outcome], kinds: list[str]) -> str:
    rows = ["| kind | requests | ok | 5xx | hung | failed | latency p50 (s) | p99 (s) "
            "| TTFT p50 (s) | TTFT p99 (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in [*kinds, "all"]:
        mine = [o for o in outcomes if kind in ("all", o.kind)]
        ok = [o for o in mine if o.verdict == "ok"]
        count = Counter(o.verdict for o in mine)
        latency = [o.latency_s for o in ok]
        ttft = [o.ttft_s for o in ok if o.ttft_s is not None and o.kind != "cancel"]
        rows.append(f"| {kind} | {len(mine)} | {len(ok)} | {count['5xx']} | {count['hung']} "
                    f"| {count['failed']} | {_s(percentile(latency, 50))} "
                    f"| {_s(percentile(latency, 99))} | {_s(percentile(ttft, 50))} "
                    f"| {_s(percentile(ttft, 99))} |")
    return "\n".join(rows) + "\n"


def memory_lines(run: Run, warm_s: float) -> list[str]:
    lines = []
    for key, label in MEMORY_LABELS.items():
        values = [getattr(s, key) for s in run.samples if getattr(s, key) is not None]
        if not values:
            lines.append(f"{label}: not sampled")
            continue
        slope = slope_mb_per_min(run.samples, key, warm_s)
        slope_text = "-" if slope is None else f"{slope:+.2f} MB/min"
        lines.append(f"{label}: start {values[0] / MB:.0f} MB, end {values[-1] / MB:.0f} "
                     f"MB, max {max(values) / MB:.0f} MB; slope after warm-up {slope_text}")
    return lines


def summary_lines(run: Run, warm_s: float) -> list[str]:
    count = Counter(o.verdict for o in run.outcomes)
    errors = Counter(o.error.split(":")[0][:60] for o in run.outcomes if o.verdict != "ok")
    idle = run.idle.get("idle_after_s", -1.0)
    hung_up = sum(o.hung_up for o in run.outcomes)
    lines = [f"requests: {len(run.outcomes)} in {run.wall_s:.0f} s "
             f"({len(run.outcomes) / max(run.wall_s, 1e-9):.2f}/s)",
             f"5xx: {count['5xx']} (target 0): {'PASS' if count['5xx'] == 0 else 'FAIL'}",
             f"hung: {count['hung']} (target 0): {'PASS' if count['hung'] == 0 else 'FAIL'}",
             f"failed otherwise: {count['failed']}" + (f" ({dict(errors)})" if errors else ""),
             *[f"first {verdict} error: {first.error[:300]}" for verdict in ("5xx", "failed")
               if (first := next((o for o in run.outcomes if o.verdict == verdict), None))],
             "server idle after the load: " + (f"yes, within {idle:.1f} s" if idle >= 0 else
                                               "NO (requests still running, prefilling or "
                                               "waiting): FAIL"),
             f"streams the clients hung up on: {hung_up}; the server counted "
             f"{run.idle.get('vllm_mlx_requests_cancelled_total', 0):.0f} cancellations",
             f"memory samples: {len(run.samples)}, warm-up excluded: first {warm_s:.0f} s"]
    return lines + memory_lines(run, warm_s)
