"""`python -m hpo.run --space NAME`: the main job (the HPO platform issue builds the study)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainables.cli import configure_logging, run_cli
from trainables.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    from search_spaces import SPACE_NAMES, get_space

    parser = argparse.ArgumentParser(prog="python -m hpo.run", description=__doc__)
    parser.add_argument("--space", required=True, help=f"one of {', '.join(SPACE_NAMES)}")
    args, _ = parser.parse_known_args(argv)
    configure_logging()
    space = get_space(args.space)  # an unknown name is a user error, named here
    raise UserError(
        f"--space {space.name}: the HPO study is not built yet; train one configuration with "
        f"`python -m trainables.train --mode {space.mode} --tune-batch-size` meanwhile"
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
