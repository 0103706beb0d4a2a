"""Batched decode throughput of the engine itself (no HTTP): N concurrent fixed-length
requests vs one, measured in the scheduler's own decode time, in one process.

    python benchmarks/engine_batch_bench.py [--model tiny:qwen3:small] [--tokens 24]
                                            [--levels 1,8] [--rounds 2]

It isolates the batching engine from HTTP and client effects that dominate on loaded
machines; target (issue 4): 8 streams >= 4x one stream on the small preset.
"""

from __future__ import annotations

import argparse
import asyncio
import os


async def _one(engine, index: int, tokens: int) -> None:
    from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams, TextPart

    request = GenerationRequest(
        messages=(ChatMessage("user", (TextPart(f"Write story number {index}."),)),),
        sampling=SamplingParams(max_tokens=tokens, ignore_eos=True), cache_prefix=False)
    async for _ in engine.generate(request):
        pass


def decode_rate(engine, streams: int, tokens: int) -> float:
    """Generated tokens per second of engine decode time for ``streams`` requests."""
    before = engine.stats

    async def run() -> None:
        await asyncio.gather(*(_one(engine, i, tokens) for i in range(streams)))

    asyncio.run(run())
    after = engine.stats
    generated = after["generated_tokens"] - before["generated_tokens"]
    return generated / (after["decode_seconds"] - before["decode_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen3:small")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--levels", default="1,8")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine import Engine

    engine = Engine.start(args.model)
    levels = [int(x) for x in args.levels.split(",")]
    try:
        decode_rate(engine, 1, 4)  # warm-up
        best = {n: max(decode_rate(engine, n, args.tokens) for _ in range(args.rounds))
                for n in levels}
    finally:
        engine.shutdown()
    print(f"model {args.model}, {args.tokens} tokens per request, engine decode time")
    for n, rate in best.items():
        print(f"  {n:3d} streams: {rate:8.2f} tok/s  ({rate / best[levels[0]]:.2f}x)")


if __name__ == "__main__":
    main()
