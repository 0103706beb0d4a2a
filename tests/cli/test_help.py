"""Every option of every ``vllm-mlx`` command has help that states its default (or that it
has none, or is a flag); the top-level help is plain text; ``--version`` works."""

from __future__ import annotations

import argparse

import pytest

from vllm_mlx import __version__
from vllm_mlx.cli import build_parser
from vllm_mlx.cli_help import HelpFormatter
from vllm_mlx.tiny import ARCHITECTURES
from vllm_mlx.tiny.cli import build_parser as tiny_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {**sub.choices, "python -m vllm_mlx.tiny": tiny_parser()}


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser.formatter_class(parser.prog)._get_help_string(action) or ""
    return text % {**vars(action), "prog": parser.prog}


@pytest.mark.parametrize("name", ["serve", "stream", "tiny-model", "python -m vllm_mlx.tiny"])
def test_every_option_states_its_default(name):
    parser = _commands()[name]
    assert parser.formatter_class is HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = _help_of(parser, action)
        where = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert text.strip(), f"{where} has no help"
        flag = action.nargs == 0
        assert flag or not action.option_strings or "default" in text, \
            f"{where} does not say its default: {text!r}"


def test_tiny_model_help_lists_every_architecture():
    text = _commands()["tiny-model"].format_help()
    flat = " ".join(text.split())
    assert len(ARCHITECTURES) >= 22
    for arch in (*ARCHITECTURES, "wan2_1"):
        assert arch in flat


def test_top_level_help_is_plain_text_and_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":class:" not in out
    for command in ("serve", "stream", "tiny-model"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vllm-mlx {__version__}"
