"""The tools' one error edge: run a command's ``main`` and turn domain errors into one line.

Every ``python -m tools.<name>`` ends with ``sys.exit(cli.run(main))``. Library code raises
``ToolError`` (and the OS raises ``OSError``); here they become ``error: <message>`` on stderr and
exit status 1. Usage errors stay argparse's (exit 2). ``--debug`` or ``ATTNBENCH_DEBUG=1`` lets
the traceback through, for a bug report.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Sequence

from tools.lib.errors import ToolError


def _debugging(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("ATTNBENCH_DEBUG", "") not in ("", "0")


def run(main: Callable[[Optional[list[str]]], int], argv: Optional[list[str]] = None) -> int:
    """Call ``main(argv)`` and return its exit status; a domain or OS error prints one line, returns 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debugging(args)
    args = [a for a in args if a != "--debug"]
    try:
        return main(args)
    except (ToolError, OSError, ValueError) as exc:
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
