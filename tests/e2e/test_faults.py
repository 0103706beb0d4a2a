"""Faults against ``vllm-mlx serve`` subprocesses on tiny models: clients that vanish
mid-stream, mid-upload and mid-analysis free everything; SIGTERM drains in-flight requests
within ``--shutdown-grace``; SIGKILL and a restart lose nothing completed; a storage folder
that cannot be written or a full disk gives a clear 503 / 507, never a 500 or a corrupt record.

"Free" is checked from outside: ``/metrics`` shows nothing running, prefilling or waiting
and counts the cancellation; the server's open file descriptors return to their level; no
partial file or record is left; a one-connection stream limit admits the next connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import io
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets
from PIL import Image

from tests.api.conftest import png_bytes
from tests.e2e.conftest import Server, start_server, stop_server

BUSY = ("vllm_mlx_batch_size", "vllm_mlx_prefilling", "vllm_mlx_waiting")
CANCELLED = "vllm_mlx_requests_cancelled_total"
LONG = {"model": "default", "max_tokens": 8000, "ignore_eos": True, "stream": True,
        "messages": [{"role": "user", "content": "Tell me everything."}]}


def metrics(server: Server) -> dict[str, float]:
    values = {}
    for line in httpx.get(f"{server.base_url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            values[name] = float(value)
    return values


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {check}")


def wait_idle(server: Server) -> dict[str, float]:
    """The metrics once nothing runs, prefills or waits."""
    def idle() -> dict[str, float] | None:
        values = metrics(server)
        return None if any(values[k] for k in BUSY) else values

    return wait_for(idle)


def assert_answers(server: Server) -> None:
    reply = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60, json={
        "model": "default", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200, reply.text


def read_stream(url: str, body: dict[str, Any], lines: list[str], stop_after: int = 0) -> None:
    """Collect the SSE data lines; with ``stop_after``, hang up after that many content ones."""
    with httpx.Client(timeout=120) as client, client.stream("POST", url, json=body) as response, \
            contextlib.suppress(httpx.RemoteProtocolError):  # cut off: the caller checks
        for line in response.iter_lines():
            if line.startswith("data:"):
                lines.append(line)
                content = [ln for ln in lines if '"content":"' in ln and '"content":""' not in ln]
                if stop_after and len(content) >= stop_after:
                    return


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(seed))).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults") / "storage"


@pytest.fixture(scope="module")
def server(storage) -> Iterator[Server]:
    started = start_server(["tiny:qwen2_vl", "--stream-max-connections", "1",
                            "--storage-path", str(storage)], storage.parent / "server.log")
    yield started
    assert stop_server(started) == 0


# ----------------------------------------------------------------------------- disconnects


def test_client_gone_mid_stream_frees_its_request(server):
    before = metrics(server)
    lines: list[str] = []
    read_stream(f"{server.base_url}/v1/chat/completions", LONG, lines, stop_after=2)
    after = wait_idle(server)
    assert after[CANCELLED] == before[CANCELLED] + 1
    generated = after["vllm_mlx_generated_tokens_total"] - before["vllm_mlx_generated_tokens_total"]
    assert generated < LONG["max_tokens"]  # stopped, not decoded to the end
    assert after["vllm_mlx_mlx_active_memory_bytes"] > 0  # the MLX gauges are exported
    assert_answers(server)


def test_client_gone_mid_plain_request_frees_it(server):
    before = metrics(server)
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before the answer
        httpx.post(f"{server.base_url}/v1/chat/completions", timeout=1.5,
                   json={**LONG, "stream": False})
    after = wait_idle(server)
    assert after[CANCELLED] == before[CANCELLED] + 1
    assert_answers(server)


def test_client_gone_while_its_stream_waits_for_the_engine_never_runs(tmp_path):
    """A streamed request is answered once the engine accepts it; one whose client gave up
    while it waited in the queue ran anyway when a slot freed (prefill included)."""
    server = start_server(["tiny:qwen3", "--max-batch-size", "1"], tmp_path / "log")
    try:
        url = f"{server.base_url}/v1/chat/completions"
        holder_lines: list[str] = []
        holder = threading.Thread(target=read_stream, args=(url, LONG, holder_lines))
        holder.start()  # holds the only batch slot for its 8000 tokens
        wait_for(lambda: metrics(server)["vllm_mlx_batch_size"])
        before = metrics(server)
        with pytest.raises(httpx.ReadTimeout):  # queued behind the holder: no headers yet
            httpx.post(url, json={**LONG, "max_tokens": 5}, timeout=1.0)
        holder.join(60)
        after = wait_idle(server)
        started = "vllm_mlx_requests_started_total"
        assert after[started] == before[started]  # the abandoned request never started
        assert_answers(server)
    finally:
        assert stop_server(server) == 0


def _upload_head(path: str, content_type: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_client_gone_mid_upload_frees_it(server, storage):
    port = int(server.base_url.rsplit(":", 1)[1])
    process = psutil.Process(server.process.pid)
    files_before = httpx.get(f"{server.base_url}/v1/files?limit=100").json()
    fds_before = process.num_fds()
    multipart = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; '
                 b'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n')
    for path, kind, start in [("/v1/chat/completions", "application/json", b'{"messages": "'),
                              ("/v1/files", "multipart/form-data; boundary=b0undary", multipart)]:
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(_upload_head(path, kind, 32 << 20) + start + b"x" * (3 << 20))
            time.sleep(0.1)
    assert_answers(server)
    wait_for(lambda: process.num_fds() <= fds_before)  # spooled upload files were closed
    assert httpx.get(f"{server.base_url}/v1/files?limit=100").json() == files_before
    assert not list((storage / "files").glob(".*.part"))  # no partial upload left


async def _analyse_then_leave(server: Server, frame: bytes) -> None:
    uri = server.base_url.replace("http://", "ws://") + "/v1/stream?window=1&max_tokens=8000" \
        "&ignore_eos=true"
    async with websockets.connect(uri) as ws:
        await ws.send(frame)
        await asyncio.to_thread(wait_for, lambda: any(metrics(server)[k] for k in BUSY[:2]))
    async with websockets.connect(uri) as ws:  # the one allowed connection is free again
        await ws.send(json.dumps({"config": {"max_tokens": 4}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert "config" in reply, reply


def test_client_gone_mid_websocket_analysis_frees_it(server):
    before = metrics(server)
    asyncio.run(_analyse_then_leave(server, jpeg(3)))
    after = wait_idle(server)
    assert after[CANCELLED] >= before[CANCELLED] + 1
    assert_answers(server)


# ----------------------------------------------------------------------------- signals


def _refuses_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def _signal_mid_stream(server: Server, max_tokens: int) -> tuple[list[str], float, int]:
    """Stream, SIGTERM after two chunks; (data lines, seconds to exit, exit code)."""
    lines: list[str] = []
    body = {**LONG, "max_tokens": max_tokens}
    reader = threading.Thread(target=read_stream, daemon=True,
                              args=(f"{server.base_url}/v1/chat/completions", body, lines))
    reader.start()
    wait_for(lambda: len(lines) >= 3)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: _refuses_connections(server.base_url), timeout=5)
    code = server.process.wait(timeout=90)
    reader.join(timeout=30)
    return lines, time.monotonic() - signalled, code


def test_sigterm_drains_in_flight_stream(tmp_path):
    server = start_server(["tiny:qwen3", "--shutdown-grace", "60"], tmp_path / "log")
    try:
        lines, seconds, code = _signal_mid_stream(server, max_tokens=600)
    finally:
        server.process.kill()
    assert code == 0 and seconds < 60
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2][5:])
    assert last["choices"][0]["finish_reason"] == "length"
    assert "Traceback" not in server.output()


@pytest.mark.slow
def test_sigterm_grace_bounds_the_wait(tmp_path):
    server = start_server(["tiny:qwen3", "--shutdown-grace", "1"], tmp_path / "log")
    try:
        lines, seconds, code = _signal_mid_stream(server, max_tokens=8000)
    finally:
        server.process.kill()
    assert code == 0 and seconds < 15
    assert lines[-1] != "data: [DONE]"  # cut off: the grace was shorter than the request


# ----------------------------------------------------------------------------- kill, restart


LONG_SCHEMA = {"type": "object", "required": ["t"], "additionalProperties": False,
               "properties": {"t": {"type": "string", "minLength": 4000, "maxLength": 4000}}}


def _status(url: str, *wanted: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        record = httpx.get(url, timeout=30).json()
        return record if record["status"] in wanted else None

    return check


def _completed_work(base: str, upload: bytes) -> dict[str, Any]:
    """A file, a finished prediction and a finished video job, as the API returned them."""
    file = httpx.post(f"{base}/v1/files", files={"file": ("data.bin", upload)}).json()
    prediction = httpx.post(f"{base}/v1/image/generate", timeout=120, json={
        "domain": "image.caption", "images": [base64.b64encode(png_bytes(1)).decode()]}).json()
    assert prediction["status"] == "completed", prediction
    video = httpx.post(f"{base}/v1/videos", data={"prompt": "kept", "num_frames": "1",
                                                  "num_inference_steps": "1"}).json()
    video = wait_for(_status(f"{base}/v1/videos/{video['id']}", "completed"), 120)
    content = httpx.get(f"{base}/v1/videos/{video['id']}/content").content
    return {"file": file, "prediction": prediction, "video": video, "content": content}


def _running_work(base: str) -> dict[str, Any]:
    prediction = httpx.post(f"{base}/v1/image/generate", json={
        "domain": "image.caption", "images": [base64.b64encode(png_bytes(2)).decode()],
        "batch": True, "config": {"json_schema": LONG_SCHEMA, "max_tokens": 8000}}).json()
    wait_for(_status(f"{base}/v1/predictions/{prediction['id']}", "running"))
    video = httpx.post(f"{base}/v1/videos", data={"prompt": "cut short", "num_frames": "1",
                                                  "num_inference_steps": "200"}).json()
    wait_for(lambda: httpx.get(f"{base}/v1/videos/{video['id']}").json()["progress"] > 0, 120)
    return {"prediction": prediction["id"], "video": video["id"]}


@pytest.mark.slow
def test_sigkill_then_restart_keeps_completed_work(tmp_path):
    from vllm_mlx.domains.service import RESTART_REASON

    storage = tmp_path / "storage"
    args = ["tiny:qwen2_vl", "--video-model", "tiny:wan2_1", "--storage-path", str(storage)]
    upload = os.urandom(300_000)
    first = start_server(args, tmp_path / "first.log")
    try:
        done = _completed_work(first.base_url, upload)
        running = _running_work(first.base_url)
    finally:
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait(30)
    second = start_server(args, tmp_path / "second.log")
    try:
        base = second.base_url
        file, prediction, video = done["file"], done["prediction"], done["video"]
        assert httpx.get(f"{base}/v1/files/{file['id']}").json() == file
        assert httpx.get(f"{base}/v1/files/hash/{file['md5']}").json()["id"] == file["id"]
        assert (storage / "files" / f"{file['id']}.bin").read_bytes() == upload
        assert httpx.get(f"{base}/v1/predictions/{prediction['id']}").json() == prediction
        assert httpx.get(f"{base}/v1/videos/{video['id']}").json() == video
        assert httpx.get(f"{base}/v1/videos/{video['id']}/content").content == done["content"]
        cut = httpx.get(f"{base}/v1/predictions/{running['prediction']}").json()
        assert cut["status"] == "failed" and cut["error"] == RESTART_REASON
        cut_video = httpx.get(f"{base}/v1/videos/{running['video']}").json()
        assert cut_video["status"] == "failed"
        assert cut_video["error"]["code"] == "server_restarted"
        listed = httpx.get(f"{base}/v1/predictions?limit=100").json()
        assert {p["status"] for p in listed} == {"completed", "failed"}
    finally:
        assert stop_server(second) == 0


# ----------------------------------------------------------------------------- storage


STORAGE_CODES = {507: "storage_full", 503: "storage_unavailable"}


@pytest.mark.parametrize("exc, status", [
    (OSError(errno.ENOSPC, "No space left on device"), 507),
    (OSError(errno.EFBIG, "File too large"), 507),
    (sqlite3.OperationalError("database or disk is full"), 507),
    (OSError(errno.EACCES, "Permission denied"), 503),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory"), 503),
    (sqlite3.OperationalError("disk I/O error"), 503),
])
def test_storage_failures_map_to_507_or_503(exc, status, tmp_path):
    from vllm_mlx.errors import StorageError, storage_errors

    with pytest.raises(StorageError) as info, storage_errors(tmp_path):
        raise exc
    error = info.value
    assert error.status == status and error.code == STORAGE_CODES[status]
    assert str(tmp_path) in error.message and error.__cause__ is exc


def _assert_storage_error(response: httpx.Response, *statuses: int) -> str:
    assert response.status_code in statuses, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == STORAGE_CODES[response.status_code]
    return error["message"]


def test_unwritable_storage_folder_gives_clear_errors(tmp_path):
    blocker = tmp_path / "a-file"  # a folder cannot be made under a file, even by root
    blocker.write_text("not a folder")
    storage = blocker / "storage"
    video = subprocess.run([sys.executable, "-m", "vllm_mlx.cli", "serve", "tiny:wan2_1",
                            "--storage-path", str(storage), "--tiny-cache-dir",
                            str(Path(__file__).resolve().parents[2] / ".tiny-models")],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert video.returncode == 2 and str(storage) in video.stderr
    assert "Traceback" not in video.stderr
    server = start_server(["tiny:qwen2_vl", "--storage-path", str(storage)], tmp_path / "log")
    try:
        base = server.base_url
        upload = httpx.post(f"{base}/v1/files", files={"file": ("a.txt", b"hello")})
        message = _assert_storage_error(upload, 503)
        assert str(storage) in message
        prediction = httpx.post(f"{base}/v1/image/generate", timeout=60, json={
            "domain": "image.caption", "images": [base64.b64encode(png_bytes(1)).decode()]})
        _assert_storage_error(prediction, 503)
        _assert_storage_error(httpx.get(f"{base}/v1/predictions"), 503)
        assert_answers(server)  # chat does not need the storage folder
    finally:
        assert stop_server(server) == 0
    assert "Traceback" not in server.output()


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit RLIMIT_FSIZE: a write past ``limit`` fails with
    EFBIG (Python ignores SIGXFSZ), as a full disk would, without root."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _predict_until_full(base: str, tries: int = 300) -> list[str]:
    """Predictions until the database cannot grow; the messages of the refusals.

    SQLite reports a full disk (ENOSPC) as "database or disk is full" (507), but a file-size
    limit (EFBIG) as "disk I/O error" (503): both are accepted here."""
    refusals: list[str] = []
    image = base64.b64encode(png_bytes(4)).decode()
    for _ in range(tries):
        response = httpx.post(f"{base}/v1/image/generate", timeout=60, json={
            "domain": "image.caption", "images": [image], "config": {"max_tokens": 64}})
        if response.status_code != 201:
            refusals.append(_assert_storage_error(response, 507, 503))
            if len(refusals) == 3:
                break
    return refusals


@pytest.mark.slow
def test_full_disk_gives_507_and_leaves_no_corrupt_record(tmp_path):
    storage = tmp_path / "storage"
    args = ["tiny:qwen2_vl", "--storage-path", str(storage), "--log-level", "warning"]
    with file_size_limit(256 << 10):
        server = start_server(args, tmp_path / "full.log")
    try:
        base = server.base_url
        kept = httpx.post(f"{base}/v1/files", files={"file": ("small.bin", b"s" * 1000)})
        assert kept.status_code == 201, kept.text
        big = httpx.post(f"{base}/v1/files", files={"file": ("big.bin", b"b" * (1 << 20))})
        assert "full" in _assert_storage_error(big, 507)
        assert [f["id"] for f in httpx.get(f"{base}/v1/files").json()] == [kept.json()["id"]]
        assert not list((storage / "files").glob(".*"))  # no partial file left
        assert _predict_until_full(base), "the database never filled up"
        assert_answers(server)  # chat does not need the storage folder
    finally:
        assert stop_server(server) == 0
    with sqlite3.connect(storage / "vllm-mlx.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    restarted = start_server(args, tmp_path / "after.log")
    try:
        records = httpx.get(f"{restarted.base_url}/v1/predictions?limit=1000").json()
        assert records and {r["status"] for r in records} <= {"completed", "failed"}
        assert all(r["response"] is not None for r in records if r["status"] == "completed")
        files = httpx.get(f"{restarted.base_url}/v1/files?limit=100").json()
        assert [(f["id"], f["bytes"]) for f in files] == [(kept.json()["id"], 1000)]
    finally:
        assert stop_server(restarted) == 0
