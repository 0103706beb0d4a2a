"""``build_chat_app(backend) -> gr.Blocks``: the Gradio multimodal chat page.

Contract:

- A header names the model, where it runs and whether it sees images / video.
- Chat tab: a multimodal textbox (text plus several images / videos per message, by upload
  or drag-and-drop), a Chatbot streaming the reply token by token, Stop (cancels the
  generation; the partial reply stays), Clear, and settings: max tokens, temperature,
  video fps and max frames (shown for video-capable models), a system prompt.
- History is a :class:`~vllm_mlx.ui.conversation.Conversation` in ``gr.State``: one per
  browser session, never shared between users. Handlers return new values only.
- A Videos tab exists only when ``backend.video_jobs`` is not ``None``: prompt, size,
  frames, steps, seed; a progress bar fed by the job's progress; the video plays in the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from .backend import BackendError, ChatBackend, GenerationOptions
from .conversation import Conversation, UnsupportedAttachment, chatbot_messages, user_turn
from .videos import VideoJobs, VideoParams

ChatOutputs = tuple[list[dict[str, Any]], Conversation]
VIDEO_SIZES = ["832x480", "480x832", "1280x720", "720x1280", "512x512", "256x256"]


def add_user_turn(message: dict[str, Any] | None, conversation: Conversation,
                  vision: bool, video: bool = True
                  ) -> tuple[Any, Conversation, list[dict[str, Any]]]:
    """Validate the textbox value and append it as a user turn (raises ``gr.Error``)."""
    text = str((message or {}).get("text") or "")
    files = [str(f) for f in (message or {}).get("files") or []]
    if not text.strip() and not files:
        raise gr.Error("Type a message or attach an image or video.")
    if files and not vision:
        raise gr.Error("This model is text-only: remove the attachments.")
    try:
        turn = user_turn(text, files)
    except (UnsupportedAttachment, OSError) as exc:
        raise gr.Error(str(exc)) from exc
    if not video and any(a.kind == "video" for a in turn.attachments):
        raise gr.Error("This model takes images but not video: remove the videos.")
    updated = conversation.add(turn)
    return gr.MultimodalTextbox(value=None, interactive=False), updated, \
        chatbot_messages(updated)


def make_responder(backend: ChatBackend) -> Callable[..., AsyncIterator[ChatOutputs]]:
    async def respond(conversation: Conversation, max_tokens: float, temperature: float,
                      video_fps: float, video_max_frames: float,
                      system_prompt: str) -> AsyncIterator[ChatOutputs]:
        try:
            options = GenerationOptions(int(max_tokens), float(temperature), float(video_fps),
                                        int(video_max_frames), system_prompt or "")
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        reply = ""
        try:
            async for piece in backend.stream(conversation, options):
                reply += piece
                current = conversation.with_reply(reply)
                yield chatbot_messages(current), current
        except BackendError as exc:
            # the failed turn leaves the session, or every later turn would resend it
            kept = conversation.without_last_exchange()
            yield chatbot_messages(kept), kept
            raise gr.Error(conversation.with_file_names(str(exc))) from exc

    return respond


def _settings(video: bool) -> list[gr.components.Component]:
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            max_tokens = gr.Slider(1, 4096, value=512, step=1, label="Max tokens",
                                   elem_id="max-tokens")
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature",
                                    elem_id="temperature")
        with gr.Row(visible=video):
            fps = gr.Slider(0.1, 8.0, value=2.0, step=0.1, label="Video fps (frames kept/s)",
                            elem_id="video-fps")
            max_frames = gr.Slider(1, 128, value=32, step=1, label="Video max frames",
                                   elem_id="video-max-frames")
        system = gr.Textbox(label="System prompt", lines=2, elem_id="system-prompt")
    return [max_tokens, temperature, fps, max_frames, system]


def _chat_tab(backend: ChatBackend) -> None:
    info = backend.info
    session = gr.State(Conversation())
    chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height="62vh", min_height=320)
    box = gr.MultimodalTextbox(
        file_types=["image", "video"], file_count="multiple", sources=["upload"],
        placeholder="Type a message; drop or upload images and videos" if info.vision
        else "Type a message", show_label=False, elem_id="chat-input", autofocus=True)
    with gr.Row():
        stop = gr.Button("Stop", variant="stop", elem_id="stop-button")
        clear = gr.Button("Clear", elem_id="clear-button")
    settings = _settings(info.video)

    def add(message: dict[str, Any] | None, conversation: Conversation) -> Any:
        return add_user_turn(message, conversation, info.vision, info.video)

    def enable_box() -> Any:
        return gr.MultimodalTextbox(interactive=True)

    def reset() -> tuple[Conversation, list[Any], Any]:
        return Conversation(), [], gr.MultimodalTextbox(value=None, interactive=True)

    added = box.submit(add, [box, session], [box, session, chatbot], queue=False)
    replying = added.success(make_responder(backend), [session, *settings], [chatbot, session])
    replying.then(enable_box, None, box)
    replying.failure(enable_box, None, box)  # .then does not follow a raised gr.Error
    stop.click(enable_box, None, box, cancels=[replying], queue=False)
    clear.click(reset, None, [session, chatbot, box], cancels=[replying], queue=False)
    chatbot.clear(reset, None, [session, chatbot, box], cancels=[replying], queue=False)


def _videos_tab(jobs: VideoJobs) -> None:
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="video-prompt")
            negative = gr.Textbox(label="Negative prompt", lines=1)
            size = gr.Dropdown(VIDEO_SIZES, value=VIDEO_SIZES[0], label="Size (WxH)",
                               allow_custom_value=True)
            frames = gr.Slider(5, 161, value=81, step=4, label="Frames (1 + 4k)")
            steps = gr.Slider(1, 100, value=50, step=1, label="Denoising steps")
            seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="video-generate")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column():
            video = gr.Video(label="Result", autoplay=True, elem_id="video-result")
            status = gr.Markdown(elem_id="video-status")

    async def generate(prompt_text: str, negative_text: str, size_text: str, num_frames: float,
                       num_steps: float, seed_value: float | None,
                       progress: gr.Progress = gr.Progress()  # noqa: B008 (Gradio's idiom)
                       ) -> tuple[str, str]:
        try:
            params = VideoParams(prompt_text, size_text, int(num_frames), int(num_steps),
                                 None if seed_value is None or seed_value < 0
                                 else int(seed_value), negative_text)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        progress(0.0, desc="submitting")
        try:
            async for update in jobs.run(params):
                progress(update.fraction, desc=update.status.replace("_", " "))
                if update.path is not None:
                    return str(update.path), f"Job `{update.id}` completed."
        except BackendError as exc:
            raise gr.Error(str(exc)) from exc
        raise gr.Error("the job ended without a video")

    event = go.click(generate, [prompt, negative, size, frames, steps, seed], [video, status])
    cancel.click(None, None, None, cancels=[event])


def build_chat_app(backend: ChatBackend, title: str = "vllm-mlx chat") -> gr.Blocks:
    """The whole page; launch it with ``.queue().launch(...)``."""
    with gr.Blocks(title=title, delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(f"## {title}\n{backend.info.describe()}", elem_id="model-info")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                _chat_tab(backend)
            jobs = backend.video_jobs
            if jobs is not None:
                with gr.Tab("Videos", id="videos"):
                    _videos_tab(jobs)
    return demo
