"""The domain error and warning of the tools' library code."""
from __future__ import annotations

__all__ = ["ToolError", "ToolWarning"]


class ToolError(Exception):
    """Bad input a user can fix: the message names the value and what was expected.

    Commands print it as one ``error: <message>`` line and exit 1 (``tools.cli.run``).
    """


class ToolWarning(UserWarning):
    """Something left out of a result that is otherwise complete (a corrupt file skipped, a series
    that cannot be judged); ``tools.cli.run`` prints it as one ``warning: <message>`` line."""
