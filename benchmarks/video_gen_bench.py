"""Wan video pipeline speed (tiny and mid random-weight configs) and VAE decode memory.

    python benchmarks/video_gen_bench.py [--presets tiny,mid] [--repeats 2] [--steps N]
        [--vae-frames 17,33,81] [--vae-size 96x64] [--cache-dir DIR] [--json]
        [--parts direct,vae,http] [--poll-ms 20]

Part 1 times ``WanPipeline.generate`` directly (no HTTP): encode, denoise (per step), VAE
decode and total, after one warm-up run, best of ``--repeats``. Part 2 decodes random
latents of the ``mid`` VAE for 17, 33 and 81 frames and reports MLX's peak memory
(``mx.get_peak_memory``, reset before each run) for the causal, one-latent-frame-at-a-time
decode - expected to grow sub-linearly with frames - and, for contrast, a single-pass decode
of the shorter clips. Part 3 serves the same preset with ``vllm-mlx serve tiny:wan2_1[:mid]``
in a subprocess and times, interleaved with direct runs of the same settings and seed, a job
through the API (``POST /v1/videos``, poll, download the mp4) and ``POST /v1/videos/sync``,
against ``generate`` + ``encode_mp4`` in this process (target: <= 1.1x).
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


# --- part 3: the same job through the HTTP API ---------------------------------------------
def _start_server(preset: str, cache_dir: Path | None, storage: Path):
    from bench_client import start_serving

    model = "tiny:wan2_1" if preset == "tiny" else f"tiny:wan2_1:{preset}"
    args = [model, "--storage-path", str(storage), "--log-level", "warning"]
    if cache_dir is not None:
        args += ["--tiny-cache-dir", str(cache_dir)]
    return start_serving(args)


def _http_job(base: str, form: dict, poll_s: float) -> tuple[float, float]:
    """POST a job, poll until completed, download the mp4: (wall seconds, server seconds)."""
    import httpx

    t0 = time.perf_counter()
    with httpx.Client(base_url=base, timeout=600) as http:
        video = http.post("/v1/videos", data=form).json()
        while video["status"] not in ("completed", "failed"):
            time.sleep(poll_s)
            video = http.get(f"/v1/videos/{video['id']}").json()
        if video["status"] != "completed":
            raise RuntimeError(f"job failed: {video['error']}")
        content = http.get(f"/v1/videos/{video['id']}/content").content
        wall = time.perf_counter() - t0
        http.delete(f"/v1/videos/{video['id']}")
    if not content:
        raise RuntimeError("empty video")
    return wall, float(video["inference_time_s"])


def _http_sync(base: str, form: dict) -> float:
    import httpx

    t0 = time.perf_counter()
    response = httpx.post(f"{base}/v1/videos/sync", data=form, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - t0


def _direct(pipe, request) -> tuple[float, float]:
    """``generate`` alone, and ``generate`` + mp4 encoding (what the API delivers)."""
    from vllm_mlx.diffusion import encode_mp4

    t0 = time.perf_counter()
    result = pipe.generate(request)
    generate_s = time.perf_counter() - t0
    encode_mp4(result.frames, result.fps)
    return generate_s, time.perf_counter() - t0


def bench_http(
    preset: str, repeats: int, steps: int | None, cache_dir: Path | None, poll_s: float
) -> dict:
    """Direct and HTTP runs interleaved (same settings and seed).

    Ratios are medians of per-round ratios (each round runs direct, job, sync back to back,
    so slow drifts of a shared machine's load cancel out); times are the best of each kind.
    """
    import statistics
    import tempfile

    from vllm_mlx.diffusion import VideoGenRequest, WanPipeline, ensure_tiny_wan

    pipe = WanPipeline.from_pretrained(ensure_tiny_wan(cache_dir=cache_dir, preset=preset))
    d = pipe.defaults
    request = VideoGenRequest(prompt="a small robot walking through a neon city", seed=0,
                              num_inference_steps=steps)
    form = {"prompt": request.prompt, "seed": "0", "size": f"{d.width}x{d.height}",
            "num_frames": str(d.num_frames), "fps": str(d.fps),
            "num_inference_steps": str(steps or d.num_inference_steps)}
    with tempfile.TemporaryDirectory() as storage:
        process, base = _start_server(preset, cache_dir, Path(storage))
        try:
            _direct(pipe, request)  # warm-up, both sides
            _http_job(base, form, poll_s)
            rounds = [(_direct(pipe, request), _http_job(base, form, poll_s),
                       _http_sync(base, form)) for _ in range(repeats)]
        finally:
            process.terminate()
            process.wait(30)

    def ratio(pick) -> float:
        return statistics.median(pick(job, sync) / direct[1] for direct, job, sync in rounds)

    return {
        "preset": preset, "size": form["size"], "frames": d.num_frames,
        "steps": int(form["num_inference_steps"]), "rounds": repeats, "poll_s": poll_s,
        "generate_s": min(r[0][0] for r in rounds), "direct_mp4_s": min(r[0][1] for r in rounds),
        "server_job_s": min(r[1][1] for r in rounds), "http_job_s": min(r[1][0] for r in rounds),
        "http_sync_s": min(r[2] for r in rounds),
        "server_vs_direct": ratio(lambda job, sync: job[1]),
        "job_vs_direct": ratio(lambda job, sync: job[0]),
        "sync_vs_direct": ratio(lambda job, sync: sync),
    }


def print_http(rows: list[dict]) -> None:
    print("\nHTTP API vs direct, same settings and seed (seconds: best; ratios: median of "
          "interleaved rounds; target <= 1.1x)")
    print(f"{'preset':7} {'size':8} {'frames':>6} {'steps':>5} {'direct':>7} {'server':>7} "
          f"{'job':>7} {'sync':>7} {'server/d':>8} {'job/d':>6} {'sync/d':>6}")
    for r in rows:
        print(f"{r['preset']:7} {r['size']:8} {r['frames']:>6} {r['steps']:>5} "
              f"{r['direct_mp4_s']:7.3f} {r['server_job_s']:7.3f} {r['http_job_s']:7.3f} "
              f"{r['http_sync_s']:7.3f} {r['server_vs_direct']:8.3f} {r['job_vs_direct']:6.3f} "
              f"{r['sync_vs_direct']:6.3f}")
    if rows:
        print(f"direct = WanPipeline.generate + encode_mp4 in this process; server = the job's "
              f"inference_time_s (worker: generate + mp4 written); job = POST, poll every "
              f"{rows[0]['poll_s'] * 1000:.0f} ms, download; sync = POST /v1/videos/sync")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,mid")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--vae-frames", default="17,33,81")
    parser.add_argument("--vae-size", default="96x64")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--parts", default="direct,vae,http",
                        help="which parts to run (direct, vae, http)")
    parser.add_argument("--poll-ms", type=float, default=20.0,
                        help="HTTP part: how often the client polls a job")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    presets = [p for p in args.presets.split(",") if p]
    pipeline_rows = [
        bench_pipeline(p, args.repeats, args.steps, args.cache_dir) for p in presets
    ] if "direct" in parts else []
    frames = [int(n) for n in args.vae_frames.split(",") if n]
    vae_rows = bench_vae(frames, args.vae_size, args.cache_dir) if "vae" in parts else []
    http_rows = [
        bench_http(p, args.repeats, args.steps, args.cache_dir, args.poll_ms / 1000)
        for p in presets
    ] if "http" in parts else []
    if args.json:
        print(json.dumps({"pipeline": pipeline_rows, "vae_decode": vae_rows, "http": http_rows},
                         indent=2))
        return
    if pipeline_rows or vae_rows:
        print_report(pipeline_rows, vae_rows, args.vae_size)
    if http_rows:
        print_http(http_rows)


if __name__ == "__main__":
    main()
