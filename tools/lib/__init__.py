"""Library half of the tools: results -> series -> detection -> verdicts, legacy parsing, files.

Nothing here reads ``sys.argv``, prints ``error:`` lines or ends the process: failures are
``ToolError`` (bad input a user can fix), and the commands in ``tools/`` turn them into one line.
"""
