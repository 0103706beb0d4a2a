"""Wan video pipeline speed (tiny and mid random-weight configs) and VAE decode memory.

    python benchmarks/video_gen_bench.py [--presets tiny,mid] [--repeats 2] [--steps N]
        [--vae-frames 17,33,81] [--vae-size 96x64] [--cache-dir DIR] [--json]

Part 1 times ``WanPipeline.generate`` directly (no HTTP): encode, denoise (per step), VAE
decode and total, after one warm-up run, best of ``--repeats``. Part 2 decodes random
latents of the ``mid`` VAE for 17, 33 and 81 frames and reports MLX's peak memory
(``mx.get_peak_memory``, reset before each run) for the causal, one-latent-frame-at-a-time
decode - expected to grow sub-linearly with frames - and, for contrast, a single-pass decode
of the shorter clips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def bench_pipeline(preset: str, repeats: int, steps: int | None, cache_dir: Path | None) -> dict:
    from vllm_mlx.diffusion import VideoGenRequest, WanPipeline, ensure_tiny_wan

    t0 = time.perf_counter()
    folder = ensure_tiny_wan(cache_dir=cache_dir, preset=preset)
    pipe = WanPipeline.from_pretrained(folder)
    load_s = time.perf_counter() - t0
    request = VideoGenRequest(prompt="a small robot walking through a neon city", seed=0)
    request.num_inference_steps = steps
    pipe.generate(request)  # warm-up
    runs = [pipe.generate(request) for _ in range(repeats)]
    best = min(runs, key=lambda r: r.timings["total_s"])
    return {
        "preset": preset,
        "size": f"{best.width}x{best.height}",
        "frames": best.num_frames,
        "steps": best.num_inference_steps,
        "cfg": best.guidance_scale > 1,
        "load_s": load_s,
        **{k: round(v, 4) for k, v in best.timings.items()},
        "frames_per_s": best.num_frames / best.timings["total_s"],
    }


def decode_peak(vae, latent_frames: int, height: int, width: int, chunk: int | None) -> dict:
    from vllm_mlx.diffusion._mlx import mx

    z = mx.random.normal((1, latent_frames, height // 8, width // 8, vae.config.z_dim))
    mx.eval(z)
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    t0 = time.perf_counter()
    frames = 0
    for part in vae.decode_chunks(z, chunk_frames=chunk):
        frames += part.shape[1]
        del part
    seconds = time.perf_counter() - t0
    return {
        "frames": frames,
        "mode": "causal, 1 latent frame/chunk" if chunk == 1 else "single pass",
        "peak_mb": (mx.get_peak_memory() - base) / 2**20,
        "seconds": seconds,
    }


def bench_vae(frames: list[int], size: str, cache_dir: Path | None) -> list[dict]:
    from vllm_mlx.diffusion import ensure_tiny_wan
    from vllm_mlx.diffusion.config import VAEConfig, read_json
    from vllm_mlx.diffusion.vae import AutoencoderKLWan
    from vllm_mlx.diffusion.weights import load_component

    folder = ensure_tiny_wan(cache_dir=cache_dir, preset="mid") / "vae"
    vae = load_component(
        AutoencoderKLWan(VAEConfig.from_dict(read_json(folder / "config.json"))), folder
    )
    width, height = (int(v) for v in size.split("x"))
    rows = [decode_peak(vae, 1 + (n - 1) // 4, height, width, 1) for n in frames]
    rows += [decode_peak(vae, 1 + (n - 1) // 4, height, width, None) for n in frames if n <= 33]
    return rows


def print_report(pipeline_rows: list[dict], vae_rows: list[dict], vae_size: str) -> None:
    print("WanPipeline.generate (direct, no HTTP), best run after warm-up")
    head = f"{'preset':7} {'size':8} {'frames':>6} {'steps':>5} {'cfg':>4} {'load_s':>7} "
    head += f"{'encode_s':>8} {'step_s':>7} {'denoise_s':>9} {'decode_s':>8} {'total_s':>8}"
    print(head)
    for r in pipeline_rows:
        print(
            f"{r['preset']:7} {r['size']:8} {r['frames']:>6} {r['steps']:>5} "
            f"{'yes' if r['cfg'] else 'no':>4} {r['load_s']:7.2f} {r['encode_s']:8.3f} "
            f"{r['per_step_s']:7.3f} {r['denoise_s']:9.3f} {r['decode_s']:8.3f} {r['total_s']:8.3f}"
        )
    print(f"\nVAE decode peak MLX memory (mid VAE, {vae_size}, random latents)")
    causal = [r for r in vae_rows if r["mode"].startswith("causal")]
    first = causal[0]["peak_mb"] if causal else 1.0
    print(f"{'frames':>6} {'mode':30} {'peak_MB':>9} {'x(17f)':>7} {'seconds':>8}")
    for r in vae_rows:
        ratio = r["peak_mb"] / first
        print(
            f"{r['frames']:>6} {r['mode']:30} {r['peak_mb']:9.1f} {ratio:7.2f} {r['seconds']:8.2f}"
        )
    if len(causal) > 1:
        growth = causal[-1]["peak_mb"] / causal[0]["peak_mb"]
        frames = causal[-1]["frames"] / causal[0]["frames"]
        print(f"causal decode: {frames:.1f}x the frames -> {growth:.2f}x the peak memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,mid")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--vae-frames", default="17,33,81")
    parser.add_argument("--vae-size", default="96x64")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    pipeline_rows = [
        bench_pipeline(p, args.repeats, args.steps, args.cache_dir)
        for p in args.presets.split(",")
        if p
    ]
    frames = [int(n) for n in args.vae_frames.split(",") if n]
    vae_rows = bench_vae(frames, args.vae_size, args.cache_dir)
    if args.json:
        print(json.dumps({"pipeline": pipeline_rows, "vae_decode": vae_rows}, indent=2))
    else:
        print_report(pipeline_rows, vae_rows, args.vae_size)


if __name__ == "__main__":
    main()
