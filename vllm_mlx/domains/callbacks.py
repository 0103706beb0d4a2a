"""Deliver finished predictions to ``callback_url``, signed with HMAC-SHA256.

Contract: :meth:`CallbackSender.deliver` POSTs the prediction as JSON with
``X-VLMRun-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` (the exact body bytes are
signed) and retries a failed attempt (network error or non-2xx answer) ``retries`` times
with exponential backoff (``backoff_s``, doubled each time). It never raises; it returns
whether the receiver accepted the delivery. :func:`check_callback_url` refuses non-http(s)
URLs and, unless private URLs are allowed, hosts resolving to private or loopback
addresses (the media fetcher's SSRF guard). The URL was checked at submit time, but its
name may resolve elsewhere by delivery time (DNS rebinding), so unless ``allow_private``
every attempt resolves and checks the host again and connects to the checked address
(Host header and TLS SNI keep the name); a host that now resolves to a private address is
not contacted and the delivery is given up. Redirects are not followed and the receiver's
answer body is never read (only its status). :func:`load_secret` gives the configured
secret, or one generated once and kept (mode 0600) in the storage folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ..errors import APIError
from ..media import MediaError, MediaNotAllowed
from ..media.netguard import Resolver, check_public_host, pin_public_url, system_resolver

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-VLMRun-Signature"
SECRET_FILE = "callback_secret"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: constant-time comparison of the signature header."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def load_secret(configured: str | None, folder: Path) -> str:
    if configured:
        return configured
    path = folder / SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    logger.info("generated a callback signing secret in %s", path)
    return secret


async def check_callback_url(url: str, allow_private: bool,
                             resolver: Resolver = system_resolver) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise APIError(400, "callback_url must be an http(s) URL", param="callback_url",
                       code="invalid_callback_url")
    if allow_private:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        await check_public_host(parsed.host, port, resolver=resolver)
    except MediaNotAllowed as exc:
        raise APIError(400, f"callback_url host {parsed.host!r} is a loopback or private "
                       "address; start the server with --allow-private-urls to deliver "
                       "callbacks there", param="callback_url",
                       code="callback_not_allowed") from exc
    except MediaError as exc:
        raise APIError(400, f"callback_url: {exc}", param="callback_url",
                       code="invalid_callback_url") from exc


class CallbackSender:
    """``secret`` is the key, or a function giving it on first use."""

    def __init__(self, secret: str | Callable[[], str], retries: int = 2,
                 backoff_s: float = 1.0, timeout_s: float = 10.0, *,
                 allow_private: bool = False, resolver: Resolver = system_resolver) -> None:
        self._secret = secret
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.resolver = resolver

    @property
    def secret(self) -> str:
        if callable(self._secret):
            self._secret = self._secret()
        return self._secret

    def body(self, prediction: dict[str, Any]) -> bytes:
        return json.dumps(prediction, separators=(",", ":")).encode()

    async def _request(self, client: httpx.AsyncClient, url: str, body: bytes,
                       headers: dict[str, str]) -> httpx.Request:
        """The POST, pinned to a freshly checked public address unless private is allowed."""
        target = httpx.URL(url)
        extensions: dict[str, Any] = {}
        if not self.allow_private:
            pinned = await pin_public_url(target, resolver=self.resolver)
            target, extensions = pinned.url, pinned.extensions
            headers = {**headers, **pinned.headers}
        return client.build_request("POST", target, content=body, headers=headers,
                                    extensions=extensions, timeout=self.timeout_s)

    async def _attempt(self, client: httpx.AsyncClient, url: str, body: bytes,
                       headers: dict[str, str]) -> str | None:
        """None when delivered, else what went wrong."""
        request = await self._request(client, url, body, headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        await response.aclose()  # the status is all we need: never read a hostile body
        return None if response.is_success else f"HTTP {response.status_code}"

    async def deliver(self, client: httpx.AsyncClient, url: str,
                      prediction: dict[str, Any]) -> bool:
        body = self.body(prediction)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body),
                   "X-VLMRun-Prediction-Id": str(prediction.get("id", ""))}
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                problem = await self._attempt(client, url, body, headers)
            except MediaNotAllowed as exc:
                logger.warning("callback for %s to %s refused: %s", prediction.get("id"),
                               url, exc)
                return False
            except (httpx.HTTPError, httpx.InvalidURL, MediaError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return True
            logger.warning("callback for %s to %s failed (attempt %d): %s",
                           prediction.get("id"), url, attempt + 1, problem)
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        return False
