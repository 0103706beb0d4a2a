"""Fixtures for the structured-prediction API: an in-process app on the tiny qwen2_vl engine
with its own storage folder, media to send it, and a local HTTP receiver for callbacks."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import make_client, png_bytes


def b64_png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> str:
    return base64.b64encode(png_bytes(seed, size)).decode()


def pdf_bytes(pages: int = 3) -> bytes:
    images = [Image.open(io.BytesIO(png_bytes(i, (120, 160)))).convert("RGB")
              for i in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


@pytest.fixture(scope="session")
def domain_media(tmp_path_factory) -> Path:
    from vllm_mlx.media.testing import write_test_video

    root = tmp_path_factory.mktemp("domain-media")
    (root / "photo.png").write_bytes(png_bytes(1))
    (root / "doc.pdf").write_bytes(pdf_bytes(3))
    write_test_video(root / "clip.mp4", seconds=2, fps=8, size=(64, 48))
    return root


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def client(engine_for, domain_media, storage):
    engine = engine_for("qwen2_vl")
    with make_client(engine, domain_media, storage_path=storage, allow_private_urls=True,
                     callback_secret="test-secret") as test_client:
        test_client.app.state.predictions.callbacks.backoff_s = 0.05
        yield test_client


@dataclass
class Receiver:
    """A local HTTP server recording POSTs; answers ``fail_first`` requests with 500."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_first: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if state.fail_first > 0:
                state.fail_first -= 1
                self.send_response(500)
            else:
                state.received.append((dict(self.headers), body))
                state.arrived.set()
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
