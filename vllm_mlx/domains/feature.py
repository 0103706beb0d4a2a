"""The domains feature, built from settings before the chat feature that it extends.

Contract: :meth:`Domains.open` opens the SQLite store and the uploaded files under
``settings.storage_path``, the domain registry and the chat sessions. :meth:`chat_extension`
is what the chat feature is built with: the VLM Run hook (``vlmrun.domain``,
``session_id``), the ``input_file`` resolver (an unknown id is a 404), the renderer of PDFs
sent in chat ``file`` parts (the predictions' own) and the files folder as a media root.
:meth:`predictions` builds the prediction service on the chat feature's serving context;
:meth:`close` stops it and closes the store. No web framework here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..config import Settings
from ..content import VideoSampling
from ..engine import Engine
from ..errors import APIError
from ..openai.serving_chat import ChatExtension
from ..openai.serving_common import ServingContext
from .callbacks import CallbackSender, load_secret
from .chat import VlmrunChatHook
from .files import FileNotFound, FileStore
from .inputs import PDF_DPI, InputResolver
from .pdf import PdfError, PdfLimits, PdfRenderer
from .registry import DomainRegistry, default_registry
from .service import RESTART_REASON, VLMRUN_MODELS, PredictionService
from .sessions import SessionStore
from .store import Store


@dataclass
class Domains:
    settings: Settings
    engine: Engine
    store: Store
    files: FileStore
    registry: DomainRegistry
    service: PredictionService | None = field(default=None, init=False)
    pdf: PdfRenderer | None = field(default=None, init=False)  # predictions' and chat's

    @classmethod
    def open(cls, settings: Settings, engine: Engine) -> Domains:
        storage = Path(settings.storage_path).expanduser()
        store = Store(storage, recover_reason=RESTART_REASON)
        return cls(settings, engine, store, FileStore(store, storage / "files"),
                   default_registry())

    def chat_extension(self) -> ChatExtension:
        sessions = SessionStore(self.settings.max_sessions, ttl_s=self.settings.session_ttl_s)
        hook = VlmrunChatHook(self.registry, sessions, self.settings.max_tokens_limit)
        return ChatExtension(hook=hook, files=self.resolve_chat_file,
                             documents=self.chat_pdf_pages,
                             media_roots=(self.files.folder,),
                             model_names=tuple(sorted(VLMRUN_MODELS)))

    def resolve_chat_file(self, file_id: str) -> str:
        try:
            return self.files.resolve(file_id)
        except FileNotFound as exc:
            raise APIError(404, str(exc), param="messages", code="file_not_found") from exc

    def pdf_renderer(self) -> PdfRenderer:
        if self.pdf is None:
            settings = self.settings
            self.pdf = PdfRenderer(PdfLimits(
                timeout_s=settings.pdf_timeout_s, workers=settings.pdf_workers,
                memory_bytes=settings.pdf_memory_bytes))
        return self.pdf

    async def chat_pdf_pages(self, data: bytes, name: str) -> list[Image.Image]:
        """A chat ``file`` part's PDF as its pages, as documents are rendered for
        predictions (detail ``auto``); a PDF it cannot render is a 4xx naming the file."""
        try:
            return await self.pdf_renderer().render(data, None, PDF_DPI["auto"])
        except PdfError as exc:
            raise APIError(exc.status, f"{name}: {exc}", param="messages",
                           code=exc.code) from exc

    def predictions(self, ctx: ServingContext) -> PredictionService:
        settings = self.settings
        max_frames = settings.default_video_max_frames
        video = VideoSampling(settings.default_video_fps, max_frames,
                              min(self.engine.model.video_min_frames, max_frames))
        inputs = InputResolver(settings.media_policy(), self.files, video, lambda: ctx.http,
                               self.pdf_renderer())
        storage = Path(settings.storage_path).expanduser()
        callbacks = CallbackSender(lambda: load_secret(settings.callback_secret, storage),
                                   allow_private=settings.allow_private_urls)
        self.service = PredictionService(ctx, self.registry, self.store, inputs, callbacks)
        return self.service

    async def close(self) -> None:
        if self.service is not None:
            await self.service.close()
        if self.pdf is not None:
            self.pdf.close()
        self.store.close()
