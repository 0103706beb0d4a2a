"""JSON-constrained decoding with llguidance.

:class:`GrammarCompiler` wraps a model's tokenizer once (an expensive step, ~1 s for large
vocabularies) and compiles a JSON schema, "any JSON object", or a Lark grammar (a forced
tool call); a source (schema JSON or grammar text) over :data:`MAX_GRAMMAR_CHARS` is an
:class:`InvalidRequest` before any compiling (callers bound schemas' size and nesting
first, and compile off the event loop: see :mod:`vllm_mlx.openai.validation`);
:func:`json_logits_processor` returns a per-request logits processor that masks every
token the grammar forbids, so the output always parses (and validates against the
schema) unless ``max_tokens`` cuts it short. The mask is applied with plain MLX ops, so it
works on CPU, CUDA and Metal alike.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ._mlx import mx
from .errors import InvalidRequest
from .sampling import LogitsProcessor

ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}
COMPILED_KEPT = 64  # grammars a GrammarCompiler remembers
MAX_GRAMMAR_CHARS = 1 << 20  # a schema's JSON or a grammar's text; compile cost grows with it


def _llg_tokenizer(tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> Any:
    """An llguidance tokenizer from any tokenizer backed by the Rust ``tokenizers``.

    ``llguidance.hf.from_tokenizer`` only accepts ``PreTrainedTokenizerFast``, which
    transformers 5 tokenizers no longer are, so the backend is serialised here directly.
    """
    from copy import copy

    import llguidance

    backend, hf = None, tokenizer
    for _ in range(3):  # mlx-lm wrapper -> transformers tokenizer -> Rust tokenizer
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is not None or not hasattr(hf, "_tokenizer"):
            break
        hf = hf._tokenizer
    if backend is None:
        raise InvalidRequest("structured output needs a fast (Rust) tokenizer",
                             param="response_format")
    backend = copy(backend)
    backend.no_padding()
    backend.no_truncation()
    eos = eos_ids or getattr(hf, "eos_token_id", None)
    return llguidance.LLTokenizer(backend.to_str(), n_vocab=vocab_size, eos_token=eos)


class GrammarCompiler:
    """Compiles schemas against one model's tokenizer."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        self.vocab_size = vocab_size
        self.llg_tokenizer = _llg_tokenizer(tokenizer, vocab_size, eos_ids)
        # Compiled grammars by source: a request is checked when it is submitted (on the
        # caller's thread) and compiled again for its processor (on the engine's).
        self._compiled: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def _remembered(self, source: str, compile_: Callable[[], str]) -> str:
        if len(source) > MAX_GRAMMAR_CHARS:
            what, _, _ = source.partition(":")
            param = "response_format" if what == "json" else "tools"
            raise InvalidRequest(f"the {'JSON schema' if what == 'json' else 'grammar'} is "
                                 f"{len(source)} characters long, over this server's limit of "
                                 f"{MAX_GRAMMAR_CHARS}", param=param)
        with self._lock:
            if source in self._compiled:
                self._compiled.move_to_end(source)
                return self._compiled[source]
        grammar = compile_()
        with self._lock:
            self._compiled[source] = grammar
            while len(self._compiled) > COMPILED_KEPT:
                self._compiled.popitem(last=False)
        return grammar

    def grammar(self, schema: dict[str, Any] | None) -> str:
        try:
            text = json.dumps(schema or ANY_JSON_OBJECT)
        except (TypeError, ValueError, RecursionError):
            raise InvalidRequest("the JSON schema cannot be written as JSON (nested too "
                                 "deeply?)", param="response_format") from None
        return self._remembered("json:" + text, lambda: self._json_grammar(text))

    def _json_grammar(self, text: str) -> str:
        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                text, defaults={"whitespace_flexible": False})
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"invalid JSON schema: {exc}", param="response_format") from exc
        return self._checked(grammar, "unsupported JSON schema", "response_format")

    def lark(self, text: str) -> str:
        """A grammar in llguidance's Lark syntax (e.g. a forced tool call)."""
        return self._remembered("lark:" + text, lambda: self._lark_grammar(text))

    def _lark_grammar(self, text: str) -> str:
        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_lark(text)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"invalid grammar: {_readable(str(exc))}",
                                 param="tools") from exc
        return self._checked(grammar, "a function's parameters cannot be decoded as a forced "
                             "call", "tools")

    def _checked(self, grammar: str, what: str, param: str) -> str:
        import llguidance

        error = llguidance.LLMatcher.validate_grammar(grammar, self.llg_tokenizer)
        if error and not error.startswith("WARNING"):
            raise InvalidRequest(f"{what}: {_readable(error)}", param=param)
        return grammar


def _readable(error: str) -> str:
    """llguidance's message without the grammar listing it appends (our internal text)."""
    kept = []
    for line in error.splitlines():
        if re.match(r"\s*\d+ \| ", line):
            break
        kept.append(line.strip())
    return re.sub(r"^at \d+\(\d+\): ", "", " ".join(line for line in kept if line))


def json_logits_processor(compiler: GrammarCompiler, schema: dict[str, Any] | None
                          ) -> LogitsProcessor:
    """A fresh, stateful processor for one request's JSON output."""
    return grammar_logits_processor(compiler, compiler.grammar(schema))


def grammar_logits_processor(compiler: GrammarCompiler, grammar: str) -> LogitsProcessor:
    """A fresh, stateful processor that masks what ``grammar`` (compiled) forbids."""
    import llguidance
    import llguidance.numpy as llnp

    matcher = llguidance.LLMatcher(compiler.llg_tokenizer, grammar)
    bitmask = llnp.allocate_token_bitmask(1, compiler.vocab_size)
    state = {"first": True}

    def process(tokens: mx.array, logits: mx.array) -> mx.array:
        if not state["first"]:
            matcher.consume_token(int(tokens.reshape(-1)[-1]))
        state["first"] = False
        llnp.fill_next_token_bitmask(matcher, bitmask, 0)
        allowed = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")
        vocab = logits.shape[-1]
        allowed = allowed[:vocab] if allowed.size >= vocab else np.pad(
            allowed, (0, vocab - allowed.size))
        mask = mx.array(allowed.astype(np.bool_))
        return mx.where(mask, logits, mx.array(-float("inf"), dtype=logits.dtype))

    return process
