"""One structured prediction: prompt + media -> engine -> JSON that validates, or a failure.

Contract: :meth:`Predictor.run` builds a chat request (a system message naming the fields,
then the images / video with the domain's prompt), decodes it with
``SamplingParams(json_schema=...)`` so llguidance constrains every token to the schema, then
parses and validates the text: with the domain's pydantic model (the answer is its JSON dump)
or, for a caller's ``json_schema``, with ``jsonschema``. It never returns invalid JSON as
completed: output cut by ``max_tokens``, an engine error or a failed validation give
``status="failed"`` with a readable ``error``. With ``temperature > 0`` a failed validation is
retried up to ``max_retries`` times (greedy decoding would only repeat itself). Token counts
of every attempt are reported. :func:`check_user_schema` rejects schemas that are not valid
JSON Schema or that llguidance cannot enforce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ValidationError

from ..engine import ChatMessage, GenerationRequest, ImagePart, SamplingParams, TextPart, VideoPart
from ..engine.types import ContentPart
from ..errors import APIError, excerpt
from . import metadata
from .inputs import PreparedInputs

SYSTEM = ("You turn images, documents and videos into structured data. Answer with one JSON "
          "object that follows the schema. Copy text exactly as shown; use null when a value "
          "is not shown.")


@dataclass(frozen=True)
class Target:
    """What to produce: a domain's pydantic model, or a caller's JSON schema."""

    schema: dict[str, Any]
    prompt: str
    model: type[BaseModel] | None = None
    domain: str | None = None


@dataclass(frozen=True)
class Options:
    max_tokens: int
    temperature: float = 0.0
    max_retries: int = 0
    confidence: bool = False
    grounding: bool = False


@dataclass
class Outcome:
    status: Literal["completed", "failed"]
    response: Any = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def check_user_schema(schema: dict[str, Any], param: str = "config.json_schema") -> None:
    """400 unless ``schema`` is valid JSON Schema that constrained decoding supports."""
    import llguidance

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise APIError(400, f"{param} is not a valid JSON schema: {excerpt(exc.message, 300)}",
                       param=param, code="invalid_json_schema") from exc
    except RecursionError:  # under the nesting bound, a $ref cycle can still do it
        raise APIError(400, f"{param} is nested or refers to itself too deeply", param=param,
                       code="invalid_json_schema") from None
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), defaults={"whitespace_flexible": False})
        error = llguidance.LLMatcher.validate_grammar(grammar)
    except (ValueError, TypeError, RecursionError) as exc:
        error = str(exc) or "the schema cannot be compiled"
    if error and not error.startswith("WARNING"):
        raise APIError(400, f"{param} cannot be enforced by constrained decoding: {error}",
                       param=param, code="invalid_json_schema")


def field_guide(schema: dict[str, Any]) -> str:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return ""
    lines = [f"- {key}: {value.get('description', '')}".rstrip(": ")
             for key, value in props.items() if isinstance(value, dict)]
    return "Fields:\n" + "\n".join(lines)


def _media_note(inputs: PreparedInputs) -> str:
    if inputs.video is not None:
        times = ", ".join(f"{t:.1f}" for t in inputs.video.timestamps)
        return (f"The video is {inputs.duration_s:.1f} s long; its frames were taken at "
                f"{times} seconds. Give segment times in seconds.")
    if inputs.element_type == "page" and len(inputs.images) > 1:
        return f"The document has {len(inputs.images)} pages, shown in order."
    return ""


def build_messages(target: Target, inputs: PreparedInputs) -> tuple[ChatMessage, ...]:
    media: list[ContentPart] = [ImagePart(image) for image in inputs.images]
    if inputs.video is not None:
        media.append(VideoPart(inputs.video))
    prompt = "\n\n".join(p for p in (target.prompt, _media_note(inputs)) if p)
    system = "\n\n".join(p for p in (SYSTEM, field_guide(target.schema)) if p)
    return (ChatMessage.text("system", system),
            ChatMessage("user", (*media, TextPart(prompt))))


class Predictor:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def run(self, target: Target, inputs: PreparedInputs, options: Options,
                  request_id: str) -> Outcome:
        schema, box_keys = target.schema, tuple[str, ...]()
        if options.grounding:
            schema, box_keys = metadata.grounding_schema(schema)
        want_logprobs = options.confidence or options.grounding
        sampling = SamplingParams(max_tokens=options.max_tokens,
                                  temperature=options.temperature, json_schema=schema,
                                  logprobs=0 if want_logprobs else None)
        request = GenerationRequest(messages=build_messages(target, inputs), sampling=sampling,
                                    request_id=request_id)
        attempts = 1 + (options.max_retries if options.temperature > 0 else 0)
        total = Outcome("failed")
        for _ in range(attempts):
            outcome = await self._attempt(request, target, box_keys, want_logprobs)
            outcome.prompt_tokens += total.prompt_tokens
            outcome.completion_tokens += total.completion_tokens
            total = outcome
            if outcome.status == "completed":
                break
        return total

    async def _attempt(self, request: GenerationRequest, target: Target,
                       box_keys: tuple[str, ...], want_logprobs: bool) -> Outcome:
        pieces: list[tuple[str, list[tuple[str, float]]]] = []
        last = None
        async for chunk in self.engine.generate(request):
            pieces.append((chunk.text, [(lp.token, lp.logprob) for lp in chunk.logprobs]))
            last = chunk
        if last is None:
            return Outcome("failed", error="the engine produced no output")
        outcome = Outcome("failed", prompt_tokens=last.prompt_tokens,
                          completion_tokens=last.completion_tokens)
        text = "".join(p[0] for p in pieces)
        outcome.error = _finish_error(last.finish_reason, request)
        if outcome.error is None:
            try:
                value, boxes = self._validate(text, target, box_keys)
            except ValueError as exc:
                outcome.error = str(exc)
                return outcome
            if want_logprobs:
                value = metadata.attach(value, text, metadata.token_spans(pieces),
                                        boxes if box_keys else None)
            outcome.status, outcome.response = "completed", value
        return outcome

    @staticmethod
    def _validate(text: str, target: Target, box_keys: tuple[str, ...]
                  ) -> tuple[Any, dict[str, list[Any]]]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the model's output is not valid JSON: {exc}") from exc
        value, boxes = metadata.split_boxes(value, box_keys)
        if target.model is not None:
            try:
                return target.model.model_validate(value).model_dump(mode="json"), boxes
            except ValidationError as exc:
                raise ValueError(f"the model's output does not match the {target.domain} "
                                 f"schema: {exc.errors()[0].get('msg')}") from exc
        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(target.schema)(target.schema).iter_errors(value))
        if error is not None:
            raise ValueError(f"the model's output does not match json_schema: {error.message}")
        return value, boxes


def _finish_error(reason: str | None, request: GenerationRequest) -> str | None:
    if reason == "length":
        return (f"the output was cut at max_tokens={request.sampling.max_tokens} before the "
                "JSON was complete; raise config.max_tokens")
    if reason == "error":
        return "generation failed in the engine"
    if reason == "cancelled":
        return "generation was cancelled"
    return None
