"""The reference image of an image-to-video request: an upload, a URL, or a stored file id.

Contract: :func:`load_reference` returns the :class:`ReferenceImage` (its bytes, as stored
for a restart, and the RGB PIL image) of a :class:`~.request.VideoRequest`, or None without
a reference; an upload and an ``image_reference`` together are a 400. Uploaded bytes,
``{"image_url": URL}`` (http(s) through the SSRF-guarded media fetcher, ``data:`` URLs,
local paths only under ``--media-root``) and ``{"file_id": ID}`` (through the files API's
resolver, when the server has one) all go through :func:`~vllm_mlx.media.decode_image`
under the server's media policy, off the event loop. Anything that is not a readable
image, or cannot be fetched, is an ``APIError`` 400 with ``param`` naming the field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from PIL.Image import Image

from ..errors import APIError
from ..media import MediaError, MediaPolicy, decode_image, load_source
from .request import VideoRequest

FileResolver = Callable[[str], str]


@dataclass(frozen=True)
class ReferenceImage:
    data: bytes
    image: Image


def _decode(data: bytes, policy: MediaPolicy, param: str) -> Image:
    try:
        return decode_image(data, policy=policy)
    except MediaError as exc:
        raise APIError(400, f"{param}: {exc}", param=param, code="invalid_image") from None


async def _by_url(url: str, policy: MediaPolicy) -> bytes:
    try:
        media = await load_source(url, kind="image", policy=policy)
        return await asyncio.to_thread(media.read)
    except MediaError as exc:
        status = int(getattr(exc, "status_code", 400))
        raise APIError(status, f"image_reference: {exc}", param="image_reference",
                       code=getattr(exc, "code", None) or "invalid_image") from None


def _by_file_id(file_id: str, files: FileResolver | None) -> bytes:
    if files is None:
        raise APIError(400, "image_reference.file_id needs the files API, which this server "
                       "does not run; send input_reference as a file or an image_url",
                       param="image_reference", code="invalid_value")
    try:
        with open(files(file_id), "rb") as handle:
            return handle.read()
    except (LookupError, OSError) as exc:
        raise APIError(400, f"image_reference.file_id: {exc}", param="image_reference",
                       code="file_not_found") from None


async def load_reference(request: VideoRequest, policy: MediaPolicy,
                         files: FileResolver | None = None) -> ReferenceImage | None:
    upload, reference = request.upload, request.image_reference
    if upload is not None and reference is not None:
        raise APIError(400, "give either input_reference (a file) or image_reference, not both",
                       param="image_reference", code="invalid_value")
    if upload is not None:
        if not upload:
            raise APIError(400, "input_reference: the uploaded file is empty",
                           param="input_reference", code="invalid_image")
        image = await asyncio.to_thread(_decode, upload, policy, "input_reference")
        return ReferenceImage(upload, image)
    if reference is None:
        return None
    if "file_id" in reference:
        data = await asyncio.to_thread(_by_file_id, reference["file_id"], files)
    else:
        data = await _by_url(reference["image_url"], policy)
    return ReferenceImage(data, await asyncio.to_thread(_decode, data, policy,
                                                        "image_reference"))
