"""Video job records in SQLite and their files on disk, under the storage folder.

Contract: :class:`JobStore` keeps ``<storage>/videos.sqlite3`` (one connection, WAL journal,
serialised by a lock, usable from any thread; every write committed before returning) and
the folder ``<storage>/videos/``: ``<id>.mp4`` outputs and ``inputs/<id>.img`` reference
images kept until the job ends. Files are written atomically (a temporary name in the same
folder, fsync, ``os.replace``). A row holds the public record (JSON), the job's plan (JSON, to
run it again after a restart) and an insertion sequence that orders listings. A storage
folder that cannot be used or a full disk raises
:class:`~vllm_mlx.errors.StorageError` (503 / 507); a failed write leaves neither
a half-written file (the temporary one is removed) nor a half-written row (SQLite rolls back).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any, TypedDict, cast

from ..errors import storage_errors
from .protocol import VideoObject as VideoRecord

DB_NAME = "videos.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, status TEXT NOT NULL,
    record TEXT NOT NULL, plan TEXT NOT NULL);
"""


class StoredPlan(TypedDict, total=False):
    plan: dict[str, object]  # a JobPlan's fields
    image: bool  # a reference image is stored at ``input_path``


def write_atomic(path: Path, data: bytes) -> None:
    with storage_errors(path.parent):
        _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


class JobStore:
    def __init__(self, storage: Path) -> None:
        self.folder = Path(storage).expanduser() / "videos"
        self._lock = threading.Lock()
        with storage_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.folder.parent / DB_NAME, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- files -------------------------------------------------------------------------
    def video_path(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.mp4"

    def input_path(self, video_id: str) -> Path:
        return self.folder / "inputs" / f"{video_id}.img"

    def remove_files(self, video_id: str) -> None:
        self.video_path(video_id).unlink(missing_ok=True)
        self.input_path(video_id).unlink(missing_ok=True)

    def sweep_temp_files(self) -> None:
        """Remove half-written files a killed process left behind."""
        for folder in (self.folder, self.folder / "inputs"):
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)

    # --- records -----------------------------------------------------------------------
    def add(self, record: VideoRecord, plan: StoredPlan) -> None:
        with self._lock, storage_errors(self.folder):
            self._db.execute("INSERT INTO videos (id, status, record, plan) VALUES (?, ?, ?, ?)",
                             (record["id"], record["status"], json.dumps(record),
                              json.dumps(plan)))

    def get(self, video_id: str) -> VideoRecord | None:
        with self._lock, storage_errors(self.folder):
            row = self._db.execute("SELECT record FROM videos WHERE id = ?",
                                   (video_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def plan(self, video_id: str) -> StoredPlan | None:
        with self._lock, storage_errors(self.folder):
            row = self._db.execute("SELECT plan FROM videos WHERE id = ?", (video_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def update(self, video_id: str, **fields: Any) -> VideoRecord | None:
        """Merge ``fields`` into the record; None when the job no longer exists."""
        with self._lock, storage_errors(self.folder):
            row = self._db.execute("SELECT record FROM videos WHERE id = ?",
                                   (video_id,)).fetchone()
            if row is None:
                return None
            record = cast(VideoRecord, {**json.loads(row[0]), **fields})
            self._db.execute("UPDATE videos SET status = ?, record = ? WHERE id = ?",
                             (record["status"], json.dumps(record), video_id))
        return record

    def delete(self, video_id: str) -> bool:
        with self._lock, storage_errors(self.folder):
            cursor = self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return cursor.rowcount > 0

    def ids_with_status(self, status: str) -> list[str]:
        with self._lock, storage_errors(self.folder):
            rows = self._db.execute("SELECT id FROM videos WHERE status = ? ORDER BY seq",
                                    (status,)).fetchall()
        return [row[0] for row in rows]

    def page(self, after: str | None, limit: int, ascending: bool
             ) -> tuple[list[VideoRecord], bool]:
        """Up to ``limit`` records after the one with id ``after``; and whether more follow.

        ``KeyError`` when ``after`` names no stored job.
        """
        op, order = (">", "ASC") if ascending else ("<", "DESC")
        with self._lock, storage_errors(self.folder):
            if after is None:
                bound = -1 if ascending else 2**63 - 1
            else:
                row = self._db.execute("SELECT seq FROM videos WHERE id = ?", (after,)).fetchone()
                if row is None:
                    raise KeyError(after)
                bound = row[0]
            rows = self._db.execute(
                f"SELECT record FROM videos WHERE seq {op} ? ORDER BY seq {order} LIMIT ?",
                (bound, limit + 1),
            ).fetchall()
        records = [json.loads(row[0]) for row in rows]
        return records[:limit], len(records) > limit
