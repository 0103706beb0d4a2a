"""The Videos tab: text-to-video jobs on a server's ``/v1/videos`` API.

Contract:

- Generate submits one job (:class:`~vllm_mlx.ui.videos.VideoJobs`) and follows it in a
  status line: queued, running with its stage (the record's ``stage``: encoding the prompt,
  denoising, decoding, writing the video; only "Running" from a server without stages)
  and progress, completed, failed (with the server's message) or cancelled, always naming the
  job's model. Generate turns into
  Cancel while a job runs; Cancel is cooperative (the job is deleted on the server).
- Nothing raises into Gradio: invalid settings are reported in the status line and the
  last video stays where it is.
- The session keeps every job it ran: a table of all of them (status, model) and a
  gallery of the finished videos; the newest finished video plays in the page.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from .chat import StopSignals, until_stopped
from .errors import BackendError
from .videos import JobUpdate, VideoJobs, VideoParams

VIDEO_SIZES = ["832x480", "480x832", "1280x720", "720x1280", "512x512", "256x256"]
LABELS = {"queued": "Queued", "running": "Running", "completed": "Completed",
          "failed": "Failed", "cancelled": "Cancelled", "submitting": "Submitting"}
STAGES = {"encoding_prompt": "encoding the prompt", "denoising": "denoising",
          "decoding": "decoding", "writing": "writing the video"}


@dataclass(frozen=True)
class JobRow:
    """One job as this session saw it last."""

    prompt: str
    id: str = ""
    status: str = "submitting"  # or queued | running | completed | failed | cancelled
    stage: str = ""
    progress: float = 0.0
    model: str = ""
    path: str | None = None
    error: str = ""

    def seen(self, update: JobUpdate) -> JobRow:
        status = "running" if update.status == "in_progress" else update.status
        stage = STAGES.get(update.stage, update.stage) if status == "running" else ""
        return replace(self, id=update.id, status=status, stage=stage,
                       progress=update.progress, model=update.model or self.model,
                       path=str(update.path) if update.path else self.path)


def status_html(row: JobRow) -> str:
    parts = [f"<b>{LABELS.get(row.status, row.status)}</b>"]
    if row.status == "running":
        if row.stage:
            parts.append(html.escape(row.stage))
        parts.append(f"{row.progress:.0f}% <progress value='{row.progress:.0f}' max='100'>"
                     "</progress>")
    if row.error:
        parts.append(html.escape(row.error))
    if row.model:
        parts.append(f"model <code>{html.escape(row.model)}</code>")
    if row.id:
        parts.append(f"job <code>{html.escape(row.id)}</code>")
    return f"<div class='video-status {row.status}'>{' · '.join(parts)}</div>"


def table_html(rows: tuple[JobRow, ...]) -> str:
    if not rows:
        return "<p>No video jobs yet in this session.</p>"
    body = "".join(
        f"<tr><td>{html.escape(r.prompt[:60])}</td><td>{html.escape(r.model)}</td>"
        f"<td class='job-status'>{LABELS.get(r.status, r.status)}"
        f"{' ' + html.escape(r.stage) if r.status == 'running' else ''}</td>"
        f"<td>{r.progress:.0f}%</td></tr>" for r in rows)
    return ("<table><thead><tr><th>Prompt</th><th>Model</th><th>Status</th><th>Progress"
            f"</th></tr></thead><tbody>{body}</tbody></table>")


def gallery(rows: tuple[JobRow, ...]) -> list[tuple[str, str]]:
    return [(r.path, r.prompt[:60]) for r in rows if r.status == "completed" and r.path]


def outputs(rows: tuple[JobRow, ...], video: Any = None) -> tuple[Any, ...]:
    """(video, status, rows, gallery, table) for the newest row."""
    return (gr.skip() if video is None else video, status_html(rows[0]), rows,
            gallery(rows) if video is not None else gr.skip(), table_html(rows))


def buttons(running: bool) -> tuple[Any, Any]:
    return gr.Button(visible=not running), gr.Button(visible=running)


async def follow(jobs: VideoJobs, signals: StopSignals, params: VideoParams,
                 rows: tuple[JobRow, ...], session: str) -> AsyncIterator[tuple[Any, ...]]:
    """Outputs for each update of one job, ending with its final state."""
    rows = (JobRow(params.prompt), *rows)
    yield outputs(rows)
    stop = signals.start(session)
    try:
        async for update in until_stopped(jobs.run(params), stop):
            rows = (rows[0].seen(update), *rows[1:])
            yield outputs(rows, str(update.path) if update.path else None)
    except BackendError as exc:
        rows = (replace(rows[0], status="failed", error=str(exc)), *rows[1:])
    finally:
        signals.done(session, stop)
    if stop.is_set():
        rows = (replace(rows[0], status="cancelled"), *rows[1:])
    if rows[0].status != "completed":
        yield outputs(rows)


def build_videos(jobs: VideoJobs, location: str) -> None:
    """The tab's components and events, inside the current Blocks context."""
    signals = StopSignals()
    history = gr.State(())
    gr.Markdown(f"Text-to-video jobs on `{html.escape(location)}`; each job names the "
                "model that runs it.", elem_id="video-info")
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="video-prompt")
            negative = gr.Textbox(label="Negative prompt", lines=1)
            size = gr.Dropdown(VIDEO_SIZES, value=VIDEO_SIZES[0], label="Size (WxH)",
                               allow_custom_value=True, elem_id="video-size")
            frames = gr.Slider(5, 161, value=81, step=4, label="Frames (1 + 4k)")
            steps = gr.Slider(1, 100, value=50, step=1, label="Denoising steps")
            seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
            go = gr.Button("Generate", variant="primary", elem_id="video-generate")
            cancel = gr.Button("Cancel", variant="stop", visible=False, elem_id="video-cancel")
        with gr.Column(scale=3):
            status = gr.HTML("<p>Write a prompt and press Generate.</p>", elem_id="video-status")
            video = gr.Video(label="Latest video", autoplay=True, elem_id="video-result")
            past = gr.Gallery(label="This session's videos", columns=4, height=220,
                              elem_id="video-gallery")
            table = gr.HTML(table_html(()), elem_id="video-jobs")

    async def generate(prompt_text: str, negative_text: str, size_text: str,
                       num_frames: float, num_steps: float, seed_value: float | None,
                       rows: tuple[JobRow, ...], request: gr.Request
                       ) -> AsyncIterator[tuple[Any, ...]]:
        try:
            params = VideoParams(prompt_text, size_text, int(num_frames), int(num_steps),
                                 None if seed_value is None or seed_value < 0
                                 else int(seed_value), negative_text)
        except ValueError as exc:
            message = f"<div class='video-status failed'><b>Not sent</b> · {html.escape(str(exc))}"
            yield gr.skip(), message + "</div>", rows, gr.skip(), gr.skip()
            return
        async for out in follow(jobs, signals, params, rows, request.session_hash or ""):
            yield out

    async def stop(request: gr.Request) -> None:
        signals.stop(request.session_hash or "")

    running = go.click(lambda: buttons(True), None, [go, cancel], queue=False)
    running.then(generate, [prompt, negative, size, frames, steps, seed, history],
                 [video, status, history, past, table], show_progress="hidden").then(
        lambda: buttons(False), None, [go, cancel], queue=False)
    cancel.click(stop, None, None, queue=False)
