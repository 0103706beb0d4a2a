"""Callback signing and delivery with retries, against a local HTTP receiver; delivery is
pinned to an address checked at delivery time (DNS rebinding cannot reach loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from vllm_mlx.domains.callbacks import (
    SIGNATURE_HEADER,
    CallbackSender,
    check_callback_url,
    load_secret,
    sign,
    verify,
)
from vllm_mlx.errors import APIError


def test_signature_is_hmac_sha256_of_the_body():
    expected = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    assert sign("k", b"{}") == f"sha256={expected}"
    assert verify("k", b"{}", f"sha256={expected}")
    assert not verify("k", b"{ }", f"sha256={expected}") and not verify("k", b"{}", None)


def test_secret_is_generated_once_and_private(tmp_path):
    first = load_secret(None, tmp_path)
    assert first == load_secret(None, tmp_path) and len(first) == 64
    assert oct(os.stat(tmp_path / "callback_secret").st_mode & 0o777) == "0o600"
    assert load_secret("given", tmp_path) == "given"


def test_delivery_retries_with_backoff_then_succeeds(receiver):
    receiver.fail_first = 2
    sender = CallbackSender("s", retries=2, backoff_s=0.01, allow_private=True)

    async def go() -> bool:
        async with httpx.AsyncClient() as client:
            return await sender.deliver(client, receiver.url, {"id": "p1", "status": "completed"})

    assert asyncio.run(go()) is True
    (headers, body), = receiver.received
    assert verify("s", body, headers[SIGNATURE_HEADER])


def test_delivery_gives_up_after_the_retries(receiver):
    receiver.fail_first = 3
    sender = CallbackSender("s", retries=2, backoff_s=0.01, allow_private=True)

    async def go() -> bool:
        async with httpx.AsyncClient() as client:
            return await sender.deliver(client, receiver.url, {"id": "p1"})

    assert asyncio.run(go()) is False and receiver.received == []


@pytest.mark.parametrize("url", ["<string>", "ftp://x/y", "http://"])
def test_callback_url_must_be_http(url):
    with pytest.raises(APIError) as info:
        asyncio.run(check_callback_url(url, allow_private=True))
    assert info.value.status == 400 and info.value.param == "callback_url"


def test_private_callback_needs_the_flag():
    with pytest.raises(APIError, match="--allow-private-urls"):
        asyncio.run(check_callback_url("http://127.0.0.1:9/x", allow_private=False))
    asyncio.run(check_callback_url("http://127.0.0.1:9/x", allow_private=True))


PUBLIC_IP = "93.184.216.34"


class Rebinder:
    """A resolver stub: the name is public for the first ``public_answers`` lookups, then
    loopback (a DNS rebinding attack)."""

    def __init__(self, public_answers: int = 1) -> None:
        self.public_answers = public_answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [PUBLIC_IP] if len(self.lookups) <= self.public_answers else ["127.0.0.1"]


class Network(httpx.AsyncBaseTransport):
    """The client's view of the network: ``rebind.test`` is what a resolver asked at connect
    time would answer, loopback (the receiver); ``PUBLIC_IP`` is recorded and answered 204."""

    def __init__(self, receiver_port: int) -> None:
        self.port = receiver_port
        self.public: list[httpx.Request] = []
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_IP:
            self.public.append(request)
            return httpx.Response(204)
        request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)


def deliver(sender: CallbackSender, network: httpx.AsyncBaseTransport, url: str) -> bool:
    async def go() -> bool:
        async with httpx.AsyncClient(transport=network) as client:
            return await sender.deliver(client, url, {"id": "p1", "status": "completed"})

    return asyncio.run(go())


def test_rebinding_to_loopback_after_the_check_is_never_contacted(receiver):
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    url, resolver = f"http://rebind.test:{port}/hook", Rebinder(public_answers=1)
    asyncio.run(check_callback_url(url, allow_private=False, resolver=resolver))  # at submit
    network = Network(port)
    sender = CallbackSender("s", retries=2, backoff_s=0.01, resolver=resolver)
    assert deliver(sender, network, url) is False
    assert receiver.received == [] and network.public == []
    assert resolver.lookups == ["rebind.test", "rebind.test"]  # checked again at delivery


def test_delivery_connects_to_the_address_it_checked(receiver):
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    network = Network(port)
    sender = CallbackSender("s", retries=0, resolver=Rebinder(public_answers=10))
    assert deliver(sender, network, f"http://rebind.test:{port}/hook") is True
    (request,) = network.public
    assert request.url.host == PUBLIC_IP and request.headers["host"] == f"rebind.test:{port}"
    assert receiver.received == []  # the name itself was never resolved by the client
    https = Network(port)
    assert deliver(sender, https, "https://rebind.test/hook") is True
    assert https.public[0].extensions["sni_hostname"] == "rebind.test"
    assert https.public[0].headers["host"] == "rebind.test"


def test_the_answer_body_is_never_read_and_redirects_not_followed():
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:  # 64 MiB, if anyone read it
        for _ in range(1024):
            sent.append(1)
            yield b"\x00" * 65536

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/moved":
            return httpx.Response(307, headers={"Location": "http://127.0.0.1/x"})
        return httpx.Response(200, content=endless())

    sender = CallbackSender("s", retries=0, resolver=Rebinder(public_answers=10))
    start = time.monotonic()
    assert deliver(sender, httpx.MockTransport(answer), "http://big.test/hook") is True
    assert time.monotonic() - start < 5 and len(sent) <= 1
    assert deliver(sender, httpx.MockTransport(answer), "http://big.test/moved") is False
