"""Each family's tool-call format: chosen from its chat template (or by name), its replies
read whole and streamed in random chunkings, and its forced-call grammar compiling with
llguidance and accepting a call written in the format. The sample replies are written by
hand from the formats' public descriptions (model cards, vLLM's tool-parser docs)."""

from __future__ import annotations

import json
import random

import pytest

from vllm_mlx.engine.constrained import GrammarCompiler
from vllm_mlx.openai.tool_calls import ToolCallStream, ToolSet
from vllm_mlx.openai.tool_formats import FORMATS, format_for

WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "days": {"type": "integer"}},
           "required": ["city", "days"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "ping"}}]
OSLO = {"city": "Oslo", "days": 2}

DS_V3 = ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
         '```json\n{"city": "Oslo", "days": 2}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>')
# format -> (template excerpt that selects it, a reply with text before one call)
SAMPLES = {
    "hermes": ("{{- '<tool_call>' }}",
               'Checking. <tool_call>\n{"name": "get_weather", "arguments": '
               '{"city": "Oslo", "days": 2}}\n</tool_call>'),
    "qwen3_coder": ("<tool_call>\n<function={{ name }}>\n<parameter={{ key }}>",
                    "Checking. <tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n"
                    "</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n"
                    "</tool_call>"),
    "glm45": ("<tool_call>{{ name }}<arg_key>{{ k }}</arg_key><arg_value>",
              "Checking. <tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Oslo"
              "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>"),
    "llama3_json": ("<|start_header_id|>ipython<|end_header_id|> <|python_tag|>",
                    '<|python_tag|>{"name": "get_weather", "parameters": '
                    '{"city": "Oslo", "days": 2}}'),
    "mistral": ("[AVAILABLE_TOOLS]{{ tools }}[/AVAILABLE_TOOLS] [TOOL_CALLS]",
                'Checking. [TOOL_CALLS][{"name": "get_weather", "arguments": '
                '{"city": "Oslo", "days": 2}}]'),
    "deepseek_v3": ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + "
                    "'<｜tool▁sep｜>' + name + '\\n```json'", "Checking. " + DS_V3),
    "harmony": ("<|start|>assistant<|channel|>commentary to=functions.x<|call|>",
                "<|channel|>commentary to=functions.get_weather <|constrain|>json"
                '<|message|>{"city": "Oslo", "days": 2}<|call|>'),
    "gemma": ("```tool_code\n", '```tool_code\n[get_weather(city="Oslo", days=2)]\n```'),
    "functiongemma": ("<start_function_declaration>",
                      "Checking. <start_function_call>call:get_weather{city:<escape>Oslo"
                      "<escape>,days:2}<end_function_call>"),
}
TEXT_BEFORE = {"hermes", "qwen3_coder", "glm45", "mistral", "deepseek_v3", "functiongemma"}


def _tools(name: str, choice: object = "auto") -> ToolSet:
    tools = ToolSet.of(TOOLS, choice, fmt=format_for(SAMPLES[name][0]))
    assert tools is not None
    return tools


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_template_chooses_the_format(name):
    assert format_for(SAMPLES[name][0]).name == name
    assert format_for(SAMPLES[name][0], "hermes").name == "hermes"


def test_a_template_without_tool_markers_is_hermes_and_unknown_names_fail():
    assert format_for("{{ messages }}").name == format_for(None).name == "hermes"
    with pytest.raises(ValueError, match="known"):
        format_for("", "nope")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_finished_reply_gives_its_text_and_call(name):
    text, calls = _tools(name).split(SAMPLES[name][1])
    assert text == ("Checking." if name in TEXT_BEFORE else "")
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", OSLO)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_call_of_an_unknown_function_stays_text(name):
    reply = SAMPLES[name][1].replace("get_weather", "launch_rocket")
    assert _tools(name).split(reply) == (reply, [])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_streamed_in_any_chunking_the_reply_reads_the_same(name, seed):
    reply, rng = SAMPLES[name][1], random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(reply)), min(8, len(reply) - 1)))
    pieces = [reply[a:b] for a, b in zip([0, *cuts], [*cuts, len(reply)])]
    reader = ToolCallStream(_tools(name))
    sent = "".join(reader.feed(p) for p in pieces)
    rest, calls = reader.finish()
    assert (sent + rest).strip() == ("Checking." if name in TEXT_BEFORE else "")
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", OSLO)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_plain_text_streams_through(name):
    reader = ToolCallStream(_tools(name))
    sent = reader.feed("The weather is ") + reader.feed("fine today.")
    rest, calls = reader.finish()
    assert sent + rest == "The weather is fine today." and not calls
    assert sent.startswith("The weather")  # released before the reply ended


