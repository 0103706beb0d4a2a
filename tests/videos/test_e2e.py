"""``vllm-mlx serve`` in a subprocess with a tiny Wan model: the seed's curl commands, the
official OpenAI SDK's ``client.videos``, chat next to videos, and a kill mid-job + restart.

The seed's commands are run as written (curl, jq, the same fields and flags) with only the
host changed and the clip shrunk: the seed asks for 1280x720, 80 frames and 40 steps, which a
random-weight model on a CPU cannot do in a test (the transformer alone would attend over
75k tokens). ``test_seed_commands_with_seed_values_are_accepted`` sends them with the seed's
own values and checks what was queued, without running them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.e2e.conftest import Server, start_server, stop_server
from tests.videos.conftest import mp4_info, png_bytes, wait_for

SEED_CREATE = """create_response=$(curl -s http://localhost:8091/v1/videos \\
-F "prompt=A cinematic tracking shot of a mountain lake at sunrise" \\
-F "width=1280" \\
-F "height=720" \\
-F "num_frames=80" \\
-F "fps=16" \\
-F "num_inference_steps=40")
video_id=$(echo "${create_response}" | jq -r '.id')"""
SEED_POLL_DOWNLOAD = """curl -s "http://localhost:8091/v1/videos/${video_id}" | jq .
curl -L "http://localhost:8091/v1/videos/${video_id}/content" -o output.mp4"""
# the seed page shows "[email protected]" (an e-mail obfuscator ate "input_reference=@image.png")
SEED_I2V = """curl -s http://localhost:8091/v1/videos \\
-F "prompt=animate this image with subtle camera movement" \\
-F "input_reference=@image.png" \\
-F "width=1280" \\
-F "height=720" \\
-F "num_frames=80" \\
-F "fps=16\""""
SEED_SYNC = """curl -X POST http://localhost:8091/v1/videos/sync \\
-F "prompt=A small robot walking through a neon city" \\
-F "width=854" \\
-F "height=480" \\
-F "num_frames=80" \\
-F "fps=16" \\
-o output.mp4"""
SMALL = {'"width=1280"': '"width=48"', '"height=720"': '"height=32"',
         '"width=854"': '"width=46"', '"height=480"': '"height=32"',
         '"num_frames=80"': '"num_frames=5"', '"fps=16"': '"fps=8"',
         '"num_inference_steps=40")': '"num_inference_steps=2")'}
SMALL_STEPS = '-F "num_inference_steps=2" \\\n'  # added to the two commands that lack it


