"""Several models behind one server (issue 24): what a switch costs, and whether requests
to a loaded model are slowed while another model loads.

    python benchmarks/model_switch_bench.py [--default tiny:qwen3:small]
        [--other llama=tiny:llama:small --other vl=tiny:qwen2_vl:small]
        [--repeats 5] [--quick] [--write-results] [--note TEXT]

One ``vllm-mlx serve DEFAULT OTHER... --max-loaded-models 2`` is started (tiny models are
built first, outside every timing). Requests are streamed chat completions of
``max_tokens`` 4 with ``ignore_eos``, one at a time unless stated; each prompt starts with
a fresh nonce so no prefix cache serves it. TTFT = client time from sending the request to
the first content chunk.

(a) Switch cost, per other model M and repeat: M is unloaded, then

* cold: the first request to M (its load + its TTFT);
* warm: the same request again, M loaded (the baseline);
* load endpoint: M unloaded again, ``POST /v1/models/M/load`` timed to its answer.

  Then, with ``--max-loaded-models 2`` (the default is always loaded, so only one other
  model fits), requests alternating between the two other models (each one a switch:
  unload the other, load this one) against the same number of requests staying on one.

(b) Interference, per repeat: short requests to the loaded default, one after another,
with nothing loading (the baseline, 3 a repeat), then the same requests while the last
other model loads (``POST /v1/models/M/load`` sent first; only requests sent before that
load answered count).
Reported: the median TTFT ratio, loading / idle (target ~1.0; the load itself takes CPU,
and on a machine with few cores it competes with decoding).

Every loop is bounded (--repeats <= 20, at most 50 requests per load, per-request timeouts).
A failed request is reported with its status and message, never as a number.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import bench_report
import httpx
from bench_client import RequestResult, Timings, new_client, one_request, start_serving
from peers import resolve_model

MAX_REPEATS = 20
MAX_PROBES_PER_LOAD = 50
UNLOAD_TRIES = 100
IDLE_PER_REPEAT = 3
TOKENS = 4
QUESTION = "List three facts about the sea."


class Series(Timings):
    """One row of the report: seconds per try, and the failures."""

    def add(self, result: RequestResult, seconds: float | None = None) -> None:
        if result.ok:
            self.values.append(seconds if seconds is not None else float(result.ttft or 0))
        else:
            self.errors.append(result.describe_error())

    def row(self) -> str:
        median = "-" if self.median is None else f"{self.median:.3f}"
        every = ", ".join(f"{v:.3f}" for v in self.values)
        errors = f"{len(self.errors)}" + (f" ({self.errors[0][:120]})" if self.errors else "")
        return f"| {self.label} | {median} | {every} | {errors} | {self.note} |"


def body(model: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "max_tokens": TOKENS, "ignore_eos": True,
            "temperature": 0, "messages": [
                {"role": "user", "content": f"[{uuid.uuid4().hex[:8]}] {QUESTION}"}]}


@dataclass
class Bench:
    client: httpx.AsyncClient
    base: str

    async def ask(self, model: str) -> RequestResult:
        return await one_request(self.client, f"{self.base}/v1/chat/completions", body(model))

    async def action(self, model: str, verb: str) -> tuple[float, str]:
        """POST /v1/models/MODEL/VERB: (seconds, error text or "")."""
        started = time.perf_counter()
        try:
            response = await self.client.post(f"{self.base}/v1/models/{model}/{verb}")
        except httpx.HTTPError as exc:
            return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
        error = "" if response.status_code == 200 else (
            f"HTTP {response.status_code}: {response.text[:200]}")
        return time.perf_counter() - started, error

    async def unload(self, model: str) -> None:
        """Unload ``model``; a stream just ended may hold its lease a moment longer (503
        ``models_busy``), so that answer is retried for up to 5 s."""
        for _ in range(UNLOAD_TRIES):
            _, error = await self.action(model, "unload")
            if not error:
                return
            if "models_busy" not in error:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"cannot unload {model}: {error}")


async def switch_cost(bench: Bench, model: str, repeats: int) -> list[Series]:
    cold = Series(f"{model}: first request, not loaded (load + TTFT)")
    warm = Series(f"{model}: same request, loaded")
    load = Series(f"{model}: POST /v1/models/{model}/load")
    for _ in range(repeats):
        await bench.unload(model)
        cold.add(await bench.ask(model))
        warm.add(await bench.ask(model))
        await bench.unload(model)
        seconds, error = await bench.action(model, "load")
        if error:
            load.errors.append(error)
        else:
            load.values.append(seconds)
    return [cold, warm, load]


async def alternating(bench: Bench, first: str, second: str, requests: int) -> list[Series]:
    """Each request a switch (only one of the two fits) vs every request on one model."""
    switching = Series(f"alternating {first} / {second} (each a switch)",
                       note="request time to first token, evicting the other")
    staying = Series(f"staying on {first}")
    await bench.action(first, "load")
    for index in range(requests):
        switching.add(await bench.ask(second if index % 2 == 0 else first))
    await bench.action(first, "load")
    for _ in range(requests):
        staying.add(await bench.ask(first))
    return [switching, staying]


async def ttfts_during_load(bench: Bench, default: str, loading: str, repeats: int
                            ) -> tuple[Series, Series, Series]:
    """Per repeat: IDLE_PER_REPEAT requests with nothing loading, then requests while
    ``loading`` loads (interleaved, so a busy machine's drift hits both alike)."""
    idle = Series(f"{default}: short request, nothing loading")
    during = Series(f"{default}: short request while {loading} loads")
    load = Series(f"{loading}: load time while {default} answers")
    for _ in range(repeats):
        await bench.unload(loading)
        for _ in range(IDLE_PER_REPEAT):
            idle.add(await bench.ask(default))
        load_task = asyncio.create_task(bench.action(loading, "load"))
        for _ in range(MAX_PROBES_PER_LOAD):
            if load_task.done():
                break
            during.add(await bench.ask(default))  # sent while the load was in flight
        seconds, error = await load_task
        if error:
            load.errors.append(error)
        else:
            load.values.append(seconds)
    during.note = f"{len(during.values)} requests over {repeats} loads"
    return idle, during, load


def ratio(top: Series, bottom: Series) -> float | None:
    if top.median is None or not bottom.median:
        return None
    return top.median / bottom.median


def report(rows: list[Series], lines: list[str]) -> str:
    table = ["| measurement | median (s) | all (s) | errors | note |",
             "|---|---:|---|---|---|", *(r.row() for r in rows)]
    return "\n".join([*table, "", *(f"- {line}" for line in lines)]) + "\n"


def verdicts(others: list[str], cost: list[Series], switching: list[Series], idle: Series,
             during: Series) -> list[str]:
    lines = []
    for index, model in enumerate(others):
        cold, warm, load = cost[3 * index:3 * index + 3]
        lines.append(f"{model}: first request (load + TTFT) / loaded TTFT = "
                     f"{_fmt(ratio(cold, warm))}; load endpoint median "
                     f"{_fmt(load.median)} s")
    lines.append(f"alternating (every request a switch) / staying on one = "
                 f"{_fmt(ratio(*switching))}")
    during_ratio = ratio(during, idle)
    verdict = "" if during_ratio is None else (
        " (target ~1.0; PASS when <= 1.5): " + ("PASS" if during_ratio <= 1.5 else "FAIL"))
    lines.append(f"default-model TTFT while another model loads / idle = "
                 f"{_fmt(during_ratio)}{verdict}")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a (failed requests, see errors)" if value is None else f"{value:.3f}"


def named(argument: str) -> tuple[str, str]:
    """``NAME=MODEL`` -> (NAME, MODEL); ``MODEL`` -> (MODEL, MODEL)."""
    name, sep, model = argument.partition("=")
    return (name, model) if sep else (argument, argument)


async def measure(base: str, default: str, others: list[str], repeats: int
                  ) -> tuple[list[Series], list[str]]:
    async with new_client(request_timeout_s=600) as client:
        bench = Bench(client, base)
        await bench.ask(default)  # warm-up: the first request compiles kernels
        cost = []
        for model in others:
            cost += await switch_cost(bench, model, repeats)
        switching = await alternating(bench, others[0], others[1], 2 * repeats)
        idle, during, load = await ttfts_during_load(bench, default, others[-1], repeats)
    rows = [*cost, *switching, idle, during, load]
    return rows, verdicts(others, cost, switching, idle, during)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", default="tiny:qwen3:small")
    parser.add_argument("--other", action="append", default=None, metavar="NAME=MODEL",
                        help="another model (twice at least; default: llama=tiny:llama:small "
                             "and vl=tiny:qwen2_vl:small); the last one is loaded in (b)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="tiny presets and 2 repeats (a smoke run, ~1 min)")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    preset = "" if args.quick else ":small"
    if args.quick and args.default == "tiny:qwen3:small":
        args.default = "tiny:qwen3"
    args.other = args.other or [f"llama=tiny:llama{preset}", f"vl=tiny:qwen2_vl{preset}"]
    if args.quick:
        args.repeats = min(args.repeats, 2)
    if len(args.other) < 2 or not 1 <= args.repeats <= MAX_REPEATS:
        parser.error(f"two --other models at least, and 1 <= --repeats <= {MAX_REPEATS}")
    return args


def main() -> None:
    args = parse_args()
    for reference in [args.default, *(named(o)[1] for o in args.other)]:
        if reference.startswith("tiny:"):
            resolve_model(reference)  # built now, outside every timing
    process, base = start_serving([args.default, *args.other, "--max-loaded-models", "2"])
    try:
        rows, lines = asyncio.run(measure(base, args.default,
                                          [named(o)[0] for o in args.other], args.repeats))
    finally:
        process.terminate()
        process.wait(timeout=60)
    models = " + ".join([args.default, *args.other])
    text = report(rows, lines)
    print(text)
    if args.write_results:
        head = bench_report.header(f"Several models per server (issue 24): {models}", args.note)
        bench_report.write_section(f"model-switch {models}", f"{head}\n{text}")


if __name__ == "__main__":
    main()
