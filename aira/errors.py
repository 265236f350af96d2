"""Errors that carry a message meant for the user.

`UsageError` is bad input: the CLI prints its message on one line and exits with code 2.
Anything else that escapes is a bug and keeps its traceback.
"""


class UsageError(ValueError):
    """Bad input from the user (a pattern, a preset, a path, a flag). One line, exit code 2."""
