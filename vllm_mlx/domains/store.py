"""Predictions and files, recorded in an embedded SQLite database in the storage folder.

Contract: :class:`Store` owns one ``sqlite3`` connection (WAL journal, serialised by a lock,
usable from any thread) on ``<storage>/vllm-mlx.sqlite3``. Every write is committed before
the call returns, so a restart loses nothing already accepted. The database opens on first
use, and then predictions left ``pending``/``running`` by a previous process are marked
``failed`` with the ``recover_reason``, never left running forever. Rows are plain dicts; JSON
columns (``response``, ``usage``, ``request``) are decoded on the way out. A folder that cannot
be used or a full disk raises :class:`~vllm_mlx.errors.StorageError` (503 / 507);
SQLite rolls the failed statement back, so no half-written row is left.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import storage_errors

DB_NAME = "vllm-mlx.sqlite3"
_JSON_COLUMNS = ("response", "usage", "request")
_PREDICTION_COLUMNS = ("id", "created_at", "completed_at", "status", "domain", "kind",
                       "response", "usage", "error", "callback_url", "request")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, completed_at TEXT, status TEXT NOT NULL,
    domain TEXT, kind TEXT NOT NULL, response TEXT, usage TEXT, error TEXT,
    callback_url TEXT, request TEXT);
CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created_at);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, bytes INTEGER NOT NULL, purpose TEXT NOT NULL,
    created_at TEXT NOT NULL, md5 TEXT NOT NULL, stored_name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_md5 ON files (md5);
"""


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    for key in _JSON_COLUMNS:
        if key in record and record[key] is not None:
            record[key] = json.loads(record[key])
    return record


def _fail_unfinished(db: sqlite3.Connection, reason: str) -> int:
    cursor = db.execute("UPDATE predictions SET status = 'failed', error = ?, completed_at = ? "
                        "WHERE status IN ('pending', 'running', 'enqueued')", (reason, utc_now()))
    return cursor.rowcount


def _encode(key: str, value: Any) -> Any:
    return json.dumps(value) if key in _JSON_COLUMNS and value is not None else value


class Store:
    """Thread-safe access to the predictions and files tables.

    The database is opened on first use (an app that never records anything creates no
    file); ``recover_reason``, if given, is applied with :meth:`fail_unfinished` right then.
    """

    def __init__(self, folder: Path, recover_reason: str | None = None) -> None:
        self.path = folder / DB_NAME
        self.recovered = 0
        self._recover_reason = recover_reason
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        with self._lock, storage_errors(self.path.parent):
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        if self._recover_reason is not None:
            self.recovered = _fail_unfinished(db, self._recover_reason)
        return db

    def close(self) -> None:
        with self._lock:
            self._recover_reason = None  # a later reopen must not fail live predictions
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock, storage_errors(self.path.parent):
            return self._db.execute(sql, params).fetchall()

    # predictions
    def add_prediction(self, record: dict[str, Any]) -> None:
        keys = [k for k in _PREDICTION_COLUMNS if k in record]
        values = tuple(_encode(k, record[k]) for k in keys)
        self._run(f"INSERT INTO predictions ({', '.join(keys)}) "
                  f"VALUES ({', '.join('?' * len(keys))})", values)

    def update_prediction(self, prediction_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_PREDICTION_COLUMNS)
        if unknown:
            raise ValueError(f"unknown prediction fields: {sorted(unknown)}")
        keys = list(fields)
        values = tuple(_encode(k, fields[k]) for k in keys)
        self._run(f"UPDATE predictions SET {', '.join(f'{k} = ?' for k in keys)} WHERE id = ?",
                  (*values, prediction_id))

    def get_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM predictions WHERE id = ?", (prediction_id,))
        return _decode(rows[0]) if rows else None

    def list_predictions(self, skip: int, limit: int) -> list[dict[str, Any]]:
        rows = self._run("SELECT * FROM predictions ORDER BY created_at DESC, id "
                         "LIMIT ? OFFSET ?", (limit, skip))
        return [_decode(r) for r in rows]

    def fail_unfinished(self, reason: str) -> int:
        """Mark every unfinished prediction failed; return how many."""
        with self._lock, storage_errors(self.path.parent):
            return _fail_unfinished(self._db, reason)

    # files
    def add_file(self, record: dict[str, Any]) -> None:
        self._run("INSERT INTO files (id, filename, bytes, purpose, created_at, md5, "
                  "stored_name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (record["id"], record["filename"], record["bytes"], record["purpose"],
                   record["created_at"], record["md5"], record["stored_name"]))

    def get_file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM files WHERE id = ?", (file_id,))
        return dict(rows[0]) if rows else None

    def file_by_md5(self, md5: str) -> dict[str, Any] | None:
        rows = self._run("SELECT * FROM files WHERE md5 = ? ORDER BY created_at DESC LIMIT 1",
                         (md5.lower(),))
        return dict(rows[0]) if rows else None

    def list_files(self, skip: int, limit: int) -> list[dict[str, Any]]:
        rows = self._run("SELECT * FROM files ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                         (limit, skip))
        return [dict(r) for r in rows]

    def delete_file(self, file_id: str) -> bool:
        with self._lock, storage_errors(self.path.parent):
            return self._db.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount > 0