@pytest.fixture(scope="module")
def compiler(engine_for):
    """A grammar compiler on the tiny qwen3's tokenizer (no format's markers are special
    tokens there: they are spelled out, which exercises the string literals)."""
    loaded = engine_for("qwen3").model
    compiler = GrammarCompiler(loaded.tokenizer, loaded.vocab_size, [])
    compiler.hf_tokenizer = loaded.tokenizer  # type: ignore[attr-defined]
    return compiler


def _accepts(compiler, grammar: str, text: str) -> bool:
    import llguidance

    matcher = llguidance.LLMatcher(compiler.llg_tokenizer, compiler.lark(grammar))
    ok = matcher.consume_tokens(compiler.hf_tokenizer.encode(text, add_special_tokens=False))
    return bool(ok) and not matcher.is_error() and matcher.is_accepting()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_forced_call_grammar_compiles_and_accepts_a_call(name, compiler):
    tools = _tools(name, {"type": "function", "function": {"name": "get_weather"}})
    grammar = tools.grammar(compiler.hf_tokenizer)
    written = _grammar_form(name)
    assert _accepts(compiler, grammar, written), (grammar, written)
    assert not _accepts(compiler, grammar, "Sure, here it is.")
    assert [(c.name, json.loads(c.arguments)) for c in tools.split(written)[1]] == [
        ("get_weather", OSLO)]


def _grammar_form(name: str) -> str:
    """A call as the forced grammar writes it (compact JSON, the format's own spacing)."""
    compact = json.dumps(OSLO, separators=(",", ":"))
    forms = {
        "hermes": f'<tool_call>\n{{"name": "get_weather", "arguments": {compact}}}\n'
                  "</tool_call>",
        "llama3_json": f'{{"name": "get_weather", "parameters": {compact}}}',
        "mistral": f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {compact}}}]',
        "deepseek_v3": DS_V3.replace('{"city": "Oslo", "days": 2}', compact),
        "harmony": "<|channel|>commentary to=functions.get_weather <|constrain|>json"
                   f"<|message|>{compact}<|call|>",
        "gemma": '[get_weather(city="Oslo", days=2)]',
    }
    return forms.get(name, SAMPLES[name][1].removeprefix("Checking. "))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_calls_or_json_grammar_takes_either(name, compiler):
    tools = _tools(name)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"]}
    grammar = tools.call_or_json_grammar(compiler.hf_tokenizer, schema)
    call = _grammar_form(name)
    if name == "llama3_json":  # the call is one JSON value with the answer's: compact
        call = json.dumps({"name": "get_weather", "parameters": OSLO}, separators=(",", ":"))
    assert _accepts(compiler, grammar, call)
    assert [c.name for c in tools.split(call)[1]] == ["get_weather"]
    assert _accepts(compiler, grammar, '{"answer":"sunny"}')
    assert not _accepts(compiler, grammar, "It is sunny.")


def test_a_call_cut_before_its_name_is_complete_is_text():
    for name in ("hermes", "qwen3_coder", "glm45", "mistral", "llama3_json"):
        reply = SAMPLES[name][1]
        cut = reply[:reply.index("get_weather") + 4]
        assert _tools(name).split(cut, cut_short=True) == (cut, []), name


