"""Stored responses (``store: true``), in their own SQLite file in the storage folder.

Contract: :class:`ResponseStore` owns one ``sqlite3`` connection (WAL journal, serialised by
a lock, usable from any thread) on ``<storage>/responses.sqlite3``, opened on first use.
Each row holds a finished ``response`` object and its conversation's input items: the
items of every earlier turn it continued (their input and output), then its own input. So
``previous_response_id`` rebuilds a conversation from one row, after a restart too, and
deleting an earlier response does not break the ones that continued it. Writes are
committed before the call returns.

What it keeps is bounded: at most ``max_kept`` responses (1000 by default) and none older
than ``max_age_s`` (30 days, as OpenAI keeps them); each write drops what falls outside,
oldest first. A folder that cannot be used or a full disk raises
:class:`~vllm_mlx.errors.StorageError` (503 / 507).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import storage_errors

DB_NAME = "responses.sqlite3"
MAX_KEPT = 1000
MAX_AGE_S = 30 * 24 * 3600
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, response TEXT NOT NULL,
    input_items TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
"""


class ResponseStore:
    """Thread-safe access to the stored responses (see the module)."""

    def __init__(self, folder: Path, *, max_kept: int = MAX_KEPT,
                 max_age_s: float = MAX_AGE_S) -> None:
        self.path = folder / DB_NAME
        self.max_kept, self.max_age_s = max_kept, max_age_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._conn = db
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, storage_errors(self.path.parent):
            return self._db().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def put(self, response: dict[str, Any], input_items: list[dict[str, Any]]) -> None:
        """Keep ``response`` (replacing one of the same id), then drop what is past the
        bounds."""
        with self._lock, storage_errors(self.path.parent):
            db = self._db()
            db.execute("BEGIN")
            try:
                db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                           (response["id"], time.time(), json.dumps(response),
                            json.dumps(input_items)))
                db.execute("DELETE FROM responses WHERE created_at < ?",
                           (time.time() - self.max_age_s,))
                db.execute("DELETE FROM responses WHERE id NOT IN (SELECT id FROM responses "
                           "ORDER BY created_at DESC LIMIT ?)", (self.max_kept,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _fresh(self, response_id: str, *columns: str) -> list[Any] | None:
        """The JSON ``columns`` of a response not yet expired, or None."""
        rows = self._run(f"SELECT {', '.join(columns)} FROM responses WHERE id = ? "
                         "AND created_at >= ?", (response_id, time.time() - self.max_age_s))
        return [json.loads(value) for value in rows[0]] if rows else None

    def get(self, response_id: str) -> dict[str, Any] | None:
        """The stored ``response`` object, or None."""
        found = self._fresh(response_id, "response")
        return None if found is None else found[0]

    def input_items(self, response_id: str) -> list[dict[str, Any]] | None:
        """The conversation's items before the response's output, or None."""
        found = self._fresh(response_id, "input_items")
        return None if found is None else found[0]

    def conversation(self, response_id: str) -> list[dict[str, Any]] | None:
        """Every item of the conversation, the response's output last (what a request that
        continues it starts from), or None."""
        found = self._fresh(response_id, "input_items", "response")
        return None if found is None else found[0] + found[1]["output"]

    def delete(self, response_id: str) -> bool:
        with self._lock, storage_errors(self.path.parent):
            cursor = self._db().execute("DELETE FROM responses WHERE id = ?", (response_id,))
            return cursor.rowcount > 0

    def count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM responses")[0][0])
