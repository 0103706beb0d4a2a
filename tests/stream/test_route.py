"""The live-video WebSocket on a real (in-thread) uvicorn server and the tiny qwen2_vl
engine: replies, per-connection settings, bad input, auth, limits, concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.stream.conftest import (
    MESSAGE_LIMIT,
    frame_message,
    jpeg_bytes,
    next_reply,
    recv_json,
    send_window,
    wait_for,
)


async def closed_code(ws, timeout: float = 10.0) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


@pytest.mark.parametrize("path", ["/", "/v1/stream", "/v1/stream/"])
async def test_window_of_five_gets_one_reply(live_server, path):
    async with websockets.connect(live_server.url(path)) as ws:
        await send_window(ws, 1000.0)
        reply = await next_reply(ws)
    assert isinstance(reply["vlm_reply"], str) and reply["vlm_reply"]
    assert reply["timestamps"] == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3, 1000.4])
    assert reply["frames"] == 5 and reply["as_video"] is True  # qwen2_vl takes video
    assert 0 < reply["completion_tokens"] <= 48 and reply["prompt_tokens"] > 0
    assert 0 < reply["generation_s"] <= reply["latency_s"]
    assert reply["received"] == 5


@pytest.mark.parametrize("size", [(20, 20), (64, 16)])
async def test_frames_below_one_video_patch_still_get_replies(live_server, size):
    """Qwen2-VL's video processor refuses a side under 28 px: every window of such a
    camera's frames got an error instead of a reply."""
    async with websockets.connect(live_server.url()) as ws:
        for i in range(5):
            await ws.send(frame_message(2000.0 + i * 0.1, i, size))
        reply = await next_reply(ws)
    assert reply["vlm_reply"] and reply["as_video"] is True


async def test_four_frames_are_not_enough(live_server):
    async with websockets.connect(live_server.url()) as ws:
        await send_window(ws, 1.0, count=4)
        with pytest.raises(asyncio.TimeoutError):
            await recv_json(ws, timeout=1.5)
        await ws.send(frame_message(1.5))
        assert (await next_reply(ws))["frames"] == 5


async def test_settings_from_query_and_config_message(live_server):
    url = live_server.url(window=2, max_tokens=3, temperature=0, mode="images")
    async with websockets.connect(url) as ws:
        await send_window(ws, 10.0, count=2)
        reply = await next_reply(ws)
        assert reply["frames"] == 2 and reply["as_video"] is False
        assert reply["completion_tokens"] <= 3
        await ws.send(json.dumps({"config": {"window": 3, "prompt": "Count the people"}}))
        ack = await recv_json(ws)
        assert ack["config"]["window"] == 3 and ack["config"]["max_tokens"] == 3
        await send_window(ws, 20.0, count=3)
        assert (await next_reply(ws))["timestamps"] == pytest.approx([20.0, 20.1, 20.2])


async def test_greedy_replies_are_deterministic(live_server):
    texts = []
    for _ in range(2):
        async with websockets.connect(live_server.url(temperature=0, max_tokens=8)) as ws:
            await send_window(ws, 5.0)
            texts.append((await next_reply(ws))["vlm_reply"])
    assert texts[0] == texts[1]


BAD = [
    ("{oops", "invalid_json"),
    (json.dumps({"timestamp": 1.0}), "invalid_message"),
    (json.dumps({"timestamp": 1.0, "frame": "%%%"}), "invalid_base64"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode(), "unsupported_frame_format"),
    (base64.b64encode(jpeg_bytes(0)[:300]).decode(), "invalid_frame"),
    (json.dumps({"config": {"window": 0}}), "invalid_config"),
    ('{"config": {"temperature": 1' + "0" * 400 + "}}", "invalid_config"),
    ('{"timestamp": ' + "1" * 5000 + ', "frame": "x"}', "invalid_json"),
]


async def test_bad_input_gets_an_error_and_the_connection_stays_open(live_server):
    async with websockets.connect(live_server.url()) as ws:
        for message, code in BAD:
            await ws.send(message)
            error = (await recv_json(ws))["error"]
            assert error["code"] == code and error["type"] == "invalid_request_error"
        await ws.send(jpeg_bytes(0))  # a raw binary JPEG is a frame too (stamped on arrival)
        await send_window(ws, time.time(), count=4)
        assert (await next_reply(ws))["frames"] == 5


def _stream_metrics(live_server) -> dict[str, float]:
    import httpx

    from tests.stream.conftest import API_KEY

    text = httpx.get(f"http://127.0.0.1:{live_server.port}/metrics",
                     headers={"x-api-key": API_KEY}).text
    return {name: float(value) for name, value in (
        line.split() for line in text.splitlines() if line.startswith("vllm_mlx_stream_"))}


async def test_metrics_count_connections_frames_replies_and_refusals(live_server):
    before = _stream_metrics(live_server)
    async with websockets.connect(live_server.url()) as ws:
        await ws.send("{oops")
        await recv_json(ws)
        await send_window(ws, time.time())
        await next_reply(ws)
        during = _stream_metrics(live_server)
        assert during["vllm_mlx_stream_connections"] == before["vllm_mlx_stream_connections"] + 1
    for name, grew in (("frames_accepted", 5), ("replies", 1), ("messages_refused", 1)):
        key = f"vllm_mlx_stream_{name}_total"
        assert during[key] >= before[key] + grew, (name, before, during)
    await wait_for(lambda: not live_server.service.sessions)
    assert _stream_metrics(live_server)["vllm_mlx_stream_connections"] == 0


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_bad_key_closes_with_1008(live_server, key):
    async with websockets.connect(live_server.url(key=key)) as ws:
        assert await closed_code(ws) == 1008


