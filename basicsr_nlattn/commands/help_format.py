"""The help of every command lists each flag with its default (``basicsr <command> --help``)."""
import argparse
from typing import Any


def default_text(default: Any) -> str:
    """A default as the help shows it: ``none``, ``off`` for a switch, ``64 64`` for a list."""
    if default is None:
        return 'none'
    if default is False:
        return 'off'
    return ' '.join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)


class HelpFormatter(argparse.HelpFormatter):
    """Each optional flag's help ends with ``Default: ...``, unless its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ''
        if not action.option_strings or action.required or 'Default:' in text or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0 and action.default is not False:  # --help, --version
            return text
        return f"{text}. Default: {default_text(action.default).replace('%', '%%')}"
