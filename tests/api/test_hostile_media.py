"""The hostile media corpus (tests/media/hostile*.py) through the real HTTP chat route.

A uvicorn server on the tiny qwen2_vl engine gets every item as a ``data:`` URL, as a file
under its ``--media-root`` and as an http URL. The URLs go to a local "origin" server, but
the app's HTTP client maps a public address (``PUBLIC_IP``) onto it, so the SSRF guard stays
on and sees a public host; redirects from there to private addresses must be refused before
they are requested (the origin logs every request: ``/secret`` must never be hit, and no
other host is ever contacted, even by a broken guard). Each answer must come within
``TIME_BOUND_S`` in the OpenAI error shape, with the expected status and a message that says
what was wrong; valid oddities (1x1 images, variable frame rate, a lying but harmless
header) must work. Meanwhile another client's stream must complete.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.live_server import serving
from tests.media.hostile import (
    Case,
    Item,
    bad_data_urls,
    bilevel_png,
    image_items,
    mislabelled_items,
    plant_path_cases,
    redirect_targets,
)
from tests.media.hostile_video import shown_frames, vfr_clip, video_items
from vllm_mlx.config import Settings
from vllm_mlx.media import DEFAULT_POLICY, MediaPolicy, load_source
from vllm_mlx.media.testing import make_test_image, read_frame_index, write_test_video

PUBLIC_IP = "93.184.216.34"  # never contacted: the app's client maps it to the origin
TIME_BOUND_S = 10.0
SLOW_S = 4.0
PNG = make_test_image(48, 32, "rgb")


@dataclass
class Origin:
    """The local server behind ``PUBLIC_IP``: serves items, redirects, records requests."""

    items: dict[str, Item]
    port: int = 0
    hits: list[str] = field(default_factory=list)
    alias: PublicAlias | None = None
    slow_started: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def url(self, path: str) -> str:
        return f"http://{PUBLIC_IP}{path}"


def origin_handler(origin: Origin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def endless(self) -> None:  # no length, never ends by itself
            self.send_response(200)
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\x00" * 65536)
            except OSError:
                pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            origin.hits.append(self.path)
            parts = urlsplit(self.path)
            name = parts.path.rsplit("/", 1)[-1]
            if parts.path.startswith("/media/") and name in origin.items:
                item = origin.items[name]
                return self.reply(200, item.data, Content_Type=item.mime)
            if parts.path == "/redirect":
                return self.reply(302, Location=parse_qs(parts.query)["to"][0])
            if parts.path == "/loop":
                return self.reply(302, Location=origin.url("/loop"))
            if parts.path == "/secret":  # reachable only if the SSRF guard failed
                return self.reply(200, PNG, Content_Type="image/png")
            if parts.path == "/delay":
                time.sleep(1.0)
                return self.reply(200, PNG, Content_Type="image/png")
            if parts.path == "/endless":
                return self.endless()
            if parts.path == "/slow":
                origin.slow_started.release()
                time.sleep(SLOW_S)
                return self.reply(200, b"<html>not an image</html>", Content_Type="image/png")
            return self.reply(404)

    return Handler


class PublicAlias(httpx.AsyncBaseTransport):
    """The app's transport: ``PUBLIC_IP`` is the origin, loopback is the origin too (so a
    private hop that slipped past the guard reaches ``/secret`` and is seen there), and any
    other host is never contacted: the attempt is recorded in ``elsewhere`` instead."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.elsewhere: list[str] = []
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        elif host not in ("127.0.0.1", "localhost", "::1"):
            self.elsewhere.append(str(request.url))
            return httpx.Response(502, request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Corpus:
    items: list[Item]
    root: Path
    cases: list[Case]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    clip = write_test_video(None, seconds=2, fps=10, size=(64, 48))
    assert isinstance(clip, bytes)
    items = [*image_items(), *video_items(clip), *mislabelled_items(PNG, clip),
             Item("mp4-variable-frame-rate", "video", vfr_clip(), "video/mp4", 200,
                  suffix=".mp4")]
    root, outside = tmp_path_factory.mktemp("media"), tmp_path_factory.mktemp("outside")
    for item in items:
        (root / f"{item.name}{item.suffix}").write_bytes(item.data)
    caps = (DEFAULT_POLICY.max_image_bytes, DEFAULT_POLICY.max_video_bytes)
    return Corpus(items, root, plant_path_cases(root, outside, PNG, caps))


@pytest.fixture(scope="module")
def origin(corpus) -> Iterator[Origin]:
    state = Origin({item.name: item for item in corpus.items})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), origin_handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def base_url(engine_for, corpus, origin, tmp_path_factory) -> Iterator[str]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen2_vl", media_roots=(corpus.root,),
                        storage_path=tmp_path_factory.mktemp("hostile-store"))
    app = create_app(settings, engine_for("qwen2_vl"))
    with serving(app) as port:
        origin.alias = PublicAlias(origin.port)
        app.state.serving.http = httpx.AsyncClient(transport=origin.alias)
        yield f"http://127.0.0.1:{port}"


