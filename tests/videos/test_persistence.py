"""Records and files survive restarts: recovery of what a stopped process left behind,
graceful shutdown, the store's paging and atomic files."""

from __future__ import annotations

import json

from tests.videos.conftest import png_bytes, start_jobs, wait_for
from vllm_mlx.videos.plan import make_plan
from vllm_mlx.videos.request import parse_request as parse_form
from vllm_mlx.videos.store import JobStore, write_atomic


def _record(video_id: str, status: str, plan) -> dict:
    return {"id": video_id, "object": "video", "status": status, "progress": 40,
            "created_at": 1, "completed_at": None, "model": "tiny:wan2_1", "prompt": plan.prompt,
            "size": plan.size, "seconds": plan.seconds, "error": None}


def test_restart_fails_running_reruns_queued(tmp_path, jobs) -> None:
    plan = make_plan(parse_form({"prompt": "p", "num_frames": "1", "num_inference_steps": "1",
                                 "seed": "9"}), jobs.pipeline)
    store = JobStore(tmp_path)  # what a killed process left: as written by the service
    store.add(_record("video_running", "in_progress", plan), {"plan": plan.to_dict()})
    store.add(_record("video_waiting", "queued", plan), {"plan": plan.to_dict()})
    write_atomic(store.input_path("video_i2v"), png_bytes(4))
    store.add(_record("video_i2v", "queued", plan), {"plan": plan.to_dict(), "image": True})
    store.add(_record("video_lost", "queued", plan), {"plan": plan.to_dict(), "image": True})
    store.add(_record("video_gone", "completed", plan), {"plan": plan.to_dict()})
    (store.folder / ".video_x.mp4.abc.tmp").write_bytes(b"half")
    store.close()

    restarted = start_jobs(tmp_path)
    try:
        failed = restarted.get("video_running")
        assert failed["status"] == "failed" and failed["error"]["code"] == "server_restarted"
        gone = restarted.get("video_gone")
        assert gone["status"] == "failed" and gone["error"]["code"] == "output_missing"
        lost = restarted.get("video_lost")  # its reference image is missing: cannot re-run
        assert lost["status"] == "failed" and lost["error"]["code"] == "recovery_failed"
        for video_id in ("video_waiting", "video_i2v"):
            done = wait_for(lambda v=video_id: restarted.get(v)["status"] == "completed")
            assert done and restarted.content_path(video_id).stat().st_size > 0
        assert not list(restarted.store.folder.glob(".*.tmp"))
        assert not restarted.store.input_path("video_i2v").exists()  # kept only until done
        assert not any(r["status"] in ("queued", "in_progress")
                       for r in restarted.list_videos(None, 100, "asc")["data"])
    finally:
        restarted.shutdown()


def test_graceful_shutdown_requeues_the_running_job(tmp_path) -> None:
    first = start_jobs(tmp_path)
    plan = make_plan(parse_form({"prompt": "p", "num_frames": "1", "num_inference_steps": "20",
                                 "seed": "1"}), first.pipeline)
    record = first.create(plan)
    wait_for(lambda: first.get(record["id"])["progress"] > 0)
    first.shutdown()
    assert JobStore(tmp_path).get(record["id"])["status"] == "queued"
    second = start_jobs(tmp_path)
    try:
        done = wait_for(lambda: second.get(record["id"])["status"] == "completed")
        assert done and second.get(record["id"])["settings"]["seed"] == 1
    finally:
        second.shutdown()


def test_store_pages_and_updates(tmp_path) -> None:
    store = JobStore(tmp_path)
    for i in range(5):
        store.add({"id": f"v{i}", "status": "queued"}, {"plan": {}})
    page, more = store.page(None, 2, ascending=True)
    assert [r["id"] for r in page] == ["v0", "v1"] and more
    page, more = store.page("v3", 5, ascending=True)
    assert [r["id"] for r in page] == ["v4"] and not more
    page, more = store.page("v3", 5, ascending=False)
    assert [r["id"] for r in page] == ["v2", "v1", "v0"] and not more
    assert store.update("v1", status="completed", progress=100)["progress"] == 100
    assert store.delete("v1") and store.update("v1", status="failed") is None
    assert store.ids_with_status("queued") == ["v0", "v2", "v3", "v4"]
    store.close()
    reopened = JobStore(tmp_path)
    assert reopened.get("v2") == {"id": "v2", "status": "queued"}
    assert json.loads(json.dumps(reopened.plan("v2"))) == {"plan": {}}


def test_atomic_write_leaves_no_partial_file(tmp_path) -> None:
    target = tmp_path / "out" / "a.bin"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]
