"""Turn a media reference from a request into bytes (or a readable local file).

Contract: :func:`load_source` (async) and :func:`load_source_sync` accept

* ``http(s)://`` URLs, fetched with httpx: ``follow_redirects=False`` and every hop (at most
  ``policy.max_redirects``) re-checked by the SSRF guard unless ``policy.allow_private_urls``;
  the connection goes to the checked address (Host header and TLS SNI keep the name); the
  byte cap is enforced while streaming, on the *decoded* bytes: the request asks for
  ``identity``, and a body sent compressed anyway is inflated piece by piece (see
  :mod:`.encoding`) and dropped at the cap, never inflated whole (an unsupported encoding is
  a :class:`MediaFetchError`); each request and the whole fetch have
  ``policy.fetch_timeout_s`` (whatever the default timeout of a ``client`` passed in);
* ``data:`` URLs (see :mod:`.dataurl`). A declared MIME type of the *other* media kind (or
  ``audio/*``/``text/*``) is refused with ``invalid_data_url``: ``data:image/png`` in a video
  part is a client mistake worth naming. A missing or ``application/*`` type is accepted;
* bare base64 strings (fallback, only when they decode to a known image/video signature);
* local paths and ``file://`` URLs, only under ``policy.media_roots`` (see :mod:`.localpath`);
  these come back as ``MediaBytes(path=...)`` to be read in place, never copied.

Any other scheme raises :class:`MediaError` (``invalid_media_source``). HTTP responses'
Content-Type is not enforced (servers often send ``application/octet-stream``); decoders
decide. ``MediaBytes.origin`` is for messages: a URL without query string, a path as given,
or a short ``data:`` summary, never the payload.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from .dataurl import decode_bare_base64, parse_data_url
from .encoding import Decoder, decoder_for
from .errors import InvalidDataURL, MediaError, MediaFetchError, MediaTooLarge
from .localpath import file_url_to_path, resolve_local_path
from .netguard import Resolver, pin_public_url, system_resolver
from .policy import MediaPolicy
from .sniff import media_kind_of, sniff_mime

__all__ = ["MediaBytes", "MediaKind", "load_source", "load_source_sync"]

MediaKind = Literal["image", "video"]
T = TypeVar("T")

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_FOREIGN_KINDS = frozenset({"image", "video", "audio", "text"})
_ORIGIN_MAX = 120
_OFFLOAD_CHARS = 1 << 20


@dataclass(frozen=True)
class MediaBytes:
    """Loaded media: either ``data`` in memory or a local ``path`` to read in place."""

    data: bytes | None
    path: Path | None
    mime: str | None
    origin: str

    def __post_init__(self) -> None:
        if (self.data is None) == (self.path is None):
            raise ValueError("MediaBytes needs exactly one of data or path")

    def read(self) -> bytes:
        """The media bytes (reads the file for a path)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


def _short(text: str) -> str:
    return text if len(text) <= _ORIGIN_MAX else text[: _ORIGIN_MAX - 3] + "..."


