"""Python API scripts exit cleanly (status 0, no "terminate called") however they end:
the README's example as written, with fast BLAS off, with a streaming iterator left
unfinished, with another thread mid-generation, and on Ctrl-C.

Each scenario runs as its own interpreter: the abort happened only while the interpreter
finalized with the engine's owner thread still inside MLX (see ``vllm_mlx.engine.engine``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ABORT = "terminate called"

STREAM_UNFINISHED = """
from vllm_mlx.models import MLXMultimodalLM

mllm = MLXMultimodalLM("tiny:qwen2_vl")
mllm.load()
chunks = mllm.stream_generate("Describe this image.", images="photo.jpg", max_tokens=2000,
                              ignore_eos=True)
print("first:", repr(next(chunks)))
"""

THREAD_GENERATING = """
import threading
from vllm_mlx.models import MLXMultimodalLM

mllm = MLXMultimodalLM("tiny:qwen2_vl")
mllm.load()
started = threading.Event()

def work():
    for _ in mllm.stream_generate("Describe this image.", images="photo.jpg",
                                  max_tokens=MAX_TOKENS, ignore_eos=True):
        started.set()

threading.Thread(target=work, daemon=DAEMON).start()
started.wait()
print("main returns")
"""

CTRL_C = """
import os, signal, threading
from vllm_mlx.models import MLXMultimodalLM

mllm = MLXMultimodalLM("tiny:qwen2_vl")
mllm.load()
chunks = mllm.stream_generate("Describe this image.", images="photo.jpg", max_tokens=2000,
                              ignore_eos=True)
next(chunks)
threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    for _ in chunks:
        pass
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
    if RERAISE:
        raise
"""

def readme_example() -> str:
    """The README's Python API example, as written."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## Python API\n+```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no ```python block under '## Python API'"
    return match.group(1)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """The files the README's example names, in a folder to run it from."""
    from PIL import Image

    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("exit")
    Image.new("RGB", (48, 40), (200, 40, 40)).save(root / "photo.jpg")
    Image.new("RGB", (40, 40), (40, 200, 40)).save(root / "img1.jpg")
    Image.new("RGB", (32, 40), (40, 40, 200)).save(root / "img2.jpg")
    write_test_video(root / "video.mp4", seconds=2, fps=4, size=(64, 48))
    return root


def run(code: str, cwd: Path, *, fast_blas: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` as ``__main__`` of a fresh interpreter in ``cwd``."""
    (cwd / "script.py").write_text(code)
    launcher = (f"from vllm_mlx.blas import activate_fast_blas; activate_fast_blas({fast_blas})"
                "\nimport runpy; runpy.run_path('script.py', run_name='__main__')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([sys.executable, "-c", launcher], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def assert_clean(done: subprocess.CompletedProcess, status: int = 0) -> None:
    assert ABORT not in done.stderr, done.stderr[-2000:]
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])


@pytest.mark.parametrize("attempt", range(3))
def test_readme_example_exits_cleanly(media, attempt):
    done = run(readme_example(), media)
    assert_clean(done)
    assert done.stdout.count("\n") >= 3  # three answers printed


@pytest.mark.parametrize("attempt", range(2))
def test_readme_example_without_fast_blas(media, attempt):
    done = run(readme_example(), media, fast_blas=False)
    assert_clean(done)
    assert done.stdout.count("\n") >= 3


@pytest.mark.parametrize("attempt", range(2))
def test_unfinished_stream(media, attempt):
    done = run(STREAM_UNFINISHED, media)
    assert_clean(done)
    assert done.stdout.startswith("first: ")


@pytest.mark.parametrize(("daemon", "max_tokens"), [(True, 2000), (False, 40)])
def test_thread_mid_generation(media, daemon, max_tokens):
    """A daemon thread's stream ends with EngineClosed; a non-daemon one is waited for."""
    code = THREAD_GENERATING.replace("DAEMON", str(daemon))
    done = run(code.replace("MAX_TOKENS", str(max_tokens)), media)
    assert_clean(done)
    assert done.stdout == "main returns\n"


@pytest.mark.parametrize("reraise", [False, True])
def test_ctrl_c_mid_generation(media, reraise):
    """Caught, the stream is left open (still generating); uncaught, it ends at once."""
    done = run(CTRL_C.replace("RERAISE", str(reraise)), media)
    assert_clean(done, -signal.SIGINT if reraise else 0)  # -SIGINT: Python's own for Ctrl-C
    assert done.stdout == "interrupted\n"


def test_shutdown_stops_a_full_batch_at_once(tiny_model):
    """Exit waits for one step, not for a running job to finish (even with no free slot
    for the owner thread to notice the stop request in its queue)."""
    from vllm_mlx.engine import Engine, EngineClosed, GenerationRequest, SamplingParams

    engine = Engine.start(str(tiny_model("qwen3")), max_batch=1)
    request = GenerationRequest(prompt="hello",
                                sampling=SamplingParams(max_tokens=5000, ignore_eos=True))
    chunks = engine.generate_sync(request)
    next(chunks)
    outcome: list[BaseException] = []

    def drain() -> None:
        try:
            list(chunks)
        except EngineClosed as exc:
            outcome.append(exc)

    reader = threading.Thread(target=drain)
    reader.start()
    began = time.monotonic()
    engine.shutdown()
    reader.join(10)
    assert time.monotonic() - began < 5
    assert outcome and not engine._thread.is_alive()
