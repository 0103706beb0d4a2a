"""Prompt -> umT5 embeddings, padded to a fixed length the way Diffusers' Wan pipelines do.

Contract: ``PromptEncoder.encode(prompts, max_length)`` cleans each prompt (HTML entities,
runs of whitespace), tokenizes it with the folder's ``tokenizer/tokenizer.json`` (EOS added by
the tokenizer's post-processor, truncated to ``max_length``), runs the encoder on the real
tokens only and returns ``(B, max_length, d_model)`` float32 embeddings whose padding rows
are exactly zero. Encoding only the real tokens equals encoding the padded sequence with a
padding mask (masked keys never influence the real positions), and is cheaper.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from tokenizers import Tokenizer

from ._mlx import mx
from .umt5 import UMT5Encoder


def clean_prompt(text: str) -> str:
    """Diffusers' ``prompt_clean`` without ftfy: unescape HTML twice, collapse whitespace."""
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


class PromptEncoder:
    """A tokenizer plus the umT5 encoder."""

    def __init__(self, tokenizer: Tokenizer, encoder: UMT5Encoder) -> None:
        self.tokenizer = tokenizer
        self.encoder = encoder

    @classmethod
    def from_folder(cls, tokenizer_dir: Path, encoder: UMT5Encoder) -> PromptEncoder:
        path = Path(tokenizer_dir) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (a tokenizers JSON is required)")
        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        tok.no_truncation()
        return cls(tok, encoder)

    def token_ids(self, prompt: str, max_length: int) -> list[int]:
        ids = self.tokenizer.encode(clean_prompt(prompt)).ids
        vocab = self.encoder.config.vocab_size
        if len(ids) > max_length:
            ids = ids[: max_length - 1] + [self.encoder.config.eos_token_id]
        if any(i >= vocab for i in ids):
            raise ValueError("tokenizer produced ids outside the text encoder's vocabulary")
        return ids

    def encode(self, prompts: list[str], max_length: int = 512) -> mx.array:
        """``(len(prompts), max_length, d_model)`` with zeroed padding rows."""
        rows = []
        for prompt in prompts:
            ids = self.token_ids(prompt, max_length)
            hidden = self.encoder(mx.array([ids]))[0] if ids else None
            pad = max_length - len(ids)
            parts = [] if hidden is None else [hidden]
            if pad:
                parts.append(mx.zeros((pad, self.encoder.config.d_model)))
            rows.append(mx.concatenate(parts, axis=0))
        out = mx.stack(rows).astype(mx.float32)
        mx.eval(out)
        return out
