"""How the command-line help reads: every option states its default and unit.

Contract: :class:`HelpFormatter` (the ``formatter_class`` of every ``vllm-mlx`` parser) adds
``(default: X)`` to an option's help unless the help states its default itself (it says
"default") or the default is None (then the help must say what happens without it); an
on/off flag says ``(default: off)``. Whole-number floats read without ``.0``.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, argparse.SUPPRESS)):
            return text
        if action.nargs == 0:  # a flag: on when given
            return f"{text} (default: off)" if action.default is False else text
        default = action.default
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        return f"{text} (default: {default})".replace("%", "%%")