def reference_for(item: Item, transport: str, origin: Origin) -> str:
    if transport == "data":
        return f"data:{item.mime};base64,{base64.b64encode(item.data).decode()}"
    if transport == "path":
        return f"{item.name}{item.suffix}"
    return origin.url(f"/media/{item.name}")


def chat_body(kind: str, reference: str, **extra: Any) -> dict[str, Any]:
    part = {"type": f"{kind}_url", f"{kind}_url": {"url": reference}}
    return {"model": "default", "max_tokens": 2, "temperature": 0, "video_fps": 4.0,
            "video_max_frames": 16, **extra,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]}


def ask(base_url: str, kind: str, reference: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.post(f"{base_url}/v1/chat/completions", json=chat_body(kind, reference),
                          timeout=60)
    return response, time.monotonic() - start


def mismatch(name: str, response: httpx.Response, elapsed: float, status: int,
             words: str = "", code: str | None = None) -> str | None:
    """Why the answer is wrong, or None when it is right."""
    where = f"{name}: HTTP {response.status_code} in {elapsed:.2f} s: {response.text[:300]}"
    if elapsed > TIME_BOUND_S:
        return f"{where} (slower than {TIME_BOUND_S} s)"
    if response.status_code != status:
        return f"{where} (expected {status})"
    if status == 200:
        return None if response.json()["choices"][0]["message"]["content"] is not None else where
    error = response.json().get("error", {})
    if set(error) != {"message", "type", "param", "code"}:
        return f"{where} (not the OpenAI error shape)"
    if code is not None and error["code"] != code:
        return f"{where} (expected code {code})"
    if not re.search(words, error["message"], re.I):
        return f"{where} (message does not match {words!r})"
    return None


def assert_no_problems(problems: Sequence[str | None]) -> None:
    found = [p for p in problems if p]
    assert not found, "\n".join(found)


def check_items(base_url: str, items: list[Item], transport: str, origin: Origin
                ) -> list[str | None]:
    return [mismatch(item.name, *ask(base_url, item.kind, reference_for(item, transport, origin)),
                     item.status, item.words, item.code)
            for item in items if transport in item.transports]


@pytest.mark.parametrize("transport", ["data", "path", "url"])
def test_every_corpus_item(base_url, corpus, origin, transport):
    assert_no_problems(check_items(base_url, corpus.items, transport, origin))


def check_cases(base_url: str, cases: list[Case]) -> list[str | None]:
    return [mismatch(case.name, *ask(base_url, case.kind, case.reference), case.status,
                     case.words, case.code) for case in cases]


def test_bad_data_urls(base_url):
    assert_no_problems(check_cases(base_url, bad_data_urls(PNG, DEFAULT_POLICY.max_image_bytes)))


def test_extreme_aspect_ratio_is_a_client_error(base_url):
    strip = "data:image/png;base64," + base64.b64encode(bilevel_png(1, 20_000)).decode()
    assert_no_problems(check_cases(base_url, [Case("png-1x20000", "image", strip, 400,
                                                   "aspect ratio")]))


def test_traversal_and_symlinks_out_of_the_media_root(base_url, corpus):
    assert_no_problems(check_cases(base_url, corpus.cases))


def test_redirects_to_private_addresses_are_refused_before_any_request(base_url, origin):
    cases = [Case(name, "image", origin.url(f"/redirect?to={quote(target, safe='')}"),
                  status, words) for name, (target, status, words)
             in redirect_targets(origin.port).items()]
    second_hop = origin.url(f"/redirect?to={quote(f'http://127.0.0.1:{origin.port}/secret')}")
    cases += [Case("second-hop-to-loopback", "image",
                   origin.url(f"/redirect?to={quote(second_hop, safe='')}"), 403, "non-public"),
              Case("redirect-loop", "image", origin.url("/loop"), 400, "redirects"),
              Case("endless-body", "image", origin.url("/endless"), 413, "download stopped")]
    assert_no_problems(check_cases(base_url, cases))
    assert not [hit for hit in origin.hits if hit.startswith("/secret")]
    assert origin.alias is not None and origin.alias.elsewhere == []


async def test_a_shared_client_timeout_does_not_cut_the_fetch_timeout_short(origin):
    # the app shares one client (httpx's default timeout: 5 s); the policy's timeout rules
    policy = MediaPolicy(fetch_timeout_s=10.0)
    async with httpx.AsyncClient(transport=PublicAlias(origin.port), timeout=0.2) as client:
        media = await load_source(origin.url("/delay"), kind="image", policy=policy,
                                  client=client)
    assert media.data == PNG


def test_variable_frame_rate_video_samples_frames_by_timestamp(base_url, corpus, origin,
                                                               monkeypatch):
    import vllm_mlx.content as content

    sampled: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        sampled.append(real(*args, **kwargs))
        return sampled[-1]

    real = content.sample_video
    monkeypatch.setattr(content, "sample_video", spy)
    (item,) = [i for i in corpus.items if i.name == "mp4-variable-frame-rate"]
    for transport in ("data", "path", "url"):
        response, _ = ask(base_url, "video", reference_for(item, transport, origin))
        assert response.status_code == 200, response.text
        video = sampled[-1]
        assert video.duration == pytest.approx(3.0, abs=0.1)
        assert len(video.timestamps) == 12  # ceil(3 s * 4 fps), under video_max_frames 16
        seen = [read_frame_index(frame) for frame in video.frames]
        assert seen == shown_frames(video.timestamps), transport
    assert len(sampled) == 3


def stream_text(base_url: str, body: dict[str, Any]) -> tuple[str, list[str]]:
    """The streamed reply's text and its finish reasons; fails on an error chunk."""
    text, reasons, lines = [], [], []
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body,
                      timeout=60) as response:
        assert response.status_code == 200
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    for line in lines[:-1]:
        chunk = json.loads(line)
        assert "error" not in chunk, chunk
        for choice in chunk["choices"]:
            text.append(choice["delta"].get("content") or "")
            reasons += [choice["finish_reason"]] if choice["finish_reason"] else []
    return "".join(text), reasons


