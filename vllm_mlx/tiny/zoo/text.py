# ruff: noqa: E501
"""Tiny recipes for text families beyond Qwen3 and Llama, all opened with ``mlx_lm.load``.

Contract: ``RECIPES`` holds one tiny-only recipe per architecture, each config carrying the
real family's config.json keys (the ones mlx-lm's ``ModelArgs`` reads and transformers 5's
config class validates) at ``LM_SHAPES["tiny"]`` width, and a hybrid family always has at
least one layer of each kind:

- ``gemma3_text`` (Gemma 3 1B): sliding + global attention (``sliding_window_pattern`` 2,
  window 32 so that longer prompts wrap the rotating cache); Gemma 3 tokenizer/template;
  tied, down-scaled embeddings (mlx-lm ties the head when ``lm_head.weight`` is absent).
- ``qwen3_moe`` (Qwen3-30B-A3B): 4 experts, 2 per token; Qwen3 tokenizer/template.
- ``gpt_oss`` (gpt-oss-20b): sliding + full attention layers with sinks, 4 experts, yarn
  rope; a Harmony tokenizer (``<|start|>``, ``<|channel|>``, ``<|message|>``, ...) and a
  Harmony chat template (system, developer instructions, tools as a ``functions``
  namespace, tool calls and results, final-channel replies).
- ``qwen3_next`` (Qwen3-Next-80B-A3B-Instruct): one gated-delta-net (linear attention)
  layer then one full-attention layer, MoE with a shared expert; Qwen3 tokenizer/template.
- ``lfm2`` (LFM2-350M): short-convolution layers around one attention layer; an LFM2
  tokenizer (``<|startoftext|>`` ... ``<|im_end|>`` at the real ids 1..7) and ChatML-like
  template with its tool list.

Expert and FFN widths are multiples of 32 so that ``--quantize`` (group size 32) applies.
"""

from __future__ import annotations

from collections.abc import Callable

from ..archs import LM_SHAPES
from ..families import tokenizer_config, tokenizer_spec
from ..recipe import Recipe, Weights, gemma_embeddings, tokenizer_config_of
from ..templates import TEXT_OF
from ..tokenizer import LLAMA3_SPLIT, QWEN_SPLIT, TokenizerSpec
from .common import zoo_recipe

SLIDING_WINDOW = 32  # small enough that a follow-up turn wraps the rotating caches
EXPERTS, EXPERTS_PER_TOKEN, EXPERT_WIDTH = 4, 2, 32


def _shape(preset: str) -> dict[str, int]:
    return LM_SHAPES[preset]


def _attention(s: dict[str, int]) -> dict:
    return {
        "hidden_size": s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "head_dim": s["head_dim"],
        "vocab_size": s["vocab"],
        "initializer_range": 0.02,
        "use_cache": True,
    }


# --- Gemma 3 (text-only 1B) -------------------------------------------------------------


def gemma3_text_config(preset: str, ids: dict[str, int]) -> dict:
    s = _shape(preset)
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        **_attention(s),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "bos_token_id": ids["<bos>"],
        "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
        "pad_token_id": ids["<pad>"],
        "cache_implementation": "hybrid",
        "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh",
        "intermediate_size": s["inter"],
        "max_position_embeddings": 32768,
        "query_pre_attn_scalar": s["head_dim"],
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": SLIDING_WINDOW,
        "sliding_window_pattern": 2,
    }


def _gemma3_text_weights(weights: Weights, config: dict) -> Weights:
    """Embeddings shrunk for Gemma's scale; the head dropped so that mlx-lm ties it to the
    embeddings as for the real (tied) checkpoints."""
    name = "model.embed_tokens.weight"
    out = {k: v for k, v in weights.items() if k != "lm_head.weight"}
    out[name] = gemma_embeddings(weights, name)
    return out


def _expert_weights(weights: Weights, config: dict) -> Weights:
    """Stacked expert matrices (experts, out, in) got std ~ 1/sqrt(out * in) from the
    builder's init, which silences the experts: rescale them to 1/sqrt(in)."""
    return {k: v * float(v.shape[1]) ** 0.5 if v.ndim == 3 and _is_expert(k) else v
            for k, v in weights.items()}


def _is_expert(name: str) -> bool:
    return ".switch_mlp." in name or ".experts." in name


# --- Qwen3 MoE / Qwen3-Next ------------------------------------------------------------


