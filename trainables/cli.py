"""What every command-line entry point shares: logging set-up and the user-error exit path."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from trainables.errors import UserError

__all__ = ["EXIT_USER_ERROR", "configure_logging", "is_interactive", "run_cli", "tool_command"]

EXIT_USER_ERROR = 2


def tool_command(name: str) -> str:
    """How to run this environment's `python` (`name="python"`) or one of its scripts (`mlflow`,
    `ray`) in a command we print for the user to copy: the path of this interpreter's, relative
    to the working folder when it is under it (`.venv/bin/ray`), since the virtualenv is not
    necessarily activated (the README runs `.venv/bin/python`)."""
    path = Path(sys.executable).parent / name if name != "python" else Path(sys.executable)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def is_interactive() -> bool:
    """Whether stdout is a terminal, so progress bars are welcome (never in logs or CI)."""
    # Ray replaces a worker's stdout with a stream that has no `isatty`: not a terminal.
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("CI", "").lower() not in ("1", "true")


class _QuietFrameworks(logging.Filter):
    """Drops Lightning's INFO chatter (banners, tips, tuner steps) unless `verbose`."""

    _NAMES = ("pytorch_lightning", "lightning")

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            self.verbose
            or record.levelno >= logging.WARNING
            or not record.name.startswith(self._NAMES)
        )


def configure_logging(*, verbose: bool = False) -> None:
    """One line per event on stderr, so stdout stays clean for `--json` output."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    # Lightning's start-up banners (accelerators, tips) are not events of the run. Lightning
    # resets its loggers' levels when it is imported, so filter on the handler instead.
    quiet = _QuietFrameworks(verbose=verbose)
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r".*`torch.jit.script` is deprecated")


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run `main`, turning a `UserError` into its message on stderr and exit code 2.

    Any other exception propagates with its traceback: it is a bug, not a user mistake.
    """
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
