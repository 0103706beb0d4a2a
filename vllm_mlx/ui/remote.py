"""The chat UI's remote backend: a running ``vllm-mlx serve`` through the OpenAI SDK.

Contract:

- :meth:`RemoteBackend.connect` probes the server once: ``GET /v1/models`` (model id,
  vision / video capabilities, random weights) and ``GET /v1/videos?limit=1`` (a 200 means
  the server has a video generation model: the Videos tab is built).
- Replies stream from ``chat.completions.create(stream=True)`` with ``video_fps`` /
  ``video_max_frames`` in ``extra_body`` and the usage chunk requested (the reply's
  :class:`~vllm_mlx.ui.backend.Usage` comes last); closing the stream closes the HTTP response,
  which cancels the generation on the server.
- Media are never re-uploaded. With ``media_root`` (the same folder the server was started
  with as ``--media-root``, on the same machine) each file is staged there once,
  content-addressed, and sent as a local path in every turn. Without it a file travels as a
  ``data:`` URL once, in the turn that attached it; later turns carry a text note instead
  (the server is stateless, so the model then no longer sees that file's pixels).
- Several models: :meth:`RemoteBackend.model_options` reads ``GET /v1/models`` again (each
  card's state and capabilities now); a reply goes to ``GenerationOptions.model`` when set,
  else to the model chosen at connect. A vision model that is not loaded yet has no video
  flag on its card: videos are sent and the server decides.
- Server, connection and file errors are raised as :class:`BackendError`; a server that
  cannot be reached is named by its URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .backend import BackendError, BackendInfo, GenerationOptions, ModelOption, Usage
from .conversation import (
    Attachment,
    Conversation,
    MediaPartFn,
    once_part,
    path_part,
    to_openai_messages,
)
from .videos import VideoJobs

STAGING_DIR = ".vllm-mlx-chat"


def api_base(server_url: str) -> str:
    """``http://host:port`` or ``.../v1`` -> the ``.../v1`` base the SDK wants."""
    base = server_url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def stage_file(path: str | Path, media_root: Path) -> Path:
    """``path`` if it lies under ``media_root``, else a content-addressed copy there."""
    source = Path(path).resolve()
    root = media_root.resolve()
    if source.is_relative_to(root):
        return source
    target = root / STAGING_DIR / f"{_file_digest(source)}{source.suffix.lower()}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    return target


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _pick_model(cards: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    if not cards:
        raise BackendError("the server lists no models")
    for card in cards:
        if wanted is None or wanted == card.get("id") or wanted in card.get("aliases", []):
            return card
    raise BackendError(f"the server does not serve '{wanted}'")


def model_cards(base: str, api_key: str | None, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The server's ``/v1/models`` cards (may raise ``httpx.HTTPError``)."""
    response = httpx.get(f"{base}/models", headers=_auth(api_key), timeout=timeout)
    response.raise_for_status()
    return list(response.json().get("data") or [])


def probe_server(base: str, api_key: str | None, wanted: str | None,
                 timeout: float = 10.0) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """The chosen model's card, every card, and whether the server has the video jobs API."""
    try:
        cards = model_cards(base, api_key, timeout)
        card = _pick_model(cards, wanted)
        videos = httpx.get(f"{base}/videos", params={"limit": 1}, headers=_auth(api_key),
                           timeout=timeout)
    except httpx.HTTPError as exc:
        raise BackendError(f"cannot use the server at {base}: {exc}") from exc
    return card, cards, videos.status_code == 200


def card_info(card: dict[str, Any], location: str) -> BackendInfo:
    """What the UI shows of a model card; a card without ``state`` is a loaded model. A
    model whose kind is unknown until it loads is let take images (the server decides)."""
    caps = card.get("capabilities") or {}
    loaded = card.get("state", "loaded") == "loaded"
    vision_known = loaded or card.get("kind") is not None
    return BackendInfo(model=str(card["id"]), vision=bool(caps.get("vision")) or not vision_known,
                       video=bool(caps.get("video")), location=location,
                       random_weights=bool(card.get("random_weights")),
                       video_known=loaded, vision_known=vision_known)


def model_option(card: dict[str, Any], location: str) -> ModelOption:
    return ModelOption(card_info(card, location), str(card.get("state", "loaded")),
                       bool(card.get("default", False)))


def _error_text(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(getattr(exc, "message", None) or exc)


@dataclass
class RemoteBackend:
    client: Any  # openai.AsyncOpenAI
    model: str
    server_info: BackendInfo
    media_root: Path | None = None
    jobs: VideoJobs | None = None
    api_key: str | None = None
    # (upload path, size, mtime) -> staged path; one small entry per distinct upload
    _staged: dict[tuple[str, int, int], str] = field(default_factory=dict)

    @classmethod
    def connect(cls, server_url: str, *, api_key: str | None = None, model: str | None = None,
                media_root: Path | None = None) -> RemoteBackend:
        from openai import AsyncOpenAI

        base = api_base(server_url)
        card, _, has_videos = probe_server(base, api_key, model)
        client = AsyncOpenAI(base_url=base, api_key=api_key or "not-needed", max_retries=0)
        jobs = VideoJobs(base, api_key) if has_videos else None
        return cls(client, str(card["id"]), card_info(card, server_url), media_root, jobs,
                   api_key)

    @property
    def info(self) -> BackendInfo:
        return self.server_info

    @property
    def video_jobs(self) -> VideoJobs | None:
        return self.jobs

    def model_options(self) -> list[ModelOption]:
        """Every model the server lists, with its state now."""
        try:
            cards = model_cards(api_base(str(self.client.base_url)), self.api_key)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot list the models of {self.server_info.location}: "
                               f"{exc}") from exc
        return [model_option(card, self.server_info.location) for card in cards]

    def _staged_part(self, attachment: Attachment, newest: bool) -> dict[str, Any]:
        assert self.media_root is not None
        stat = Path(attachment.path).stat()
        key = (attachment.path, stat.st_size, stat.st_mtime_ns)
        if key not in self._staged:
            self._staged[key] = str(stage_file(attachment.path, self.media_root))
        return path_part(Attachment(self._staged[key], attachment.kind, attachment.name,
                                    attachment.mime), newest)

    def media_part_fn(self) -> MediaPartFn:
        return self._staged_part if self.media_root is not None else once_part

    def messages(self, conversation: Conversation,
                 options: GenerationOptions) -> list[dict[str, Any]]:
        try:
            return to_openai_messages(conversation, self.media_part_fn(), options.system_prompt)
        except OSError as exc:
            raise BackendError(f"cannot read an attachment: {exc}") from exc

    async def stream(self, conversation: Conversation,
                     options: GenerationOptions) -> AsyncIterator[str | Usage]:
        import openai

        messages = await asyncio.to_thread(self.messages, conversation, options)
        try:
            stream = await self.client.chat.completions.create(
                model=options.model or self.model, messages=messages, stream=True,
                max_tokens=options.max_tokens, temperature=options.temperature,
                stream_options={"include_usage": True},
                extra_body={"video_fps": options.video_fps,
                            "video_max_frames": options.video_max_frames})
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
                    if chunk.usage is not None:
                        yield Usage(chunk.usage.completion_tokens)
        except openai.APIConnectionError as exc:
            raise BackendError(f"cannot reach the server at {self.server_info.location}: "
                               f"{_error_text(exc)}") from exc
        except openai.OpenAIError as exc:
            raise BackendError(self._named(_error_text(exc), conversation)) from exc

    def _named(self, text: str, conversation: Conversation) -> str:
        """An error about a staged copy names the file the user attached."""
        names = {a.path: a.name for a in conversation.attachments}
        for (path, _, _), staged in self._staged.items():
            if path in names:
                text = text.replace(staged, repr(names[path]))
        return text

    def close(self) -> None:
        return None  # the AsyncOpenAI client holds no resources outside a request
