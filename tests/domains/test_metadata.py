"""Confidence from token probabilities and model-written boxes, on hand-made outputs."""

from __future__ import annotations

import json
import math

from vllm_mlx.domains import metadata


def test_value_spans_locate_each_top_level_value():
    text = '{"a":"x y","b":{"c":[1,2]},"d":null}'
    spans = metadata.value_spans(text)
    assert {k: text[s:e] for k, (s, e) in spans.items()} == {
        "a": '"x y"', "b": '{"c":[1,2]}', "d": "null"}
    assert metadata.value_spans("[1, 2]") == {}
    assert metadata.value_spans('{"a": 1, "b":') == {"a": (6, 7)}  # cut output: what parsed


def test_token_spans_give_textless_tokens_the_next_span():
    spans = metadata.token_spans([("ab", [("ab", -0.1)]), ("", [("\ufffd", -0.2)]),
                                  ("é", [("\ufffd", -0.3)])])
    assert spans == [(0, 2, -0.1), (2, 3, -0.2), (2, 3, -0.3)]


def test_token_spans_split_pieces_of_several_tokens():
    spans = metadata.token_spans([('{"a":', [('{"', 0.0), ("a", -1.0), ('":', 0.0)])])
    assert spans == [(0, 2, 0.0), (2, 3, -1.0), (3, 5, 0.0)]


def test_confidence_levels_follow_the_geometric_mean_probability():
    text = '{"sure":"yes","unsure":"no"}'
    pieces = [('{"sure":', [('{"sure":', 0.0)]), ('"yes"', [('"yes"', math.log(0.95))]),
              (',"unsure":', [(',"unsure":', 0.0)]), ('"no"', [('"no"', math.log(0.3))]),
              ("}", [("}", 0.0)])]
    out = metadata.attach(json.loads(text), text, metadata.token_spans(pieces), None)
    assert out == {"sure": "yes", "sure_metadata": {"confidence": "hi"},
                   "unsure": "no", "unsure_metadata": {"confidence": "low"}}
    assert metadata.level(0.6) == "med"


def test_fields_the_model_did_not_write_get_no_metadata():
    text = '{"a":1}'
    out = metadata.attach({"a": 1, "b": None}, text, metadata.token_spans([(text, [(text, 0.0)])]),
                          None)
    assert out == {"a": 1, "a_metadata": {"confidence": "hi"}, "b": None}


def test_grounding_schema_adds_optional_box_metadata_after_each_property():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
              "required": ["a"]}
    grounded, keys = metadata.grounding_schema(schema)
    assert list(grounded["properties"]) == ["a", "a_metadata", "b", "b_metadata"]
    assert keys == ("a_metadata", "b_metadata") and grounded["required"] == ["a"]
    assert metadata.grounding_schema({"type": "array"}) == ({"type": "array"}, ())


def test_boxes_come_only_from_the_model():
    value = {"a": "x", "a_metadata": {"bboxes": [{"xywh": [0.1, 0.2, 0.3, 0.4]}]},
             "b": 2, "b_metadata": {"bboxes": []}}
    clean, boxes = metadata.split_boxes(value, ("a_metadata", "b_metadata"))
    assert clean == {"a": "x", "b": 2}
    assert boxes == {"a": [{"xywh": [0.1, 0.2, 0.3, 0.4]}]}
    text = '{"a":"x","b":2}'
    out = metadata.attach(clean, text, metadata.token_spans([(text, [(text, 0.0)])]), boxes)
    assert out["a_metadata"]["bboxes"] == [{"xywh": [0.1, 0.2, 0.3, 0.4]}]
    assert "bboxes" not in out["b_metadata"]
