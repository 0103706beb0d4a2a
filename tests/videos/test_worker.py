"""The job worker on its own (no model): order, the queue bound, cancellation, shutdown;
and a /sync request whose client hangs up."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.videos.conftest import wait_for
from vllm_mlx.errors import APIError
from vllm_mlx.videos.plan import JobPlan
from vllm_mlx.videos.worker import Job, JobCancelled, JobWorker, QueueFull, WorkerStopped

PLAN = JobPlan(prompt="p", negative_prompt="", width=32, height=32, gen_width=32,
               gen_height=32, num_frames=1, fps=8, num_inference_steps=1, guidance_scale=1.0,
               flow_shift=3.0, seed=0, scheduler="euler", max_sequence_length=8,
               interpolation_exp=0, seconds="0.12")


class Recorder:
    """An ``execute`` that records job ids; jobs named ``hold*`` wait for ``release``."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.release = threading.Event()

    def __call__(self, loaded: str, job: Job) -> None:
        self.order.append(job.id)
        if job.id.startswith("hold"):
            while not self.release.is_set() and not job.cancel.is_set():
                self.release.wait(0.005)
        job.done.set_result((loaded, job.id))


@pytest.fixture()
def worker():
    recorder = Recorder()
    started = JobWorker(lambda: "pipeline", recorder, max_queued=2)
    assert started.start(timeout=5) == "pipeline"
    started.recorder = recorder
    yield started
    recorder.release.set()
    started.shutdown()


def test_jobs_run_in_order_and_the_bound_holds(worker) -> None:
    worker.submit(Job("hold", PLAN))
    wait_for(lambda: worker.running is not None)
    a, b = Job("a", PLAN), Job("b", PLAN)
    worker.submit(a)
    worker.submit(b)
    with pytest.raises(QueueFull):
        worker.submit(Job("c", PLAN))
    worker.submit(Job("recovered", PLAN), bounded=False)  # recovery is never refused
    worker.recorder.release.set()
    assert b.done.result(5) == ("pipeline", "b")
    wait_for(lambda: worker.recorder.order == ["hold", "a", "b", "recovered"])


def test_cancel_queued_settles_it_and_cancel_running_flags_it(worker) -> None:
    hold, queued = Job("hold", PLAN), Job("q", PLAN)
    worker.submit(hold)
    wait_for(lambda: worker.running is hold)
    worker.submit(queued)
    assert worker.cancel("q", "deleted") is queued
    with pytest.raises(JobCancelled):
        queued.done.result(1)
    assert worker.cancel("hold", "deleted") is hold and hold.cancel.is_set()
    wait_for(lambda: worker.running is None, timeout=5)
    assert worker.cancel("nothing", "deleted") is None
    assert "q" not in worker.recorder.order


def test_shutdown_cancels_running_and_fails_waiting(worker) -> None:
    hold, waiting = Job("hold", PLAN), Job("w", PLAN, persist=False)
    worker.submit(hold)
    wait_for(lambda: worker.running is hold)
    worker.submit(waiting)
    worker.shutdown()
    assert hold.cancel_reason == "shutdown"
    with pytest.raises(WorkerStopped):
        waiting.done.result(1)
    with pytest.raises(WorkerStopped):
        worker.submit(Job("late", PLAN))


def test_a_load_error_reaches_start() -> None:
    def broken() -> None:
        raise FileNotFoundError("no transformer/ here")

    with pytest.raises(FileNotFoundError, match="transformer"):
        JobWorker(broken, Recorder(), 1).start(timeout=5)


def test_sync_client_that_hangs_up_cancels_its_job(worker) -> None:
    from vllm_mlx.videos.routes import _wait

    class Gone:
        async def is_disconnected(self) -> bool:
            return True

    class Jobs:
        pass

    jobs = Jobs()
    jobs.worker = worker
    worker.submit(Job("hold", PLAN))
    wait_for(lambda: worker.running is not None)
    sync = Job("sync", PLAN, persist=False)
    worker.submit(sync)
    with pytest.raises(APIError) as info:
        asyncio.run(_wait(Gone(), jobs, sync))
    assert info.value.status == 499 and sync.cancel_reason == "disconnected"
    assert worker.find("sync") is None and sync.done.done()

