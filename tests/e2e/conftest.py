"""Start ``vllm-mlx serve`` as a real subprocess on a free port and wait until healthy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TINY_CACHE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(args: list[str], log: Path, timeout: float = 120.0) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "vllm_mlx.cli", "serve", *args, "--port", str(port),
               "--tiny-cache-dir", str(TINY_CACHE)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{server.output()}")


def stop_server(server: Server) -> int:
    server.process.send_signal(signal.SIGINT)
    try:
        return server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return -9


@pytest.fixture(scope="module")
def vl_server(tmp_path_factory, media_files) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    server = start_server(["tiny:qwen2_vl", "--media-root", str(media_files)], log)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def media_files(tmp_path_factory) -> Path:
    from tests.api.conftest import png_bytes
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("e2e-media")
    (root / "photo.jpg").write_bytes(png_bytes(11))
    write_test_video(root / "video.mp4", seconds=4, fps=12, size=(64, 48))
    return root