def test_other_clients_are_served_during_a_hostile_barrage(base_url, corpus, origin):
    body = chat_body("image", "photo.png", max_tokens=48, ignore_eos=True)
    expected = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60).json()
    hostile = [(item, transport) for item in corpus.items if item.status != 200
               for transport in item.transports]
    with ThreadPoolExecutor(max_workers=8) as pool:
        slow = [pool.submit(ask, base_url, "image", origin.url(f"/slow?{i}")) for i in range(2)]
        for _ in slow:  # both slow fetches are in flight before anything else starts
            assert origin.slow_started.acquire(timeout=TIME_BOUND_S)
        barrage = [pool.submit(ask, base_url, item.kind, reference_for(item, transport, origin))
                   for item, transport in hostile]
        text, reasons = stream_text(base_url, {**body, "stream": True})
        slow_still_running = not any(future.done() for future in slow)
        problems = [mismatch(f"{item.name}/{transport}", *future.result(), item.status,
                             item.words, item.code)
                    for (item, transport), future in zip(hostile, barrage)]
        problems += [mismatch("slow", *future.result(), 400, "not a readable image")
                     for future in slow]
    assert text == expected["choices"][0]["message"]["content"]
    assert reasons == ["length"]
    assert slow_still_running, "the stream did not finish while the slow fetches were open"
    assert_no_problems(problems)
