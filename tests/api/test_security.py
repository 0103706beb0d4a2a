"""Security defaults (see SECURITY.md): the API key guards every route but /health, HTTP
and WebSocket alike, and is compared in constant time; ``trust_remote_code`` stays off
unless asked for; keys never reach the server's logs."""

from __future__ import annotations

import ast
import hmac
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.api.test_errors import assert_error
from tests.e2e.conftest import free_port, start_server, stop_server
from vllm_mlx.config import Settings

KEY = "s3cret-key-9f2c4e81"
PACKAGE = Path(__file__).resolve().parents[2] / "vllm_mlx"
PUBLIC = {"/health", "/v1/health"}
# routes each app must have: proof that the enumeration below is not vacuous
EXPECTED_HTTP = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/metrics",
                 "/v1/messages", "/v1/messages/count_tokens", "/v1/responses",
                 "/v1/domains", "/v1/files", "/v1/videos", "/v1/videos/{video_id}/content",
                 "/v1/predictions", "/openapi.json", "/docs", "/redoc"}
EXPECTED_WS = {"/", "/v1/stream"}


def all_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, looking inside included routers (FastAPI >= 0.13x nests them)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from all_routes(included.routes)
        else:
            yield route


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def http_routes(app: Any) -> list[tuple[str, str]]:
    return sorted({(route.path, method) for route in all_routes(app.routes)
                   for method in (getattr(route, "methods", None) or ())})


def ws_paths(app: Any) -> list[str]:
    return sorted({route.path for route in all_routes(app.routes)
                   if type(route).__name__.endswith("WebSocketRoute")})


@pytest.fixture(scope="module")
def keyed(engine_for, tmp_path_factory) -> Iterator[TestClient]:
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:qwen2_vl", api_key=KEY,
                        storage_path=tmp_path_factory.mktemp("secure-store"))
    with TestClient(create_app(settings, engine_for("qwen2_vl"))) as client:
        yield client


def test_every_http_route_but_health_needs_the_key(keyed):
    routes = http_routes(keyed.app)
    assert {path for path, _ in routes} >= EXPECTED_HTTP
    for path, method in routes:
        url = concrete(path)
        if path in PUBLIC:
            assert keyed.request(method, url).status_code == 200, path
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                        {"Authorization": f"Basic {KEY}"}):
            response = keyed.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            if method == "HEAD":
                continue
            if path.startswith("/v1/messages"):  # the Anthropic routes answer in its shape
                assert response.json()["error"]["type"] == "authentication_error"
            else:
                assert_error(response, 401, "invalid_api_key")
        # the key in a query string is for WebSockets only
        assert keyed.request(method, f"{url}?api_key={KEY}").status_code == 401, path
        granted = keyed.request(method, url, headers={"Authorization": f"Bearer {KEY}"})
        assert granted.status_code != 401, (method, path)


def test_unknown_paths_need_the_key_too(keyed):
    assert_error(keyed.get("/v1/no-such-route"), 401, "invalid_api_key")
    assert keyed.get("/v1/no-such-route", headers={"x-api-key": KEY}).status_code == 404


def test_docs_and_openapi_need_the_key(keyed):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert keyed.get(path).status_code == 401
        assert keyed.get(path, headers={"x-api-key": KEY}).status_code == 200


def ws_close_code(client: TestClient, url: str, **kwargs: Any) -> int | None:
    """The close code the server sends first, or None if it keeps the socket open."""
    with client.websocket_connect(url, **kwargs) as ws:
        ws.send_text("not json")
        try:
            message = ws.receive_json()
        except WebSocketDisconnect as exc:
            return exc.code
        assert "error" in message  # the session is live: it answers bad input
        return None


