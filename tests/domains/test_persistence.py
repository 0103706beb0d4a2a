"""A restart loses no prediction or file; unfinished predictions end ``failed`` with a
reason, also those cut off by a shutdown."""

from __future__ import annotations

import time

from tests.api.conftest import make_client
from tests.domains.conftest import b64_png
from vllm_mlx.domains.service import RESTART_REASON, SHUTDOWN_REASON


def test_restart_keeps_records_and_fails_unfinished(engine_for, domain_media, tmp_path):
    engine = engine_for("qwen2_vl")
    with make_client(engine, domain_media, storage_path=tmp_path) as first:
        done = first.post("/v1/image/generate", json={
            "domain": "image.caption", "images": [b64_png(1)]}).json()
        file_id = first.post("/v1/files", files={"file": ("a.png", b"\x89PNG...")}).json()["id"]
        # what a crash leaves behind: a prediction recorded as running
        first.app.state.predictions.store.add_prediction({
            "id": "pred-crashed", "created_at": "2000-01-01", "kind": "image",
            "status": "running"})
    with make_client(engine, domain_media, storage_path=tmp_path) as second:
        assert second.get(f"/v1/predictions/{done['id']}").json() == done
        crashed = second.get("/v1/predictions/pred-crashed").json()
        assert crashed["status"] == "failed" and crashed["error"] == RESTART_REASON
        assert second.get(f"/v1/files/{file_id}").json()["bytes"] == len(b"\x89PNG...")


def test_shutdown_fails_running_batch_predictions(engine_for, domain_media, tmp_path):
    engine = engine_for("qwen2_vl")
    long_text = {"type": "object", "required": ["t"], "additionalProperties": False,
                 "properties": {"t": {"type": "string", "minLength": 4000, "maxLength": 4000}}}
    with make_client(engine, domain_media, storage_path=tmp_path) as client:
        pending = client.post("/v1/image/generate", json={
            "domain": "image.caption", "images": [b64_png(1)], "batch": True,
            "config": {"json_schema": long_text, "max_tokens": 8000}}).json()
        deadline = time.monotonic() + 30
        while client.get(f"/v1/predictions/{pending['id']}").json()["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    with make_client(engine, domain_media, storage_path=tmp_path) as client:
        record = client.get(f"/v1/predictions/{pending['id']}").json()
        assert record["status"] == "failed" and record["error"] == SHUTDOWN_REASON
