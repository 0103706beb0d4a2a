"""``/v1/{image,document,video}/generate`` and ``/v1/predictions`` without the web framework.

Contract: a request is checked (model, domain or ``json_schema``, input kind, callback URL) and
its media decoded *before* anything is recorded, so bad input is a 4xx and records nothing.
Then the prediction is written to the :class:`Store` and run as an asyncio task:

* ``batch=false``: the caller waits (the task is shielded: a client that hangs up does not
  lose the prediction) and gets ``completed`` or ``failed`` with ``error``; input errors the
  engine reports (unsupported media, a schema it cannot enforce) are raised as 4xx;
* ``batch=true``: the caller gets ``pending`` at once; the task waits for one of
  ``max_concurrent`` slots, runs through the engine (which batches concurrent requests) and
  retries while the engine queue is full.

Finished predictions are stored, then POSTed to ``callback_url`` if given. The
:class:`Store` (built with ``recover_reason=RESTART_REASON``) fails predictions an earlier
process left unfinished when it opens; :meth:`close` fails the ones still running at
shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import httpx

from ..engine import EngineOverloaded
from ..errors import APIError, excerpt, to_api_error
from ..openai.serving_common import ServingContext
from .callbacks import CallbackSender, check_callback_url
from .inputs import InputResolver, PreparedInputs
from .predictor import Options, Outcome, Predictor, Target, check_user_schema
from .protocol import FilePredictionRequest, GenerationConfig, ImagePredictionRequest, Usage
from .registry import DomainRegistry
from .spec import DomainSpec, InputKind
from .store import Store, utc_now

logger = logging.getLogger(__name__)
VLMRUN_MODELS = frozenset({"vlm-1", "vlm-agent-1"})
GENERIC_PROMPT = "Extract the information shown into the JSON fields."
CUSTOM_SCHEMA_MAX_TOKENS = 4096
RESTART_REASON = "the server stopped before this prediction finished; submit it again"
SHUTDOWN_REASON = "the server shut down before this prediction finished; submit it again"
PUBLIC_FIELDS = ("id", "created_at", "completed_at", "response", "status", "usage", "domain",
                 "error")

Request = ImagePredictionRequest | FilePredictionRequest


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a prediction row."""
    out = {key: record.get(key) for key in PUBLIC_FIELDS}
    out["usage"] = out["usage"] or Usage().model_dump()
    return out


def _request_record(body: Request) -> dict[str, Any]:
    """What is kept of a request: no media (images, inline data: URLs)."""
    record = body.model_dump(mode="json", exclude={"images", "config", "url"})
    record["config"] = body.config.model_dump(mode="json", exclude={"response_model"})
    url = getattr(body, "url", None)
    if url is not None:
        record["url"] = f"data: ({len(url)} characters)" if url.startswith("data:") else url
    if isinstance(body, ImagePredictionRequest):
        record["images"] = len(body.images)
    return record


@dataclass(frozen=True)
class Job:
    prediction_id: str
    target: Target
    inputs: PreparedInputs
    options: Options
    batch: bool
    callback_url: str | None


