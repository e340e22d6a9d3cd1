"""`python -m hpo.estimate`: see `hpo.estimate.cli`."""

import sys

from hpo.estimate.cli import main
from trainables.cli import run_cli

sys.exit(run_cli(main))
