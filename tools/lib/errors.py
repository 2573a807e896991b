"""The one domain error of the tools' library code."""
from __future__ import annotations


class ToolError(Exception):
    """Bad input a user can fix: the message names the value and what was expected.

    Commands print it as one ``error: <message>`` line and exit 1 (``tools.cli.run``).
    """
