"""Prediction inputs -> decoded images or a sampled video, with clear 4xx errors.

Contract: :class:`InputResolver` turns

* ``images`` (``/v1/image/generate``): each an http(s) URL (fetched under the media policy's
  SSRF guard), a ``data:`` URL or bare base64; local paths are *not* accepted here;
* a ``file_id`` (from ``POST /v1/files``) or ``url`` (``/v1/document/generate``): an image
  (one page) or a PDF rendered page by page (``config.page_indices`` selects pages) in a
  child process with a time and memory budget (:mod:`.pdf`: 422, 413 or 429 past them);
* a ``file_id`` or ``url`` (``/v1/video/generate``): frames sampled like chat video (the
  server's default fps and frame cap), with their times;

into :class:`PreparedInputs`. Decoding runs off the event loop. ``detail`` caps the longer
image side (``lo`` 512, ``auto`` 1536, ``hi`` 3072 pixels). Every failure is an
:class:`~vllm_mlx.errors.APIError` (400, or 404 for an unknown file id) or a
:class:`~vllm_mlx.media.MediaError` carrying its own 4xx status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from ..content import VideoSampling, clip_from_sampled
from ..engine.types import VideoClip
from ..errors import APIError
from ..media import MediaBytes, MediaError, MediaPolicy, decode_image, load_source, sample_video
from ..media.sniff import sniff_mime
from .files import FileNotFound, FileStore
from .pdf import PdfError, PdfRenderer, is_pdf
from .protocol import ElementType

DETAIL_SIDE = {"lo": 512, "auto": 1536, "hi": 3072}
VIDEO_SIDE = {"lo": 336, "auto": 768, "hi": 1280}
PDF_DPI = {"lo": 72.0, "auto": 144.0, "hi": 200.0}
_OFFLOAD_CHARS = 1 << 20  # decode bigger base64 payloads off the event loop


@dataclass(frozen=True)
class PreparedInputs:
    """Decoded inputs of one prediction and what to report in ``usage``."""

    element_type: ElementType
    images: tuple[Image.Image, ...] = ()
    video: VideoClip | None = None
    duration_s: float = 0.0

    @property
    def elements(self) -> int:
        return 1 if self.video is not None else len(self.images)


def _shrink(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def _bare_base64(text: str, param: str) -> bytes:
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise APIError(400, f"{param} is neither an http(s) URL, a data: URL nor valid base64",
                       param=param, code="invalid_base64")
    return data


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(256)


def _with_param(exc: MediaError, param: str) -> MediaError:
    if getattr(exc, "param", None) is None:
        exc.param = param
    return exc


class InputResolver:
    def __init__(self, policy: MediaPolicy, files: FileStore, video: VideoSampling,
                 client: Callable[[], httpx.AsyncClient | None],
                 pdf: PdfRenderer | None = None) -> None:
        self.policy = policy
        self.files = files
        self.video_sampling = video
        self._client = client
        self.pdf = pdf or PdfRenderer()

    async def _remote(self, source: str, kind: str, param: str) -> MediaBytes:
        if not source.lower().startswith(("http://", "https://", "data:")):
            raise APIError(400, f"{param} must be an http(s) URL or a data: URL", param=param,
                           code="invalid_url")
        try:
            return await load_source(source, kind=kind,  # type: ignore[arg-type]
                                     policy=self.policy, client=self._client())
        except MediaError as exc:
            raise _with_param(exc, param) from exc

    async def _image_bytes(self, item: str, param: str) -> MediaBytes | bytes:
        if item.lower().startswith(("http://", "https://", "data:")):
            return await self._remote(item, "image", param)
        if len(item) > _OFFLOAD_CHARS:
            return await asyncio.to_thread(_bare_base64, item, param)
        return _bare_base64(item, param)

    def _decode(self, media: MediaBytes | bytes, side: int, param: str) -> Image.Image:
        try:
            return _shrink(decode_image(media, policy=self.policy), side)
        except MediaError as exc:
            raise _with_param(exc, param) from exc

    async def images(self, items: Sequence[str], detail: str) -> PreparedInputs:
        decoded = []
        for i, item in enumerate(items):
            param = f"images[{i}]"
            media = await self._image_bytes(item, param)
            decoded.append(await asyncio.to_thread(self._decode, media, DETAIL_SIDE[detail],
                                                   param))
        return PreparedInputs("image", images=tuple(decoded))

    def _file(self, file_id: str) -> Path:
        try:
            return self.files.path(file_id)
        except FileNotFound as exc:
            raise APIError(404, str(exc), param="file_id", code="file_not_found") from exc

    async def _source(self, file_id: str | None, url: str | None, kind: str) -> MediaBytes:
        if file_id is not None:
            path = self._file(file_id)
            head = await asyncio.to_thread(_head, path)
            return MediaBytes(data=None, path=path, mime=sniff_mime(head), origin=file_id)
        assert url is not None
        return await self._remote(url, kind, "url")

    async def document(self, file_id: str | None, url: str | None, detail: str,
                       pages: Sequence[int] | None) -> PreparedInputs:
        media = await self._source(file_id, url, "image")
        param = "file_id" if file_id is not None else "url"
        data = await asyncio.to_thread(media.read)
        if is_pdf(data[:1024]):
            try:
                rendered = await self.pdf.render(data, pages, PDF_DPI[detail])
            except PdfError as exc:
                raise APIError(exc.status, f"{param}: {exc}", param=param,
                               code=exc.code) from exc
            return PreparedInputs("page", images=tuple(_shrink(p, DETAIL_SIDE[detail])
                                                        for p in rendered))
        if (media.mime or "").startswith("video/"):
            raise APIError(400, f"{param} is a video; send it to /v1/video/generate",
                           param=param, code="unsupported_input")
        if pages and any(i != 0 for i in pages):
            raise APIError(400, "config.page_indices: an image document has one page (index 0)",
                           param="config.page_indices")
        image = await asyncio.to_thread(self._decode, data, DETAIL_SIDE[detail], param)
        return PreparedInputs("page", images=(image,))

    async def video(self, file_id: str | None, url: str | None, detail: str) -> PreparedInputs:
        media = await self._source(file_id, url, "video")
        param = "file_id" if file_id is not None else "url"
        sampling = self.video_sampling
        try:
            sampled = await asyncio.to_thread(
                sample_video, media, fps=sampling.fps, max_frames=sampling.max_frames,
                min_frames=sampling.min_frames, max_side=VIDEO_SIDE[detail],
                policy=self.policy)
        except MediaError as exc:
            raise _with_param(exc, param) from exc
        return PreparedInputs("video", video=clip_from_sampled(sampled),
                              duration_s=float(sampled.duration))
