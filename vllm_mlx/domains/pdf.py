"""PDF pages -> RGB images with pypdfium2 (PDFium, the renderer Chrome uses).

Contract: :class:`PdfRenderer.render` renders the selected pages (0-based ``indices``; all
pages when ``None``) at ``dpi`` to RGB PIL images, the longer side capped at ``max_side``.
A file that is not a PDF, is encrypted or corrupt, or a page index out of range raises
:class:`PdfError` with a readable message; more than ``max_pages`` selected pages too. PDFium
is not thread-safe, so one renderer serialises its calls with a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from PIL import Image

from ..media.sniff import is_pdf

__all__ = ["PdfError", "PdfRenderer", "is_pdf"]


class PdfError(ValueError):
    pass


class PdfRenderer:
    def __init__(self, max_pages: int = 32, max_side: int = 2048) -> None:
        self.max_pages = max_pages
        self.max_side = max_side
        self._lock = threading.Lock()

    def render(self, data: bytes, indices: Sequence[int] | None = None,
               dpi: float = 144.0) -> list[Image.Image]:
        import pypdfium2 as pdfium

        with self._lock:
            try:
                document = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                raise PdfError(f"the PDF could not be opened: {exc}") from exc
            try:
                return [self._page(document[i], dpi) for i in self._select(len(document),
                                                                             indices)]
            finally:
                document.close()

    def _select(self, count: int, indices: Sequence[int] | None) -> list[int]:
        chosen = list(range(count)) if indices is None else list(dict.fromkeys(indices))
        bad = [i for i in chosen if not 0 <= i < count]
        if bad:
            raise PdfError(f"page index {bad[0]} is out of range: the PDF has {count} pages "
                           "(page_indices are 0-based)")
        if not chosen:
            raise PdfError("the PDF has no pages")
        if len(chosen) > self.max_pages:
            raise PdfError(f"{len(chosen)} pages selected, more than this server's limit of "
                           f"{self.max_pages} per prediction; choose some with "
                           "config.page_indices")
        return chosen

    def _page(self, page: object, dpi: float) -> Image.Image:
        width, height = page.get_size()  # type: ignore[attr-defined]
        scale = dpi / 72.0
        longest = max(width, height) * scale
        if longest > self.max_side:
            scale *= self.max_side / longest
        image = page.render(scale=scale).to_pil()  # type: ignore[attr-defined]
        return image.convert("RGB")
