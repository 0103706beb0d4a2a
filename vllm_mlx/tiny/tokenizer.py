"""Deterministic tiny tokenizers for the tiny model families.

Contract: ``build_tokenizer(spec, vocab_size)`` trains a BPE (a few hundred merges) on a fixed
in-memory corpus and returns a ``tokenizers.Tokenizer`` with exactly ``vocab_size`` ids:

    [leading specials] [BPE base alphabet + merges] [trailing specials] [filler words]
    [end specials]

Filler words are plain (non-special) vocabulary entries that no merge produces; they only
pad the vocabulary so that ``len(tokenizer) == vocab_size`` and every id a random model can
emit decodes to text.  Two styles: ``"bytelevel"`` (GPT-2 byte-level BPE with the family's
split regex: Qwen, Llama 3) and ``"spm"`` (SentencePiece-like ``▁`` BPE with byte fallback:
Gemma).  The same spec, vocab size and library versions give byte-identical JSON.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPM_SPACE = "\u2581"


@dataclass(frozen=True)
class TokenizerSpec:
    """How a family's tokenizer looks: style, specials and their order."""

    style: str  # "bytelevel" | "spm"
    split_regex: str | None = None
    nfc: bool = False
    leading: tuple[str, ...] = ()  # special tokens at ids 0..n-1 (Gemma: pad, eos, bos, unk)
    specials: tuple[str, ...] = ()  # special tokens right after the BPE vocabulary
    plain_added: tuple[str, ...] = ()  # added tokens that are not "special" (e.g. <think>)
    bos_prepend: str | None = None  # post-processor prepends this token (Llama, Gemma)
    extra: dict[str, str] = field(default_factory=dict)
    end_specials: tuple[str, ...] = ()  # special tokens at the last ids (Molmo's extra vocab)


_WORDS_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than "
    "first water been call who oil its now find long down day did get come made may part "
    "image video picture frame color red green blue black white cat dog tree house car road "
    "describe what is shown question answer model token server request response stream"
)

_FIXED = (
    "Hello, world! How are you today? I'm fine, thanks.\n"
    "The quick brown fox jumps over the lazy dog. 0123456789 3.14159 2024-01-01\n"
    'def main(argv: list[str]) -> int:\n    return {"name": "value", "n": [1, 2, 3]}\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    "Ça va? Grüße aus München. 你好，世界。 こんにちは。 Привет! 🙂\n"
    "User: What is in this image?\nAssistant: A small red car on a road.\n"
)

_SYLLABLES_TEXT = (
    "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu "
    "ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu"
)
_SYLLABLES = _SYLLABLES_TEXT.split()


def corpus() -> list[str]:
    """The fixed training corpus (deterministic: ``random.Random(0)``)."""
    rng = random.Random(0)
    words_list = _WORDS_TEXT.split()
    lines = [_FIXED] * 4
    for _ in range(600):
        words = [rng.choice(words_list) for _ in range(rng.randint(4, 14))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", "?", "!", ",", ":"]))
    return lines


def _fillers(count: int, prefix: str, taken: set[str]) -> list[str]:
    """``count`` distinct pseudo-words (deterministic) not already in ``taken``."""
    out: list[str] = []
    n = 0
    while len(out) < count:
        k, word = n, ""
        while True:
            word += _SYLLABLES[k % len(_SYLLABLES)]
            k //= len(_SYLLABLES)
            if k == 0:
                break
        n += 1
        for cand in (prefix + word, word):
            if cand not in taken and len(out) < count:
                taken.add(cand)
                out.append(cand)
    return out


def _train(spec: TokenizerSpec, merges: int) -> tuple[list[str], list[list[str]]]:
    """Train the BPE; returns (base+merged tokens in id order, merges)."""
    tok = Tokenizer(models.BPE())
    if spec.style == "bytelevel":
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        texts = corpus()
    else:
        alphabet = []
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPM_SPACE, prepend_scheme="never")
        texts = [t.replace(" ", SPM_SPACE) for t in corpus()]
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + merges + 1000,
        min_frequency=2,
        initial_alphabet=alphabet,
        limit_alphabet=1000,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merge_list = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]][:merges]
    base = [t for t, _ in vocab if len(t) == 1]
    return base + [a + b for a, b in merge_list], merge_list


def _pipeline(spec: TokenizerSpec) -> dict:
    """normalizer / pre_tokenizer / decoder JSON for the style."""
    tok = Tokenizer(models.BPE())
    if spec.style == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(spec.split_regex or QWEN_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        if spec.nfc:
            tok.normalizer = normalizers.NFC()
        tok.decoder = decoders.ByteLevel()
    else:
        tok.normalizer = normalizers.Replace(" ", SPM_SPACE)
        tok.decoder = decoders.Sequence(
            [decoders.Replace(SPM_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        )
    return json.loads(tok.to_str())


def _added(content: str, idx: int, special: bool) -> dict:
    return {
        "id": idx,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": not special,
        "special": special,
    }


def build_tokenizer(spec: TokenizerSpec, vocab_size: int, merges: int = 500) -> Tokenizer:
    """Build the family tokenizer with exactly ``vocab_size`` ids."""
    bpe_tokens, merge_list = _train(spec, merges)
    if spec.style == "spm":
        bpe_tokens = [f"<0x{b:02X}>" for b in range(256)] + bpe_tokens
    ordered = list(spec.leading) + bpe_tokens
    n_tail = len(spec.specials) + len(spec.plain_added) + len(spec.end_specials)
    if len(ordered) + n_tail > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} too small for {len(ordered) + n_tail} tokens")
    ordered += list(spec.specials) + list(spec.plain_added)
    space = SPM_SPACE if spec.style == "spm" else "\u0120"
    n_fill = vocab_size - len(ordered) - len(spec.end_specials)
    ordered += _fillers(n_fill, space, set(ordered) | set(spec.end_specials))
    ordered += list(spec.end_specials)
    vocab = {t: i for i, t in enumerate(ordered)}
    specials = set(spec.leading) | set(spec.specials) | set(spec.end_specials)
    added = [_added(t, vocab[t], t in specials) for t in ordered if t in specials]
    added += [_added(t, vocab[t], False) for t in spec.plain_added]
    data = _pipeline(spec)
    data["added_tokens"] = sorted(added, key=lambda a: a["id"])
    data["model"] = {
        "type": "BPE",
        "dropout": None,
        "unk_token": "<unk>" if spec.style == "spm" else None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": spec.style == "spm",
        "byte_fallback": spec.style == "spm",
        "ignore_merges": False,
        "vocab": vocab,
        "merges": merge_list,
    }
    if spec.bos_prepend:
        bos = spec.bos_prepend
        data["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}},
        }
    tok = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    if tok.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise AssertionError("tokenizer size mismatch")
    return tok


def tokenizer_json(tok: Tokenizer) -> str:
    """Stable serialization (tokenizers' own pretty JSON)."""
    return tok.to_str(pretty=True)
