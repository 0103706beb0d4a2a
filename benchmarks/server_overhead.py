"""Single-stream decode speed through HTTP streaming vs in-process generation.

Runs the library's own ``stream_generate`` in this process (the baseline), then starts
``vllm-mlx serve`` on the same model and streams one chat completion of the same length
(``ignore_eos``), and prints decode tokens/s for both and their ratio.

    python benchmarks/server_overhead.py [--model tiny:qwen3:small] [--tokens 64]

Target: ratio >= 0.95 on the ``small`` preset.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import httpx

PROMPT = "Write a long story about a lighthouse keeper."


def decode_rate(times: list[float]) -> float:
    """Tokens per second between the first and the last token."""
    return (len(times) - 1) / (times[-1] - times[0])


def in_process(model_ref: str, tokens: int) -> float:
    from vllm_mlx.blas import activate_fast_blas

    activate_fast_blas()
    from vllm_mlx.engine.loader import load_model

    loaded = load_model(model_ref)
    eos = {int(i) for i in getattr(loaded.tokenizer, "eos_token_ids", []) or []}
    eos |= set(getattr(getattr(loaded.tokenizer, "stopping_criteria", None),
                       "eos_token_ids", []) or [])
    bias = {i: -1e9 for i in eos}
    messages = [{"role": "user", "content": PROMPT}]
    times: list[float] = []
    if loaded.is_vision:
        import mlx_vlm
        from mlx_vlm.prompt_utils import get_chat_template

        prompt = get_chat_template(loaded.processor, messages, True)
        stream = mlx_vlm.stream_generate(loaded.model, loaded.processor, prompt,
                                         max_tokens=tokens, temperature=0.0, logit_bias=bias)
    else:
        import mlx_lm
        from mlx_lm.sample_utils import make_logits_processors

        prompt = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      tokenize=False)
        stream = mlx_lm.stream_generate(loaded.model, loaded.tokenizer, prompt,
                                        max_tokens=tokens,
                                        logits_processors=make_logits_processors(bias))
    for _ in stream:
        times.append(time.perf_counter())
    return decode_rate(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def through_server(model_ref: str, tokens: int) -> float:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "vllm_mlx.cli", "serve", model_ref,
                               "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        body = {"model": "default", "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "stream": True}
        best = 0.0
        for _ in range(2):  # the first run warms the server up
            times: list[float] = []
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body,
                              timeout=600) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            times.append(time.perf_counter())
            best = max(best, decode_rate(times))
        return best
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen3:small")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    baseline = max(in_process(args.model, args.tokens) for _ in range(2))
    served = through_server(args.model, args.tokens)
    print(f"model {args.model}, {args.tokens} tokens, single stream")
    print(f"  in-process stream_generate: {baseline:8.1f} tok/s")
    print(f"  HTTP streaming (vllm-mlx):  {served:8.1f} tok/s")
    print(f"  ratio: {served / baseline:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
