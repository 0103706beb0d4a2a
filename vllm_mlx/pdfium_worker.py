"""The child process that renders PDF pages (``python -m vllm_mlx.pdfium_worker``).

Contract: reads one job from stdin (a JSON line of :class:`RenderJob` settings, then the
PDF's bytes), caps its own address space at what it uses once PDFium is loaded plus
``memory_bytes`` (``RLIMIT_AS``, where the system enforces it), renders the selected pages
with pypdfium2 and writes one answer to stdout: a JSON line ``{"status": "ok", "pages":
[[mode, width, height], ...]}`` followed by the pages' raw pixels, or ``{"status":
"error" | "memory", "message": ...}``. Data only, no pickle: a child that a hostile PDF
took over can send the server nothing but pixels and text. A PDF that exhausts the memory
cap may also just crash it; the parent (:mod:`vllm_mlx.domains.pdf`) enforces the time
budget and the memory budget (by resident size, where ``RLIMIT_AS`` is not enforced) by
killing it. Only the standard library is imported before the job is read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Page = tuple[str, tuple[int, int], bytes]


@dataclass(frozen=True)
class RenderJob:
    indices: tuple[int, ...] | None
    dpi: float
    max_pages: int
    max_side: int
    memory_bytes: int

    def encode(self, data: bytes) -> bytes:
        """What the parent writes to the child's stdin."""
        return json.dumps(asdict(self)).encode() + b"\n" + data

    @classmethod
    def decode(cls, raw: bytes) -> tuple[RenderJob, bytes]:
        header, _, data = raw.partition(b"\n")
        fields = json.loads(header)
        indices = fields.pop("indices")
        return cls(indices=None if indices is None else tuple(indices), **fields), data


class RenderRefused(ValueError):
    """The PDF cannot be rendered as asked (a readable message for the client)."""


def _cap_memory(extra: int) -> None:
    try:
        import resource

        import psutil

        limit = psutil.Process().memory_info().vms + extra
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not enforceable here: the parent watches RSS
        pass


def _select(count: int, indices: Sequence[int] | None, max_pages: int) -> list[int]:
    chosen = list(range(count)) if indices is None else list(dict.fromkeys(indices))
    bad = [i for i in chosen if not 0 <= i < count]
    if bad:
        raise RenderRefused(f"page index {bad[0]} is out of range: the PDF has {count} pages "
                            "(page_indices are 0-based)")
    if not chosen:
        raise RenderRefused("the PDF has no pages")
    if len(chosen) > max_pages:
        raise RenderRefused(f"{len(chosen)} pages selected, more than this server's limit of "
                            f"{max_pages} per prediction; choose some with "
                            "config.page_indices")
    return chosen


def _page(page: Any, dpi: float, max_side: int) -> Page:
    width, height = page.get_size()
    scale = dpi / 72.0
    longest = max(width, height) * scale
    if longest > max_side:
        scale *= max_side / longest
    image = page.render(scale=scale).to_pil().convert("RGB")
    return image.mode, image.size, image.tobytes()


def render(job: RenderJob, data: bytes) -> list[Page]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise RenderRefused(f"the PDF could not be opened: {exc}") from exc
    try:
        chosen = _select(len(document), job.indices, job.max_pages)
        return [_page(document[i], job.dpi, job.max_side) for i in chosen]
    finally:
        document.close()


def _answer(status: str, message: str = "", pages: Sequence[Page] = ()) -> None:
    header = {"status": status, "message": message,
              "pages": [[mode, size[0], size[1]] for mode, size, _ in pages]}
    out = sys.stdout.buffer
    out.write(json.dumps(header).encode() + b"\n")
    for _, _, pixels in pages:
        out.write(pixels)
    out.flush()


def main() -> None:
    job, data = RenderJob.decode(sys.stdin.buffer.read())
    import pypdfium2  # noqa: F401  (loaded before the cap: the cap is on rendering)
    from PIL import Image  # noqa: F401

    _cap_memory(job.memory_bytes)
    try:
        pages = render(job, data)
    except RenderRefused as exc:
        _answer("error", str(exc))
    except MemoryError:
        _answer("memory", "out of memory")
    else:
        _answer("ok", pages=pages)


if __name__ == "__main__":
    main()
