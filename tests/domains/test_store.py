"""SQLite records and files on disk survive a reopen; unfinished predictions are failed."""

from __future__ import annotations

import hashlib
import io

import pytest

from vllm_mlx.domains.files import FileNotFound, FileStore
from vllm_mlx.domains.store import DB_NAME, Store


def test_nothing_is_created_until_first_use(tmp_path):
    store = Store(tmp_path / "s")
    FileStore(store, tmp_path / "s" / "files")
    assert not (tmp_path / "s").exists()
    assert store.list_predictions(0, 10) == []
    assert (tmp_path / "s" / DB_NAME).is_file()


def test_predictions_survive_a_reopen_and_unfinished_ones_fail(tmp_path):
    store = Store(tmp_path, recover_reason="restarted")
    for i, status in enumerate(("completed", "running", "pending")):
        store.add_prediction({"id": f"p{i}", "created_at": f"2024-01-0{i + 1}", "kind": "image",
                              "status": status, "usage": {"elements_processed": 1},
                              "response": {"k": i} if status == "completed" else None})
    store.close()
    reopened = Store(tmp_path, recover_reason="restarted")
    rows = {r["id"]: r for r in reopened.list_predictions(0, 10)}
    assert reopened.recovered == 2
    assert rows["p0"]["status"] == "completed" and rows["p0"]["response"] == {"k": 0}
    assert rows["p1"]["status"] == rows["p2"]["status"] == "failed"
    assert rows["p1"]["error"] == "restarted" and rows["p1"]["completed_at"]
    assert [r["id"] for r in reopened.list_predictions(1, 1)] == ["p1"]  # newest first


def test_unknown_prediction_field_is_refused(tmp_path):
    with pytest.raises(ValueError):
        Store(tmp_path).update_prediction("x", colour="red")


def test_files_are_stored_found_by_hash_and_deleted(tmp_path):
    store = Store(tmp_path)
    files = FileStore(store, tmp_path / "files")
    record = files.save(io.BytesIO(b"abc" * 1000), "My Clip.MP4", "assistants")
    assert "." not in record["id"] and record["id"].startswith("file-")
    path = files.path(record["id"])
    assert path.read_bytes() == b"abc" * 1000 and path.suffix == ".mp4"
    assert files.is_video(path)
    assert record["md5"] == hashlib.md5(b"abc" * 1000).hexdigest()
    assert files.by_md5(record["md5"].upper())["id"] == record["id"]
    reopened = FileStore(Store(tmp_path), tmp_path / "files")
    assert reopened.get(record["id"])["bytes"] == 3000
    reopened.delete(record["id"])
    assert not path.exists()
    with pytest.raises(FileNotFound):
        reopened.get(record["id"])
    with pytest.raises(FileNotFound):
        reopened.by_md5(record["md5"])


def test_odd_upload_names_get_no_extension(tmp_path):
    files = FileStore(Store(tmp_path), tmp_path / "files")
    record = files.save(io.BytesIO(b"x"), "../../etc/passwd.sh;rm", "vision")
    assert record["stored_name"] == record["id"] and record["filename"] == "passwd.sh;rm"
