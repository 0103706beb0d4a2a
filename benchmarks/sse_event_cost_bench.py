"""The event loop's cost per SSE event, piece by piece, without a model or sockets (issue 25).

    PYTHONPATH=. python benchmarks/sse_event_cost_bench.py [--events 20000] [--repeat 5]

Measures, in microseconds per event (best of ``--repeat``):

* ``render``: one plain-text token's event in the chat stream: through the models
  (``serving_chat._deltas`` builds a ``ChatChunkChoice``, ``ChunkRenderer`` encodes it) and
  through the fast path (``serving_chat._plain_events``), for a model without a reasoning
  format and for one (``<think>``) past its reasoning;
* ``protocol``: one ``http.response.body`` message sent by an ASGI app through uvicorn's
  HTTP protocol to a transport that only counts bytes: h11 (pure Python), httptools, and
  the server's own protocol (``api.connections.guarded_protocol``, httptools-based).

The loop's whole cost per token (``http_overhead_bench.py``'s ``loop µs/token``) also holds
the Starlette response and middleware send wrappers, the generator hand-offs and the socket
write; this isolates the parts issue 25 changed, so a before/after is not lost in the noise
of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from vllm_mlx.api.connections import ConnectionLimits, guarded_protocol
from vllm_mlx.engine import GenerationChunk
from vllm_mlx.openai.reasoning import ThinkStream
from vllm_mlx.openai.serving_chat import _deltas, _plain_events
from vllm_mlx.openai.serving_common import ChunkRenderer

REQUEST = b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n"


class CountingTransport(asyncio.Transport):
    """A transport that counts what is written and never blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self._protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def protocol_cost(protocol_class: type, event: bytes, events: int) -> float:
    """Seconds per body message a bare ASGI app sends through ``protocol_class``."""
    spent: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        start = time.perf_counter()
        for _ in range(events):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        spent.append(time.perf_counter() - start)
        await send({"type": "http.response.body", "body": b""})

    return await serve_once(protocol_class, app, spent) / events


def server_app(event: str, events: int, spent: list[float]) -> Any:
    """The server's own app (its middleware stack) with one more route streaming ``event``
    ``events`` times as the chat route does (a ``StreamingResponse`` of str)."""
    import tempfile

    from fastapi.responses import StreamingResponse

    from vllm_mlx.api.app import create_app
    from vllm_mlx.config import Settings

    async def stream() -> Any:
        start = time.perf_counter()
        for _ in range(events):
            yield event
        spent.append(time.perf_counter() - start)

    async def route() -> StreamingResponse:
        return StreamingResponse(stream(), media_type="text/event-stream")

    app = create_app(Settings(model="none", storage_path=tempfile.mkdtemp()), None)
    app.add_api_route("/v1/chat/completions", route, methods=["GET"])
    return app


async def serve_once(protocol_class: type, app: Any, spent: list[float]) -> float:
    """Run one request through ``protocol_class`` serving ``app``; the time ``app`` put in
    ``spent``."""
    config = Config(app, log_level="warning", lifespan="off")
    config.load()
    protocol = protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
    transport = CountingTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    while not spent:
        await asyncio.sleep(0.01)
    protocol.connection_lost(None)
    return spent[0]


def render_costs(events: int, repeat: int) -> dict[str, float]:
    """Seconds per plain-text event: through the models, and through the fast path (for a
    model without a reasoning format, and for one past its reasoning)."""
    render = ChunkRenderer("chatcmpl-0123456789abcdef", 1_700_000_000, "tiny:qwen3")
    piece = GenerationChunk(text=" hello", token_ids=(5,), completion_tokens=3)
    thinker = ThinkStream()
    thinker.feed("<think>plan</think>\n\nHi")  # in the reply by now

    def through_models(thinker: ThinkStream | None) -> Callable[[], None]:
        return lambda: [render([c]) for c in _deltas(0, piece, None, False, thinker)]

    def fast_path(thinker: ThinkStream | None) -> Callable[[], None]:
        return lambda: _plain_events(render, 0, piece, thinker)

    steps = {"models": through_models(None), "fast path": fast_path(None),
             "models, reasoning model": through_models(thinker),
             "fast path, reasoning model": fast_path(thinker)}
    return {name: min(timeit.repeat(step, number=events, repeat=repeat)) / events
            for name, step in steps.items()}


async def protocol_costs(events: int, repeat: int) -> dict[str, float]:
    render = ChunkRenderer("chatcmpl-0123456789abcdef", 1_700_000_000, "tiny:qwen3")
    event = render.text(0, " hello").encode()
    classes = {"h11": H11Protocol, "httptools": HttpToolsProtocol,
               "ours (guarded httptools)": guarded_protocol(ConnectionLimits())}
    best = dict.fromkeys(classes, float("inf"))
    stack = "ours + the server's app (middleware, StreamingResponse)"
    best[stack] = float("inf")
    for _ in range(repeat):  # interleaved, so load changes touch every protocol alike
        for name, protocol_class in classes.items():
            best[name] = min(best[name], await protocol_cost(protocol_class, event, events))
        spent: list[float] = []
        app = server_app(event.decode(), events, spent)
        best[stack] = min(best[stack], await serve_once(classes["ours (guarded httptools)"],
                                                        app, spent) / events)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [("render", name, s) for name, s in render_costs(args.events, args.repeat).items()]
    rows += [("protocol", name, s)
             for name, s in asyncio.run(protocol_costs(args.events, args.repeat)).items()]
    print("| part | path | µs/event |\n|---|---|---:|")
    for part, name, seconds in rows:
        print(f"| {part} | {name} | {seconds * 1e6:.2f} |")


if __name__ == "__main__":
    main()
