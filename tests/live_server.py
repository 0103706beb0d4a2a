"""An ASGI app served by uvicorn on a free loopback port, in a thread, for tests that need
a real socket (WebSockets, clients in other threads or processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
