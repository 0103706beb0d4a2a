"""``vllm-mlx serve tiny:qwen2_vl --api-key`` in a subprocess, driven by the seed's own
Python examples (a video file in place of the camera) and by ``vllm-mlx stream``."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import start_server, stop_server

KEY = "om1_live_test_key"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("stream-logs") / "server.log"
    server = start_server(["tiny:qwen2_vl", "--api-key", KEY, "--stream-max-message-mb", "1"],
                          log)
    yield server
    assert stop_server(server) == 0


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from vllm_mlx.media.testing import write_test_video

    path = tmp_path_factory.mktemp("stream-media") / "walk.mp4"
    write_test_video(path, seconds=2, fps=30, size=(640, 480))
    return path


def ws_url(server, key: str = KEY) -> str:
    return server.base_url.replace("http://", "ws://") + f"?api_key={key}"


async def seed_videostream_example(uri: str, video_path, wanted: int) -> list[dict]:
    """The seed's "Python Example with VideoStream", a video file in place of camera 0."""
    from vllm_mlx.stream import VideoStream

    replies = []
    async with websockets.connect(uri) as websocket:
        # Initialize video stream
        vlm = VideoStream(
            frame_callback=lambda frame: asyncio.create_task(websocket.send(frame)),
            fps=30,
            resolution=(640, 480),
            jpeg_quality=70,
            device_index=0,  # Default camera (unused: source= replaces it here)
            source=video_path,
        )

        # Start video stream
        vlm.start()

        # Receive and process VLM responses
        try:
            async for message in websocket:
                data = json.loads(message)
                if "vlm_reply" in data:
                    print(f"VLM Analysis: {data['vlm_reply']}")
                    replies.append(data)
                    if len(replies) == wanted:
                        break
        finally:
            vlm.stop()
    return replies


async def seed_custom_client(ws_url: str, video_path, wanted: int) -> list[str]:
    """The seed's "Custom Implementation" with OpenCV, reading a file instead of camera 0."""
    cv2 = pytest.importorskip("cv2")
    replies: list[str] = []
    cap = cv2.VideoCapture(str(video_path))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, 640)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, 480)

    async with websockets.connect(ws_url) as websocket:
        print("Connected to VILA VLM")

        async def receive_analysis():
            async for message in websocket:
                data = json.loads(message)
                if "vlm_reply" in data:
                    print(f"VLM: {data['vlm_reply']}")
                    replies.append(data["vlm_reply"])

        receive_task = asyncio.create_task(receive_analysis())
        try:
            while True:
                ret, frame = cap.read()
                if not ret:
                    break
                _, buffer = cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
                frame_base64 = base64.b64encode(buffer).decode('utf-8')
                message = {
                    "timestamp": time.time(),
                    "frame": frame_base64
                }
                await websocket.send(json.dumps(message))
                await asyncio.sleep(1/30)
            while len(replies) < wanted:  # (added) the file is short: let replies arrive
                await asyncio.sleep(0.05)
        finally:
            cap.release()
            receive_task.cancel()
    return replies


async def test_seed_videostream_example(server, video):
    replies = await asyncio.wait_for(seed_videostream_example(ws_url(server), video, 3), 60)
    assert len(replies) == 3 and all(isinstance(r["vlm_reply"], str) for r in replies)
    assert all(r["frames"] == 5 for r in replies)
    ends = [r["timestamps"][-1] for r in replies]
    assert ends == sorted(ends) and abs(ends[-1] - time.time()) < 30


async def test_seed_custom_client(server, video):
    replies = await asyncio.wait_for(seed_custom_client(ws_url(server), video, 2), 60)
    assert len(replies) >= 2 and all(isinstance(r, str) for r in replies)


async def test_wrong_key_and_oversized_message(server):
    with pytest.raises(ConnectionClosed) as info:
        async with websockets.connect(ws_url(server, "wrong")) as ws:
            await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd.code == 1008
    with pytest.raises(ConnectionClosed) as info:
        async with websockets.connect(ws_url(server), max_size=None) as ws:
            await ws.send(json.dumps({"timestamp": 1.0, "frame": "A" * 2_000_000}))
            await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd.code == 1009


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vllm_mlx.cli", "stream", *args],
                          capture_output=True, text=True, timeout=120)


def test_stream_command_prints_replies(server, video):
    url = server.base_url.replace("http://", "ws://") + "/v1/stream"
    done = run_cli("--url", url, "--api-key", KEY, "--file", str(video), "--max-replies", "2",
                   "--json", "--max-tokens", "5")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    replies = [m for m in lines if "vlm_reply" in m]
    assert len(replies) == 2 and all(r["completion_tokens"] <= 5 for r in replies)
    plain = run_cli("--url", url, "--api-key", KEY, "--test-pattern", "--max-replies", "1")
    assert plain.returncode == 0 and plain.stdout.strip()


def test_stream_command_stops_on_1008_and_missing_camera(server):
    refused = run_cli("--url", ws_url(server, "wrong"), "--test-pattern")
    assert refused.returncode == 2 and "1008" in refused.stderr
    no_camera = run_cli("--url", ws_url(server), "--camera", "63")
    assert no_camera.returncode == 2 and "camera" in no_camera.stderr
    if sys.platform == "linux":
        assert "no camera at /dev/video63" in no_camera.stderr
