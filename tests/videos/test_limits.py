"""Jobs refused before they run: estimated too long for this machine (400 naming the
limit), and frame interpolation on frames too small for it; progress that moves inside
a single denoising step."""

from __future__ import annotations

import pytest

from tests.videos.conftest import wait_for

SEED_002 = {"prompt": "A cinematic tracking shot of a mountain lake at sunrise", "width": "1280",
            "height": "720", "num_frames": "80", "fps": "16", "num_inference_steps": "40"}


@pytest.fixture()
def limit(jobs):
    """Set ``jobs.max_job_seconds`` for one test."""
    saved = jobs.max_job_seconds

    def set_limit(seconds: float) -> None:
        jobs.max_job_seconds = seconds

    yield set_limit
    jobs.max_job_seconds = saved


def test_the_seeds_request_is_refused_up_front_naming_the_limit(client, jobs) -> None:
    assert jobs.pipeline.cost.flops_per_s > 0 and jobs.max_job_seconds == 3600
    for route in ("/v1/videos", "/v1/videos/sync"):
        response = client.post(route, data=SEED_002)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "job_too_long" and "3600 s" in error["message"]
        assert "--video-max-job-seconds" in error["message"]
    assert not jobs.store.ids_with_status("queued")


def test_the_limit_is_configurable_and_scales_with_the_job(client, jobs, limit) -> None:
    small = {"prompt": "p", "size": "48x32", "num_frames": "5", "num_inference_steps": "2"}
    estimate = jobs.pipeline.estimate(jobs.plan(_request(small)).generation())
    limit(estimate.total_s * 1.5)
    assert client.post("/v1/videos", data=small).status_code == 200
    refused = client.post("/v1/videos", data={**small, "num_inference_steps": "200"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "job_too_long"
    limit(0)  # no limit
    assert jobs.plan(_request(SEED_002)).num_inference_steps == 40


def _request(fields: dict[str, str]):
    from vllm_mlx.videos.request import parse_request

    return parse_request(dict(fields))


@pytest.mark.parametrize("size", ["30x64", "64x16", "16x16"])
def test_interpolation_on_small_frames_is_refused_before_the_job(client, jobs, size) -> None:
    stored = len(jobs.store.ids_with_status("queued"))
    response = client.post("/v1/videos", data={
        "prompt": "p", "size": size, "num_frames": "5", "num_inference_steps": "1",
        "enable_frame_interpolation": "true"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "enable_frame_interpolation" and "32" in error["message"]
    assert len(jobs.store.ids_with_status("queued")) <= stored


def test_interpolation_at_the_minimum_size_works(client) -> None:
    from tests.videos.conftest import mp4_info, poll_done

    record = client.post("/v1/videos", data={
        "prompt": "p", "size": "32x32", "num_frames": "5", "num_inference_steps": "1",
        "enable_frame_interpolation": "true"}).json()
    assert poll_done(client, record["id"])["status"] == "completed"
    content = client.get(f"/v1/videos/{record['id']}/content").content
    assert mp4_info(content)[:3] == (32, 32, 9)


def test_progress_moves_inside_a_single_step(client) -> None:
    record = client.post("/v1/videos", data={
        "prompt": "p", "size": "128x128", "num_frames": "9", "num_inference_steps": "1"}).json()
    seen: list[int] = []

    def finished() -> bool:
        current = client.get(f"/v1/videos/{record['id']}").json()
        if current["status"] == "in_progress":
            seen.append(current["progress"])
        return current["status"] == "completed"

    wait_for(finished, every=0.005)
    assert seen == sorted(seen)
    assert len({p for p in seen if 0 < p < 99}) >= 2, seen  # not 0 -> 99 -> 100
