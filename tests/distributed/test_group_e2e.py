"""Two ranks on this machine through mlx.launch: same tokens as one process, concurrent
requests, group size reported, and a killed rank gives a clear error, never a hang.

The tests share one group and run in file order: the last one kills rank 1.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx

from vllm_mlx.engine import GenerationRequest, SamplingParams

from .conftest import rank_pid

PROMPTS = ["hello there", "The capital of France is", "1, 2, 3, 4,", "tell me a story"]


def _complete(base_url: str, prompt: str, **fields) -> dict:
    body = {"model": "default", "prompt": prompt, "max_tokens": 16, "temperature": 0,
            **fields}
    response = httpx.post(f"{base_url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_concurrent_outputs_equal_one_process_token_for_token(group_server, engine_for):
    single = engine_for("qwen3")
    cases = [(p, {}) for p in PROMPTS] + [(PROMPTS[0], {"temperature": 0.8, "seed": 7})]
    expected = [single.complete_sync(GenerationRequest(prompt=p, sampling=SamplingParams(
        max_tokens=16, **f))).text for p, f in cases]
    answers: list[str | None] = [None] * len(cases)

    def ask(i: int) -> None:
        answers[i] = _complete(group_server.base_url, cases[i][0],
                               **cases[i][1])["choices"][0]["text"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert answers == expected


def test_models_and_metrics_report_the_group(group_server):
    card = httpx.get(f"{group_server.base_url}/v1/models", timeout=10).json()["data"][0]
    assert card["group_size"] == 2 and card["parallel"] == "tensor"
    metrics = httpx.get(f"{group_server.base_url}/metrics", timeout=10).text
    assert "vllm_mlx_group_size 2" in metrics
    assert 'vllm_mlx_parallel_info{mode="tensor"} 1' in metrics


def test_killing_a_rank_fails_requests_in_flight_with_its_name(group_server):
    url = f"{group_server.base_url}/v1/completions"
    body = {"model": "default", "prompt": "go on", "max_tokens": 5000, "ignore_eos": True,
            "stream": True}
    events: list[str] = []
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        lines = response.iter_lines()
        for line in lines:  # the stream is running: now kill rank 1 under it
            if line.startswith("data:"):
                break
        os.kill(rank_pid(group_server, 1), signal.SIGKILL)
        killed = time.monotonic()
        events = [line for line in lines if line.startswith("data:")]
    assert time.monotonic() - killed < 20
    error = json.loads(events[-2 if events[-1] == "data: [DONE]" else -1][5:])
    message = error["error"]["message"]
    assert "distributed group failed" in message and "rank 1 (127.0.0.1" in message
    assert error["error"]["code"] == "distributed_group_failed"
    # The server stops on its own and says why; the command exits non-zero.
    code = group_server.process.wait(timeout=60)
    assert code != 0
    output = group_server.output()
    assert "error: the distributed group failed" in output
    assert "rank 1 (127.0.0.1) exited with -9: killed" in output
