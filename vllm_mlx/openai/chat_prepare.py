"""A chat completion request turned into engine requests for the model it names.

Contract: :meth:`ChatPreparer.prepare` parses the messages (long conversations off the
event loop), lets another feature's :class:`ChatHook` rewrite the request, takes a
:class:`~vllm_mlx.engine.registry.Lease` on the named model's engine (loading it if
needed; 404 for an unknown name), then, for that model: reads its tool-call and reasoning
formats, checks tools' schemas and compiles JSON / tool-call grammars on the validation
threads, fetches and decodes the media (per-request ``video_fps`` / ``video_max_frames``)
and builds one :class:`GenerationRequest` per choice. The :class:`PreparedChat` it returns
holds the lease: whoever runs it releases it when the reply ends (a prepared request that
is dropped releases it too). A request refused here releases it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..content import (
    DocumentPages,
    FileResolver,
    MessageRef,
    Resolver,
    VideoSampling,
    parse_messages,
    resolve_messages,
)
from ..engine import Engine, GenerationRequest, GenerationResult, SamplingParams
from ..engine.loaded import LoadedModel
from ..engine.registry import Lease
from ..engine.sampler import check_sampling
from ..errors import APIError
from ..media import MediaPolicy
from .prompted_tools import (
    ToolProfile,
    known_tool_profile,
    legacy_functions,
    legacy_messages,
    prompted_messages,
    tool_profile,
)
from .protocol import ChatCompletionRequest, ChatMessageOut, new_id
from .reasoning import ReasoningParser, parser_is_quick, reasoning_parser
from .serving_common import ServingContext, fan_out, sampling_params
from .tool_calls import ToolSet
from .tool_formats import ToolCall

PARSE_ON_LOOP = 1000  # messages parsed on the event loop; longer lists go to the check pool

OnReply = Callable[[str], None]


class ChatHook(Protocol):
    """A feature's say in a chat request (e.g. VLM Run domains and sessions): it may rewrite
    the request and its parsed messages, and get the first choice's reply text."""

    def begin(self, req: ChatCompletionRequest, refs: tuple[MessageRef, ...]
              ) -> tuple[ChatCompletionRequest, tuple[MessageRef, ...], OnReply | None]: ...


@dataclass(frozen=True)
class ChatExtension:
    """What another feature adds to chat, given when the chat feature is built: a
    :class:`ChatHook`, a resolver of ``input_file`` ids, a PDF renderer for ``file`` parts,
    and folders media may be read from."""

    hook: ChatHook | None = None
    files: FileResolver | None = None
    documents: DocumentPages | None = None
    media_roots: tuple[Path, ...] = ()
    model_names: tuple[str, ...] = ()  # more names for the model (listed in /v1/models)


@dataclass
class PreparedChat:
    requests: list[GenerationRequest]
    include_usage: bool
    logprobs: bool
    lease: Lease  # the model's engine, kept loaded until the reply ends
    on_reply: OnReply | None = None
    tools: ToolSet | None = None  # set when replies are read for tool calls
    reasoning: ReasoningParser | None = None  # set when the model has a reasoning format
    legacy_calls: bool = False  # asked with ``functions``: a call is a ``function_call``

    @property
    def engine(self) -> Engine:
        return self.lease.engine

    @property
    def model(self) -> str:
        """The name replies give as their ``model``: the one the request named."""
        return self.lease.name

    def split_reasoning(self, text: str) -> tuple[str | None, str]:
        """A finished reply's reasoning (None: the model has no format, or gave none) and
        the rest, which is read for tool calls."""
        if self.reasoning is None:
            return None, text
        reasoning, content = self.reasoning.split(text)
        return reasoning or None, content

    def parts(self, result: GenerationResult) -> tuple[str | None, str, list[ToolCall]]:
        """A finished reply's reasoning (None: none), its text, and the calls it made."""
        reasoning, text = self.split_reasoning(result.text)
        if self.tools is None:
            return reasoning, text, []
        return reasoning, *self.tools.split(text, result.finish_reason == "length")

    def message(self, result: GenerationResult) -> tuple[ChatMessageOut, str]:
        """A finished choice's message and finish reason (``tool_calls`` when it called)."""
        reasoning, content, calls = self.parts(result)
        if not calls:
            return ChatMessageOut(content=content, reasoning_content=reasoning,
                                  reasoning=reasoning), result.finish_reason
        called = ({"function_call": calls[0].to_legacy()} if self.legacy_calls
                  else {"tool_calls": [c.to_openai() for c in calls]})
        return (ChatMessageOut(content=content or None, reasoning_content=reasoning,
                               reasoning=reasoning, **called),
                call_finish(result.finish_reason, self.legacy_calls))


