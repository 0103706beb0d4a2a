"""Refuse prompts the model's context cannot hold before they reach the owner thread.

Tokenizing is the one step of preparing a prompt whose cost grows with the text alone: a
60 MB message took the owner thread nearly two minutes, and every running stream waited.
:class:`PromptScreen` refuses such prompts on the caller's side:

- :meth:`PromptScreen.check_chars` (cheap, on submit): no token is longer than the
  vocabulary's longest piece, so text with more characters than ``context * longest`` is
  too long without tokenizing it;
- :meth:`PromptScreen.check_tokens` (blocking; run it on a worker thread): renders the
  prompt as the model would and counts its text tokens (media expands to more tokens
  later, so the count is a lower bound), for texts longer than :data:`COUNT_ABOVE_CHARS`;
  it returns the :class:`~.preparation.Preparation` that holds the work, for the owner
  thread to take up (the prompt is not rendered or tokenized again).

Only text that reaches the prompt is counted: user, system and tool messages, and a raw
prompt (chat templates may drop parts of earlier assistant turns, such as their reasoning).
"""

from __future__ import annotations

from .errors import ContextTooLong
from .loaded import LoadedModel
from .preparation import Preparation, context_error
from .types import GenerationRequest, TextPart

COUNT_ABOVE_CHARS = 1 << 16  # shorter texts tokenize in milliseconds on the owner thread


def prompt_chars(request: GenerationRequest) -> int:
    """Characters of the request's text that its prompt is sure to contain."""
    if request.prompt is not None:
        return len(request.prompt)
    if request.prompt_ids is not None:
        return 0  # counted as they are, by the owner thread: no tokenizing to do
    return sum(len(part.text) for message in request.messages if message.role != "assistant"
               for part in message.content if isinstance(part, TextPart))


class PromptScreen:
    """Context-length checks that need no MLX and no owner thread (see the module)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.limit = loaded.capabilities.context_length or 0
        pieces = loaded.tokenizer.get_vocab()
        self.longest = max((len(piece) for piece in pieces), default=1)

    def check_chars(self, request: GenerationRequest) -> None:
        chars = prompt_chars(request)
        if self.limit and chars > self.limit * self.longest:
            field = request.prompt_field
            raise ContextTooLong(
                f"the prompt has {chars} characters, more than this model's context of "
                f"{self.limit} tokens can hold (no token is longer than {self.longest} "
                f"characters): shorten the {field}", param=field)

    def needs_count(self, request: GenerationRequest) -> bool:
        return bool(self.limit) and prompt_chars(request) > COUNT_ABOVE_CHARS

    def check_tokens(self, request: GenerationRequest) -> Preparation:
        """Blocking: render and tokenize the prompt; raise if the context cannot hold it.
        A failure that is not the request's fault is kept in the preparation returned."""
        preparation = Preparation()
        tokens = preparation.measure(self.loaded, request)
        if tokens is not None and tokens >= self.limit:
            raise context_error(request, tokens, self.limit)
        return preparation
