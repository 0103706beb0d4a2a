"""Structured predictions: batch throughput and the cost of constrained decoding.

1. Throughput: ``--n`` (16) ``batch=true`` image predictions submitted at once through the
   app (in process, over ASGI), polled until all finish, against the same predictions run one
   after another with ``batch=false``. Target: concurrent throughput >= 3x sequential,
   measured in completion tokens/s (greedy outputs of random weights change length with the
   batch's composition, so predictions/s alone would compare different amounts of work).
2. Constrained decoding: per-token decode time (first to last token, prefill excluded) of a
   domain-schema-constrained generation against an unconstrained one of the same length
   (``ignore_eos``), same prompt and image, median of ``--repeats``. Target: <= +15%.

    python benchmarks/domains_bench.py [--model tiny:qwen2_vl] [--n 16] [--domain image.caption]

Both figures are ratios measured in the same run, so they hold on any machine; the
throughput one depends on the engine batching concurrent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def png_b64(seed: int) -> str:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def _sequential(client: httpx.AsyncClient, body: dict, n: int) -> tuple[float, int]:
    start, tokens = time.perf_counter(), 0
    for _ in range(n):
        record = (await client.post("/v1/image/generate", json={**body, "batch": False})).json()
        assert record["status"] == "completed", record
        tokens += record["usage"]["completion_tokens"]
    return time.perf_counter() - start, tokens


async def _concurrent(client: httpx.AsyncClient, body: dict, n: int) -> tuple[float, int]:
    start = time.perf_counter()
    submitted = await asyncio.gather(*(
        client.post("/v1/image/generate", json={**body, "batch": True}) for _ in range(n)))
    ids = {r.json()["id"] for r in submitted}
    while True:  # one cheap poll of the newest n predictions, not n GETs
        await asyncio.sleep(0.1)
        listed = (await client.get("/v1/predictions", params={"limit": n})).json()
        done = [p for p in listed if p["id"] in ids and p["status"] in ("completed", "failed")]
        if len(done) == n:
            break
    assert all(p["status"] == "completed" for p in done), done
    return time.perf_counter() - start, sum(p["usage"]["completion_tokens"] for p in done)


Timing = tuple[float, int]  # seconds, completion tokens


async def throughput(engine: object, domain: str, n: int) -> tuple[Timing, Timing]:
    from vllm_mlx.api.app import create_app
    from vllm_mlx.config import Settings

    with tempfile.TemporaryDirectory() as storage:
        settings = Settings(model="bench", storage_path=Path(storage))
        app = create_app(settings, engine)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     timeout=600) as client:
            body = {"domain": domain, "images": [png_b64(0)]}
            await _sequential(client, body, 1)  # warm-up: grammar compiler, caches
            sequential = await _sequential(client, body, n)
            concurrent = await _concurrent(client, body, n)
        await app.state.predictions.close()
    return sequential, concurrent


def _decode_seconds_per_token(engine: object, request: object) -> tuple[float, int]:
    """Seconds per token from the first chunk to the last (prefill excluded), and tokens."""
    first, last, tokens, after_first = 0.0, 0.0, 0, 0
    for chunk in engine.generate_sync(request):  # type: ignore[attr-defined]
        now = time.perf_counter()
        if tokens == 0:
            first = now
        else:
            after_first += len(chunk.token_ids)
        tokens += len(chunk.token_ids)
        if chunk.token_ids:
            last = now
    return (last - first) / max(after_first, 1), tokens


def constrained_overhead(engine: object, domain: str, repeats: int) -> tuple[float, int]:
    from dataclasses import replace

    from vllm_mlx.domains.inputs import PreparedInputs
    from vllm_mlx.domains.predictor import Target, build_messages
    from vllm_mlx.domains.registry import default_registry
    from vllm_mlx.engine import GenerationRequest, SamplingParams

    spec = default_registry().get(domain)
    image = Image.open(io.BytesIO(base64.b64decode(png_b64(0)))).convert("RGB")
    messages = build_messages(Target(schema=spec.schema, prompt=spec.prompt),
                              PreparedInputs("image", images=(image,)))
    constrained = GenerationRequest(messages=messages, sampling=SamplingParams(
        max_tokens=spec.max_tokens, json_schema=spec.schema))
    ratios, length = [], 0
    for _ in range(repeats):
        with_schema, length = _decode_seconds_per_token(engine, constrained)
        free = replace(constrained, sampling=SamplingParams(max_tokens=length, ignore_eos=True))
        without, _ = _decode_seconds_per_token(engine, free)
        ratios.append(with_schema / without)
    return statistics.median(ratios), length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2_vl")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--domain", default="image.caption")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine import Engine

    engine = Engine.start(args.model)
    try:
        ratio, length = constrained_overhead(engine, args.domain, args.repeats)
        print(f"constrained decoding: {length} tokens, per-token time x{ratio:.3f} of "
              f"unconstrained ({(ratio - 1) * 100:+.1f}%; target <= +15%)")
        (seq_s, seq_tok), (conc_s, conc_tok) = asyncio.run(
            throughput(engine, args.domain, args.n))
        speedup = (conc_tok / conc_s) / (seq_tok / seq_s)
        print(f"{args.n} predictions one by one: {seq_s:.2f}s, {args.n / seq_s:.2f}/s, "
              f"{seq_tok / seq_s:.0f} tok/s")
        print(f"{args.n} predictions batch=true at once: {conc_s:.2f}s, "
              f"{args.n / conc_s:.2f}/s, {conc_tok / conc_s:.0f} tok/s")
        print(f"throughput x{speedup:.2f} in completion tokens/s (target >= 3x; outputs of "
              f"random weights differ in length between batched and lone runs, so tokens/s "
              f"is the fair measure)")
    finally:
        engine.shutdown()


if __name__ == "__main__":
    main()