def call_finish(finish_reason: str, legacy: bool) -> str:
    """A reply that called ends with ``tool_calls`` (``function_call`` in the legacy form),
    unless it was cut short."""
    if finish_reason != "stop":
        return finish_reason
    return "function_call" if legacy else "tool_calls"


def response_format(req: ChatCompletionRequest) -> dict[str, Any]:
    """The JSON constraint a ``response_format`` asks for, as sampling options."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return {}
    # with EOS suppressed, a finished JSON value leaves no allowed token: output breaks
    if req.ignore_eos or req.min_tokens:
        param = "ignore_eos" if req.ignore_eos else "min_tokens"
        raise APIError(400, f"{param} cannot be combined with a JSON response_format: "
                       "the output must be able to end where the JSON ends", param=param)
    if fmt.type == "json_object":
        return {"json_object": True}
    schema = fmt.schema_dict()
    if not isinstance(schema, dict):
        raise APIError(400, "response_format json_schema needs a 'schema' object",
                       param="response_format.json_schema")
    return {"json_schema": schema}


def tool_grammar(tools: ToolSet | None, json_output: dict[str, Any], loaded: LoadedModel
                 ) -> dict[str, Any]:
    """A forced call (tool_choice required or named) is decoded under its grammar; a
    JSON ``response_format`` then shapes a later turn's answer, not this call. Under
    ``auto`` with a JSON ``response_format`` the reply may call or answer in JSON."""
    if tools is None or not tools.parses_calls or not (tools.forced or json_output):
        return {}
    if tools.forced:
        return {"grammar": tools.grammar(loaded.tokenizer)}
    schema = json_output.get("json_schema") or {"type": "object"}
    return {"grammar": tools.call_or_json_grammar(loaded.tokenizer, schema)}


def without_legacy_functions(req: ChatCompletionRequest) -> ChatCompletionRequest:
    """The deprecated ``functions`` / ``function_call`` as ``tools`` / ``tool_choice``."""
    legacy = req.functions is not None or req.function_call is not None
    if not legacy or req.tools is not None:
        return req
    tools, choice = legacy_functions(req.functions, req.function_call)
    return req.model_copy(update={"tools": tools, "tool_choice": choice,
                                  "messages": legacy_messages(req.messages),
                                  "functions": None, "function_call": None,
                                  "parallel_tool_calls": False})  # one call, as it was


class ChatPreparer:
    """Builds :class:`PreparedChat` from requests (see the module docstring)."""

    def __init__(self, ctx: ServingContext, policy: MediaPolicy, *,
                 hook: ChatHook | None = None, documents: DocumentPages | None = None) -> None:
        self.ctx = ctx
        self.policy = policy
        self.hook = hook
        self.documents = documents

    async def prepare(self, req: ChatCompletionRequest) -> PreparedChat:
        legacy = req.functions is not None and req.tools is None
        req = without_legacy_functions(req)
        refs, on_reply = await self._parsed(req.messages), None
        if self.hook is not None:
            req, refs, on_reply = self.hook.begin(req, refs)
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs set to true", param="top_logprobs")
        json_output = response_format(req)
        lease = await self.ctx.lease(req.model, req.ttl)
        try:
            prepared = await self._for_model(req, refs, json_output, lease, on_reply)
            prepared.legacy_calls = legacy
            return prepared
        except BaseException:
            lease.release()
            raise

    async def _for_model(self, req: ChatCompletionRequest, refs: tuple[MessageRef, ...],
                         json_output: dict[str, Any], lease: Lease,
                         on_reply: OnReply | None) -> PreparedChat:
        loaded = lease.engine.model
        profile = await self._tool_profile(loaded) if req.tools else None
        tools = await self._tools(req, profile)
        template_kwargs = req.template_kwargs()
        reasoning = await self._reasoning(loaded, template_kwargs)
        sampling = await self._sampling(req, loaded, tools, json_output, reasoning)
        if tools is not None and profile is not None and profile.prompted:
            refs, tools = prompted_messages(refs, tools.tools, tools.format), replace(
                tools, tools=())  # the template cannot show them: the messages do
        messages = await resolve_messages(refs, self._resolver(req, loaded), self.ctx.http)
        request = GenerationRequest(messages=messages, sampling=sampling,
                                    request_id=new_id("chatcmpl"),
                                    tools=tools.tools if tools else (),
                                    template_kwargs=template_kwargs)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return PreparedChat(fan_out(request, req.n), include_usage,
                            bool(req.logprobs), lease, on_reply,
                            tools if tools and tools.parses_calls else None, reasoning)

    async def _sampling(self, req: ChatCompletionRequest, loaded: LoadedModel,
                        tools: ToolSet | None, json_output: dict[str, Any],
                        reasoning: ReasoningParser | None) -> SamplingParams:
        max_tokens = self.ctx.max_tokens(req.max_completion_tokens, req.max_tokens)
        sampling = sampling_params(
            req, max_tokens, logprobs=(req.top_logprobs or 0) if req.logprobs else None,
            **(tool_grammar(tools, json_output, loaded) or json_output))
        await self._compile_constraints(sampling, loaded)
        if tools is not None and tools.forced:  # the grammar ends the call, not stop strings
            sampling = replace(sampling, stop=())
        if (reasoning is not None and reasoning.keeps_special_tokens) or (
                tools is not None and tools.parses_calls and tools.format.keeps_special_tokens):
            sampling = replace(sampling, skip_special_tokens=False)  # its markers are special
        return sampling

    def _resolver(self, req: ChatCompletionRequest, loaded: LoadedModel) -> Resolver:
        settings = self.ctx.settings
        max_frames = req.video_max_frames or settings.default_video_max_frames
        min_frames = min(loaded.video_min_frames, max_frames)
        video = VideoSampling(req.video_fps or settings.default_video_fps, max_frames,
                              min_frames)
        return Resolver(self.policy, video, self.ctx.files, self.documents,
                        vision=loaded.is_vision)

    async def _reasoning(self, loaded: LoadedModel, template_kwargs: dict[str, Any]
                         ) -> ReasoningParser | None:
        """How the model's replies give their reasoning (see :mod:`.reasoning`); a probe
        render of the template, once per set of template variables, runs off the loop."""
        args = (loaded, self.ctx.settings.reasoning_parser, template_kwargs)
        if parser_is_quick(*args):
            return reasoning_parser(*args)
        return await self.ctx.checks.run(reasoning_parser, *args)

    async def _parsed(self, messages: list[Any]) -> tuple[MessageRef, ...]:
        """The messages' content parts; a long conversation is parsed off the event loop
        (100k messages took it 2 s, holding every client)."""
        if len(messages) < PARSE_ON_LOOP:
            return parse_messages(messages)
        return await self.ctx.checks.run(parse_messages, messages)

    async def _tool_profile(self, loaded: LoadedModel) -> ToolProfile:
        """The model's tool-call format and whether its template shows tools (worked out
        off the loop, once per model)."""
        parser = self.ctx.settings.tool_call_parser
        known = known_tool_profile(loaded, parser)
        return known if known is not None else await self.ctx.checks.run(tool_profile,
                                                                          loaded, parser)

    async def _tools(self, req: ChatCompletionRequest, profile: ToolProfile | None
                     ) -> ToolSet | None:
        """The request's tools, their schemas checked off the event loop (cost grows with
        them: see :mod:`.validation`)."""
        parallel = req.parallel_tool_calls is not False
        if not req.tools or profile is None:
            return ToolSet.of(req.tools, req.tool_choice, parallel)
        return await self.ctx.checks.run(ToolSet.of, req.tools, req.tool_choice, parallel,
                                         profile.format)

    async def _compile_constraints(self, sampling: SamplingParams, loaded: LoadedModel
                                   ) -> None:
        """Compile a JSON schema or a forced call's grammar off the event loop; the model's
        compiler remembers it, so the engine's check when the request is queued is quick."""
        if sampling.json_schema is None and not sampling.json_object \
                and sampling.grammar is None:
            return
        await self.ctx.checks.run(check_sampling, sampling, lambda: loaded.grammar_compiler,
                                  vocab_size=loaded.vocab_size)