def test_every_websocket_route_needs_the_key(keyed):
    paths = ws_paths(keyed.app)
    assert set(paths) >= EXPECTED_WS
    for path in paths:
        assert ws_close_code(keyed, path) == 1008
        assert ws_close_code(keyed, f"{path}?api_key=wrong") == 1008
        assert ws_close_code(keyed, path, headers={"x-api-key": "wrong"}) == 1008
        assert ws_close_code(keyed, f"{path}?api_key={KEY}") is None
        assert ws_close_code(keyed, path, headers={"Authorization": f"Bearer {KEY}"}) is None


def test_video_only_server_needs_the_key(tmp_path):
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:wan2_1", api_key=KEY, storage_path=tmp_path)
    with TestClient(create_app(settings, None, None)) as client:
        routes = http_routes(client.app)
        assert {"/v1/videos", "/v1/models", "/v1/chat/completions"} <= {p for p, _ in routes}
        for path, method in routes:
            expected = 200 if path in PUBLIC else 401
            assert client.request(method, concrete(path)).status_code == expected, path


def test_cors_preflight_works_with_a_key(tmp_path):
    from vllm_mlx.api.app import create_app

    settings = Settings(model="tiny:wan2_1", api_key=KEY, cors_origins=("http://ui.test",),
                        storage_path=tmp_path)
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    with TestClient(create_app(settings, None, None)) as client:
        # browsers send preflights without credentials: the CORS layer answers them
        ok = client.options("/v1/models", headers={"Origin": "http://ui.test", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://ui.test"
        other = client.options("/v1/models", headers={"Origin": "http://evil.test", **preflight})
        assert "access-control-allow-origin" not in other.headers
        # the real request still needs the key, and its 401 is readable by the page
        denied = client.get("/v1/models", headers={"Origin": "http://ui.test"})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "http://ui.test"
        granted = client.get("/v1/models", headers={"Origin": "http://ui.test",
                                                    "Authorization": f"Bearer {KEY}"})
        assert granted.status_code == 200


def test_key_comparison_is_constant_time(keyed, monkeypatch):
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    keyed.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    keyed.get("/v1/models", headers={"x-api-key": "nope"})
    ws_close_code(keyed, f"/?api_key={KEY}")
    assert seen == [(KEY.encode(), KEY.encode()), (b"nope", KEY.encode()),
                    (KEY.encode(), KEY.encode())]


def secret_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing something key- or secret-like with ``==``/``!=``."""
    secretish = re.compile(r"api_?key|secret|signature|password", re.I)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(not isinstance(o, ast.Constant) and secretish.search(ast.unparse(o))
                   for o in operands):
                lines.append(node.lineno)
    return lines


def test_no_secret_is_compared_with_equality():
    offenders = {str(path.relative_to(PACKAGE)): lines for path in PACKAGE.rglob("*.py")
                 if (lines := secret_comparisons(ast.parse(path.read_text())))}
    assert offenders == {}


def remote_code_enabled(tree: ast.AST) -> list[int]:
    """Lines passing ``trust_remote_code=True`` (keyword or dict literal)."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.keyword) and node.arg == "trust_remote_code"
                and isinstance(node.value, ast.Constant) and node.value.value is True):
            lines.append(node.value.lineno)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and key.value == "trust_remote_code"
                        and isinstance(value, ast.Constant) and value.value is True):
                    lines.append(key.lineno)
    return lines


def test_trust_remote_code_is_never_hard_coded():
    offenders = {str(path.relative_to(PACKAGE)): lines for path in PACKAGE.rglob("*.py")
                 if (lines := remote_code_enabled(ast.parse(path.read_text())))}
    assert offenders == {}


