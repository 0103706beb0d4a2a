"""Bad input gets a 4xx in the one OpenAI error shape, and the server keeps serving."""

from __future__ import annotations

import pytest

from tests.api.conftest import data_url, make_client, png_bytes


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def post_chat(client, body, **kw):
    return client.post("/v1/chat/completions", json=body, **kw)


def ok_body():
    return {"model": "default", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4}


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2", b"\xff\xfe"])
def test_malformed_json(vl_client, raw):
    r = vl_client.post("/v1/chat/completions", content=raw,
                       headers={"content-type": "application/json"})
    assert_error(r, 400)


@pytest.mark.parametrize("patch, param", [
    ({"messages": "hello"}, "messages"),
    ({"messages": []}, "messages"),
    ({"max_tokens": "many"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": -1}, "temperature"),
    ({"n": 100}, "n"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content[0].image_url"),
    ({"video_fps": 0}, "video_fps"),
])
def test_wrong_types_and_values(vl_client, patch, param):
    error = assert_error(post_chat(vl_client, {**ok_body(), **patch}), 400)
    assert error["param"] is not None and error["param"].startswith(param.split(".")[0])


@pytest.mark.parametrize("path, patch, param, alternatives", [
    ("/v1/chat/completions", {"stop": [1, 2]}, "stop", "str or list[str]"),
    ("/v1/completions", {"prompt": [1, "a"]}, "prompt", "str or list[str]"),
])
def test_a_value_no_union_alternative_takes_is_one_plain_error(vl_client, path, patch, param,
                                                               alternatives):
    body = {**ok_body(), **patch} if "chat" in path else {"max_tokens": 2, **patch}
    error = assert_error(vl_client.post(path, json=body), 400)
    assert error["param"] == param  # not 'stop.str' (pydantic's name for the alternative)
    assert error["message"].startswith(f"{param}: must be {alternatives}"), error["message"]
    assert "more)" not in error["message"]


def test_unknown_fields_are_ignored(vl_client):
    assert post_chat(vl_client, {**ok_body(), "frobnicate": True}).status_code == 200


def test_unknown_model_is_404(vl_client):
    error = assert_error(post_chat(vl_client, {**ok_body(), "model": "gpt-9"}), 404,
                         "model_not_found")
    assert error["param"] == "model"


def test_unknown_route_is_404_in_error_shape(vl_client):
    assert_error(vl_client.get("/v1/nothing-here"), 404)
    assert_error(vl_client.get("/v1/chat/completions"), 405)


def image_message(url):
    return [{"role": "user", "content": [
        {"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": url}}]}]


def video_message(url):
    return [{"role": "user", "content": [
        {"type": "text", "text": "?"}, {"type": "video_url", "video_url": {"url": url}}]}]


def test_corrupt_image(vl_client, media_dir):
    truncated = (media_dir / "corrupt.png").read_bytes()
    for url in (data_url(truncated, "image/png"), str(media_dir / "corrupt.png"),
                "data:image/png;base64,@@@notbase64@@@", data_url(b"hello", "image/png")):
        assert_error(post_chat(vl_client, {**ok_body(), "messages": image_message(url)}), 400)


def test_corrupt_video(vl_client, media_dir):
    for url in (str(media_dir / "corrupt.mp4"), data_url(b"garbage" * 50, "video/mp4"),
                data_url(png_bytes(1), "video/mp4")):
        assert_error(post_chat(vl_client, {**ok_body(), "messages": video_message(url)}), 400)


def test_local_path_outside_media_root_is_refused(vl_client, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes(9))
    for url in (str(outside), f"file://{outside}", "/etc/passwd", "../../etc/passwd"):
        error = assert_error(
            post_chat(vl_client, {**ok_body(), "messages": image_message(url)}), 403)
        assert "media-root" in error["message"]


def test_private_url_is_refused(vl_client):
    for url in ("http://127.0.0.1:9/x.png", "http://localhost/x.png", "http://10.0.0.1/a.jpg"):
        r = post_chat(vl_client, {**ok_body(), "messages": image_message(url)})
        assert 400 <= r.status_code < 500, r.text


def test_oversized_body_is_413(engine_for, media_dir):
    with make_client(engine_for("qwen2_vl"), media_dir, max_body_bytes=2048) as client:
        big = {**ok_body(), "messages": [{"role": "user", "content": "x" * 5000}]}
        assert_error(post_chat(client, big), 413)
        assert post_chat(client, ok_body()).status_code == 200


def test_api_key(engine_for, media_dir):
    with make_client(engine_for("qwen2_vl"), media_dir, api_key="sekret") as client:
        assert_error(post_chat(client, ok_body()), 401, "invalid_api_key")
        assert_error(post_chat(client, ok_body(), headers={"Authorization": "Bearer nope"}),
                     401)
        assert_error(client.get("/v1/models"), 401)
        ok = post_chat(client, ok_body(), headers={"Authorization": "Bearer sekret"})
        assert ok.status_code == 200
        assert post_chat(client, ok_body(), headers={"x-api-key": "sekret"}).status_code == 200
        assert client.get("/health").status_code == 200


def test_images_on_text_model_are_400(engine_for, media_dir):
    with make_client(engine_for("qwen3"), media_dir) as client:
        body = {**ok_body(), "messages": image_message(data_url(png_bytes(1), "image/png"))}
        assert_error(post_chat(client, body), 400, "unsupported_input")


def test_bad_json_schema_is_400(vl_client):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    assert_error(post_chat(vl_client, {**ok_body(), "response_format": fmt}), 400)


@pytest.mark.parametrize("wrapper", [
    {"name": 123, "schema": {"type": "object"}},
    {"name": "x", "strict": "maybe", "schema": {"type": "object"}},
    {"name": "x", "schema": 5},
    {"name": "x"},
])
def test_a_bad_schema_wrapper_is_400_not_an_unconstrained_reply(vl_client, wrapper):
    fmt = {"type": "json_schema", "json_schema": wrapper}
    error = assert_error(post_chat(vl_client, {**ok_body(), "response_format": fmt}), 400)
    assert (error["param"] or "").startswith("response_format"), error


def test_server_still_answers_after_bad_input(vl_client):
    vl_client.post("/v1/chat/completions", content=b"{{{",
                   headers={"content-type": "application/json"})
    assert post_chat(vl_client, ok_body()).status_code == 200


# --- found by fuzzing the OpenAPI schema (tests/fuzz) -------------------------------------
def test_405_names_every_method_of_the_path(vl_client):
    error = assert_error(vl_client.get("/v1/chat/completions"), 405, "method_not_allowed")
    assert error["type"] == "invalid_request_error"
    assert vl_client.get("/v1/chat/completions").headers["allow"] == "POST"
    # two routes share the path: Starlette alone named only the first one's method
    response = vl_client.put("/v1/files/file-1")
    assert_error(response, 405)
    assert response.headers["allow"] == "DELETE, GET"
    # "sync" also fits /v1/videos/{video_id}; the Allow of /v1/videos/sync is still its own
    assert vl_client.options("/v1/videos/sync").headers["allow"] == "POST"


@pytest.mark.parametrize("patch, param", [
    ({"repetition_penalty": 1e-300}, "repetition_penalty"),  # logits overflow: NaN logprobs
    ({"logit_bias": {"15": 1e9}}, "logit_bias"),
    ({"logit_bias": {"99999999": 5}}, "logit_bias"),  # indexed past the logits unchecked
    ({"logit_bias": {"-3": 5}}, "logit_bias"),
    ({"top_logprobs": 3}, "top_logprobs"),  # OpenAI refuses it without logprobs
    ({"extra_body": {"video_fps": 1000}}, None),  # the nested form skipped the bounds
    ({"extra_body": {"video_max_frames": 10**6}}, None),
])
def test_values_that_break_sampling_are_400(vl_client, patch, param):
    error = assert_error(post_chat(vl_client, {**ok_body(), **patch}), 400)
    if param is not None:
        assert error["param"].startswith(param)


def test_empty_prompt_in_a_list_is_400(vl_client):
    r = vl_client.post("/v1/completions", json={"prompt": ["a", ""], "max_tokens": 2})
    assert assert_error(r, 400)["param"].startswith("prompt")


@pytest.mark.parametrize("seed", [-247, -(2**63), 2**64 + 5])
def test_any_integer_seed_is_reproducible(vl_client, seed):
    body = {**ok_body(), "seed": seed, "temperature": 1.0, "n": 2}
    first, second = (post_chat(vl_client, body) for _ in range(2))
    assert first.status_code == 200, first.text
    texts = [[c["message"]["content"] for c in r.json()["choices"]] for r in (first, second)]
    assert texts[0] == texts[1]


@pytest.mark.parametrize("patch", [{"ignore_eos": True}, {"min_tokens": 5}])
def test_eos_suppression_with_json_output_is_400(vl_client, patch):
    # the engine masked every token once the JSON was done: '{"a":true}!!!!' and NaN logprobs
    body = {**ok_body(), **patch, "response_format": {"type": "json_object"}}
    error = assert_error(post_chat(vl_client, body), 400)
    assert error["param"] == next(iter(patch))


@pytest.mark.parametrize("kwargs, says", [
    ({}, "the request body is missing"),
    ({"content": b'{"model": "x"}', "headers": {"content-type": "text/plain"}},
     "must be a JSON object"),
])
def test_a_missing_or_untyped_body_is_named(vl_client, kwargs, says):
    r = vl_client.post("/v1/chat/completions", **kwargs)
    assert r.status_code == 400
    error = r.json()["error"]
    assert says in error["message"] and error["code"] == "invalid_request"
