"""The tools' one error edge, and the argument types every command validates its options with.

Every ``python -m tools.<name>`` ends with ``sys.exit(cli.run(main))``. Library code raises
``ToolError`` (and the OS raises ``OSError``); here they become ``error: <message>`` on stderr and
exit status 1. Warnings the library gives (``ToolWarning``: a file skipped, a series that cannot be
judged) become ``warning: <message>`` lines. Usage errors stay argparse's (exit 2). Anything else is
a bug: one ``error: internal error ...`` line, exit 1. ``--debug`` or ``ATTNBENCH_DEBUG=1`` lets the
traceback through, for a bug report.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from typing import Callable, Optional, Sequence

from tools.lib.errors import ToolError, ToolWarning

__all__ = ["run", "ratio_above_one", "ratio_at_least_one", "probability", "positive_int", "regex",
           "non_empty", "machine_name"]


def _debugging(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("ATTNBENCH_DEBUG", "") not in ("", "0")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, ToolWarning):
        print(f"warning: {_one_line(Warning(str(message)))}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: the library's own, the OS's, bad values, and asv's and git's reports."""
    known: list[type[BaseException]] = [ToolError, OSError, ValueError]
    try:
        from asv.util import UserError
        known.append(UserError)
    except ImportError:
        pass
    try:
        from git.exc import GitError
        known.append(GitError)
    except ImportError:
        pass
    return tuple(known)


def run(main: Callable[[Optional[list[str]]], int], argv: Optional[list[str]] = None) -> int:
    """Call ``main(argv)`` and return its exit status; a domain or OS error prints one line, returns 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debugging(args)
    args = [a for a in args if a != "--debug"]
    with warnings.catch_warnings():  # restores showwarning on the way out
        warnings.simplefilter("always", ToolWarning)
        warnings.showwarning = _show_warning
        try:
            return main(args) or 0
        except SystemExit:
            raise  # argparse: --help (0) and usage errors (2)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (``| head``): no message to nobody, and none at exit either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except _known_errors() as exc:
            if debug:
                raise
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
            if debug:
                raise
            print(f"error: internal error {type(exc).__name__}: {_one_line(exc)} (run again with --debug "
                  "for the traceback)", file=sys.stderr)
            return 1


# --- argument types: a bad value is an argparse usage error (exit 2) naming it -------------------

def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def ratio_above_one(text: str) -> float:
    """A finite ratio > 1 (a slowdown threshold such as 1.1)."""
    value = _float(text)
    if value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a ratio above 1 (e.g. 1.1), got {text}")
    return value


def ratio_at_least_one(text: str) -> float:
    """A finite ratio >= 1 (1 keeps every step)."""
    value = _float(text)
    if value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a ratio of at least 1 (e.g. 1.05), got {text}")
    return value


def probability(text: str) -> float:
    """A significance level strictly between 0 and 1."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1 (e.g. 0.01), got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def regex(text: str) -> str:
    """A valid Python regular expression (returned as text)."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid regular expression ({exc})") from None
    return text


def non_empty(text: str) -> str:
    """Any text but the empty string."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def machine_name(text: str) -> str:
    """A name that can be a directory under results/: letters, digits, '.', '_', '-'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a machine name (letters, digits, '.', '_', '-'; "
                                         "it names a directory under results/)")
    return text