class _Stop(Exception):
    pass


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3"])
def test_loader_passes_trust_remote_code_only_when_asked(tiny_model, monkeypatch, arch):
    import mlx_lm
    import mlx_vlm

    from vllm_mlx.engine.errors import ModelLoadError
    from vllm_mlx.engine.loader import LoadOptions, load_model

    calls: list[dict[str, Any]] = []

    def fake_load(path: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        raise _Stop

    monkeypatch.setattr(mlx_vlm, "load", fake_load)
    monkeypatch.setattr(mlx_lm, "load", fake_load)
    path = str(tiny_model(arch))
    for asked in (False, True):
        with pytest.raises(ModelLoadError):
            load_model(path, LoadOptions(trust_remote_code=asked))
    default, enabled = calls
    if arch == "qwen2_vl":
        # explicit False: mlx-vlm reads an *omitted* flag as True for the image processor
        assert default == {"trust_remote_code": False}
        assert enabled == {"trust_remote_code": True}
    else:
        assert default["tokenizer_config"] == {"trust_remote_code": False}
        assert default.get("trust_remote_code", False) is False
        assert enabled["tokenizer_config"] == {"trust_remote_code": True}


def test_cli_default_is_no_remote_code(monkeypatch, tmp_path):
    from vllm_mlx import blas, cli
    from vllm_mlx.engine import Engine, ModelLoadError

    options: list[Any] = []

    def fake_start(model: str, load_options: Any, *args: Any, **kwargs: Any) -> Any:
        options.append(load_options)
        raise ModelLoadError("stop here")

    monkeypatch.setattr(Engine, "start", fake_start)
    monkeypatch.setattr(blas, "activate_fast_blas", lambda *a, **k: None)
    # 'some/model' is not in the Hub cache: the up-front Hub check would stop it first.
    monkeypatch.setattr("vllm_mlx.engine.loader.check_hub_reference", lambda reference: None)
    for flags in ([], ["--trust-remote-code"]):
        args = cli.build_parser().parse_args(
            ["serve", "some/model", "--storage-path", str(tmp_path), "--port",
             str(free_port()), *flags])  # not 8000: another server may hold it
        assert cli.serve(cli.settings_from_args(args)) == 2
    assert [o.trust_remote_code for o in options] == [False, True]


def test_redaction_rules():
    from vllm_mlx.api.redact import RedactSecrets

    redactor = RedactSecrets([KEY, "abc", None])
    assert redactor.secrets == (KEY,)  # too short to replace everywhere
    path = f"/v1/stream?fps=2&api_key={KEY}&token=t0k&x-api-key=k2"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", path, "1.1", 200), None)
    assert redactor.filter(record)
    assert record.getMessage() == ('127.0.0.1:5 - "GET /v1/stream?fps=2&api_key=***&token=***'
                                   '&x-api-key=*** HTTP/1.1" 200')
    message = logging.LogRecord("vllm_mlx", logging.ERROR, __file__, 1,
                                f"auth Bearer {KEY}; saw {KEY} in %(where)s",
                                ({"where": f"body {KEY}"},), None)
    redactor.filter(message)
    assert message.getMessage() == "auth Bearer ***; saw *** in body ***"


def test_api_key_never_reaches_the_logs(tmp_path):
    server = start_server(["tiny:qwen3", "--api-key", KEY, "--storage-path",
                           str(tmp_path / "store")], tmp_path / "server.log")
    try:
        base, ws_base = server.base_url, server.base_url.replace("http", "ws", 1)
        assert httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}"},
                         timeout=30).status_code == 200
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(f"{base}/v1/chat/completions", json=chat,
                          headers={"x-api-key": KEY}, timeout=60).status_code == 200
        assert httpx.get(f"{base}/v1/models?api_key={KEY}", timeout=30).status_code == 401
        for url in (f"{ws_base}/?api_key={KEY}", f"{ws_base}/v1/stream?token=x&api_key={KEY}"):
            with websockets.sync.client.connect(url, open_timeout=30) as ws:
                ws.recv(timeout=30)  # a text-only model: an error message, then close 1003
    finally:
        assert stop_server(server) == 0
    log = server.output()
    assert "GET /v1/models" in log and "WebSocket /?api_key=***" in log  # logs were captured
    assert KEY not in log
