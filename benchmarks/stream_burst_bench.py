"""Engine only: eight live-video windows at once against the same windows one at a time.

`stream_bench.py` measures the 8-client target through the server, where the clients'
frame rate also caps the reply rate (10 fps and 5 new frames a window: 2 windows/s per
client). This script measures what the engine alone gives: bursts of ``--clients``
analysis requests built exactly as the stream endpoint builds them (seed prompt, 5
frames of 640x480 JPEG, 48 tokens, temperature 0.7, top_p 0.95, EOS ignored), submitted
together, against the same requests run one after another. Serial and concurrent runs
alternate, ``--rounds`` times, on one engine; the ratio is of the summed times.

    python benchmarks/stream_burst_bench.py --model tiny:qwen2_vl:small --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream_bench import COUNTERS, SIZE, encoded_frames, engine_split, load  # noqa: E402


def window_requests(engine, jpegs: list[bytes], count: int, pick: random.Random) -> list:
    from vllm_mlx.media import MediaPolicy
    from vllm_mlx.stream.analysis import ModelTraits, build_request, decode_frames, frame_sizes
    from vllm_mlx.stream.config import StreamConfig
    from vllm_mlx.stream.presize import FrameSizer
    from vllm_mlx.stream.protocol import Frame

    traits = ModelTraits(engine.model.capabilities.native_video, engine.model.video_min_frames)
    config = StreamConfig(ignore_eos=True)
    sizer = FrameSizer(engine.model.processor)
    requests = []
    for _ in range(count):
        frames = [Frame(pick.choice(jpegs), i / 30, 0.0, *SIZE) for i in range(5)]
        window = decode_frames(frames, MediaPolicy(),
                               lambda f: frame_sizes(f, config, traits, sizer))
        requests.append(build_request(window, config, traits))
    return requests


def timed(engine, requests: list, together: bool) -> tuple[float, dict[str, float]]:
    before = engine.stats
    started = time.perf_counter()
    if together:
        async def burst():
            return await asyncio.gather(*(engine.complete(r) for r in requests))
        asyncio.run(burst())
    else:
        for request in requests:
            engine.complete_sync(request)
    elapsed = time.perf_counter() - started
    after = engine.stats
    return elapsed, {k: after[k] - before[k] for k in COUNTERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2_vl")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from vllm_mlx.blas import activate_fast_blas
    from vllm_mlx.engine import Engine

    activate_fast_blas()
    engine = Engine.start(args.model)
    jpegs, pick = encoded_frames(), random.Random(0)
    try:
        timed(engine, window_requests(engine, jpegs, 2, pick), together=True)  # warm-up
        totals = {False: 0.0, True: 0.0}
        splits: dict[bool, dict[str, float]] = {False: {}, True: {}}
        for _ in range(args.rounds):
            for together in (False, True):
                requests = window_requests(engine, jpegs, args.clients, pick)
                elapsed, delta = timed(engine, requests, together)
                totals[together] += elapsed
                for key, value in delta.items():
                    splits[together][key] = splits[together].get(key, 0.0) + value
    finally:
        engine.shutdown()
    windows = args.clients * args.rounds
    serial, concurrent = windows / totals[False], windows / totals[True]
    print(f"model {args.model}; {args.clients} windows a burst, {args.rounds} rounds; "
          f"load {load()}")
    print(f"one at a time: {serial:.2f} windows/s; engine {engine_split(splits[False])}")
    print(f"together:      {concurrent:.2f} windows/s; engine {engine_split(splits[True])}")
    print(f"ratio: {concurrent / serial:.2f}x (stream target: >= 3x with 8 clients)")


if __name__ == "__main__":
    main()
