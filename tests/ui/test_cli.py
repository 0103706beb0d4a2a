"""``vllm-mlx-chat`` argument handling and its failures (no Gradio server started here)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import TINY_CACHE
from vllm_mlx.ui import cli


def test_without_gradio_it_says_how_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gradio" else real(name, *a))
    assert cli.main(["--model", "tiny:qwen2_vl"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'vllm-mlx[ui]'" in err and "missing: gradio" in err


def test_model_and_server_url_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--model", "m", "--server-url", "http://x"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        cli.main([])


def test_an_unreachable_server_exits_2(capsys):
    pytest.importorskip("gradio")
    assert cli.main(["--server-url", "http://127.0.0.1:9"]) == 2
    assert "cannot use the server" in capsys.readouterr().err


def test_a_model_that_cannot_load_exits_2(capsys):
    pytest.importorskip("gradio")
    code = cli.main(["--model", "tiny:no_such_arch", "--tiny-cache-dir", str(TINY_CACHE)])
    assert code == 2
    assert "error:" in capsys.readouterr().err
