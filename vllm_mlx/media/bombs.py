"""Compressed-response bombs, for tests and benchmarks (importable; nothing runs at import).

Contract: :func:`compression_bomb` returns a small body that inflates to ``size`` zero bytes
under the HTTP ``Content-Encoding`` ``coding``: ``gzip``, ``deflate`` (zlib-wrapped),
``deflate-raw`` (sent as ``deflate``), or ``br`` (needs the ``brotli`` package). The deflate
forms are written directly (a literal, then back-references of length 258 at distance 1,
13 bits each), so a 1 GiB bomb is about 1 MB and built in a fraction of a second; the gzip
trailer's CRC-32 is correct, so only a size cap stops a decoder.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["compression_bomb"]

_CHUNK = 1 << 20
_COPY_BITS = [(0b11000101, 8), (0, 5)]  # fixed-Huffman length 258, distance code 0 (1 back)
_ADLER_MOD = 65521


class _Bits:
    """Deflate's bit order: values LSB first, Huffman codes MSB first."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def value(self, bits: int, width: int) -> None:
        self.acc |= bits << self.count
        self.count += width
        while self.count >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.count -= 8

    def code(self, bits: int, width: int) -> None:
        self.value(int(f"{bits:0{width}b}"[::-1], 2), width)

    def copies(self, n: int) -> None:
        for _ in range(n):
            for bits, width in _COPY_BITS:
                self.code(bits, width)

    def flush(self) -> bytes:
        if self.count:
            self.out.append(self.acc & 0xFF)
            self.acc = self.count = 0
        return bytes(self.out)


def _raw_deflate(size: int) -> bytes:
    if size < 1 + 258:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(bytes(size)) + compressor.flush()
    copies = (size - 1) // 258
    head = _Bits()
    head.value(1, 1)  # final block
    head.value(1, 2)  # fixed Huffman codes
    head.code(0b00110000, 8)  # literal 0
    head.copies(1)  # 3 + 8 + 13 = 24 bits: byte-aligned from here on
    period = _Bits()
    period.copies(8)  # 8 x 13 bits = 13 bytes, repeated as is
    blocks, extra = divmod(copies - 1, 8)
    tail = _Bits()
    tail.copies(extra)
    for _ in range(size - 1 - 258 * copies):
        tail.code(0b00110000, 8)
    tail.code(0, 7)  # end of block
    return head.flush() + period.flush() * blocks + tail.flush()


def _crc32_of_zeros(size: int) -> int:
    crc, zeros = 0, bytes(min(size, _CHUNK))
    for start in range(0, size, _CHUNK):
        crc = zlib.crc32(zeros[: min(_CHUNK, size - start)], crc)
    return crc


def _brotli(size: int) -> bytes:
    import brotli

    compressor = brotli.Compressor(quality=1)
    zeros = bytes(min(size, _CHUNK))
    parts = [compressor.process(zeros[: min(_CHUNK, size - s)]) for s in range(0, size, _CHUNK)]
    return b"".join(parts) + compressor.finish()


def compression_bomb(size: int, coding: str) -> bytes:
    """A body inflating to ``size`` zero bytes under ``coding`` (see the module docstring)."""
    if coding == "br":
        return _brotli(size)
    body = _raw_deflate(size)
    if coding == "deflate-raw":
        return body
    if coding == "deflate":
        adler = (size % _ADLER_MOD) << 16 | 1  # zeros leave a at 1; b adds 1 per byte
        return b"\x78\x9c" + body + struct.pack(">I", adler)
    if coding == "gzip":
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        return header + body + struct.pack("<II", _crc32_of_zeros(size), size & 0xFFFFFFFF)
    raise ValueError(f"unknown coding {coding!r}")