def shell(script: str, server: Server, cwd: Path, small: bool = True) -> str:
    script = script.replace("http://localhost:8091", server.base_url)
    if small:
        for old, new in SMALL.items():
            script = script.replace(old, new)
        script = script.replace('-F "width=', SMALL_STEPS + '-F "width=', 1)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, check=True,
                          capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A video-only server: ``vllm-mlx serve tiny:wan2_1`` (detected as a video model)."""
    root = tmp_path_factory.mktemp("video-e2e")
    started = start_server(["tiny:wan2_1", "--storage-path", str(root / "storage")],
                           root / "server.log")
    yield started
    stop_server(started)


@pytest.fixture()
def sdk(server) -> OpenAI:
    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks the Sora API deprecated
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="not-needed")


def test_seed_create_poll_download(server, tmp_path) -> None:
    script = f"{SEED_CREATE}\necho \"$video_id\"\n"
    video_id = shell(script, server, tmp_path).strip()
    assert video_id.startswith("video_")
    wait_for(lambda: httpx.get(f"{server.base_url}/v1/videos/{video_id}").json()["status"]
             == "completed")
    poll = shell(f'video_id={video_id}\n{SEED_POLL_DOWNLOAD}', server, tmp_path)
    assert f'"id": "{video_id}"' in poll and '"status": "completed"' in poll
    assert mp4_info((tmp_path / "output.mp4").read_bytes()) == (48, 32, 5, 8.0)


def test_seed_image_to_video(server, tmp_path) -> None:
    (tmp_path / "image.png").write_bytes(png_bytes(5, (64, 40)))
    record = httpx.Response(200, content=shell(SEED_I2V, server, tmp_path)).json()
    assert record["status"] == "queued" and record["size"] == "48x32"
    wait_for(lambda: httpx.get(f"{server.base_url}/v1/videos/{record['id']}").json()["status"]
             == "completed")


def test_seed_sync(server, tmp_path) -> None:
    shell(SEED_SYNC, server, tmp_path)
    # 46 is not a multiple of 16 (like the seed's 854): generated at 48, centre-cropped back
    assert mp4_info((tmp_path / "output.mp4").read_bytes()) == (46, 32, 5, 8.0)


@pytest.mark.slow
def test_seed_commands_with_seed_values_are_accepted(server, tmp_path) -> None:
    base = f"{server.base_url}/v1/videos"
    # keeps the worker busy (tens of seconds) while the seed-sized jobs wait: they are checked
    # and deleted before they could start (a CPU could not finish them)
    blocker = httpx.post(base, data={"prompt": "hold the worker", "size": "640x640",
                                     "num_frames": "1", "num_inference_steps": "200"}).json()
    wait_for(lambda: httpx.get(f"{base}/{blocker['id']}").json()["progress"] > 0)
    (tmp_path / "image.png").write_bytes(png_bytes(6))
    try:
        video_id = shell(f"{SEED_CREATE}\necho \"$video_id\"", server, tmp_path, small=False)
        record = httpx.get(f"{base}/{video_id.strip()}").json()
        i2v = httpx.Response(200, content=shell(SEED_I2V, server, tmp_path, small=False)).json()
        for queued in (record, i2v):
            assert queued["status"] == "queued" and queued["size"] == "1280x720"
            assert queued["settings"]["num_frames"] == 81 and queued["settings"]["fps"] == 16
            assert any("num_frames 80 rounded to 81" in n for n in queued["notes"])
        assert record["settings"]["num_inference_steps"] == 40
    finally:
        for video in httpx.get(base, params={"limit": 100}).json()["data"]:
            if video["status"] in ("queued", "in_progress"):
                httpx.delete(f"{base}/{video['id']}")
    assert httpx.get(f"{base}/{blocker['id']}").status_code == 404


def test_openai_sdk_videos(sdk, tmp_path) -> None:
    small = {"num_inference_steps": 1, "fps": 4}
    video = sdk.videos.create_and_poll(prompt="a red kite", size="48x32", seconds="1",
                                       extra_body=small, poll_interval_ms=50)
    assert video.status == "completed" and video.progress == 100 and video.size == "48x32"
    assert video.seconds == "1"  # 1 s * 4 fps = 4 frames -> 5 (1 + 4k)
    assert sdk.videos.retrieve(video.id).id == video.id
    content = sdk.videos.download_content(video.id)
    content.write_to_file(tmp_path / "sdk.mp4")
    assert mp4_info((tmp_path / "sdk.mp4").read_bytes()) == (48, 32, 5, 4.0)
    other = sdk.videos.create(prompt="a blue kite", size="48x32", extra_body=small)
    assert other.status == "queued"
    assert sdk.videos.poll(other.id, poll_interval_ms=50).status == "completed"
    first_page = sdk.videos.list(limit=1)
    assert len(first_page.data) == 1 and first_page.has_more
    every = [v.id for v in sdk.videos.list(limit=1, order="asc")]  # auto-paginates on last_id
    assert every.index(video.id) < every.index(other.id)
    deleted = sdk.videos.delete(other.id)
    assert deleted.deleted and deleted.id == other.id and deleted.object == "video.deleted"


def test_openai_sdk_failed_poll_ends_and_errors(sdk) -> None:
    from openai import BadRequestError, NotFoundError

    with pytest.raises(BadRequestError, match="num_inference_steps"):
        sdk.videos.create(prompt="x", extra_body={"num_inference_steps": 0})
    with pytest.raises(NotFoundError):
        sdk.videos.retrieve("video_missing")


def test_video_only_server_has_no_chat(server) -> None:
    assert "generating videos as 'tiny:wan2_1'" in server.output()
    assert "RANDOM weights" in server.output()
    chat = httpx.post(f"{server.base_url}/v1/chat/completions",
                      json={"model": "default", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_found"
    models = httpx.get(f"{server.base_url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["tiny:wan2_1"]


@pytest.mark.slow
def test_serve_chat_model_with_video_model(tmp_path) -> None:
    started = start_server(["tiny:qwen2_vl", "--video-model", "tiny:wan2_1",
                            "--storage-path", str(tmp_path / "storage")], tmp_path / "log")
    try:
        base = started.base_url
        job = httpx.post(f"{base}/v1/videos",
                         data={"prompt": "busy", "num_frames": "1", "num_inference_steps": "30"})
        chat = httpx.post(f"{base}/v1/chat/completions", timeout=60, json={
            "model": "default", "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200, chat.text
        assert isinstance(chat.json()["choices"][0]["message"]["content"], str)
        record = wait_for(lambda: (r := httpx.get(f"{base}/v1/videos/{job.json()['id']}").json())
                          ["status"] == "completed" and r)
        assert record["model"] == "tiny:wan2_1"
    finally:
        stop_server(started)


def test_killed_mid_job_then_restarted(tmp_path) -> None:
    args = ["tiny:wan2_1", "--storage-path", str(tmp_path / "storage")]
    first = start_server(args, tmp_path / "first.log")
    base = f"{first.base_url}/v1/videos"
    try:
        done = httpx.post(base, data={"prompt": "kept", "num_frames": "1",
                                      "num_inference_steps": "1"}).json()
        wait_for(lambda: httpx.get(f"{base}/{done['id']}").json()["status"] == "completed")
        running = httpx.post(base, data={"prompt": "cut short", "num_frames": "1",
                                         "num_inference_steps": "200"}).json()
        waiting = httpx.post(base, data={"prompt": "runs later", "num_frames": "1",
                                         "num_inference_steps": "1"}).json()
        wait_for(lambda: httpx.get(f"{base}/{running['id']}").json()["progress"] > 0)
    finally:
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait(10)
    second = start_server(args, tmp_path / "second.log")
    base = f"{second.base_url}/v1/videos"
    try:
        failed = httpx.get(f"{base}/{running['id']}").json()
        assert failed["status"] == "failed" and failed["error"]["code"] == "server_restarted"
        wait_for(lambda: httpx.get(f"{base}/{waiting['id']}").json()["status"] == "completed")
        for video_id in (done["id"], waiting["id"]):
            assert httpx.get(f"{base}/{video_id}/content").status_code == 200
        statuses = {v["id"]: v["status"] for v in httpx.get(base).json()["data"]}
        assert statuses == {done["id"]: "completed", running["id"]: "failed",
                            waiting["id"]: "completed"}
    finally:
        stop_server(second)


def test_video_only_server_log_and_tiny_model_cli(tmp_path) -> None:
    cli = [sys.executable, "-m", "vllm_mlx.cli"]
    out = subprocess.run([*cli, "tiny-model", str(tmp_path / "wan"), "--arch", "wan2_1"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert Path(out.stdout.strip()) == tmp_path / "wan"
    from vllm_mlx.diffusion import is_video_model_folder

    assert is_video_model_folder(tmp_path / "wan")
    start = time.monotonic()
    bad = subprocess.run([*cli, "serve", "x", "--video-model", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not a video model" in bad.stderr
    assert time.monotonic() - start < 60
