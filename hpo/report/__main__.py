"""`python -m hpo.report`: see `hpo.report.cli`."""

import sys

from hpo.report.cli import main
from trainables.cli import run_cli

sys.exit(run_cli(main))
