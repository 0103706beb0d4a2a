"""The /v1/videos routes in-process, on a tiny Wan model: the job lifecycle, listing,
deletion of running jobs, the queue bound, reference images and bad input."""

from __future__ import annotations

import base64
import json

import pytest

from tests.videos.conftest import FAST, mp4_info, png_bytes, poll_done, wait_for


def create(client, **fields: str) -> dict:
    response = client.post("/v1/videos", data={"prompt": "a lake at dawn", **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_create_poll_download(client) -> None:
    record = create(client, size="48x32", num_frames="5", fps="8", num_inference_steps="2",
                    seed="3", user="tester")
    assert record["object"] == "video" and record["id"].startswith("video_")
    assert record["status"] == "queued" and record["progress"] == 0
    assert (record["size"], record["model"], record["user"]) == ("48x32", "tiny:wan2_1", "tester")
    assert record["settings"]["seed"] == 3 and record["error"] is None
    done = poll_done(client, record["id"])
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["completed_at"] >= done["created_at"] and done["inference_time_s"] > 0
    assert done["file_name"] == f"{record['id']}.mp4"
    content = client.get(f"/v1/videos/{record['id']}/content")
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    assert mp4_info(content.content) == (48, 32, 5, 8.0)


def test_progress_rises_with_each_step(client, jobs) -> None:
    record = create(client, num_frames="1", num_inference_steps="12")
    seen: list[int] = []

    def finished() -> bool:
        current = client.get(f"/v1/videos/{record['id']}").json()
        if current["status"] == "in_progress":
            seen.append(current["progress"])
        return current["status"] == "completed"

    wait_for(finished, every=0.005)
    distinct = sorted(set(seen))
    assert seen == sorted(seen), "progress never goes back"
    assert len(distinct) >= 3 and distinct[-1] <= 99, distinct


def test_stage_moves_from_denoising_to_decoding(client, jobs) -> None:
    """A job long enough in each phase to be seen there by polling (as the stopping tests)."""
    record = create(client, size="128x128", num_frames="33", num_inference_steps="4")
    assert record["stage"] == "queued"
    order = ["queued", "encoding_prompt", "denoising", "decoding", "writing", "completed"]
    seen: list[str] = []

    def finished() -> bool:
        current = client.get(f"/v1/videos/{record['id']}").json()
        listed = client.get("/v1/videos", params={"limit": 1}).json()["data"][0]
        assert listed["id"] == record["id"] and listed["stage"] in order
        if not seen or seen[-1] != current["stage"]:
            seen.append(current["stage"])
        return current["status"] == "completed"

    wait_for(finished, timeout=120, every=0.01)
    assert "denoising" in seen and "decoding" in seen, seen
    assert seen.index("denoising") < seen.index("decoding") and seen[-1] == "completed", seen
    assert seen == [stage for stage in order if stage in seen], seen
    stored = jobs.store.get(record["id"])
    assert stored is not None and stored["stage"] == "completed"


def test_list_pages_with_after_limit_order(client) -> None:
    ids = [create(client, **FAST)["id"] for _ in range(3)]
    for video_id in ids:
        poll_done(client, video_id)
    newest = client.get("/v1/videos", params={"limit": 2}).json()
    assert newest["object"] == "list" and [v["id"] for v in newest["data"]] == ids[::-1][:2]
    assert newest["has_more"] and newest["first_id"] == ids[2] and newest["last_id"] == ids[1]
    rest = client.get("/v1/videos", params={"limit": 2, "after": newest["last_id"]}).json()
    assert rest["data"][0]["id"] == ids[0]
    oldest = client.get("/v1/videos", params={"order": "asc", "after": ids[0]}).json()
    assert [v["id"] for v in oldest["data"]][:2] == ids[1:]
    for params, param in (({"order": "up"}, "order"), ({"limit": 0}, "limit"),
                          ({"limit": "x"}, "limit"), ({"after": "video_nope"}, "after")):
        bad = client.get("/v1/videos", params=params)
        assert bad.status_code == 400 and bad.json()["error"]["param"].endswith(param)


def test_delete_running_job_stops_it(client, jobs) -> None:
    record = create(client, num_frames="1", num_inference_steps="200")
    wait_for(lambda: client.get(f"/v1/videos/{record['id']}").json()["progress"] > 0)
    running = jobs.worker.running
    assert running is not None and running.id == record["id"]
    deleted = client.delete(f"/v1/videos/{record['id']}")
    assert deleted.json() == {"id": record["id"], "deleted": True, "object": "video.deleted"}
    wait_for(lambda: jobs.worker.running is None, timeout=5)  # stopped within a step or two
    assert running.progress < 99 and running.cancel_reason == "deleted"
    assert client.get(f"/v1/videos/{record['id']}").status_code == 404
    assert not jobs.store.video_path(record["id"]).exists()
    assert client.delete(f"/v1/videos/{record['id']}").status_code == 404


def test_delete_queued_job_and_queue_bound(client, jobs) -> None:
    blocker = create(client, num_frames="1", num_inference_steps="200")
    wait_for(lambda: jobs.worker.running is not None)
    queued = [create(client, **FAST) for _ in range(jobs.worker.max_queued)]
    full = client.post("/v1/videos", data={"prompt": "one too many", **FAST})
    assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
    assert client.delete(f"/v1/videos/{queued[0]['id']}").status_code == 200
    assert jobs.worker.find(queued[0]["id"]) is None
    assert client.delete(f"/v1/videos/{blocker['id']}").status_code == 200
    for record in queued[1:]:
        assert poll_done(client, record["id"])["status"] == "completed"


def test_content_of_unknown_or_unfinished_is_404(client, jobs) -> None:
    assert client.get("/v1/videos/video_unknown/content").status_code == 404
    assert client.get("/v1/videos/video_unknown").json()["error"]["code"] == "video_not_found"
    record = create(client, num_frames="1", num_inference_steps="200")
    response = client.get(f"/v1/videos/{record['id']}/content")
    assert response.status_code == 404 and response.json()["error"]["code"] == "video_not_ready"
    client.delete(f"/v1/videos/{record['id']}")
    bad_variant = client.get(f"/v1/videos/{record['id']}/content", params={"variant": "x"})
    assert bad_variant.status_code == 400


def test_failed_job_is_200_failed_and_content_422(client, jobs, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(jobs.pipeline, "generate", broken)
    record = create(client, **FAST)
    done = poll_done(client, record["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "generation_failed"
    assert done["stage"] == "failed"
    assert "out of memory (simulated)" in done["error"]["message"]
    content = client.get(f"/v1/videos/{record['id']}/content")
    assert content.status_code == 422 and "failed" in content.json()["error"]["message"]


def test_image_to_video_upload_and_data_url(client) -> None:
    files = {"input_reference": ("image.png", png_bytes(1), "image/png")}
    response = client.post("/v1/videos", data={"prompt": "animate", **FAST}, files=files)
    assert response.status_code == 200, response.text
    done = poll_done(client, response.json()["id"])
    assert done["status"] == "completed"
    assert any("latent frame 0" in note for note in done["notes"])  # a T2V model: said so
    url = "data:image/png;base64," + base64.b64encode(png_bytes(2)).decode()
    by_ref = create(client, image_reference=json.dumps({"image_url": url}), **FAST)
    assert poll_done(client, by_ref["id"])["status"] == "completed"


@pytest.mark.parametrize(("data", "files", "param", "words"), [
    ({}, None, "prompt", "prompt is required"),
    ({"prompt": "p", "size": "wide"}, None, "size", "WIDTHxHEIGHT"),
    ({"prompt": "p", "num_inference_steps": "500"}, None, "num_inference_steps", "1 and 200"),
    ({"prompt": "p"}, {"input_reference": ("a.png", b"not an image at all", "image/png")},
     "input_reference", "not a readable image"),
    ({"prompt": "p"}, {"input_reference": ("a.png", b"", "image/png")}, "input_reference",
     "empty"),
    ({"prompt": "p", "image_reference": json.dumps({"image_url": "data:image/png;base64,AAAA"})},
     {"input_reference": ("a.png", png_bytes(), "image/png")}, "image_reference", "not both"),
    ({"prompt": "p", "image_reference": json.dumps({"file_id": "file-1"})}, None,
     "image_reference", "files API"),
    ({"prompt": "p", "model": "sora-2"}, None, "model", "does not exist"),
])
def test_bad_input_is_a_clear_4xx(client, data, files, param, words) -> None:
    for path in ("/v1/videos", "/v1/videos/sync"):
        response = client.post(path, data=data, files=files)
        error = response.json()["error"]
        assert response.status_code == (404 if param == "model" else 400), response.text
        assert error["param"] == param and words in error["message"], error


def test_wrong_content_type_and_json_body(client) -> None:
    plain = client.post("/v1/videos", content=b"prompt=x", headers={"content-type": "text/plain"})
    assert plain.status_code == 400 and "multipart/form-data" in plain.json()["error"]["message"]
    as_json = client.post("/v1/videos", json={"prompt": "p", "num_frames": 1,
                                              "num_inference_steps": 1, "seed": 5})
    assert as_json.status_code == 200 and as_json.json()["settings"]["seed"] == 5
    poll_done(client, as_json.json()["id"])


def test_sync_returns_mp4_with_headers(client) -> None:
    response = client.post("/v1/videos/sync", data={"prompt": "robot", "size": "48x32",
                                                   "num_frames": "5", "fps": "4",
                                                   "num_inference_steps": "1"})
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert response.headers["x-request-id"].startswith("video_")
    assert response.headers["x-model"] == "tiny:wan2_1"
    assert float(response.headers["x-inference-time-s"]) > 0
    assert mp4_info(response.content) == (48, 32, 5, 4.0)
    listed = client.get("/v1/videos", params={"limit": 100}).json()["data"]
    assert response.headers["x-request-id"] not in {v["id"] for v in listed}  # not stored


def test_video_only_server_basics(client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["video"] and not health["chat"]
    models = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["tiny:wan2_1"]
    assert models[0]["capabilities"]["video_generation"] and models[0]["random_weights"]
    chat = client.post("/v1/chat/completions", json={"model": "x", "messages": []})
    assert chat.status_code == 404 and "no chat model loaded" in chat.json()["error"]["message"]
    metrics = client.get("/metrics")  # was a 404 without a chat model
    assert metrics.status_code == 200
    assert "vllm_mlx_video_jobs_waiting " in metrics.text
    assert "vllm_mlx_mlx_active_memory_bytes " in metrics.text
