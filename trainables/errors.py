"""The project's one error type for user mistakes."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from a user: an option, a file, a row, a config value.

    The message names what is wrong and where (file and line, or option) and how to fix it.
    Command-line entry points catch it once, print the message and exit with code 2, with no
    traceback; library callers can catch it like any other exception.

    Example:
        >>> raise UserError("--window must be >= 2, got 1")
        Traceback (most recent call last):
        ...
        trainables.errors.UserError: --window must be >= 2, got 1
    """