def test_a_call_cut_inside_its_arguments_comes_back_as_far_as_it_got():
    for name in ("hermes", "qwen3_coder", "glm45", "llama3_json", "deepseek_v3"):
        reply = SAMPLES[name][1]
        cut = reply[:reply.index("Oslo") + 2]
        text, calls = _tools(name).split(cut, cut_short=True)
        assert [c.name for c in calls] == ["get_weather"], name
        assert "tool" not in text and "function" not in text, name


def test_several_calls_in_one_reply():
    two = {
        "hermes": SAMPLES["hermes"][1] + '\n<tool_call>\n{"name": "ping", "arguments": {}}\n'
                                         "</tool_call>",
        "mistral": 'x [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo", '
                   '"days": 2}}, {"name": "ping", "arguments": {}}]',
        "llama3_json": '{"name": "get_weather", "parameters": {"city": "Oslo", "days": 2}}; '
                       '{"name": "ping", "parameters": {}}',
        "gemma": '[get_weather(city="Oslo", days=2), ping()]',
        "deepseek_v3": DS_V3.replace("<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>function"
                                     "<｜tool▁sep｜>ping\n```json\n{}\n```<｜tool▁call▁end｜>"
                                     "<｜tool▁calls▁end｜>"),
    }
    for name, reply in two.items():
        assert [c.name for c in _tools(name).split(reply)[1]] == ["get_weather", "ping"], name


def test_format_variants_from_the_template():
    v11 = format_for("[TOOL_CALLS]{{ name }}[ARGS]{{ arguments }}")
    reply = 'Sure [TOOL_CALLS]get_weather[ARGS]{"city": "Oslo", "days": 2}[TOOL_CALLS]ping[ARGS]{}'
    tools = ToolSet.of(TOOLS, "auto", fmt=v11)
    assert tools is not None
    text, calls = tools.split(reply)
    assert text == "Sure" and [c.name for c in calls] == ["get_weather", "ping"]
    v31 = format_for("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + name + '<｜tool▁sep｜>'")
    reply = ('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>'
             '{"city": "Oslo", "days": 2}<｜tool▁call▁end｜><｜tool▁calls▁end｜>')
    tools = ToolSet.of(TOOLS, "auto", fmt=v31)
    assert tools is not None and [c.name for c in tools.split(reply)[1]] == ["get_weather"]


def test_string_values_of_key_value_formats_stay_text():
    schema_tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"code": {"type": "string"}, "n": {"type": "number"},
                                         "tags": {"type": "array"}}}}}]
    tools = ToolSet.of(schema_tools, "auto", fmt=FORMATS["qwen3_coder"])
    assert tools is not None
    reply = ("<tool_call>\n<function=f>\n<parameter=code>\nprint(1)\nx = 2\n</parameter>\n"
             '<parameter=n>\n1.5\n</parameter>\n<parameter=tags>\n["a"]\n</parameter>\n'
             "</function>\n</tool_call>")
    (call,) = tools.split(reply)[1]
    assert json.loads(call.arguments) == {"code": "print(1)\nx = 2", "n": 1.5, "tags": ["a"]}


def test_instructions_teach_the_format():
    for name in SAMPLES:
        text = FORMATS[name].instructions(TOOLS)
        assert "get_weather" in text and "function_name" in text, name


def test_a_key_value_call_cut_short_keeps_only_finished_values():
    reply = SAMPLES["qwen3_coder"][1]
    cut = reply[:reply.index("<parameter=days>") + len("<parameter=days>\n2\n</par")]
    (call,) = _tools("qwen3_coder").split(cut, cut_short=True)[1]
    assert json.loads(call.arguments) == {"city": "Oslo"}
    reply = SAMPLES["glm45"][1]
    cut = reply[:reply.index("<arg_value>2") + len("<arg_value>2</arg")]
    (call,) = _tools("glm45").split(cut, cut_short=True)[1]
    assert json.loads(call.arguments) == {"city": "Oslo"}
