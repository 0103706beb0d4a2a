"""``vllm-mlx stream`` against small in-process WebSocket servers: reconnection after a
network failure, no reconnection after 1008, URL building."""

from __future__ import annotations

import argparse
import io
import json

from websockets.asyncio.server import serve

from vllm_mlx.cli import build_parser
from vllm_mlx.stream.cli import Printer, run_stream, stream_url


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["stream", *argv])


def test_bad_numbers_are_refused_before_connecting(capsys):
    for argv in (["--fps", "0"], ["--fps", "nan"], ["--jpeg-quality", "150"]):
        try:
            args_for("--test-pattern", *argv)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")
    assert "must be" in capsys.readouterr().err


def test_url_carries_key_and_settings():
    args = args_for("--url", "ws://h:1/v1/stream?x=1", "--api-key", "k k", "--window", "3",
                    "--prompt", "What & why?")
    url = stream_url(args)
    assert url.startswith("ws://h:1/v1/stream?x=1&api_key=k+k&")
    assert "prompt=What+%26+why%3F" in url and "window=3" in url


async def test_reconnects_after_a_dropped_connection(capsys):
    connections = []

    async def handler(ws):
        connections.append(ws)
        await ws.recv()  # a frame arrived
        if len(connections) == 1:
            ws.transport.abort()  # the network fails: no close frame at all
            return
        await ws.send(json.dumps({"vlm_reply": "hello again"}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = io.StringIO()
        code = await run_stream(args_for("--url", f"ws://127.0.0.1:{port}/", "--test-pattern",
                                         "--max-replies", "1", "--fps", "10"),
                                Printer(as_json=False, out=out))
    assert code == 0 and out.getvalue() == "hello again\n"
    assert len(connections) == 2 and "reconnecting" in capsys.readouterr().err


async def test_no_reconnect_after_1008(capsys):
    connections = []

    async def handler(ws):
        connections.append(ws)
        await ws.close(1008, "invalid API key")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        code = await run_stream(args_for("--url", f"ws://127.0.0.1:{port}/", "--test-pattern"),
                                Printer(as_json=False))
    assert code == 2 and len(connections) == 1
    assert "1008: invalid API key" in capsys.readouterr().err


async def test_gives_up_after_retries(capsys):
    code = await run_stream(args_for("--url", "ws://127.0.0.1:9/", "--test-pattern",
                                     "--retries", "1"), Printer(as_json=False))
    assert code == 1 and "giving up after 1 retries" in capsys.readouterr().err


async def test_finite_file_ends_after_its_last_reply(tmp_path):
    from vllm_mlx.media.testing import write_test_video

    path = write_test_video(tmp_path / "clip.mp4", seconds=1, fps=10, size=(64, 48))
    received = 0

    async def handler(ws):
        nonlocal received
        async for _ in ws:
            received += 1
            await ws.send(json.dumps({"vlm_reply": f"frame {received}", "received": received}))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = io.StringIO()
        code = await run_stream(args_for("--url", f"ws://127.0.0.1:{port}/", "--file",
                                         str(path), "--no-loop", "--fps", "25"),
                                Printer(as_json=False, out=out))
    assert code == 0 and 5 <= received <= 10  # (a loaded machine may skip a late frame)
    assert out.getvalue().splitlines()[-1] == f"frame {received}"  # waited for the last