class PredictionService:
    def __init__(self, ctx: ServingContext, registry: DomainRegistry, store: Store,
                 inputs: InputResolver, callbacks: CallbackSender,
                 max_concurrent: int = 32, overload_retries: int = 6) -> None:
        self.ctx = ctx
        self.registry = registry
        self.store = store
        self.inputs = inputs
        self.callbacks = callbacks
        self.predictor = Predictor(ctx.engine)
        self.overload_retries = overload_retries
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._own_client: httpx.AsyncClient | None = None

    # lifecycle
    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_client is not None:
            await self._own_client.aclose()

    # reading
    def get(self, prediction_id: str) -> dict[str, Any]:
        record = self.store.get_prediction(prediction_id)
        if record is None:
            raise APIError(404, f"no prediction with id {excerpt(prediction_id)}", param="id",
                           code="prediction_not_found")
        return public(record)

    def list(self, skip: int, limit: int) -> list[dict[str, Any]]:
        return [public(r) for r in self.store.list_predictions(skip, limit)]

    # creating
    async def image(self, body: ImagePredictionRequest) -> dict[str, Any]:
        target, options = await self._check(body, "image")
        inputs = await self.inputs.images(body.images, body.config.detail)
        return await self._submit(body, "image", target, options, inputs)

    async def document(self, body: FilePredictionRequest) -> dict[str, Any]:
        target, options = await self._check(body, "document")
        inputs = await self.inputs.document(body.file_id, body.url, body.config.detail,
                                            body.config.page_indices)
        return await self._submit(body, "document", target, options, inputs)

    async def video(self, body: FilePredictionRequest) -> dict[str, Any]:
        target, options = await self._check(body, "video")
        if not self.ctx.engine.model.capabilities.video:
            raise APIError(400, "the served model does not accept video", param="file_id",
                           code="unsupported_input")
        inputs = await self.inputs.video(body.file_id, body.url, body.config.detail)
        return await self._submit(body, "video", target, options, inputs)

    async def _check(self, body: Request, kind: InputKind) -> tuple[Target, Options]:
        if body.model not in VLMRUN_MODELS:
            self.ctx.check_model(body.model)
        if not self.ctx.engine.model.is_vision:
            raise APIError(400, "the served model is text-only; structured predictions need a "
                           "vision-language model", param="model", code="unsupported_input")
        spec, target = self.target(body.domain, body.config, kind)
        if target.model is None:  # a caller's schema: checking it costs ~1 ms a property
            await self.ctx.checks.run(check_user_schema, target.schema)
        if body.callback_url is not None:
            await check_callback_url(body.callback_url, self.ctx.settings.allow_private_urls)
        return target, self._options(spec, body)

    def target(self, domain: str | None, config: GenerationConfig, kind: InputKind
               ) -> tuple[DomainSpec | None, Target]:
        custom = config.json_schema
        spec = self.registry.get(domain) if domain is not None and domain in self.registry \
            else None
        if spec is None and custom is None:
            message = (f"unknown domain {excerpt(domain)}; see GET /v1/domains" if domain else
                       "give a domain (see GET /v1/domains) or config.json_schema")
            raise APIError(400, message, param="domain", code="unknown_domain")
        if spec is not None and not spec.accepts(kind):
            raise APIError(400, f"domain {excerpt(domain)} does not take {kind} input (it takes "
                           f"{', '.join(spec.inputs)})", param="domain", code="unsupported_input")
        prompt = config.prompt or (spec.prompt if spec else GENERIC_PROMPT)
        if custom is not None:
            return spec, Target(schema=custom, prompt=prompt, domain=domain)
        assert spec is not None
        return spec, Target(schema=spec.schema, prompt=prompt, model=spec.model,
                            domain=spec.name)

    def _options(self, spec: DomainSpec | None, body: Request) -> Options:
        config = body.config
        default = spec.max_tokens if spec is not None else CUSTOM_SCHEMA_MAX_TOKENS
        limit = self.ctx.settings.max_tokens_limit
        return Options(max_tokens=min(config.max_tokens or default, limit),
                       temperature=config.temperature, max_retries=config.max_retries,
                       confidence=config.confidence, grounding=config.grounding)

    async def _submit(self, body: Request, kind: InputKind, target: Target, options: Options,
                      inputs: PreparedInputs) -> dict[str, Any]:
        prediction_id = f"pred-{uuid.uuid4().hex[:24]}"
        usage = Usage(elements_processed=inputs.elements, element_type=inputs.element_type,
                      duration_seconds=round(inputs.duration_s))
        self.store.add_prediction({
            "id": prediction_id, "created_at": utc_now(), "domain": body.domain, "kind": kind,
            "status": "pending" if body.batch else "running", "usage": usage.model_dump(),
            "callback_url": body.callback_url,
            "request": _request_record(body) if body.metadata.allow_logging else None})
        job = Job(prediction_id, target, inputs, options, body.batch, body.callback_url)
        task = self._spawn(self._run(job))
        if not body.batch:
            error = await asyncio.shield(task)
            if error is not None:
                raise error
        return self.get(prediction_id)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, job: Job) -> APIError | None:
        """Run and record one job; return a 4xx to raise to a waiting caller, if any."""
        slot: AbstractAsyncContextManager[Any] = self._slots if job.batch else nullcontext()
        error: APIError | None = None
        try:
            async with slot:
                self.store.update_prediction(job.prediction_id, status="running")
                outcome = await self._predict(job)
        except asyncio.CancelledError:
            self._finish(job, Outcome("failed", error=SHUTDOWN_REASON), notify=False)
            raise
        except Exception as exc:
            error = to_api_error(exc)
            outcome = Outcome("failed", error=error.message)
        self._finish(job, outcome)
        return error if error is not None and error.status < 500 and not job.batch else None

    async def _predict(self, job: Job) -> Outcome:
        delay = 0.5
        for attempt in range(self.overload_retries + 1):
            try:
                return await self.predictor.run(job.target, job.inputs, job.options,
                                                job.prediction_id)
            except EngineOverloaded:
                if not job.batch or attempt == self.overload_retries:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def _finish(self, job: Job, outcome: Outcome, notify: bool = True) -> None:
        record = self.store.get_prediction(job.prediction_id) or {}
        usage = dict(record.get("usage") or {})
        usage.update(prompt_tokens=outcome.prompt_tokens,
                     completion_tokens=outcome.completion_tokens,
                     total_tokens=outcome.prompt_tokens + outcome.completion_tokens)
        self.store.update_prediction(job.prediction_id, status=outcome.status,
                                     response=outcome.response, error=outcome.error,
                                     usage=usage, completed_at=utc_now())
        if job.callback_url and notify:
            self._spawn(self._notify(job.callback_url, job.prediction_id))

    async def _notify(self, url: str, prediction_id: str) -> None:
        client = self.ctx.http or self._client()
        delivered = await self.callbacks.deliver(client, url, self.get(prediction_id))
        logger.info("callback for %s to %s: %s", prediction_id, url,
                    "delivered" if delivered else "gave up")

    def _client(self) -> httpx.AsyncClient:
        if self._own_client is None:
            self._own_client = httpx.AsyncClient(follow_redirects=False)
        return self._own_client

