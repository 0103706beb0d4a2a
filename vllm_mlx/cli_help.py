"""How the command-line help reads: every option states its default and unit.

Contract: :class:`HelpFormatter` (the ``formatter_class`` of every ``vllm-mlx`` parser) adds
``(default: X)`` to an option's help unless the help states its default itself (it says
"default"), the option is a flag (takes no value), or the default is None (then the help
must say what happens without it).
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.nargs == 0
                or action.default in (None, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"
