"""`python -m hpo.run --space NAME`: the main job (built by the HPO platform issue)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainables.cli import configure_logging, run_cli
from trainables.errors import UserError

SPACES = ("curriculum", "normal", "autoencoder", "kd", "fusion")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpo.run", description=__doc__)
    parser.add_argument("--space", required=True, choices=SPACES)
    args, _ = parser.parse_known_args(argv)
    configure_logging()
    raise UserError(
        f"--space {args.space}: the HPO platform is not built yet; "
        "build graphs with `python -m trainables.data build` meanwhile"
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
