"""The model dropdown of a chat on a server that serves several models.

Contract:

- :meth:`ModelPicker.of` gives a picker only for a backend that is a
  :class:`~vllm_mlx.ui.backend.ModelMenu` (the remote backend) on a server listing more
  than one model; an in-process backend serves one model and gets none.
- The dropdown's entries read ``NAME (KIND, STATE)`` (e.g. ``vl (vision, not loaded)``),
  their values are the model ids; the backend's model (the server's default unless
  ``--served-model`` said otherwise) is preselected. The choice is per browser session.
- Choosing a model updates the header line, the textbox (placeholder; the upload button
  only for a vision model) and the video sliders (shown when the model may take video);
  the next message goes to that model (``GenerationOptions.model``).
- The entries are read again from ``/v1/models`` when the page loads and after every
  reply (then the page follows the card again: a model's card tells exactly what it
  takes once it is loaded), so "not loaded" turns into "loaded" once a message has
  loaded the model, or into "failed to load". When the server cannot be reached the last
  entries stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from .backend import BackendError, BackendInfo, ChatBackend, ModelMenu, ModelOption

logger = logging.getLogger(__name__)


def placeholder(info: BackendInfo) -> str:
    return ("Type a message; drop or upload images and videos" if info.vision
            else "Type a message (this model is text-only)")


def upload_sources(info: BackendInfo) -> list[Any]:
    return ["upload"] if info.vision else []


@dataclass
class ModelPicker:
    menu: ModelMenu
    fallback: BackendInfo  # the backend's own model
    options: dict[str, ModelOption] = field(default_factory=dict)

    @classmethod
    def of(cls, backend: ChatBackend) -> ModelPicker | None:
        if not isinstance(backend, ModelMenu):
            return None
        picker = cls(backend, backend.info)
        picker.refresh()
        return picker if len(picker.options) > 1 else None

    def refresh(self) -> list[ModelOption]:
        """The server's models now; the last ones seen when it cannot be reached."""
        try:
            fresh = self.menu.model_options()
        except BackendError as exc:
            logger.warning("keeping the last model list: %s", exc)
            fresh = list(self.options.values())
        self.options = {option.id: option for option in fresh}  # one assignment: atomic
        return fresh

    def info(self, model: str | None) -> BackendInfo:
        """What is known of ``model`` (the backend's own model when it is not listed)."""
        option = self.options.get(model or "")
        return option.info if option is not None else self.fallback

    def dropdown(self) -> Any:
        return gr.Dropdown(choices=self._choices(list(self.options.values())),
                           value=self.fallback.model, label="Model", show_label=False,
                           interactive=True, elem_id="model-picker", scale=1,
                           min_width=240, container=False)

    def _choices(self, options: list[ModelOption]) -> list[tuple[str, str]]:
        return [(option.label(), option.id) for option in options]

    def updated_dropdown(self, chosen: str | None) -> Any:
        """The dropdown with fresh labels, keeping the session's choice."""
        options = self.refresh()
        return gr.Dropdown(choices=self._choices(options), value=chosen or self.fallback.model)


def header_line(title: str, info: BackendInfo) -> str:
    return f"**{title}** · {info.describe()}"


def page_for(info: BackendInfo, title: str) -> tuple[Any, ...]:
    """The header line, the textbox and the two video sliders for the chosen model."""
    sliders = [gr.Slider(visible=info.takes_video) for _ in range(2)]
    box = gr.MultimodalTextbox(placeholder=placeholder(info), sources=upload_sources(info))
    return (header_line(title, info), box, *sliders)


def wire(picker: ModelPicker, dropdown: Any, header: Any, box: Any, video_sliders: list[Any],
         title: str, demo: gr.Blocks, replies: list[Any]) -> None:
    """Events: a choice updates the page; loading the page and the end of each reply (the
    ``replies`` events) refresh the entries and, with what a loaded model's card tells,
    the page. Not on opening the list: new choices would close it."""
    page = [header, box, *video_sliders]

    def chosen(model: str | None) -> tuple[Any, ...]:
        return page_for(picker.info(model), title)

    dropdown.change(chosen, dropdown, page, queue=False)
    demo.load(picker.updated_dropdown, dropdown, dropdown, queue=False)
    for ended in replies:
        ended.then(picker.updated_dropdown, dropdown, dropdown, queue=False).then(
            chosen, dropdown, page, queue=False)
