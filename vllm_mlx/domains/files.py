"""Uploaded files: bytes on disk under ``<storage>/files``, metadata in the :class:`Store`.

Contract: :meth:`FileStore.save` copies a binary stream to ``<storage>/files/<id><ext>``
(written to a temporary name first, then renamed), computing its md5 on the way. Ids are
``file-<24 hex>``: no dots, so the ``vlmrun`` SDK, which treats a string with an extension as
a path, takes them for ids. The extension on disk (from the upload's name, lowercase
alphanumerics only) lets readers tell videos from images. :meth:`resolve` is the chat
:class:`~vllm_mlx.content.FileResolver` (file id -> local path). Unknown ids raise
:class:`FileNotFound`; a folder that cannot be written or a full disk raises
:class:`~vllm_mlx.errors.StorageError` (503 / 507) and leaves no partial file and
no record.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import excerpt, storage_errors
from .store import Store, utc_now

_CHUNK = 1 << 20
_EXT = re.compile(r"^\.[a-z0-9]{1,8}$")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")


class FileNotFound(LookupError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"no file with id {excerpt(file_id)}; upload it with POST /v1/files first")
        self.file_id = file_id


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a file row."""
    return {"id": record["id"], "filename": record["filename"], "bytes": record["bytes"],
            "purpose": record["purpose"], "created_at": record["created_at"],
            "object": "file", "md5": record["md5"]}


def _extension(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if _EXT.match(suffix) else ""


class FileStore:
    def __init__(self, store: Store, folder: Path) -> None:
        self.store = store
        self.folder = folder

    def save(self, stream: BinaryIO, filename: str, purpose: str) -> dict[str, Any]:
        """Store ``stream`` and record it; blocking (run it off the event loop)."""
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        stored_name = file_id + _extension(filename)
        partial, final = self.folder / f".{stored_name}.part", self.folder / stored_name
        digest, size = hashlib.md5(), 0
        try:
            with storage_errors(self.folder):
                self.folder.mkdir(parents=True, exist_ok=True)
                with partial.open("wb") as out:
                    while chunk := stream.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())  # the bytes are on disk before the record is
                partial.replace(final)
        finally:
            with contextlib.suppress(OSError):  # e.g. the folder itself is unusable
                partial.unlink(missing_ok=True)
        record = {"id": file_id, "filename": Path(filename).name or "upload", "bytes": size,
                  "purpose": purpose, "created_at": utc_now(), "md5": digest.hexdigest(),
                  "stored_name": stored_name}
        try:
            self.store.add_file(record)
        except BaseException:
            final.unlink(missing_ok=True)  # never a file without its record
            raise
        return record

    def get(self, file_id: str) -> dict[str, Any]:
        record = self.store.get_file(file_id)
        if record is None:
            raise FileNotFound(file_id)
        return record

    def path(self, file_id: str) -> Path:
        """Local path of a stored file."""
        path = self.folder / self.get(file_id)["stored_name"]
        if not path.is_file():
            raise FileNotFound(file_id)
        return path

    def resolve(self, file_id: str) -> str:
        """A :class:`~vllm_mlx.content.FileResolver`: file id -> local path."""
        return str(self.path(file_id))

    def by_md5(self, md5: str) -> dict[str, Any]:
        record = self.store.file_by_md5(md5)
        if record is None:
            raise FileNotFound(f"md5:{md5}")
        return record

    def list(self, skip: int, limit: int) -> list[dict[str, Any]]:
        return self.store.list_files(skip, limit)

    def delete(self, file_id: str) -> dict[str, Any]:
        record = self.get(file_id)
        self.store.delete_file(file_id)
        (self.folder / record["stored_name"]).unlink(missing_ok=True)
        return record

    @staticmethod
    def is_video(path: Path) -> bool:
        return path.suffix.lower() in VIDEO_EXTENSIONS