@pytest.mark.parametrize("window", [0, "\u00b2", "1" * 5000], ids=["0", "sup2", "digits"])
async def test_bad_query_settings_close_with_1008_after_an_error(live_server, window):
    async with websockets.connect(live_server.url(window=window)) as ws:
        error = (await recv_json(ws))["error"]
        assert error["param"] == "window"
        assert await closed_code(ws) == 1008


async def test_a_server_bug_is_an_error_and_a_1011_close_not_a_dropped_socket(
        live_server, monkeypatch):
    from vllm_mlx.stream.session import StreamSession

    async def broken(self, data):
        raise RuntimeError("a bug")

    monkeypatch.setattr(StreamSession, "receive", broken)
    async with websockets.connect(live_server.url()) as ws:
        await ws.send(frame_message(time.time()))
        error = (await recv_json(ws))["error"]
        assert error["code"] == "internal_error" and "a bug" not in error["message"]
        assert await closed_code(ws) == 1011
    await wait_for(lambda: not live_server.service.sessions)


async def test_oversized_message_closes_with_1009(live_server):
    async with websockets.connect(live_server.url(), max_size=None) as ws:
        await ws.send(json.dumps({"timestamp": 1.0, "frame": "A" * MESSAGE_LIMIT}))
        assert await closed_code(ws) == 1009


async def test_fast_sender_is_never_stalled_and_memory_stays_bounded(live_server):
    url = live_server.url(max_tokens=2000, ignore_eos="true")  # a slow analysis
    async with websockets.connect(url) as ws:
        await send_window(ws, 0.0)
        await wait_for(lambda: live_server.service.analysing == 1)
        (session,) = live_server.service.sessions
        for i in range(200):
            await ws.send(frame_message(100.0 + i / 100, i))
        await wait_for(lambda: session.window.stats.received == 205)
        # all 200 accepted while the model was still busy with the first window
        assert live_server.service.analysing == 1
        assert len(session.window) == 5 and session.window.stats.evicted == 195
        assert session.window.nbytes < 5 * 20_000  # JPEG + decoded 64x48
        assert session.window.ready(5)  # the newest five wait for the next analysis


async def test_two_connections_get_only_their_own_replies(live_server):
    async def client(base: float, prompt: str) -> list[dict]:
        async with websockets.connect(live_server.url(prompt=prompt, max_tokens=6)) as ws:
            replies = []
            for round_ in range(2):
                await send_window(ws, base + round_)
                replies.append(await next_reply(ws, 60))
            return replies

    a, b = await asyncio.gather(client(1000.0, "left"), client(2000.0, "right"))
    for replies, base in ((a, 1000.0), (b, 2000.0)):
        assert len(replies) == 2
        for round_, reply in enumerate(replies):
            assert all(base + round_ <= t < base + round_ + 1 for t in reply["timestamps"])


async def test_disconnect_mid_analysis_frees_the_engine(live_server):
    service = live_server.service
    async with websockets.connect(live_server.url(max_tokens=4000, ignore_eos="true")) as ws:
        await send_window(ws, 0.0)
        await wait_for(lambda: service.analysing == 1)
    await wait_for(lambda: service.analysing == 0 and not service.sessions, timeout=5)
    started = time.monotonic()
    async with websockets.connect(live_server.url(max_tokens=4)) as ws:
        await send_window(ws, 0.0)
        await next_reply(ws, 30)
    # 4000 tokens would take many seconds: the abandoned request was cancelled
    assert time.monotonic() - started < 5.0


async def test_reply_interval(live_server):
    async with websockets.connect(live_server.url(new_frames=1, interval=0.8,
                                                  max_tokens=2)) as ws:
        sender = asyncio.create_task(_send_for(ws, seconds=2.0))
        replies = [await next_reply(ws, 30) for _ in range(3)]
        await sender
    starts = [r["timestamps"][-1] for r in replies]
    assert all(b - a >= 0.6 for a, b in zip(starts, starts[1:]))


async def _send_for(ws, seconds: float) -> None:
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        await ws.send(frame_message(time.time(), i))
        i += 1
        await asyncio.sleep(1 / 30)


def test_text_only_model_is_refused_with_1003(engine_for):
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from vllm_mlx.api.app import create_app
    from vllm_mlx.config import Settings

    app = create_app(Settings(model="tiny:qwen3"), engine_for("qwen3"))
    with TestClient(app) as client, client.websocket_connect("/v1/stream") as ws:
        assert ws.receive_json()["error"]["code"] == "model_not_vision"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
    assert info.value.code == 1003


def test_no_key_needed_when_the_server_has_none(engine_for):
    from fastapi.testclient import TestClient

    from vllm_mlx.api.app import create_app
    from vllm_mlx.config import Settings

    app = create_app(Settings(model="tiny:qwen2_vl"), engine_for("qwen2_vl"))
    with TestClient(app) as client, client.websocket_connect("/?max_tokens=2") as ws:
        for i in range(5):
            ws.send_text(frame_message(float(i), i))
        reply = ws.receive_json()
    assert "vlm_reply" in reply and reply["frames"] == 5
