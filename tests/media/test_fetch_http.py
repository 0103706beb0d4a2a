"""http(s) fetching: SSRF guard on every hop, redirects, byte cap while streaming, timeouts."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from vllm_mlx.media import (
    MediaFetchError,
    MediaNotAllowed,
    MediaPolicy,
    MediaTooLarge,
    decode_image,
    load_source,
    load_source_sync,
)
from vllm_mlx.media.netguard import check_public_host, is_public_address
from vllm_mlx.media.testing import make_test_image

PNG = make_test_image(4, 4, "rgb")
PUBLIC_IP = "93.184.216.34"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        back_to_us = f"http://{self.headers['Host']}/img.png"  # absolute Location
        routes = {
            "/img.png": lambda: self._send(200, PNG, Content_Type="image/png"),
            "/r1": lambda: self._send(302, Location="/r2"),
            "/r2": lambda: self._send(301, Location=back_to_us),
            "/loop": lambda: self._send(302, Location="/loop"),
            "/to-file": lambda: self._send(302, Location="file:///etc/passwd"),
            "/missing": lambda: self._send(404, b"no"),
            "/big-declared": lambda: self._send(200, b"x" * 2000, Content_Length="2000"),
            "/endless": self._endless,
            "/slow": self._slow,
        }
        routes.get(self.path.split("?")[0], lambda: self._send(404))()

    def _endless(self) -> None:  # no Content-Length: close-delimited, never ends by itself
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(100_000):
                self.wfile.write(b"\xff" * 65536)
        except OSError:
            pass

    def _slow(self) -> None:
        time.sleep(2)
        self._send(200, PNG)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


PRIVATE = MediaPolicy(allow_private_urls=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_check_public_host_with_injected_resolver() -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return {"ok.test": [PUBLIC_IP], "mixed.test": [PUBLIC_IP, "10.0.0.7"]}[host]

    assert [str(a) for a in await check_public_host("ok.test", 80, resolver=resolver)] == [
        PUBLIC_IP
    ]
    with pytest.raises(MediaNotAllowed, match="10.0.0.7.*--allow-private-urls"):
        await check_public_host("mixed.test", 80, resolver=resolver)
    with pytest.raises(MediaNotAllowed):
        await check_public_host("127.0.0.1", 80, resolver=resolver)
    assert calls == ["ok.test", "mixed.test"]  # literals are never resolved

    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(MediaFetchError, match="Cannot resolve"):
        await check_public_host("nowhere.test", 80, resolver=failing)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.png",
        "http://localhost:9/a.png",
        "http://[::1]:9/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/a.png",  # 127.0.0.1 as an integer
    ],
)
def test_private_urls_refused_by_default(url: str) -> None:
    with pytest.raises(MediaNotAllowed) as info:
        load_source_sync(url, kind="image", policy=MediaPolicy())
    assert info.value.status_code == 403


def test_fetch_and_redirect_chain(server: str) -> None:
    media = load_source_sync(f"{server}/img.png", kind="image", policy=PRIVATE)
    assert media.data == PNG and media.mime == "image/png"
    assert decode_image(media).size == (4, 4)
    chained = load_source_sync(f"{server}/r1?token=secret", kind="image", policy=PRIVATE)
    assert chained.data == PNG
    assert "secret" not in chained.origin and chained.origin.endswith("/r1")


def test_redirect_limits(server: str) -> None:
    with pytest.raises(MediaFetchError, match="more than 5 redirects"):
        load_source_sync(f"{server}/loop", kind="image", policy=PRIVATE)
    one_hop = MediaPolicy(allow_private_urls=True, max_redirects=1)
    with pytest.raises(MediaFetchError, match="more than 1 redirects"):
        load_source_sync(f"{server}/r1", kind="image", policy=one_hop)
    with pytest.raises(MediaFetchError, match="not an http"):
        load_source_sync(f"{server}/to-file", kind="image", policy=PRIVATE)


def test_http_errors(server: str) -> None:
    with pytest.raises(MediaFetchError, match="HTTP 404"):
        load_source_sync(f"{server}/missing", kind="image", policy=PRIVATE)
    with pytest.raises(MediaFetchError, match="failed"):
        load_source_sync("http://127.0.0.1:1/closed", kind="image", policy=PRIVATE)


def test_byte_cap(server: str) -> None:
    small = MediaPolicy(allow_private_urls=True, max_image_bytes=1000)
    with pytest.raises(MediaTooLarge, match="2000 bytes"):
        load_source_sync(f"{server}/big-declared", kind="image", policy=small)
    start = time.monotonic()
    with pytest.raises(MediaTooLarge, match="download stopped"):  # 6.5 GB if read to the end
        load_source_sync(f"{server}/endless", kind="image", policy=small)
    assert time.monotonic() - start < 5


def test_total_timeout(server: str) -> None:
    quick = MediaPolicy(allow_private_urls=True, fetch_timeout_s=0.3)
    with pytest.raises(MediaFetchError, match="timed out"):
        load_source_sync(f"{server}/slow", kind="image", policy=quick)


async def test_async_and_sync_inside_event_loop(server: str) -> None:
    media = await load_source(f"{server}/r1", kind="image", policy=PRIVATE)
    assert media.data == PNG
    assert load_source_sync(f"{server}/img.png", kind="image", policy=PRIVATE).data == PNG


def mock_client(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})
        if request.url.path == "/via-name":
            return httpx.Response(302, headers={"Location": "http://internal.test/x"})
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)


async def resolver(host: str, port: int) -> list[str]:
    return {"media.example": [PUBLIC_IP], "internal.test": ["10.0.0.5"]}[host]


async def test_every_redirect_hop_is_checked() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(seen) as client:
        for path in ("/start", "/via-name"):
            with pytest.raises(MediaNotAllowed):
                await load_source(
                    f"http://{PUBLIC_IP}{path}",
                    kind="image",
                    policy=MediaPolicy(),
                    client=client,
                    resolver=resolver,
                )
    assert [r.url.path for r in seen] == ["/start", "/via-name"]  # private hops never sent


async def test_connection_pinned_to_checked_address() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(seen) as client:
        media = await load_source(
            "https://media.example/pic.png",
            kind="image",
            policy=MediaPolicy(),
            client=client,
            resolver=resolver,
        )
    assert media.data == PNG and media.origin == "https://media.example/pic.png"
    (request,) = seen
    assert request.url.host == PUBLIC_IP
    assert request.headers["host"] == "media.example"
    assert request.extensions["sni_hostname"] == "media.example"