def _qwen_ids(ids: dict[str, int]) -> dict:
    return {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}


def _moe(shared: bool) -> dict:
    moe = {
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "moe_intermediate_size": EXPERT_WIDTH,
        "norm_topk_prob": True,
        "num_experts": EXPERTS,
        "num_experts_per_tok": EXPERTS_PER_TOKEN,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.001,
    }
    if shared:
        moe["shared_expert_intermediate_size"] = EXPERT_WIDTH
    return moe


def qwen3_moe_config(preset: str, ids: dict[str, int]) -> dict:
    s = _shape(preset)
    return {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        **_attention(s),
        **_qwen_ids(ids),
        **_moe(shared=False),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "hidden_act": "silu",
        "intermediate_size": s["inter"],
        "max_position_embeddings": 40960,
        "max_window_layers": s["layers"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
    }


def _qwen3_next_weights(weights: Weights, config: dict) -> Weights:
    """Experts as for every MoE; the gated delta net's ``A_log`` spread over the library's
    log(U(0, 16)) range deterministically (mlx-lm draws it from the global PRNG, which
    would break byte-identical rebuilds)."""
    import mlx.core as mx

    out = _expert_weights(weights, config)
    for name in (k for k in weights if k.endswith(".A_log")):
        out[name] = mx.log(mx.linspace(1.0, 16.0, weights[name].shape[0]))
    return out


def qwen3_next_config(preset: str, ids: dict[str, int]) -> dict:
    s = _shape(preset)
    interval = 2  # layer 0: linear attention (gated delta net), layer 1: full attention
    return {
        "architectures": ["Qwen3NextForCausalLM"],
        "model_type": "qwen3_next",
        **_attention(s),
        **_qwen_ids(ids),
        **_moe(shared=True),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "full_attention_interval": interval,
        "layer_types": [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(s["layers"])
        ],
        "hidden_act": "silu",
        "intermediate_size": s["inter"],
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": s["head_dim"],
        "linear_num_key_heads": s["kv_heads"],
        "linear_num_value_heads": s["heads"],
        "linear_value_head_dim": s["head_dim"],
        "max_position_embeddings": 262144,
        "partial_rotary_factor": 0.25,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000000.0,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
    }


# --- gpt-oss (Harmony) ------------------------------------------------------------------

_HARMONY_SPECIALS = ("<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>",
                    "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>")
_HARMONY_SPEC = TokenizerSpec("bytelevel", LLAMA3_SPLIT, False, (), _HARMONY_SPECIALS)

# Harmony response format, as gpt-oss's template writes it (no date line: the real one
# prints today's date, which would make renders irreproducible).
HARMONY = TEXT_OF + r"""{%- macro render_tools(tools) -%}
    {{- '# Tools\n\n## functions\n\nnamespace functions {\n\n' -}}
    {%- for tool in tools -%}
        {%- if tool.function is defined -%}{%- set tool = tool.function -%}{%- endif -%}
        {%- if tool.description -%}{{- '// ' + tool.description + '\n' -}}{%- endif -%}
        {{- 'type ' + tool.name + ' = (' -}}
        {%- if tool.parameters and tool.parameters.properties -%}{{- '_: ' + (tool.parameters | tojson) -}}{%- endif -%}
        {{- ') => any;\n\n' -}}
    {%- endfor -%}
    {{- '} // namespace functions' -}}
{%- endmacro -%}
{%- if messages and messages[0].role in ('system', 'developer') -%}
    {%- set instructions = text_of(messages[0].content) -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set instructions = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{{- '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: ' + (reasoning_effort if reasoning_effort is defined else 'medium') + '\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.' -}}
{%- if tools -%}{{- '\nCalls to these tools must go to the commentary channel: \'functions\'.' -}}{%- endif -%}
{{- '<|end|>' -}}
{%- if instructions or tools -%}
    {{- '<|start|>developer<|message|>' -}}
    {%- if instructions -%}{{- '# Instructions\n\n' + instructions -}}{%- endif -%}
    {%- if instructions and tools -%}{{- '\n\n' -}}{%- endif -%}
    {%- if tools -%}{{- render_tools(tools) -}}{%- endif -%}
    {{- '<|end|>' -}}
{%- endif -%}
{%- set ns = namespace(last_tool='') -%}
{%- for message in loop_messages -%}
    {%- if message.role == 'assistant' -%}
        {%- if message.thinking is defined and message.thinking and loop.last -%}
            {{- '<|start|>assistant<|channel|>analysis<|message|>' + message.thinking + '<|end|>' -}}
        {%- endif -%}
        {%- if message.tool_calls -%}
            {%- for tc in message.tool_calls -%}
                {%- if tc.function is defined -%}{%- set tc = tc.function -%}{%- endif -%}
                {%- set ns.last_tool = tc.name -%}
                {{- '<|start|>assistant to=functions.' + tc.name + '<|channel|>commentary json<|message|>' -}}
                {%- if tc.arguments is string -%}{{- tc.arguments -}}{%- else -%}{{- tc.arguments | tojson -}}{%- endif -%}
                {{- '<|call|>' -}}
            {%- endfor -%}
        {%- else -%}
            {{- '<|start|>assistant<|channel|>final<|message|>' + text_of(message.content) + '<|end|>' -}}
        {%- endif -%}
    {%- elif message.role == 'tool' -%}
        {%- set name = message.name if message.name is defined and message.name else ns.last_tool -%}
        {{- '<|start|>functions.' + name + ' to=assistant<|channel|>commentary<|message|>' + text_of(message.content) + '<|end|>' -}}
    {%- else -%}
        {{- '<|start|>' + message.role + '<|message|>' + text_of(message.content) + '<|end|>' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}
"""


def gpt_oss_config(preset: str, ids: dict[str, int]) -> dict:
    s = _shape(preset)
    return {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        **_attention(s),
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": ids["<|return|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "experts_per_token": EXPERTS_PER_TOKEN,
        "hidden_act": "silu",
        "initial_context_length": 4096,
        "intermediate_size": s["hidden"],
        "layer_types": [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(s["layers"])
        ],
        "max_position_embeddings": 131072,
        "num_experts_per_tok": EXPERTS_PER_TOKEN,
        "num_local_experts": EXPERTS,
        "output_router_logits": False,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "factor": 32.0,
            "original_max_position_embeddings": 4096,
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": 150000.0,
        "router_aux_loss_coef": 0.9,
        "sliding_window": SLIDING_WINDOW,
        "swiglu_limit": 7.0,
        "tie_word_embeddings": False,
    }


UNLIMITED = 1000000000000000019884624838656  # transformers' "no model_max_length"

_GPT_OSS_TOKENIZER = tokenizer_config_of(
    HARMONY,
    bos_token="<|startoftext|>",
    eos_token="<|return|>",
    pad_token="<|endoftext|>",
    model_input_names=["input_ids", "attention_mask"],
    model_max_length=UNLIMITED,
)


# --- LFM2 -------------------------------------------------------------------------------

_LFM2_LEADING = ("<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>",
                 "<|fim_suf|>", "<|im_start|>", "<|im_end|>", "<|tool_list_start|>",
                 "<|tool_list_end|>", "<|tool_call_start|>", "<|tool_call_end|>",
                 "<|tool_response_start|>", "<|tool_response_end|>")
_LFM2_SPEC = TokenizerSpec("bytelevel", QWEN_SPLIT, True, _LFM2_LEADING, (), (),
                           "<|startoftext|>")

LFM2_TEMPLATE = "{{- bos_token -}}\n" + TEXT_OF + r"""{%- set ns = namespace(system_prompt='') -%}
{%- if messages[0].role == 'system' -%}
    {%- set ns.system_prompt = text_of(messages[0].content) -%}
    {%- set messages = messages[1:] -%}
{%- endif -%}
{%- if tools -%}
    {%- set ns.system_prompt = ns.system_prompt + ('\n' if ns.system_prompt else '') + 'List of tools: <|tool_list_start|>[' -%}
    {%- for tool in tools -%}
        {%- if tool is not string -%}{%- set tool = tool | tojson -%}{%- endif -%}
        {%- set ns.system_prompt = ns.system_prompt + tool -%}
        {%- if not loop.last -%}{%- set ns.system_prompt = ns.system_prompt + ', ' -%}{%- endif -%}
    {%- endfor -%}
    {%- set ns.system_prompt = ns.system_prompt + ']<|tool_list_end|>' -%}
{%- endif -%}
{%- if ns.system_prompt -%}{{- '<|im_start|>system\n' + ns.system_prompt + '<|im_end|>\n' -}}{%- endif -%}
{%- for message in messages -%}
    {{- '<|im_start|>' + message.role + '\n' -}}
    {%- set content = text_of(message.content) -%}
    {%- if message.role == 'assistant' and message.tool_calls -%}
        {%- set calls = namespace(text='') -%}
        {%- for tc in message.tool_calls -%}
            {%- if tc.function is defined -%}{%- set tc = tc.function -%}{%- endif -%}
            {%- set args = tc.arguments if tc.arguments is string else (tc.arguments | tojson) -%}
            {%- set calls.text = calls.text + (', ' if not loop.first else '') + tc.name + '(' + args + ')' -%}
        {%- endfor -%}
        {%- set content = '<|tool_call_start|>[' + calls.text + ']<|tool_call_end|>' + content -%}
    {%- elif message.role == 'tool' -%}
        {%- set content = '<|tool_response_start|>' + content + '<|tool_response_end|>' -%}
    {%- endif -%}
    {{- content + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""


def lfm2_config(preset: str, ids: dict[str, int]) -> dict:
    s = _shape(preset)
    types = ["conv", "full_attention", "conv"]  # LFM2 puts attention between conv blocks
    ff = 3 * s["inter"] // 2  # auto-adjusted to 2/3, rounded up: s["inter"]
    return {
        "architectures": ["Lfm2ForCausalLM"],
        "model_type": "lfm2",
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "num_hidden_layers": len(types),
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "num_heads": s["heads"],
        "initializer_range": 0.02,
        "use_cache": True,
        "block_auto_adjust_ff_dim": True,
        "block_dim": s["hidden"],
        "block_ff_dim": ff,
        "block_ffn_dim_multiplier": 1.0,
        "block_multiple_of": 32,
        "block_norm_eps": 1e-05,
        "bos_token_id": ids["<|startoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|pad|>"],
        "conv_L_cache": 3,
        "conv_bias": False,
        "conv_dim": s["hidden"],
        "conv_dim_out": s["hidden"],
        "full_attn_idxs": [i for i, t in enumerate(types) if t == "full_attention"],
        "intermediate_size": ff,
        "layer_types": types,
        "max_position_embeddings": 128000,
        "norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    }


_LFM2_TOKENIZER = tokenizer_config_of(
    LFM2_TEMPLATE,
    add_bos_token=False,
    add_eos_token=False,
    bos_token="<|startoftext|>",
    eos_token="<|im_end|>",
    pad_token="<|pad|>",
    legacy=False,
    model_max_length=UNLIMITED,
)


def _recipe(name: str, family: str, notes: str, config: Callable[[str, dict[str, int]], dict],
            fix_weights: Callable[[Weights, dict], Weights] | None = None, *,
            tokenizer: TokenizerSpec | None = None, tokenizer_conf: dict | None = None
            ) -> Recipe:
    """A text recipe on ``family``'s tokenizer and template unless others are given."""
    return zoo_recipe(
        name, notes, family=family, vision=False, config=config,
        tokenizer=tokenizer or tokenizer_spec(family),
        tokenizer_config=tokenizer_conf or tokenizer_config(family),
        fix_weights=fix_weights,
    )


RECIPES: tuple[Recipe, ...] = (
    _recipe("gemma3_text", "gemma3", "Gemma 3 text (1B): sliding + global attention layers "
            "(rotating KV cache), tied scaled embeddings.", gemma3_text_config,
            _gemma3_text_weights),
    _recipe("qwen3_moe", "qwen3", "Qwen3 MoE (30B-A3B): 4 experts, 2 per token.",
            qwen3_moe_config, _expert_weights),
    _recipe("gpt_oss", "harmony", "gpt-oss: sliding + full attention with sinks, MoE; "
            "Harmony chat format.", gpt_oss_config, _expert_weights,
            tokenizer=_HARMONY_SPEC, tokenizer_conf=_GPT_OSS_TOKENIZER),
    _recipe("qwen3_next", "qwen3", "Qwen3-Next: gated delta net (linear attention) + full "
            "attention layers, MoE with a shared expert.", qwen3_next_config,
            _qwen3_next_weights),
    _recipe("lfm2", "lfm2", "LFM2: short-convolution layers + attention layer.", lfm2_config,
            tokenizer=_LFM2_SPEC, tokenizer_conf=_LFM2_TOKENIZER),
)
