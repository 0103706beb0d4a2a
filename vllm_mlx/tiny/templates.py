# ruff: noqa: E501
"""Chat templates (Jinja) for the tiny model families.

Contract: each template renders the same prompt format as the real family's published
template for the same messages (Qwen2-VL / Qwen2.5-VL, Qwen3-VL-Instruct, Qwen3, Gemma 3,
Llama 3 Instruct).  Vision families render image parts as the family's image marker
(Qwen: ``<|vision_start|><|image_pad|><|vision_end|>``, Gemma 3: ``<start_of_image>``) and,
for Qwen, video parts as ``<|vision_start|><|video_pad|><|vision_end|>``; the processor then
expands the pad tokens.  Text families also accept OpenAI-style lists of text parts.
All literal text is emitted through ``{{ }}`` expressions so whitespace control never eats
a newline.  ``TEXT_OF`` (the ``text_of(content)`` macro) serves the zoo's templates too.
"""

from __future__ import annotations

# The text of a message's content (a string, or a list of {"type": "text"} parts).
TEXT_OF = r"""{%- macro text_of(c) -%}
    {%- if c is string -%}{{- c -}}
    {%- elif c is iterable -%}
        {%- for p in c -%}
            {%- if p is mapping and p.get('type', 'text') == 'text' -%}{{- p.get('text', '') -}}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
"""

# Qwen-VL content: text, image and video parts in order.
_QWEN_MEDIA = r"""{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- macro media(c) -%}
    {%- if c is string -%}{{- c -}}
    {%- else -%}
        {%- for p in c -%}
            {%- if p.type == 'image' or 'image' in p or 'image_url' in p -%}
                {%- set image_count.value = image_count.value + 1 -%}
                {%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif p.type == 'video' or 'video' in p -%}
                {%- set video_count.value = video_count.value + 1 -%}
                {%- if add_vision_id -%}{{- 'Video ' ~ video_count.value ~ ': ' -}}{%- endif -%}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
            {%- elif 'text' in p -%}{{- p.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
"""

QWEN2_VL = (
    _QWEN_MEDIA
    + r"""{%- for message in messages -%}
    {%- if loop.first and message['role'] != 'system' -%}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
    {%- endif -%}
    {{- '<|im_start|>' + message['role'] + '\n' + media(message['content']) + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""
)

# Tool preamble / first system message of Qwen2.5, Qwen3 and Qwen3-VL.
_QWEN_SYSTEM = r"""{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if messages[0].role == 'system' -%}{{- text_of(messages[0].content) + '\n\n' -}}{%- endif -%}
    {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' -}}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
    {%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and '
        'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": '
        '<function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif messages[0].role == 'system' -%}
    {{- '<|im_start|>system\n' + text_of(messages[0].content) + '<|im_end|>\n' -}}
{%- endif -%}
"""

_QWEN_TOOL_CALLS = r"""{%- if message.tool_calls -%}
    {%- for tc in message.tool_calls -%}
        {%- if (loop.first and content) or (not loop.first) -%}{{- '\n' -}}{%- endif -%}
        {%- if tc.function -%}{%- set tc = tc.function -%}{%- endif -%}
        {{- '<tool_call>\n{"name": "' + tc.name + '", "arguments": ' -}}
        {%- if tc.arguments is string -%}{{- tc.arguments -}}{%- else -%}{{- tc.arguments | tojson -}}{%- endif -%}
        {{- '}\n</tool_call>' -}}
    {%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
"""

_QWEN_TOOL_RESPONSE = r"""{%- elif message.role == 'tool' -%}
    {%- if loop.first or (messages[loop.index0 - 1].role != 'tool') -%}{{- '<|im_start|>user' -}}{%- endif -%}
    {{- '\n<tool_response>\n' + text_of(message.content) + '\n</tool_response>' -}}
    {%- if loop.last or (messages[loop.index0 + 1].role != 'tool') -%}{{- '<|im_end|>\n' -}}{%- endif -%}
"""

QWEN3_VL = (
    TEXT_OF
    + _QWEN_MEDIA
    + _QWEN_SYSTEM
    + r"""{%- for message in messages -%}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) -%}
        {{- '<|im_start|>' + message.role + '\n' + media(message.content) + '<|im_end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {%- set content = text_of(message.content) -%}
        {{- '<|im_start|>assistant\n' + content -}}
"""
    + _QWEN_TOOL_CALLS
    + _QWEN_TOOL_RESPONSE
    + r"""    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""
)

QWEN3 = (
    TEXT_OF
    + _QWEN_SYSTEM
    + r"""{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) -%}
{%- for message in messages[::-1] -%}
    {%- set index = (messages|length - 1) - loop.index0 -%}
    {%- set c = text_of(message.content) -%}
    {%- if ns.multi_step_tool and message.role == 'user'
          and not (c.startswith('<tool_response>') and c.endswith('</tool_response>')) -%}
        {%- set ns.multi_step_tool = false -%}
        {%- set ns.last_query_index = index -%}
    {%- endif -%}
{%- endfor -%}
{%- for message in messages -%}
    {%- set content = text_of(message.content) -%}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) -%}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {%- set reasoning_content = '' -%}
        {%- if message.reasoning_content is string -%}
            {%- set reasoning_content = message.reasoning_content -%}
        {%- elif '</think>' in content -%}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') -%}
            {%- set content = content.split('</think>')[-1].lstrip('\n') -%}
        {%- endif -%}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) -%}
            {{- '<|im_start|>assistant\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') -}}
        {%- else -%}
            {{- '<|im_start|>assistant\n' + content -}}
        {%- endif -%}
"""
    + _QWEN_TOOL_CALLS
    + _QWEN_TOOL_RESPONSE
    + r"""    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}
{%- endif -%}
"""
)

GEMMA3 = r"""{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
    {%- endif -%}
    {%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}
    {{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') -}}
    {%- if message['content'] is string -%}
        {{- message['content'] | trim -}}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}{{- '<start_of_image>' -}}
            {%- elif item['type'] == 'text' -%}{{- item['text'] | trim -}}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{- raise_exception('Invalid content type') -}}
    {%- endif -%}
    {{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
"""

LLAMA3 = (
    TEXT_OF
    + r"""{%- for message in messages -%}
    {%- set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (text_of(message['content']) | trim) + '<|eot_id|>' -%}
    {%- if loop.index0 == 0 -%}{%- set content = bos_token + content -%}{%- endif -%}
    {{- content -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}
"""
)

TEMPLATES: dict[str, str] = {
    "qwen2_vl": QWEN2_VL,
    "qwen3_vl": QWEN3_VL,
    "qwen3": QWEN3,
    "gemma3": GEMMA3,
    "llama3": LLAMA3,
}
