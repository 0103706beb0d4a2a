"""Storage failures as API errors: a full disk is a 507, an unusable storage folder a 503.

Contract: :func:`storage_errors` wraps code that reads or writes the storage folder (the
SQLite databases, uploaded files, generated videos). An ``OSError`` or ``sqlite3.Error``
raised inside leaves as a :class:`StorageError`: an :class:`~vllm_mlx.api.errors.APIError`
naming the folder and the cause (kept as ``__cause__``; the message is also logged), so
clients get the one error shape, never a 500 with a traceback. No space (``ENOSPC``,
``EDQUOT``), a file-size limit (``EFBIG``) and SQLite's "database or disk is full" are
``507 storage_full``; anything else (no permission, a read-only file system, a path through
a regular file, a database that cannot be opened) is ``503 storage_unavailable``.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import APIError

logger = logging.getLogger(__name__)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class StorageError(APIError):
    """The storage folder could not be used; ``status`` 507 (full) or 503 (unusable)."""


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)


def storage_error(exc: BaseException, folder: Path) -> StorageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if _is_full(exc):
        return StorageError(507, f"the storage folder {folder} is full ({reason}); free some "
                            "space and retry", code="storage_full", type="server_error")
    return StorageError(503, f"the storage folder {folder} cannot be used ({reason}); check "
                        "that it exists and is writable (--storage-path)",
                        code="storage_unavailable", type="server_error")


@contextmanager
def storage_errors(folder: Path) -> Iterator[None]:
    """Re-raise storage ``OSError`` / ``sqlite3.Error`` as :class:`StorageError`."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        error = storage_error(exc, folder)
        logger.error("%s", error.message)  # the client gets it too; the operator must see it
        raise error from exc
