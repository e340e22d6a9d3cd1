"""`python -m hpo.report --space NAME`: a study's leaderboard, read back from MLflow.

- `build`: the report from a study's MLflow runs (`build_report`);
- `text`: the report for a terminal (`format_report`);
- `cli`: the command line (see its docstring for the report's JSON keys).
"""

from __future__ import annotations

from hpo.report.build import build_report
from hpo.report.cli import main
from hpo.report.text import format_report

__all__ = ["build_report", "format_report", "main"]
