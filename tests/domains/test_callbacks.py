"""Callback signing and delivery with retries, against a local HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

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
    sender = CallbackSender("s", retries=2, backoff_s=0.01)

    async def go() -> bool:
        async with httpx.AsyncClient() as client:
            return await sender.deliver(client, receiver.url, {"id": "p1", "status": "completed"})

    assert asyncio.run(go()) is True
    (headers, body), = receiver.received
    assert verify("s", body, headers[SIGNATURE_HEADER])


def test_delivery_gives_up_after_the_retries(receiver):
    receiver.fail_first = 3
    sender = CallbackSender("s", retries=2, backoff_s=0.01)

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
