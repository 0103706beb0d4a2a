"""VLM Run extensions of ``/v1/chat/completions`` (seed 001).

Contract: :class:`VlmrunChatHook` is installed as ``ChatService.hook``. For each request it

* maps the VLM Run model names (``vlm-1``, ``vlm-agent-1``) to the served model;
* reads ``vlmrun: {domain, metadata}`` and ``session_id`` (top level, as the OpenAI SDK's
  ``extra_body`` sends them, or inside a literal ``extra_body`` object);
* with a domain: constrains the reply to the domain's JSON schema (``response_format``
  ``json_schema``; giving both is a 400), puts the domain's instructions in the system
  message and, unless the caller set one, uses the domain's ``max_tokens``;
* with a session id: prepends the session's earlier turns and, once the reply is known,
  records the new turn (see :class:`SessionStore`).

Bad values (unknown domain, malformed ``vlmrun``) are 400s with the parameter named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..content import MessageRef, TextRef
from ..errors import APIError, excerpt
from ..openai.protocol import ChatCompletionRequest, ResponseFormat
from .predictor import SYSTEM, field_guide
from .protocol import RequestMetadata
from .registry import DomainRegistry
from .service import VLMRUN_MODELS
from .sessions import SessionStore
from .spec import DomainSpec

Refs = tuple[MessageRef, ...]
OnReply = Callable[[str], None]


def _extension(req: ChatCompletionRequest, key: str) -> Any:
    extra = req.model_extra or {}
    if key in extra:
        return extra[key]
    return (req.extra_body or {}).get(key)


def _with_instructions(refs: Refs, text: str) -> Refs:
    if refs and refs[0].role == "system":
        first = refs[0]
        return (MessageRef("system", (TextRef(text + "\n\n"), *first.parts)), *refs[1:])
    return (MessageRef("system", (TextRef(text),)), *refs)


class VlmrunChatHook:
    def __init__(self, registry: DomainRegistry, sessions: SessionStore,
                 max_tokens_limit: int = 8192) -> None:
        self.registry = registry
        self.sessions = sessions
        self.max_tokens_limit = max_tokens_limit

    def begin(self, req: ChatCompletionRequest, refs: Refs
              ) -> tuple[ChatCompletionRequest, Refs, OnReply | None]:
        if req.model in VLMRUN_MODELS:
            req = req.model_copy(update={"model": None})
        original = refs
        spec = self._domain(_extension(req, "vlmrun"))
        if spec is not None:
            req, refs = self._constrain(req, refs, spec)
        session_id = _extension(req, "session_id")
        if session_id is None:
            return req, refs, None
        if not isinstance(session_id, str) or not 0 < len(session_id) <= 256:
            raise APIError(400, "session_id must be a string of 1 to 256 characters",
                           param="session_id")
        return req, self._with_history(session_id, refs), self._recorder(session_id, original)

    def _domain(self, vlmrun: Any) -> DomainSpec | None:
        if vlmrun is None:
            return None
        if not isinstance(vlmrun, dict):
            raise APIError(400, "vlmrun must be an object {domain, metadata}", param="vlmrun")
        try:
            RequestMetadata.model_validate(vlmrun.get("metadata") or {})
        except ValidationError as exc:
            raise APIError(400, f"vlmrun.metadata: {exc.errors()[0].get('msg')}",
                           param="vlmrun.metadata") from exc
        domain = vlmrun.get("domain")
        if domain is None:
            return None
        if not isinstance(domain, str) or domain not in self.registry:
            raise APIError(400, f"unknown domain {excerpt(domain)}; see GET /v1/domains",
                           param="vlmrun.domain", code="unknown_domain")
        return self.registry.get(domain)

    def _constrain(self, req: ChatCompletionRequest, refs: Refs, spec: DomainSpec
                   ) -> tuple[ChatCompletionRequest, Refs]:
        if req.response_format is not None and req.response_format.type != "text":
            raise APIError(400, "give either vlmrun.domain or response_format, not both",
                           param="response_format")
        update: dict[str, Any] = {"response_format": ResponseFormat(
            type="json_schema", json_schema={"name": spec.name, "schema": spec.json_schema()})}
        if req.max_tokens is None and req.max_completion_tokens is None:
            update["max_tokens"] = min(spec.max_tokens, self.max_tokens_limit)
        instructions = "\n\n".join((SYSTEM, spec.prompt, field_guide(spec.schema)))
        return req.model_copy(update=update), _with_instructions(refs, instructions)

    def _with_history(self, session_id: str, refs: Refs) -> Refs:
        history = self.sessions.history(session_id)
        if any(m.role == "system" for m in refs):
            system = tuple(m for m in refs if m.role == "system")
            rest = tuple(m for m in refs if m.role != "system")
            return (*system, *(m for m in history if m.role != "system"), *rest)
        return (*history, *refs)

    def _recorder(self, session_id: str, refs: Refs) -> OnReply:
        def record(reply: str) -> None:
            self.sessions.record(session_id, refs, reply)

        return record
