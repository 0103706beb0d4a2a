"""``build_chat_app(backend) -> gr.Blocks``: the Gradio multimodal chat page.

Contract:

- A header names the model, where it runs and whether it sees images / video, next to a
  New chat button. Settings live in a sidebar, visible without scrolling: max tokens,
  temperature, video fps and max frames (shown for video-capable models), a system prompt.
- On a server that serves several models a dropdown beside the header picks the model
  (:mod:`.model_picker`); the header line, the upload button and the video sliders follow
  the chosen model. One model, or an in-process engine: no dropdown.
- The chat (:mod:`.chat`) fills the page; with ``backend.video_jobs`` a Videos tab
  (:mod:`.video_tab`) sits beside it, otherwise there are no tabs at all.
- Light or dark follows the system setting (Gradio's default; ``?__theme=`` overrides).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .backend import ChatBackend
from .chat import add_user_turn, build_chat, make_responder
from .model_picker import ModelPicker, header_line, wire
from .video_tab import build_videos

__all__ = ["add_user_turn", "build_chat_app", "make_responder"]

def _settings(video: bool) -> list[Any]:
    gr.Markdown("### Settings")
    max_tokens = gr.Slider(1, 4096, value=512, step=1, label="Max tokens", elem_id="max-tokens")
    temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature",
                            elem_id="temperature")
    fps = gr.Slider(0.1, 8.0, value=2.0, step=0.1, label="Video fps (frames kept/s)",
                    elem_id="video-fps", visible=video)
    max_frames = gr.Slider(1, 128, value=32, step=1, label="Video max frames",
                           elem_id="video-max-frames", visible=video)
    system = gr.Textbox(label="System prompt", lines=3, elem_id="system-prompt")
    return [max_tokens, temperature, fps, max_frames, system]


def build_chat_app(backend: ChatBackend, title: str = "vllm-mlx chat") -> gr.Blocks:
    """The whole page; launch it with ``.queue().launch(...)``."""
    picker = ModelPicker.of(backend)
    with gr.Blocks(title=title, delete_cache=(3600, 24 * 3600), fill_height=True) as demo:
        with gr.Sidebar(label="Settings", elem_id="settings", width=300):
            settings = _settings(backend.info.takes_video)
        with gr.Row(elem_id="header", equal_height=True):
            header = gr.Markdown(header_line(title, backend.info), elem_id="model-info")
            model = picker.dropdown() if picker is not None else None
            new_chat = gr.Button("New chat", size="sm", scale=0, min_width=110,
                                 elem_id="new-chat")
        jobs = backend.video_jobs
        if jobs is None:
            box, replies = build_chat(backend, settings, new_chat, demo, picker, model)
        else:
            with gr.Tabs():
                with gr.Tab("Chat", id="chat"):
                    box, replies = build_chat(backend, settings, new_chat, demo, picker,
                                              model)
                with gr.Tab("Videos", id="videos"):
                    build_videos(jobs, backend.info.location)
        if picker is not None:
            wire(picker, model, header, box, settings[2:4], title, demo, replies)
    return demo
