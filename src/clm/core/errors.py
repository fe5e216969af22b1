"""Errors meant for the user: printed as one clear message, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (a file, a key, an argument).

    The command line prints ``error: <message>`` and exits with ``exit_code``
    (2 for a user's mistake, in an argument or in a file the user gave; 1 for
    a failure of the run itself, such as a write the disk refused).
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(UserError):
    """A command-line misuse (unknown option value, unknown id): exit code 2."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)
