"""One app with a chat engine and video jobs; and a chat-only app's video routes."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.videos.conftest import FAST, png_bytes, poll_done
from vllm_mlx.config import Settings


def test_chat_and_videos_in_one_app(engine_for, jobs, tmp_path) -> None:
    from vllm_mlx.api.app import create_app

    engine = engine_for("qwen2_vl")
    settings = Settings(model="tiny:qwen2_vl", storage_path=tmp_path, video_model="tiny:wan2_1")
    with TestClient(create_app(settings, engine, jobs)) as client:
        record = client.post("/v1/videos", data={"prompt": "a boat", **FAST}).json()
        chat = client.post("/v1/chat/completions", json={
            "model": "default", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["object"] == "chat.completion"
        assert poll_done(client, record["id"])["status"] == "completed"
        assert client.get("/health").json()["status"] == "ok"
        metrics = client.get("/metrics").text
        assert "vllm_mlx_video_jobs_running " in metrics
        assert "vllm_mlx_decode_steps_total " in metrics
        assert sum(line.startswith("vllm_mlx_mlx_active_memory_bytes ")
                   for line in metrics.splitlines()) == 1
        uploaded = client.post("/v1/files", files={"file": ("ref.png", png_bytes(8), "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        ref = json.dumps({"file_id": uploaded.json()["id"]})
        by_id = client.post("/v1/videos", data={"prompt": "a boat", "image_reference": ref, **FAST})
        assert by_id.status_code == 200, by_id.text
        done = poll_done(client, by_id.json()["id"])
        assert done["status"] == "completed" and any("latent frame 0" in n for n in done["notes"])


def test_chat_only_app_answers_video_routes_with_404(engine_for, tmp_path) -> None:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen2_vl", storage_path=tmp_path)
    with TestClient(create_app(settings, engine_for("qwen2_vl"))) as client:
        for response in (client.post("/v1/videos", data={"prompt": "p"}),
                         client.get("/v1/videos"), client.get("/v1/videos/video_x/content")):
            assert response.status_code == 404
            assert "no video model loaded" in response.json()["error"]["message"]
