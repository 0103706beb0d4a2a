"""An ASGI app served by uvicorn on a free loopback port, in a thread, for tests that need
a real socket (WebSockets, clients in other threads or processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.e2e.conftest import free_port


@contextmanager
def serving(app: Any, startup_s: float = 30.0, **config: Any) -> Iterator[int]:
    """Yield the port ``app`` listens on once uvicorn has started; stop it afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_s
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serving_tiny(engine: Any, storage: Path, name: str, **settings: Any) -> Iterator[str]:
    """The base URL of a whole server app for ``engine`` (the tiny model ``name``), storing
    under ``storage``; ``settings``: more :class:`Settings` fields."""
    from vllm_mlx.api.app import create_app
    from vllm_mlx.config import Settings

    app = create_app(Settings(model=f"tiny:{name}", storage_path=storage, **settings), engine)
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


def photo_folder(tmp_path_factory: Any, prefix: str) -> Path:
    """A new folder holding ``photo.png`` (a media root for local-path image tests)."""
    from tests.api.conftest import png_bytes

    root = tmp_path_factory.mktemp(prefix)
    (root / "photo.png").write_bytes(png_bytes(1))
    return root


def metric(base_url: str, name: str) -> float:
    """An unlabelled series' value from the server's ``/metrics``."""
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def wait_idle(base_url: str) -> None:
    """Until the engine has nothing running, prefilling or waiting (at most 20 s)."""
    deadline = time.monotonic() + 20
    busy = ("vllm_mlx_batch_size", "vllm_mlx_prefilling", "vllm_mlx_waiting")
    while any(metric(base_url, name) for name in busy):
        assert time.monotonic() < deadline, "the engine did not become idle"
        time.sleep(0.1)


def chat_about_image(base_url: str, url: str) -> dict:
    """The greedy 8-token chat reply (JSON) to an image by ``url`` and "What is this?": the
    reference other APIs' image answers are compared with."""
    body = {"model": "default", "temperature": 0, "max_tokens": 8, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "text", "text": "What is this?"}]}]}
    reply = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()
