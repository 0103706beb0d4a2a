"""The Videos tab's client against a stand-in for the ``/v1/videos`` contract.

The real jobs API is built elsewhere; these tests pin what the client sends and how it
follows a job (progress, completion, failure, cancellation), not any generation.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.ui.video_contract import ContractState, running_contract_server
from vllm_mlx.ui.backend import BackendError
from vllm_mlx.ui.remote import RemoteBackend
from vllm_mlx.ui.videos import JobUpdate, VideoJobs, VideoParams


@pytest.fixture(scope="module")
def contract(ui_media) -> Iterator[tuple[ContractState, str]]:
    state = ContractState(video=(ui_media / "clip.mp4").read_bytes(), step=25)
    with running_contract_server(state) as url:
        yield state, url


def jobs_for(url: str, tmp_path) -> VideoJobs:
    return VideoJobs(f"{url}/v1", output_dir=tmp_path, poll_interval=0.01)


def test_params_validate_and_become_form_fields():
    params = VideoParams("a cat", "320x192", num_frames=17, num_inference_steps=4, seed=7)
    assert params.extra_fields() == {"num_frames": "17", "num_inference_steps": "4",
                                     "seed": "7"}
    with pytest.raises(ValueError, match="size"):
        VideoParams("a cat", "320 by 192")
    with pytest.raises(ValueError, match="prompt"):
        VideoParams("  ")


async def test_a_job_reports_progress_and_ends_with_a_video(contract, tmp_path):
    state, url = contract
    params = VideoParams("a cat", "320x192", num_frames=17, num_inference_steps=4, seed=7,
                         negative_prompt="blurry")
    updates = [u async for u in jobs_for(url, tmp_path).run(params)]
    assert [u.progress for u in updates] == [0, 25, 50, 75, 100]
    assert [u.stage for u in updates] == ["queued", "denoising", "denoising", "decoding",
                                          "completed"]
    assert updates[-1].status == "completed" and updates[-1].fraction == 1.0
    assert updates[-1].path is not None
    assert updates[-1].path.read_bytes() == state.video
    assert state.forms[-1] == {"prompt": "a cat", "size": "320x192", "num_frames": "17",
                               "num_inference_steps": "4", "seed": "7",
                               "negative_prompt": "blurry"}


async def test_a_failed_job_raises_its_message(contract, tmp_path):
    with pytest.raises(BackendError, match="the model exploded"):
        async for _ in jobs_for(contract[1], tmp_path).run(VideoParams("please fail")):
            pass


async def test_http_errors_carry_the_server_message(contract, tmp_path):
    jobs = VideoJobs(f"{contract[1]}/v1", output_dir=tmp_path)
    async with httpx.AsyncClient() as client:
        with pytest.raises(BackendError, match="no such job"):
            await jobs._call(client, "GET", "/videos/video_missing")


async def test_leaving_early_deletes_the_job(contract, tmp_path):
    state, url = contract
    stream = jobs_for(url, tmp_path).run(VideoParams("slow"))
    first = await anext(stream)
    await stream.aclose()
    assert state.deleted == [first.id]


def test_the_backend_finds_the_jobs_api(contract):
    backend = RemoteBackend.connect(contract[1])
    assert backend.video_jobs is not None
    assert backend.info.model == "tiny-wan" and not backend.info.vision


def test_the_status_line_shows_the_running_jobs_stage():
    from vllm_mlx.ui.video_tab import JobRow, status_html

    row = JobRow("a cat").seen(JobUpdate("video_1", "in_progress", 85.0, model="tiny-wan",
                                         stage="decoding"))
    text = status_html(row)
    assert "<b>Running</b> · decoding · 85%" in text and "tiny-wan" in text
    prompt = row.seen(JobUpdate("video_1", "in_progress", 3.0, stage="encoding_prompt"))
    assert "encoding the prompt" in status_html(prompt)
    stageless = JobRow("a cat").seen(JobUpdate("video_2", "in_progress", 40.0))
    assert "<b>Running</b> · 40%" in status_html(stageless)  # a server without stages
    done = row.seen(JobUpdate("video_1", "completed", 100.0, stage="completed"))
    assert "decoding" not in status_html(done) and "<b>Completed</b>" in status_html(done)
