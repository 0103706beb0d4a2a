"""Video jobs next to chat: chat latency during a job, cancel latency, shutdown time, refusal.

    python benchmarks/video_jobs_bench.py [--chat tiny:qwen3] [--requests 15] [--json]
        [--cache-dir .tiny-models] [--job-size 128x128] [--job-frames 33] [--job-steps 200]

Serves a tiny chat model with ``--video-model tiny:wan2_1`` in a subprocess, then measures:

1. chat TTFT (streamed ``/v1/chat/completions``, ``max_tokens`` 4, time to the first
   content chunk), ``--requests`` sequential requests with the server idle, then the same
   while a long video job runs (median and p90; target: during <= 2x idle);
2. cancel latency: ``DELETE`` of a running job (once during denoising, once during the VAE
   decode) until the next queued job is ``in_progress``;
3. a ``/v1/videos/sync`` client that hangs up: until the next queued job starts;
4. shutdown: ``SIGTERM`` with a job running, until the process has exited (and its code);
5. seed 002's request (1280x720, 80 frames, 40 steps): answered 400 and how fast.

Run it against another checkout with ``PYTHONPATH=that/checkout`` to compare.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from bench_client import start_serving

SEED_002 = {"prompt": "A cinematic tracking shot of a mountain lake at sunrise", "width": "1280",
            "height": "720", "num_frames": "80", "fps": "16", "num_inference_steps": "40"}
QUICK = {"prompt": "p", "num_frames": "1", "num_inference_steps": "1"}


def start_server(chat: str, cache_dir: Path, storage: Path) -> tuple[subprocess.Popen, str]:
    return start_serving([chat, "--video-model", "tiny:wan2_1", "--storage-path", str(storage),
                          "--tiny-cache-dir", str(cache_dir), "--log-level", "warning",
                          "--shutdown-grace", "5"])


def chat_ttft(http: httpx.Client) -> float:
    body = {"model": "default", "stream": True, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}
    t0 = time.perf_counter()
    first = None
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():  # read to the end: the next request starts clean
            if first is None and line.startswith("data: ") and '"content"' in line:
                first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("no content chunk")
    return first


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_ms": 1000 * statistics.median(ordered),
            "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            "max_ms": 1000 * ordered[-1], "n": len(ordered)}


def _status(http: httpx.Client, video_id: str) -> dict:
    return http.get(f"/v1/videos/{video_id}").json()


def _wait(check, timeout: float = 300.0, every: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError("timed out")


def _until_started(http: httpx.Client, video_id: str) -> None:
    _wait(lambda: _status(http, video_id)["status"] != "queued")


def measure_chat(http: httpx.Client, long_job: dict, requests: int) -> dict:
    for _ in range(3):
        chat_ttft(http)  # warm-up
    idle = [chat_ttft(http) for _ in range(requests)]
    job = http.post("/v1/videos", data=long_job).json()
    _wait(lambda: _status(http, job["id"])["progress"] > 0)
    during = []
    for _ in range(requests):
        during.append(chat_ttft(http))
        time.sleep(0.05)
    still = _status(http, job["id"])["status"] == "in_progress"
    http.delete(f"/v1/videos/{job['id']}")
    idle_stats, during_stats = _stats(idle), _stats(during)
    return {"idle": idle_stats, "during_job": during_stats, "job_ran_throughout": still,
            "ratio_median": during_stats["median_ms"] / idle_stats["median_ms"]}


def measure_cancel(http: httpx.Client, long_job: dict, at_progress: int) -> float:
    job = http.post("/v1/videos", data=long_job).json()
    follow = http.post("/v1/videos", data=QUICK).json()
    _wait(lambda: _status(http, job["id"])["progress"] >= at_progress)
    t0 = time.perf_counter()
    http.delete(f"/v1/videos/{job['id']}")
    _until_started(http, follow["id"])
    return time.perf_counter() - t0


def measure_sync_hangup(base: str, http: httpx.Client, long_job: dict) -> float:
    from urllib.parse import urlencode, urlsplit

    url = urlsplit(base)
    body = urlencode(long_job).encode()
    head = (f"POST /v1/videos/sync HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    client = socket.create_connection((url.hostname, url.port))
    client.sendall(head + body)
    time.sleep(2.0)  # the sync job is running by now
    follow = http.post("/v1/videos", data=QUICK).json()
    t0 = time.perf_counter()
    client.close()  # the client is gone
    _until_started(http, follow["id"])
    return time.perf_counter() - t0


def measure_shutdown(process: subprocess.Popen, http: httpx.Client, long_job: dict,
                     running: str | None) -> dict:
    """``running``: a job already accepted (seed 002's, where it is not refused)."""
    if running is None:
        job = http.post("/v1/videos", data=long_job).json()
        _wait(lambda: _status(http, job["id"])["progress"] > 0)
    else:
        _wait(lambda: _status(http, running)["status"] == "in_progress", timeout=600)
    t0 = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    return {"seconds": time.perf_counter() - t0, "exit_code": code,
            "aborted": "terminate called" in stderr}


def measure_refusal(http: httpx.Client) -> dict:
    t0 = time.perf_counter()
    response = http.post("/v1/videos", data=SEED_002)
    seconds = time.perf_counter() - t0
    error = response.json().get("error") if response.status_code != 200 else None
    return {"status": response.status_code, "seconds": seconds,
            "message": error["message"] if error else None,
            "accepted_id": None if error else response.json()["id"]}


def run(args: argparse.Namespace) -> dict:
    width, height = args.job_size.split("x")
    long_job = {"prompt": "a lake", "width": width, "height": height,
                "num_frames": str(args.job_frames), "num_inference_steps": str(args.job_steps)}
    short_decode = {**long_job, "num_inference_steps": "2"}
    with tempfile.TemporaryDirectory() as storage:
        process, base = start_server(args.chat, args.cache_dir, Path(storage))
        try:
            with httpx.Client(base_url=base, timeout=600) as http:
                result = {"chat_ttft": measure_chat(http, long_job, args.requests),
                          "cancel_denoise_s": measure_cancel(http, long_job, 3),
                          "cancel_decode_s": measure_cancel(http, short_decode, 60),
                          "sync_hangup_s": measure_sync_hangup(base, http, long_job),
                          "refusal": measure_refusal(http)}
                result["shutdown"] = measure_shutdown(process, http, long_job,
                                                      result["refusal"]["accepted_id"])
        finally:
            if process.poll() is None:
                process.kill()
    result["job"] = long_job
    return result


def report(result: dict) -> None:
    chat = result["chat_ttft"]
    print(f"video job: {result['job']}")
    for name in ("idle", "during_job"):
        s = chat[name]
        print(f"chat TTFT {name:10}: median {s['median_ms']:7.1f} ms  p90 {s['p90_ms']:7.1f} ms"
              f"  max {s['max_ms']:7.1f} ms  (n={s['n']})")
    print(f"chat TTFT during/idle (median): {chat['ratio_median']:.2f}x "
          f"(job ran throughout: {chat['job_ran_throughout']})")
    print(f"cancel (DELETE -> next job starts), during denoising: "
          f"{result['cancel_denoise_s']:.3f} s")
    print(f"cancel (DELETE -> next job starts), during VAE decode: "
          f"{result['cancel_decode_s']:.3f} s")
    print(f"/sync client hangs up -> next job starts: {result['sync_hangup_s']:.3f} s")
    shut = result["shutdown"]
    print(f"SIGTERM with a job running -> exited: {shut['seconds']:.3f} s, exit code "
          f"{shut['exit_code']}{' (aborted)' if shut['aborted'] else ''}")
    ref = result["refusal"]
    print(f"seed 002 request (1280x720, 80 frames, 40 steps): HTTP {ref['status']} in "
          f"{ref['seconds']:.3f} s: {ref['message']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chat", default="tiny:qwen3")
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--cache-dir", type=Path, default=Path(".tiny-models"))
    parser.add_argument("--job-size", default="128x128")
    parser.add_argument("--job-frames", type=int, default=33)
    parser.add_argument("--job-steps", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2)) if args.json else report(result)


if __name__ == "__main__":
    main()
