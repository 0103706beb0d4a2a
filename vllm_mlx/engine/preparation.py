"""A request's prompt, prepared once on its way into the engine.

A prompt is rendered (chat template), tokenized and measured by the first stage that needs
it; later stages take the result from the request's :class:`Preparation` instead of doing
the work again:

- screening (:mod:`.screening`), on a worker thread, for long prompts: :meth:`measure`
  keeps a text model's token ids (plain ints), or a vision model's rendered text and
  media (the processor's arrays are made by the thread that prepares the prompt);
- the owner thread, checking a job queued behind a full batch or admitting it, or, for a
  vision model's prompt with media, the media preparer's thread (:mod:`.preparer`) before
  admission: :meth:`prompt` makes the :class:`PreparedPrompt` (from what screening kept)
  and the media's content hashes, checks it against the context, and keeps them (and its
  ids) for the stage after.

Requests of one job that share their prompt (``n`` choices) share one preparation
(:func:`shared`); what it holds is read, never changed, once made.

Errors: an :class:`EngineError` raised while preparing is the request's own (a 4xx). Any
other failure is logged once, where it happens, and becomes the request's
``EngineError("prefill failed: ...")``. Either is kept, and every later stage raises it
again instead of preparing anew. :meth:`measure` raises only the request's own errors: a
failure there is reported by the owner thread's next stage, as if it had happened there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ._mlx import int_list, mx
from .errors import ContextTooLong, EngineError, InvalidRequest
from .inputs import (
    PreparedPrompt,
    RenderedPrompt,
    prepare_prompt,
    prepare_vision_prompt,
    render_text_prompt,
    render_vision_prompt,
    text_token_ids,
)
from .loaded import LoadedModel
from .prefix_cache import media_hashes
from .types import GenerationRequest

logger = logging.getLogger(__name__)


def context_error(request: GenerationRequest, tokens: int, limit: int) -> ContextTooLong:
    field = request.prompt_field
    return ContextTooLong(f"the prompt is {tokens} tokens, and this model's context length "
                          f"is {limit} tokens: shorten the {field}", param=field)


def check_length(loaded: LoadedModel, request: GenerationRequest, tokens: int) -> None:
    """Refuse an empty prompt, and one the model's context cannot hold."""
    if not tokens:
        raise InvalidRequest("the prompt is empty: give at least one token", param="prompt")
    limit = loaded.capabilities.context_length
    if limit and tokens >= limit:
        raise context_error(request, tokens, limit)


@dataclass(eq=False)
class Preparation:
    """What is known of one prompt so far (see the module)."""

    token_ids: list[int] | None = None  # the whole prompt's ids (text: from screening too)
    rendered: RenderedPrompt | None = None  # a vision prompt's text and media, from screening
    prepared: PreparedPrompt | None = None  # MLX arrays, made and evaluated by one thread
    media: tuple[str, ...] = ()  # content hashes of a vision prompt's media, in order
    failure: EngineError | None = None  # raised by every stage after the one that met it

    def measure(self, loaded: LoadedModel, request: GenerationRequest) -> int | None:
        """Blocking, any thread: render and tokenize the prompt; return how many text tokens
        it has (vision models: media expand later, so a lower bound), None if that failed
        for a reason not the request's."""
        if request.prompt_ids is not None:
            return len(request.prompt_ids)
        try:
            if loaded.is_vision:
                self.rendered = render_vision_prompt(loaded, request)
                return len(loaded.tokenizer.encode(self.rendered.text, add_special_tokens=False))
            self.token_ids = text_token_ids(loaded, render_text_prompt(loaded, request))
            return len(self.token_ids)
        except EngineError:
            raise
        except Exception as exc:
            self.failure = _failure(exc, request)
            return None

    def prompt(self, loaded: LoadedModel, request: GenerationRequest) -> PreparedPrompt:
        """The prepared prompt, made once and checked against the context (on the owner
        thread, or on the media preparer's before the owner thread sees the job)."""
        if self.failure is not None:
            raise self.failure
        if self.prepared is None:
            try:
                prepared = self._make(loaded, request)
                ids = self.token_ids if self.token_ids is not None else int_list(
                    prepared.input_ids)
                check_length(loaded, request, len(ids))
                media = media_hashes(request) if loaded.is_vision else ()
            except EngineError as exc:
                self.failure = exc
                raise
            except Exception as exc:
                self.failure = _failure(exc, request)
                raise self.failure from exc
            self.prepared, self.token_ids, self.rendered, self.media = prepared, ids, None, media
        return self.prepared

    def _make(self, loaded: LoadedModel, request: GenerationRequest) -> PreparedPrompt:
        if self.token_ids is not None:
            return PreparedPrompt(input_ids=mx.array([self.token_ids]))
        if self.rendered is not None:
            return prepare_vision_prompt(loaded, self.rendered)
        return prepare_prompt(loaded, request)


def _failure(exc: Exception, request: GenerationRequest) -> EngineError:
    """Log an unexpected failure (call within its ``except``); the request's error for it."""
    logger.exception("could not prepare the prompt of request %s", request.request_id)
    return EngineError(f"prefill failed: {type(exc).__name__}: {exc}")


def shared(requests: Iterable[GenerationRequest]) -> list[Preparation]:
    """One preparation per distinct prompt: copies of a request (``n`` choices, made with
    ``dataclasses.replace``) share theirs."""
    by_prompt: dict[tuple[int, ...], Preparation] = {}
    return [by_prompt.setdefault(_prompt_key(r), Preparation()) for r in requests]


def _prompt_key(request: GenerationRequest) -> tuple[int, ...]:
    """What the prompt is made of, by identity (the requests keep the objects alive)."""
    return tuple(id(part) for part in (request.messages, request.prompt, request.prompt_ids,
                                       request.images, request.videos, request.tools,
                                       request.template_kwargs))
