"""/v1/models, health, /v1/completions and the OpenAPI docs."""

from __future__ import annotations

import json


def test_models_lists_served_name_aliases_and_capabilities(vl_client):
    body = vl_client.get("/v1/models").json()
    assert body["object"] == "list"
    card = body["data"][0]
    assert card["id"] == "tiny-vl"
    assert "default" in card["aliases"]
    assert card["capabilities"]["vision"] and card["capabilities"]["video"]
    assert card["capabilities"]["input_modalities"] == ["text", "image", "video"]
    assert card["capabilities"]["model_type"] == "qwen2_vl"
    assert card["capabilities"]["quantization_bits"] is None
    assert card["max_model_len"] > 0
    assert card["random_weights"] is True


def test_one_model_by_any_of_its_names(vl_client):
    card = vl_client.get("/v1/models").json()["data"][0]
    for name in ("tiny-vl", "default", card["root"]):
        r = vl_client.get(f"/v1/models/{name}")
        assert r.status_code == 200 and r.json() == card, name
    missing = vl_client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_health(vl_client):
    for path in ("/health", "/v1/health"):
        r = vl_client.get(path)
        assert r.status_code == 200 and r.json()["status"] == "ok"


def test_openapi_docs(vl_client):
    schema = vl_client.get("/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"]
    assert vl_client.get("/docs").status_code == 200


def test_completions(vl_client):
    r = vl_client.post("/v1/completions", json={"model": "default", "prompt": "Once upon",
                                                "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert 0 < body["usage"]["completion_tokens"] <= 6
    assert body["choices"][0]["finish_reason"] in ("stop", "length")


def test_completions_multiple_prompts_and_stream(vl_client):
    r = vl_client.post("/v1/completions", json={"prompt": ["a", "b"], "max_tokens": 4,
                                                "temperature": 0, "logprobs": 2})
    assert [c["index"] for c in r.json()["choices"]] == [0, 1]
    assert len(r.json()["choices"][0]["logprobs"]["tokens"]) > 0
    stream = vl_client.post("/v1/completions", json={"prompt": "a", "max_tokens": 4,
                                                     "temperature": 0, "stream": True})
    lines = [ln[6:] for ln in stream.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    streamed = "".join(c["text"] for ln in lines[:-1] for c in json.loads(ln)["choices"])
    plain = vl_client.post("/v1/completions", json={"prompt": "a", "max_tokens": 4,
                                                    "temperature": 0})
    assert streamed == plain.json()["choices"][0]["text"]


def test_openapi_documents_the_real_error_responses(vl_client):
    schema = vl_client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # validation errors are 400s
            assert responses["default"]["content"]["application/json"]["schema"] == error_ref
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in responses, (method, path)
    chat = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    videos = schema["paths"]["/v1/videos"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(videos["requestBody"]["content"])
    content = schema["paths"]["/v1/videos/{video_id}/content"]["get"]["responses"]["200"]
    assert set(content["content"]) == {"video/mp4"}


def test_vlm_run_model_names_are_listed_where_they_are_accepted(vl_client):
    card = vl_client.get("/v1/models").json()["data"][0]
    for name in ("vlm-1", "vlm-agent-1"):
        assert name in card["aliases"]
        assert vl_client.get(f"/v1/models/{name}").json() == card
        r = vl_client.post("/v1/chat/completions", json={
            "model": name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        assert r.status_code == 200, r.text
