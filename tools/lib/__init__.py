"""Library half of the tools: results -> series -> detection -> verdicts, legacy parsing, files.

Nothing here reads ``sys.argv``, prints or ends the process: failures are ``ToolError`` (bad input
a user can fix) and things left out of an otherwise complete result are ``ToolWarning`` warnings;
the commands in ``tools/`` turn them into one ``error:`` / ``warning:`` line (``tools.cli.run``).
"""
