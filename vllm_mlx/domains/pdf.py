"""PDF pages -> RGB images with pypdfium2 (PDFium, the renderer Chrome uses), in a child
process with a time and a memory budget.

Contract: ``await PdfRenderer.render(data, indices, dpi)`` renders the selected pages
(0-based ``indices``; all pages when ``None``) at ``dpi`` to RGB PIL images, the longer
side capped at ``max_side``. Each PDF is rendered by its own child process
(:mod:`vllm_mlx.pdfium_worker`), at most ``workers`` at a time on the renderer's own
threads (never the event loop's default pool), so a hostile PDF (nested XObjects cost x10
a level) cannot stall other requests:

* past ``timeout_s`` the child is killed: :class:`PdfError` 422 ``pdf_render_timeout``;
* past ``memory_bytes`` (the child's ``RLIMIT_AS`` above its start-up size, and its
  resident size polled by the parent) it is killed: 413 ``pdf_render_memory``;
* a request cancelled while its PDF renders (the client left) kills the child too;
* more than ``max_waiting`` PDFs queued behind the workers: 429 ``pdf_renderer_busy``.

A file that is not a PDF, is encrypted or corrupt, a page index out of range or more than
``max_pages`` selected pages raise :class:`PdfError` 400 ``invalid_pdf`` with a readable
message.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from ..media.sniff import is_pdf
from ..pdfium_worker import RenderJob

__all__ = ["PdfError", "PdfLimits", "PdfRenderer", "is_pdf"]

_POLL_S = 0.05
_RSS_ALLOWANCE = 256 << 20  # the interpreter, PDFium and the rendered pixels' first copy


class PdfError(ValueError):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_pdf") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class PdfLimits:
    max_pages: int = 32
    max_side: int = 2048
    timeout_s: float = 30.0
    memory_bytes: int = 1 << 30
    workers: int = 2
    max_waiting: int = 8


class _Killed(Exception):
    def __init__(self, error: PdfError) -> None:
        self.error = error


class PdfRenderer:
    def __init__(self, limits: PdfLimits | None = None) -> None:
        self.limits = limits or PdfLimits()
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="pdf-render")
        self._pending = 0  # renders queued or running; touched on the event loop only
        self._children: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    async def render(self, data: bytes, indices: Sequence[int] | None = None,
                     dpi: float = 144.0) -> list[Image.Image]:
        limits = self.limits
        if self._pending >= limits.workers + limits.max_waiting:
            raise PdfError(f"{self._pending} PDFs are being rendered or waiting, this "
                           "server's limit; retry later", 429, "pdf_renderer_busy")
        job = RenderJob(None if indices is None else tuple(indices), dpi, limits.max_pages,
                        limits.max_side, limits.memory_bytes)
        cancel = threading.Event()
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._supervise, job, data, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the child is killed within one poll
            raise
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Kill every child still rendering; waiting renders fail."""
        with self._lock:
            children = list(self._children)
        for child in children:
            child.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _supervise(self, job: RenderJob, data: bytes, cancel: threading.Event
                   ) -> list[Image.Image]:
        child = subprocess.Popen([sys.executable, "-m", "vllm_mlx.pdfium_worker"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        with self._lock:
            self._children.add(child)
        try:
            out = self._wait(child, job.encode(data), cancel)
        except _Killed as killed:
            child.kill()
            child.communicate()
            raise killed.error from None
        finally:
            with self._lock:
                self._children.discard(child)
        return self._pages(child.returncode, out)

    def _wait(self, child: subprocess.Popen[bytes], payload: bytes | None,
              cancel: threading.Event) -> bytes:
        deadline = time.monotonic() + self.limits.timeout_s
        while True:
            try:
                return child.communicate(payload, timeout=_POLL_S)[0]
            except subprocess.TimeoutExpired:
                payload = None  # already being written: communicate() goes on with it
            if cancel.is_set():
                raise _Killed(PdfError("the request was cancelled"))
            if time.monotonic() > deadline:
                raise _Killed(PdfError(
                    f"the PDF took longer than this server's limit of {self.limits.timeout_s:g}"
                    " s to render (--pdf-timeout); simplify it or select fewer pages",
                    422, "pdf_render_timeout"))
            if _resident(child.pid) > self.limits.memory_bytes + _RSS_ALLOWANCE:
                raise _Killed(self._memory_error())

    def _memory_error(self) -> PdfError:
        return PdfError(f"the PDF needs more memory to render than this server's limit of "
                        f"{self.limits.memory_bytes >> 20} MiB per PDF (--pdf-memory-mb); "
                        "simplify it or select fewer pages", 413, "pdf_render_memory")

    def _pages(self, returncode: int | None, out: bytes) -> list[Image.Image]:
        header, _, pixels = out.partition(b"\n")
        try:
            answer = json.loads(header) if returncode == 0 else {}
        except ValueError:
            answer = {}
        status = answer.get("status") if isinstance(answer, dict) else None
        if status == "error":
            raise PdfError(str(answer.get("message", "the PDF could not be rendered")))
        if status != "ok":  # a crash is almost always PDFium failing an allocation
            raise self._memory_error()
        return _images(answer["pages"], pixels, self.limits.max_side)


def _resident(pid: int) -> int:
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:  # it has just exited
        return 0


def _images(pages: list[list[object]], pixels: bytes, max_side: int) -> list[Image.Image]:
    images, offset = [], 0
    for mode, width, height in pages:
        if mode != "RGB" or not (isinstance(width, int) and isinstance(height, int)) \
                or not (0 < width <= max_side + 1 and 0 < height <= max_side + 1):
            raise PdfError("the PDF renderer sent a malformed page")
        size = width * height * 3
        if offset + size > len(pixels):
            raise PdfError("the PDF renderer sent a truncated page")
        images.append(Image.frombytes("RGB", (width, height), pixels[offset:offset + size]))
        offset += size
    return images
