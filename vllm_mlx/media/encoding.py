"""Bounded, incremental decoding of an HTTP response's ``Content-Encoding``.

Contract: :func:`decoder_for` takes a response's ``Content-Encoding`` header and returns a
decoder whose :meth:`~Decoder.feed` turns raw (still encoded) body bytes into decoded pieces
of at most about ``step`` bytes each, produced lazily: a caller that stops iterating (at its
byte cap) never makes the decoder inflate the rest, so a small compressed "bomb" costs at
most the cap plus one piece of memory and time. :meth:`~Decoder.finish` ends the stream
(a truncated compressed body raises :class:`MediaFetchError`).

Supported: no header or ``identity`` (pass-through), ``gzip``/``x-gzip``, ``deflate``
(zlib-wrapped or raw, as servers send both), and ``br`` when the installed ``brotli`` (or
``brotlicffi``) can bound its output (``Decompressor.can_accept_more_data``, brotli >= 1.2).
Anything else (``zstd``, ``compress``, unknown codings, or several stacked codings) raises
:class:`MediaFetchError`, since it could not be bounded: the fetcher asks for ``identity``,
so only a server ignoring that sends one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .errors import MediaFetchError

__all__ = ["DEFAULT_STEP", "Decoder", "decoder_for"]

DEFAULT_STEP = 256 * 1024


def _bounded_brotli() -> ModuleType | None:
    for name in ("brotli", "brotlicffi"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if hasattr(getattr(module, "Decompressor", None), "can_accept_more_data"):
            return module
    return None


_BROTLI = _bounded_brotli()


class Decoder:
    """Identity: raw bytes pass through, cut into pieces of at most ``step`` bytes."""

    def __init__(self, step: int = DEFAULT_STEP) -> None:
        self.step = step

    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), self.step):
            yield data[start : start + self.step]

    def finish(self) -> None:
        """The body ended: raise :class:`MediaFetchError` when it was cut short."""


class _ZlibDecoder(Decoder):
    """gzip, or deflate: zlib-wrapped or raw, told apart by the zlib header's check bits."""

    def __init__(self, gzip: bool, step: int = DEFAULT_STEP) -> None:
        super().__init__(step)
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._head = b""
        self._started = False

    def _pick_deflate(self, data: bytes) -> bytes:
        self._head += data
        if len(self._head) >= 2:
            first, second = self._head[0], self._head[1]
            wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._head if self._obj is not None else b""

    def _inflate(self, data: bytes) -> bytes:
        try:
            return bytes(self._obj.decompress(data, self.step))
        except zlib.error as exc:
            raise MediaFetchError(f"The response's compressed body is corrupt: {exc}.") from exc

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data if self._obj is not None else self._pick_deflate(data)
        if not pending:
            return
        self._started = True
        while not self._obj.eof:
            out = self._inflate(pending)
            pending = self._obj.unconsumed_tail
            if out:
                yield out
            if not pending and len(out) < self.step:  # input used up and zlib has no more
                return

    def finish(self) -> None:
        if (self._started and not self._obj.eof) or (self._head and self._obj is None):
            raise MediaFetchError("The response's compressed body was cut short.")


class _BrotliDecoder(Decoder):
    def __init__(self, module: ModuleType, step: int = DEFAULT_STEP) -> None:
        super().__init__(step)
        self._obj = module.Decompressor()
        self._error: type[Exception] = getattr(module, "error", Exception)
        self._started = False

    def _process(self, data: bytes) -> bytes:
        try:
            return bytes(self._obj.process(data, output_buffer_limit=self.step))
        except self._error as exc:
            raise MediaFetchError(f"The response's compressed body is corrupt: {exc}.") from exc

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._started = True
        out = self._process(data)
        while out:  # brotli may hold more output (and input) than one call gives back
            yield out
            out = self._process(b"")

    def finish(self) -> None:
        if self._started and not self._obj.is_finished():
            raise MediaFetchError("The response's compressed body was cut short.")


def decoder_for(content_encoding: str | None, step: int = DEFAULT_STEP) -> Decoder:
    """The bounded decoder for this ``Content-Encoding``; :class:`MediaFetchError` if none."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return Decoder(step)
    if len(codings) == 1:
        coding = codings[0]
        if coding in ("gzip", "x-gzip"):
            return _ZlibDecoder(True, step)
        if coding == "deflate":
            return _ZlibDecoder(False, step)
        if coding == "br" and _BROTLI is not None:
            return _BrotliDecoder(_BROTLI, step)
    shown = ", ".join(codings)[:60]
    raise MediaFetchError(
        f"The server sent the media with Content-Encoding {shown!r}, which this server does "
        "not decode (it asked for identity; gzip, deflate and br are accepted). Serve the file "
        "uncompressed or send it inline as a data: URL."
    )
