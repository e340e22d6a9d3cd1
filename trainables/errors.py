"""The project's one error type for user mistakes, the integer check every entry point makes,
and `naming_keys` for values read from files."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["UserError", "naming_keys", "require_int"]


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


def require_int(option: str, value: object, minimum: int) -> int:
    """`value`, checked to be an integer >= `minimum`. A bool is not one, though Python takes
    `True` for the integer 1 (a `true` in a JSON file is no count of epochs).

    Args:
        option: What sets the value, as the message names it (`--epochs`).
        value: The value to check.
        minimum: The smallest value allowed.

    Returns:
        `value`.

    Raises:
        UserError: `{option} must be an integer >= {minimum}, got {value!r}`.

    Example:
        >>> require_int("--epochs", 3, minimum=1)
        3
        >>> require_int("--epochs", True, minimum=1)
        Traceback (most recent call last):
        ...
        trainables.errors.UserError: --epochs must be an integer >= 1, got True
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{option} must be an integer >= {minimum}, got {value!r}")
    return value


def naming_keys(message: str, keys: Mapping[str, str]) -> str:
    """`message` of a check about a value read from a file, with what the check names (an
    option, `--window`) replaced by the file's key that holds the value (`source.window`).

    The checks are the ones of values from the command line, and name its options; a value
    from a saved file (a run's `config.json`, a study's `study.json`) is fixed in the file.

    Args:
        message: The check's message.
        keys: What a check names (an option, or any other phrase) -> the key of the file; each
            is replaced where it stands as a whole (`--seed` is not a part of `--data-seed`).

    Example:
        >>> naming_keys("--window must be an integer >= 2, got 1", {"--window": "source.window"})
        'source.window must be an integer >= 2, got 1'
    """
    if not keys:
        return message
    names = "|".join(re.escape(name) for name in sorted(keys, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])(?:{names})(?![\w-])", lambda m: keys[m.group(0)], message)
