"""Function calling: tools reach the chat template, calls in the Hermes / Qwen form come
back as OpenAI ``tool_calls`` (whole and streamed), a forced ``tool_choice`` decodes under a
grammar so even a random-weight model calls the function with schema-valid arguments, and
bad tools or templates without tool support are 400s."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.api.conftest import make_client
from tests.api.test_chat import sse_events
from vllm_mlx.errors import APIError
from vllm_mlx.openai.tool_calls import ToolCallStream, ToolSet

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                            "days": {"type": "integer", "minimum": 1,
                                                     "maximum": 7}},
           "required": ["city", "days"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "ping"}}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}\n' \
       '</tool_call>'


def test_split_reads_calls_and_leaves_the_rest():
    tools = ToolSet.of(TOOLS, "auto")
    assert tools is not None
    text, calls = tools.split(f"Let me check. {CALL}")
    assert text == "Let me check." and [c.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments) == {"city": "Oslo", "days": 2}
    for kept in ("<tool_call>{not json}</tool_call>",
                 '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>', "plain"):
        assert tools.split(kept) == (kept, [])


def test_parallel_tool_calls_false_keeps_one_call():
    two = f"{CALL}\n<tool_call>\n{{\"name\": \"ping\", \"arguments\": {{}}}}\n</tool_call>"
    both, one = ToolSet.of(TOOLS, "auto"), ToolSet.of(TOOLS, "auto", parallel=False)
    assert both is not None and one is not None
    assert [c.name for c in both.split(two)[1]] == ["get_weather", "ping"]
    assert [c.name for c in one.split(two)[1]] == ["get_weather"]


def test_streamed_text_is_released_unless_it_may_be_a_call():
    tools = ToolSet.of(TOOLS, "auto")
    assert tools is not None
    reader = ToolCallStream(tools)
    sent = [reader.feed(piece) for piece in ("Hi <", "tool", "_call>\n{", '"name": "ping"}',
                                              "\n</tool_call>")]
    assert sent == ["Hi ", "", "", "", ""]
    rest, calls = reader.finish()
    assert rest == "" and [c.name for c in calls] == ["ping"] and calls[0].arguments == "{}"
    plain = ToolCallStream(tools)
    assert plain.feed("a < b") == "a < b" and plain.feed(" <to") == " " and \
        plain.finish() == ("<to", [])


@pytest.mark.parametrize(("tools", "choice", "param"), [
    ([{"type": "function", "function": {}}], "auto", "tools[0].function.name"),
    ([{"type": "retrieval"}], "auto", "tools[0]"),
    (TOOLS, {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
    (TOOLS, "always", "tool_choice"),
    (None, "required", "tool_choice"),
    # found by a walkthrough with the OpenAI SDK: all were accepted (200)
    (None, "auto", "tool_choice"),
    (TOOLS, {"type": "bogus", "function": {"name": "ping"}}, "tool_choice"),
    ([{"type": "function", "function": {"name": "bad name!"}}], "auto",
     "tools[0].function.name"),
    ([{"type": "function", "function": {"name": "x" * 65}}], "auto", "tools[0].function.name"),
    (TOOLS + [TOOLS[1]], "auto", "tools[2].function.name"),
    ([TOOLS[1]] * 129, "auto", "tools"),
    # not an object: a forced call decoded its value, then the reply parser dropped it
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
     "required", "tools[0].function.parameters"),
    # an invalid schema was only refused when the call was forced
    ([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "bogus"}}}}}], "auto",
     "tools[0].function.parameters"),
])
def test_bad_tools_are_400(tools, choice, param):
    with pytest.raises(APIError) as info:
        ToolSet.of(tools, choice)
    assert info.value.status == 400 and info.value.param == param


def test_a_call_cut_short_comes_back_as_a_call_not_as_text():
    tools = ToolSet.of(TOOLS, NAMED)
    assert tools is not None
    text, calls = tools.split('Sure. <tool_call>\n{"name": "get_weather", "arguments": '
                              '{"city": "Os', cut_short=True)
    assert text == "Sure." and [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city": "Os')]
    # cut before the name was complete: no call to return, so the text is (never lost)
    cut = '<tool_call>\n{"name": "get_'
    assert tools.split(cut, cut_short=True) == (cut, [])


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "c1", "content": "4"}],
    [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "ping", "arguments": "{}"}}]},
     {"role": "tool", "tool_call_id": "c2", "content": "4"}],
    [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "4"}],
])
def test_a_tool_message_must_answer_a_call(vl_client, messages):
    r = vl_client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 1})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages[1].tool_call_id"


@pytest.fixture(scope="module", params=["qwen3", "qwen3_vl"])
def client(request, engine_for, media_dir):
    with make_client(engine_for(request.param), media_dir) as c:
        yield c


def _ask(client, **fields):
    body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 60,
            "temperature": 0, "tools": TOOLS, **fields}
    return client.post("/v1/chat/completions", json=body)


def test_forced_call_is_a_schema_valid_tool_call(client):
    r = _ask(client, tool_choice=NAMED)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    required = _ask(client, tool_choice="required").json()["choices"][0]
    assert required["message"]["tool_calls"][0]["function"]["name"] in ("get_weather", "ping")


def test_streamed_forced_call_matches_the_whole_reply(client):
    whole = _ask(client, tool_choice=NAMED).json()["choices"][0]["message"]["tool_calls"][0]
    with client.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 60,
            "temperature": 0, "tools": TOOLS, "tool_choice": NAMED, "stream": True}) as r:
        events = sse_events(r)
    deltas = [c["delta"] for e in events[:-1] for c in e["choices"]]
    (streamed,) = [call for d in deltas for call in d.get("tool_calls") or []]
    assert streamed["index"] == 0 and streamed["function"] == whole["function"]
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tools_and_earlier_calls_reach_the_template(client):
    plain = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 1})
    with_tools = _ask(client, max_tokens=1, tool_choice="none")
    assert with_tools.json()["usage"]["prompt_tokens"] > plain.json()["usage"]["prompt_tokens"]
    assert "tool_calls" not in with_tools.json()["choices"][0]["finish_reason"]
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 2}'}}
    history = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 4}'}]
    follow_up = client.post("/v1/chat/completions", json={
        "messages": history, "tools": TOOLS, "max_tokens": 1})
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.json()["usage"]["prompt_tokens"] > with_tools.json()["usage"][
        "prompt_tokens"] + 10


def test_a_template_without_tools_gets_them_in_the_prompt(engine_for, media_dir):
    """gemma3's template ignores tools: they are described in a system message, the
    forced call comes back as tool_calls, and /v1/models says the tools are prompted."""
    with make_client(engine_for("gemma3"), media_dir) as client:
        plain = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 1})
        r = _ask(client, tool_choice=NAMED)
        history = _ask(client, messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "ping", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "pong"},
            {"role": "user", "content": "And now?"}], max_tokens=1)
        card = client.get("/v1/models").json()["data"][0]["capabilities"]
    assert r.status_code == 200, r.text
    (call,) = r.json()["choices"][0]["message"]["tool_calls"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    assert r.json()["usage"]["prompt_tokens"] > plain.json()["usage"]["prompt_tokens"] + 20
    assert history.status_code == 200, history.text
    assert card["tools"] == "prompted" and card["tool_call_format"] == "hermes"


def test_max_tokens_inside_a_forced_call_returns_the_call_so_far(client):
    r = _ask(client, tool_choice=NAMED, max_tokens=16)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert not choice["message"]["content"]  # the call's markup was returned as text
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    with client.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 16,
            "temperature": 0, "tools": TOOLS, "tool_choice": NAMED, "stream": True}) as r:
        events = sse_events(r)
    deltas = [c["delta"] for e in events[:-1] for c in e["choices"]]
    assert not "".join(d.get("content") or "" for d in deltas)
    (streamed,) = [c for d in deltas for c in d.get("tool_calls") or []]
    assert streamed["function"] == call["function"]


@pytest.mark.parametrize("stop", [["\n"], ["}"], ["<tool_call>"]])
def test_stop_strings_do_not_cut_a_forced_call(client, stop):
    whole = _ask(client, tool_choice=NAMED).json()["choices"][0]
    stopped = _ask(client, tool_choice=NAMED, stop=stop).json()["choices"][0]
    assert stopped["finish_reason"] == "tool_calls"
    assert stopped["message"]["tool_calls"][0]["function"] == \
        whole["message"]["tool_calls"][0]["function"]


def test_a_schema_the_grammar_cannot_take_is_a_400_without_our_grammar_in_it(client):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}}}]
    r = _ask(client, tools=tools, tool_choice="required")
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "look-around" in message and "call_0" not in message and "x-guidance" not in message


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 8}},
          "required": ["answer"], "additionalProperties": False}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}


def _reply_of(client, stream: bool, **fields):
    """(content, tool_calls, finish_reason) of one choice, whole or streamed."""
    body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 60,
            "temperature": 0, **fields}
    if not stream:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        return (choice["message"]["content"], choice["message"].get("tool_calls") or [],
                choice["finish_reason"])
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        events = sse_events(r)
    deltas = [c for e in events[:-1] for c in e["choices"]]
    text = "".join(c["delta"].get("content") or "" for c in deltas)
    calls = [t for c in deltas for t in c["delta"].get("tool_calls") or []]
    return text or None, calls, [c["finish_reason"] for c in deltas if c["finish_reason"]][-1]


@pytest.mark.parametrize("stream", [False, True])
def test_json_response_format_with_tools_allows_a_call_or_the_json(engine_for, media_dir,
                                                                    stream):
    """Under auto the reply may call a tool or answer in the schema: a bias on the call's
    first token picks one way, the grammar keeps either well formed."""
    engine = engine_for("qwen3")
    opening = engine.model.tokenizer.encode("<tool_call>", add_special_tokens=False)[0]
    with make_client(engine, media_dir) as client:
        _, calls, finish = _reply_of(client, stream, tools=TOOLS, response_format=JSON_FORMAT,
                                     logit_bias={str(opening): 100})
        content, no_calls, answered = _reply_of(
            client, stream, tools=TOOLS, response_format=JSON_FORMAT,
            logit_bias={str(opening): -100}, max_tokens=200)
    assert finish == "tool_calls" and calls[0]["function"]["name"] in ("get_weather", "ping")
    assert answered == "stop" and not no_calls
    jsonschema.validate(json.loads(content), SCHEMA)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("choice", ["required", NAMED])
def test_forced_call_with_json_response_format_is_accepted(client, stream, choice):
    content, calls, finish = _reply_of(client, stream, tools=TOOLS, tool_choice=choice,
                                       response_format=JSON_FORMAT)
    assert finish == "tool_calls" and len(calls) == 1 and not content


@pytest.mark.parametrize("stream", [False, True])
def test_a_call_cut_before_its_name_returns_the_text(client, stream):
    content, calls, finish = _reply_of(client, stream, tools=TOOLS, tool_choice=NAMED,
                                       max_tokens=2)
    assert finish == "length" and not calls and content and content.startswith("<tool")


def _legacy_call_of(client, stream: bool, **fields) -> tuple[dict, str]:
    """(function_call, finish_reason) of a reply in the legacy functions form."""
    body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 60,
            "temperature": 0, **fields}
    if not stream:
        choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
        assert "tool_calls" not in choice["message"]
        return choice["message"]["function_call"], choice["finish_reason"]
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        deltas = [c for e in sse_events(r)[:-1] for c in e["choices"]]
    assert not any("tool_calls" in c["delta"] for c in deltas)
    calls = [c["delta"]["function_call"] for c in deltas if "function_call" in c["delta"]]
    assert len(calls) == 1
    return calls[0], [c["finish_reason"] for c in deltas if c["finish_reason"]][-1]


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_functions_are_tools(client, stream):
    """Asked in the legacy form, the call comes back in it: ``function_call``, finish
    ``function_call``, one call."""
    functions = [t["function"] for t in TOOLS]
    call, finish = _legacy_call_of(client, stream, functions=functions,
                                   function_call={"name": "get_weather"})
    assert finish == "function_call" and call["name"] == "get_weather"
    assert isinstance(json.loads(call["arguments"]), dict)
    history = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": None,
                "function_call": {"name": "ping", "arguments": "{}"}},
               {"role": "function", "name": "ping", "content": "pong"}]
    r = client.post("/v1/chat/completions", json={
        "messages": history, "functions": functions, "max_tokens": 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("stream", [False, True])
def test_responses_style_tool_choice_names_a_function(client, stream):
    content, calls, finish = _reply_of(client, stream, tools=TOOLS,
                                       tool_choice={"type": "function", "name": "ping"})
    assert finish == "tool_calls" and [c["function"]["name"] for c in calls] == ["ping"]


@pytest.mark.parametrize("parser", ["qwen3_coder", "mistral", "llama3_json"])
def test_tool_call_parser_setting_changes_the_format(engine_for, media_dir, parser):
    """A non-default format end to end: the forced call is written in that format (raw
    text shows its markup) and comes back as tool_calls."""
    with make_client(engine_for("qwen3"), media_dir, tool_call_parser=parser) as client:
        r = _ask(client, tool_choice=NAMED, max_tokens=200)
        raw = _ask(client, tool_choice=NAMED, max_tokens=6)
        card = client.get("/v1/models").json()["data"][0]["capabilities"]
    assert r.status_code == 200, r.text
    (call,) = r.json()["choices"][0]["message"]["tool_calls"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    marker = {"qwen3_coder": "<tool_call>\n<function=get_weather>",
              "mistral": "[TOOL_CALLS]", "llama3_json": '{"name": "get_weather"'}[parser]
    cut = raw.json()["choices"][0]
    written = cut["message"]["content"] or ""
    assert marker.startswith(written[:8]) or cut["message"].get("tool_calls"), written
    assert card["tool_call_format"] == parser and card["tools"] == "template"