def _url_origin(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return _short(url.split("?", 1)[0])
    return _short(f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{parsed.path}")


def _check_declared_mime(mime: str | None, kind: MediaKind) -> None:
    declared = media_kind_of(mime)
    if declared in _FOREIGN_KINDS and declared != kind:
        raise InvalidDataURL(
            f"The data URL declares {mime}, but it was given as {kind} input. Send {kind}s as "
            f"data:{kind}/<format>;base64,... (in a {kind}_url part)."
        )


def _inline(data: bytes, declared: str | None, kind: MediaKind, origin: str) -> MediaBytes:
    mime = declared if media_kind_of(declared) == kind else sniff_mime(data)
    return MediaBytes(data=data, path=None, mime=mime, origin=origin)


def _local(raw: str, kind: MediaKind, policy: MediaPolicy) -> MediaBytes:
    path = resolve_local_path(raw, policy, max_bytes=policy.max_bytes(kind))
    try:
        with path.open("rb") as fh:
            mime = sniff_mime(fh.read(256))
    except OSError as exc:
        raise MediaFetchError(f"Cannot read local file {_short(raw)!r}: {exc}.") from exc
    return MediaBytes(data=None, path=path, mime=mime, origin=_short(raw))


def _is_http(source: str) -> bool:
    return source[:8].lower().startswith(("http://", "https://"))


def _load_not_http(source: str, kind: MediaKind, policy: MediaPolicy) -> MediaBytes:
    """Everything but http(s): data URLs, bare base64, file:// URLs and local paths."""
    scheme_match = _SCHEME.match(source)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme == "data":
        data, declared = parse_data_url(source, max_bytes=policy.max_bytes(kind))
        _check_declared_mime(declared, kind)
        return _inline(data, declared, kind, f"data:{declared or '?'} ({len(data)} bytes)")
    if scheme == "file":
        return _local(file_url_to_path(source), kind, policy)
    if scheme and source[len(scheme) + 1 : len(scheme) + 3] == "//":
        raise MediaError(
            f"Unsupported URL scheme {scheme!r} in {_short(source)!r}: use http(s)://, "
            "data:, file:// or a local path."
        )
    if not source.strip():
        raise MediaError(f"Empty {kind} reference: give a URL, a data: URL or a path.")
    bare = decode_bare_base64(source, max_bytes=policy.max_bytes(kind))
    if bare is not None:
        return _inline(bare, None, kind, f"base64 ({len(bare)} bytes)")
    return _local(source, kind, policy)


async def _build_request(
    client: httpx.AsyncClient, url: str, kind: MediaKind, policy: MediaPolicy, resolver: Resolver
) -> httpx.Request:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise MediaFetchError(f"Cannot fetch {_url_origin(url)!r}: not an http(s) URL.")
    headers = {"Accept": f"{kind}/*, */*;q=0.5", "Accept-Encoding": "identity"}
    timeout = policy.fetch_timeout_s  # per request: a shared client's own default is 5 s
    if policy.allow_private_urls:
        return client.build_request("GET", parsed, headers=headers, timeout=timeout)
    pinned = await pin_public_url(parsed, resolver=resolver)
    return client.build_request("GET", pinned.url, headers={**headers, **pinned.headers},
                                extensions=pinned.extensions, timeout=timeout)


async def _aiter(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def _too_large(origin: str, max_bytes: int) -> MediaTooLarge:
    return MediaTooLarge(
        f"{origin} sent more than this server's limit of {max_bytes} bytes; download stopped."
    )


async def _read_capped(response: httpx.Response, origin: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLarge(
            f"{origin} is {declared} bytes, over this server's limit of {max_bytes} bytes."
        )
    in_memory = response.is_stream_consumed  # a mock transport's response, decoded by httpx
    decoder = Decoder() if in_memory else decoder_for(response.headers.get("content-encoding"))
    chunks: list[bytes] = []
    total = 0
    async for raw in _aiter([response.content]) if in_memory else response.aiter_raw():
        for piece in decoder.feed(raw):
            total += len(piece)
            if total > max_bytes:
                raise _too_large(origin, max_bytes)
            chunks.append(piece)
            await asyncio.sleep(0)  # a bomb inflates piece by piece: let other clients run
    decoder.finish()
    return b"".join(chunks)


async def _follow(
    url: str, kind: MediaKind, policy: MediaPolicy, client: httpx.AsyncClient, resolver: Resolver
) -> MediaBytes:
    current = url
    for _hop in range(policy.max_redirects + 1):
        request = await _build_request(client, current, kind, policy, resolver)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.is_redirect:
                current = str(httpx.URL(current).join(response.headers["location"]))
                continue
            origin = _url_origin(current)
            if not response.is_success:
                raise MediaFetchError(f"Fetching {origin} failed: HTTP {response.status_code}.")
            data = await _read_capped(response, origin, policy.max_bytes(kind))
        finally:
            await response.aclose()
        if not data:
            raise MediaFetchError(f"{origin} returned an empty body.")
        mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return _inline(data, mime or None, kind, _url_origin(url))
    raise MediaFetchError(
        f"Fetching {_url_origin(url)} took more than {policy.max_redirects} redirects."
    )


async def _fetch_http(
    url: str,
    kind: MediaKind,
    policy: MediaPolicy,
    client: httpx.AsyncClient | None,
    resolver: Resolver,
) -> MediaBytes:
    timeout = policy.fetch_timeout_s
    try:
        if client is not None:
            return await asyncio.wait_for(_follow(url, kind, policy, client, resolver), timeout)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as own:
            return await asyncio.wait_for(_follow(url, kind, policy, own, resolver), timeout)
    except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
        origin = _url_origin(url)
        raise MediaFetchError(f"Fetching {origin} timed out after {timeout:g} s.") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = str(exc) or type(exc).__name__
        raise MediaFetchError(f"Fetching {_url_origin(url)} failed: {detail}.") from exc


async def load_source(
    source: str | Path,
    *,
    kind: MediaKind,
    policy: MediaPolicy,
    client: httpx.AsyncClient | None = None,
    resolver: Resolver = system_resolver,
) -> MediaBytes:
    """Load ``source`` (URL, data URL, base64, path) as ``kind`` under ``policy``.

    ``client`` is used for http(s) when given (its redirect setting is overridden);
    ``resolver`` resolves host names for the private-address check.
    """
    if isinstance(source, Path):
        return _local(str(source), kind, policy)
    if _is_http(source):
        return await _fetch_http(source, kind, policy, client, resolver)
    if len(source) > _OFFLOAD_CHARS:  # big inline payload: decode off the event loop
        return await asyncio.to_thread(_load_not_http, source, kind, policy)
    return _load_not_http(source, kind, policy)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coro).result()


def load_source_sync(
    source: str | Path,
    *,
    kind: MediaKind,
    policy: MediaPolicy,
    resolver: Resolver = system_resolver,
) -> MediaBytes:
    """Blocking twin of :func:`load_source` (for the Python API); also accepts a ``Path``."""
    if isinstance(source, Path):
        return _local(str(source), kind, policy)
    if _is_http(source):
        return _run_sync(_fetch_http(source, kind, policy, None, resolver))
    return _load_not_http(source, kind, policy)
